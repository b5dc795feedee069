"""Whole sessions through the workflow, the record store and the simulated units."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

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
    signature = workflow.sign(PASSWORD)
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
    assert services.alarms.active() == []
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
