"""Whole sessions through the workflow, the record store and the simulated units."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from audit.values import thaw
from audit.verify import verify_store
from console.services import ConsoleServices
from console.session.states import SessionState
from console.session.workflow import TransitionRefused
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.simulator import EpatSimulator
from tests.console.conftest import PASSWORD, SESSION_DATE
from tests.console.session_helpers import (
    CLEAN_ANSWERS,
    EPAT_PLAN,
    SHORT_DOSE_REASON,
    SHORT_EMTT_PLAN,
    SHORT_EPAT_PLAN,
    Pump,
    connected_session,
)

S = SessionState


@pytest.mark.req("SES-FLOW-1")
@pytest.mark.req("SES-COUNT-1")
def test_a_whole_epat_session_is_delivered_documented_and_signed(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    workflow = connected_session(services, therapist, patient_id, pump, plan=EPAT_PLAN)
    assert workflow.validation is not None and workflow.validation.verdict.value == "ok"
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.state is S.COMPLETED)
    assert workflow.delivered == 1500 == epat_sim[0].snapshot().delivered
    workflow.document(
        pain_before=6,
        pain_after=3,
        adverse_events=["reddening"],
        treatment_points=[{"x": 420, "y": 610}],
        notes="tolerated well",
    )
    signature = workflow.sign(PASSWORD, user_name="thera")
    workflow.close()
    assert signature["meaning"] == "performed" and signature["signer_name"] == "Theo Therapist"
    record = services.sessions.load(workflow.ctx.session_id)
    assert record.state == "signed"
    assert record.delivered == 1500
    assert record.device_serial and record.applicator_type == "D20-S"
    assert record.applicator_shots_after - record.applicator_shots_before == 1500
    assert all(check.valid for check in services.sessions.verify_signatures(record.session_id))
    assert verify_store(services.store).ok


@pytest.mark.req("SES-FLOW-1")
def test_a_whole_emtt_session(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    emtt_sim: tuple[EmttSimulator, str],
) -> None:
    workflow = connected_session(
        services, therapist, patient_id, pump, "knee-tendon-emtt", SHORT_EMTT_PLAN
    )
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.state is S.COMPLETED)
    workflow.close()
    assert workflow.delivered == 600 == emtt_sim[0].snapshot().delivered
    record = services.sessions.load(workflow.ctx.session_id)
    assert record.delivered == 600
    assert record.parameter_override_reason == SHORT_DOSE_REASON


@pytest.mark.req("SES-ARM-1")
def test_arming_is_refused_with_every_failed_interlock(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str
) -> None:
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    incomplete = dict(CLEAN_ANSWERS)
    del incomplete["fever"]
    workflow.submit_screening(incomplete)
    with pytest.raises(TransitionRefused) as refused:
        workflow.plan(SHORT_EPAT_PLAN)
    assert any("fever" in reason for reason in refused.value.reasons)
    workflow.submit_screening(CLEAN_ANSWERS)
    workflow.plan(SHORT_EPAT_PLAN)
    workflow.connect(services.start_worker(workflow, pump.put))
    with pytest.raises(TransitionRefused) as refused:
        workflow.arm()  # below the protocol's range without an override, and not confirmed
    assert any("PARAMETERS_OVERRIDE" in r for r in refused.value.reasons)
    assert any("PARAMETERS_CONFIRMED" in r for r in refused.value.reasons)
    workflow.revalidate(SHORT_DOSE_REASON)
    with pytest.raises(TransitionRefused) as refused:
        workflow.arm()
    assert [r.split(":")[0] for r in refused.value.reasons] == ["PARAMETERS_CONFIRMED"]
    workflow.confirm_parameters()
    workflow.arm()
    assert workflow.state is S.ARMED
    workflow.close()


@pytest.mark.req("SES-ARM-2")
def test_a_blocked_screening_can_never_be_planned_or_overridden(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str
) -> None:
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    outcome = workflow.submit_screening({**CLEAN_ANSWERS, "pregnant": True})
    assert outcome.verdict.value == "block"
    with pytest.raises(TransitionRefused):
        workflow.override_screening("the patient insists and accepts all risks of it")
    with pytest.raises(TransitionRefused):
        workflow.plan(SHORT_EPAT_PLAN)
    assert workflow.state is S.SCREENING


@pytest.mark.req("SES-ARM-2")
def test_a_relative_contraindication_needs_a_written_reason(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str
) -> None:
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    workflow.submit_screening({**CLEAN_ANSWERS, "anticoagulants": True})
    with pytest.raises(TransitionRefused):
        workflow.plan(SHORT_EPAT_PLAN)
    with pytest.raises(TransitionRefused):
        workflow.override_screening("too short")
    workflow.override_screening("INR checked today, 2.1; low pressure, no haematoma risk")
    workflow.plan(SHORT_EPAT_PLAN)
    assert workflow.state is S.PLANNED


@pytest.mark.req("SES-ARM-3")
def test_no_active_programme_no_treatment(pump: Pump, services: ConsoleServices, therapist) -> None:
    from datetime import date

    patient = services.create_patient(therapist, "KNEE-0002", date(1975, 1, 2))
    workflow = connected_session(services, therapist, patient.patient_id, pump)
    with pytest.raises(TransitionRefused) as refused:
        workflow.arm()
    assert any("PROGRAMME" in reason for reason in refused.value.reasons)
    workflow.close()


@pytest.mark.req("SES-ARM-4")
def test_parameters_refused_by_the_fitted_applicator_cannot_arm(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    epat_sim[0].fit_applicator("R15")
    plan = dataclasses.replace(EPAT_PLAN, pressure_bar=Decimal("4.50"))
    workflow = connected_session(
        services,
        therapist,
        patient_id,
        pump,
        "knee-pfp-epat",
        dataclasses.replace(plan, pulses=2000),
    )
    with pytest.raises(TransitionRefused) as refused:
        workflow.arm()
    assert any("R15" in reason and "D20-S" in reason for reason in refused.value.reasons)
    assert epat_sim[0].snapshot().state == 0  # IDLE: nothing was even loaded
    workflow.close()


@pytest.mark.req("SES-ESTOP-1")
@pytest.mark.req("SES-COUNT-1")
def test_emergency_stop_mid_delivery_latches_and_records_the_units_count(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    workflow = connected_session(services, therapist, patient_id, pump)
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.delivered >= 200)
    workflow.emergency_stop()
    assert workflow.state is S.FAULTED
    assert workflow.end_reason == "emergency stop"  # even if the unit's report won the lock
    snapshot = epat_sim[0].snapshot()
    assert snapshot.state == 6 and snapshot.faults & 0x01  # FAULT with the ESTOP bit
    assert workflow.delivered == snapshot.delivered
    assert services.alarms.highest() is not None
    workflow.close()
    assert services.sessions.load(workflow.ctx.session_id).delivered == snapshot.delivered


@pytest.mark.req("SES-FAULT-1")
def test_a_device_fault_ends_delivery_in_faulted_with_a_latched_alarm(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    workflow = connected_session(services, therapist, patient_id, pump)
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.delivered >= 100)
    epat_sim[0].force_overtemp()
    pump.until(workflow, lambda: workflow.state is S.FAULTED)
    assert workflow.delivered == epat_sim[0].snapshot().delivered
    alarm = services.alarms.highest()
    assert alarm is not None and "OVERTEMP" in alarm.message
    services.alarms.acknowledge(alarm.key, "thera")
    # Acknowledged is not resolved (ALARM-ACK-1): the unit is still latched in FAULT, so the
    # alarm stays shown (silenced) until the condition clears.
    [still] = services.alarms.active()
    assert still.key == alarm.key and still.acknowledged and still.persists
    assert services.alarms.sounding() is None
    assert epat_sim[0].snapshot().state.name == "FAULT"
    workflow.close()
    actions = [e.action for e in services.trail.events(limit=10_000)]
    assert "alarm.raised" in actions and "alarm.acknowledged" in actions


@pytest.mark.req("SES-FLOW-1")
def test_pause_titrate_resume_keeps_one_count(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    workflow = connected_session(services, therapist, patient_id, pump)
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.delivered >= 300)
    paused_at = workflow.pause()
    workflow.titrate(pressure_bar=Decimal("2.00"))
    assert workflow.state is S.PAUSED and workflow.delivered == paused_at
    workflow.resume()
    pump.until(workflow, lambda: workflow.state is S.COMPLETED)
    workflow.close()
    assert workflow.delivered == 600 == paused_at + epat_sim[0].snapshot().delivered
    record = services.sessions.load(workflow.ctx.session_id)
    assert record.delivered == 600 and sum(record.segments) == 600
    assert record.titrations[0]["to"]["pressure_bar"] == "2.00"


def test_commlog_of_the_session_is_written(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str, tmp_path: Path
) -> None:
    workflow = connected_session(services, therapist, patient_id, pump)
    workflow.close()
    log = tmp_path / "commlogs" / f"{workflow.ctx.session_id}-epat.jsonl"
    assert log.exists() and log.read_text().count('"dir": "tx"') > 3


@pytest.mark.req("SES-CONN-1")
def test_a_second_connection_is_refused_before_anything_is_opened(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    """Found by the state machine: a second driver cut the session's link and kept the unit
    firing with its heartbeats while the session recorded 0 pulses."""
    workflow = connected_session(services, therapist, patient_id, pump)
    workflow.arm()
    workflow.start()
    with pytest.raises(TransitionRefused):
        services.start_worker(workflow, pump.put)
    pump.until(workflow, lambda: workflow.delivered >= 20)
    assert workflow.state is S.DELIVERING  # the session's own link is intact
    workflow.stop()
    recorded = services.sessions.load(workflow.ctx.session_id).delivered
    assert recorded == workflow.delivered == epat_sim[0].snapshot().delivered


# ---------------------------------------------------------------------------- issue 11
OVERRIDE_REASON = "patient tolerated 3.8 bar last time; agreed after explaining the risk"
ADDENDUM_REASON = "haematoma reported by the patient by phone the next morning"


def _aborted_and_documented(services: ConsoleServices, therapist, patient_id: str, pump: Pump):
    """A session ended before any unit was used (screened, aborted) and documented."""
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    pump.workflows.append(workflow)
    workflow.submit_screening(CLEAN_ANSWERS)
    workflow.abort("patient had to leave before the treatment")
    workflow.document(
        pain_before=5, pain_after=5, adverse_events=[], treatment_points=[], notes="no treatment"
    )
    return workflow


@pytest.mark.req("SES-OVR-2")
def test_stored_validation_says_accepted_with_the_override_not_override_null(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str
) -> None:
    """Defect: the stored validation said ``"accepted": false, "override": null`` although an
    override with its reason was recorded for the plan."""
    plan = dataclasses.replace(EPAT_PLAN, pressure_bar=Decimal("3.80"))
    workflow = connected_session(
        services, therapist, patient_id, pump, plan=plan, override_reason=OVERRIDE_REASON
    )
    workflow.abort("test of the stored validation only")
    record = services.sessions.load(workflow.ctx.session_id)
    assert record.validation is not None
    assert record.validation["decision"] == "override_required"
    assert record.validation["accepted"] is True
    assert record.validation["override"]["reason"] == OVERRIDE_REASON
    assert record.validation["override"]["user_id"] == "thera"
    assert record.parameter_override_reason == OVERRIDE_REASON


@pytest.mark.req("SES-OVR-2")
def test_titrating_after_an_override_keeps_the_recorded_override_reason(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    """Defect: planned 3.8 bar with a written reason, titrated to 3.0: the record's override
    reason was erased (story and PDF showed "Parameter override reason —", "Validation ok")."""
    plan = dataclasses.replace(EPAT_PLAN, pressure_bar=Decimal("3.80"))
    workflow = connected_session(
        services, therapist, patient_id, pump, plan=plan, override_reason=OVERRIDE_REASON
    )
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.delivered >= 30)
    workflow.pause()
    workflow.titrate(pressure_bar=Decimal("3.00"))  # back inside the protocol: no new reason
    workflow.abort("test of the titration record only")
    record = services.sessions.load(workflow.ctx.session_id)
    assert record.parameter_override_reason == OVERRIDE_REASON
    assert record.titrations[0]["to"]["pressure_bar"] == "3.00"
    assert record.titrations[0]["override_in_force"] is None  # 3.0 bar needs none
    validation = record.validation
    assert validation is not None and validation["decision"] == "ok"
    given = validation["session_overrides"]
    assert [o["reason"] for o in given] == [OVERRIDE_REASON]
    assert given[0]["parameters"]["pressure_bar"] == "3.80"


@pytest.mark.req("SES-SCREEN-1")
def test_a_screening_block_cannot_be_answered_away_silently(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str
) -> None:
    """Defect: changing one answer after a block needed no reason and left no trace but the
    last decision ("Decision allow, Rules fired none")."""
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    pump.workflows.append(workflow)
    assert workflow.submit_screening({**CLEAN_ANSWERS, "pregnant": True}).verdict.value == "block"
    with pytest.raises(TransitionRefused, match="correction that needs a written reason"):
        workflow.submit_screening(CLEAN_ANSWERS)
    assert workflow.screening is not None and workflow.screening.verdict.value == "block"
    reason = "patient misheard the question; confirmed not pregnant, test negative today"
    assert workflow.submit_screening(CLEAN_ANSWERS, reason=reason).verdict.value == "allow"
    workflow.abort("test of the screening correction only")
    record = services.sessions.load(workflow.ctx.session_id)
    screening = record.screening
    assert screening is not None and record.screening_decision == "allow"
    assert screening["first_decision"]["decision"] == "block"
    assert "CI-PREG" in screening["first_decision"]["rules"]
    [correction] = screening["corrections"]
    assert thaw(correction["changes"]) == [{"question": "pregnant", "from": True, "to": False}]
    assert correction["reason"] == reason and correction["by"] == "thera"
    assert correction["from_decision"] == "block" and correction["to_decision"] == "allow"
    assert correction["time"].endswith("Z")
    actions = [e.action for e in services.sessions.events(workflow.ctx.session_id)]
    assert "screening.corrected" in actions
    refusals = [
        e
        for e in services.trail.events(limit=10_000)
        if e.action == "session.refused" and e.subject.id == workflow.ctx.session_id
    ]
    assert refusals and "pregnant" in refusals[0].data["reasons"][0]


@pytest.mark.req("SES-SIGN-1")
def test_signed_documentation_is_read_only_and_later_facts_are_signed_addenda(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str
) -> None:
    """Defect: after signing, the documentation still accepted edits, so what was shown was
    not the signed record."""
    from audit.records import verify_records
    from console.services import AddendumRefused

    workflow = _aborted_and_documented(services, therapist, patient_id, pump)
    workflow.sign(PASSWORD, user_name="thera")
    with pytest.raises(TransitionRefused, match=r"Signed by Theo Therapist at .*addend"):
        workflow.document(
            pain_before=5, pain_after=0, adverse_events=["haematoma"], treatment_points=[]
        )
    sid = workflow.ctx.session_id
    assert services.sessions.load(sid).adverse_events == ()
    with pytest.raises(AddendumRefused, match="reason"):
        services.add_addendum(therapist, sid, {"adverse_events": ["haematoma"]}, "later", PASSWORD)
    with pytest.raises(AddendumRefused, match="pain_after"):
        services.add_addendum(therapist, sid, {"delivered": 9}, ADDENDUM_REASON, PASSWORD)
    record = services.add_addendum(
        therapist, sid, {"adverse_events": ["haematoma"]}, ADDENDUM_REASON, PASSWORD
    )
    assert record.adverse_events == ("haematoma",)
    events = services.trail.events(limit=10_000)
    amended = [e for e in events if e.action == "session.amended" and e.subject.id == sid]
    signed = [e for e in events if e.action == "session.addendum_signed" and e.subject.id == sid]
    assert len(amended) == 1 and amended[0].data["reason"] == ADDENDUM_REASON
    assert thaw(amended[0].data["changes"]["adverse_events"]) == {"from": [], "to": ["haematoma"]}
    assert len(signed) == 1 and signed[0].data["amendment_seq"] == amended[0].seq
    assert signed[0].data["signer_id"] == "thera" and signed[0].seq > amended[0].seq
    assert verify_store(services.store).ok
    assert verify_records(services.store).ok


@pytest.mark.req("SES-SIGN-2")
def test_first_signature_needs_user_name_and_password_and_failures_reset_on_success(
    pump: Pump, services: ConsoleServices, therapist, patient_id: str
) -> None:
    """Defects: a failed signature did not say what to do, and neither a successful signature
    nor a successful unlock reset the failed-attempt count."""
    from console.auth import SignatureFailed

    first = _aborted_and_documented(services, therapist, patient_id, pump)
    with pytest.raises(SignatureFailed, match="enter your user name and your password"):
        first.sign(PASSWORD)  # first signing since sign-in: the name is needed too
    with pytest.raises(SignatureFailed, match=r"1 of 5 attempts failed.*Re-enter"):
        first.sign(PASSWORD, user_name="someone-else")
    with pytest.raises(SignatureFailed, match=r"2 of 5 attempts failed"):
        first.sign("not the password", user_name="thera")
    assert services.users.get("thera").failed_logins == 2
    failed = [
        e
        for e in services.sessions.events(first.ctx.session_id)
        if e.action == "session.signature_failed"
    ]
    assert [e.data["consecutive_failures"] for e in failed] == [1, 2]
    first.sign(PASSWORD, user_name="thera")
    assert services.users.get("thera").failed_logins == 0  # reset by the signature
    assert first.state is S.SIGNED

    second = _aborted_and_documented(services, therapist, patient_id, pump)
    with pytest.raises(SignatureFailed, match=r"the password did not match \(1 of 5"):
        second.sign("still not it")
    second.sign(PASSWORD)  # same continuous session: the password alone
    assert services.users.get("thera").failed_logins == 0

    services.lock(therapist)  # a locked screen ends the continuous session
    with pytest.raises(Exception, match="Wrong user name or password"):
        services.unlock(therapist, "wrong again")
    assert services.users.get("thera").failed_logins == 1
    services.unlock(therapist, PASSWORD)
    assert services.users.get("thera").failed_logins == 0  # reset by the unlock
    third = _aborted_and_documented(services, therapist, patient_id, pump)
    with pytest.raises(SignatureFailed, match="user name"):
        third.sign(PASSWORD)
    third.sign(PASSWORD, user_name="thera")
    resets = [e for e in services.trail.events(limit=10_000) if e.action == "user.failures_reset"]
    assert [(e.data["purpose"], e.data["cleared"]) for e in resets] == [
        ("signature", 2),
        ("signature", 1),
        ("unlock", 1),
    ]


@pytest.mark.req("SES-COUNT-1")
def test_stopping_while_paused_after_a_titration_disarms_the_waiting_unit(
    pump: Pump,
    services: ConsoleServices,
    therapist,
    patient_id: str,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    """Defect: Stop after a titration sent STOP to a unit waiting ARMED with the rest loaded;
    the unit refused it (WRONG_STATE) and the session could not be stopped."""
    workflow = connected_session(services, therapist, patient_id, pump)
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.delivered >= 50)
    paused_at = workflow.pause()
    workflow.titrate(pressure_bar=Decimal("2.00"))
    assert workflow.stop() == paused_at
    assert workflow.state is S.STOPPED
    record = services.sessions.load(workflow.ctx.session_id)
    assert record.delivered == paused_at == epat_sim[0].stats().pulses_fired_total
    assert record.count_status == "confirmed"
