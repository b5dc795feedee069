"""Issue 11: the story of a session is exact (its own alarms only, override reasons kept through
titrations, every screening correction) and signatures are final (addenda after the original),
on a real SQLite record with the real workflow and simulated units over TCP."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from html import escape

import pytest

from console.admin.context import AdminServices
from console.admin.reports import session_report_html
from console.auth import SignedInUser
from console.services import ConsoleServices
from console.session.workflow import SessionWorkflow
from tests.console.conftest import PASSWORD, SESSION_DATE
from tests.console.session_helpers import CLEAN_ANSWERS, EPAT_PLAN, Pump, connected_session

OVERRIDE_REASON = "patient tolerated 3.8 bar last time; agreed after explaining the risk"


def _screened(services: ConsoleServices, therapist: SignedInUser, patient_id: str, pump: Pump):
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    pump.workflows.append(workflow)
    workflow.submit_screening(CLEAN_ANSWERS)
    return workflow


def _document_and_sign(workflow: SessionWorkflow, *, first: bool = True) -> None:
    workflow.document(
        pain_before=6, pain_after=4, adverse_events=[], treatment_points=[], notes="as planned"
    )
    workflow.sign(PASSWORD, user_name="thera" if first else None)


def _html(admin_services: AdminServices, admin: SignedInUser, session_id: str) -> str:
    return session_report_html(admin_services.reports.session_report(admin, session_id))


@pytest.mark.req("SES-STORY-1")
@pytest.mark.req("ADM-STORY-2")
def test_another_sessions_emergency_stop_alarm_is_not_in_a_sessions_story(
    services: ConsoleServices,
    therapist: SignedInUser,
    patient_id: str,
    pump: Pump,
    admin_services: AdminServices,
) -> None:
    """Defect: an emergency-stop alarm and its acknowledgement appeared in the story of a
    session that ended normally (and of an older one): alarms were picked by time window."""
    other = services.create_patient(therapist, "KNEE-0002", date(1970, 2, 3))
    services.assign_programme(therapist, other.patient_id, "knee-load-sharing", date(2026, 10, 1))
    calm = _screened(services, therapist, other.patient_id, pump)  # spans the other's alarm
    stopped = connected_session(services, therapist, patient_id, pump)
    stopped.emergency_stop()
    services.alarms.acknowledge("session.emergency_stop", "thera")
    calm.abort("patient preferred to come back next week")
    _document_and_sign(calm)

    alarms = [e for e in services.trail.events(limit=10_000) if e.action.startswith("alarm.")]
    assert {e.action for e in alarms} == {"alarm.raised", "alarm.acknowledged"}
    assert {e.data["session_id"] for e in alarms} == {stopped.ctx.session_id}
    admin = services.login("admin", PASSWORD)  # the auditor, after the session
    calm_story = admin_services.stories.story(admin, calm.ctx.session_id)
    assert calm_story.lines_of("alarm") == ()
    assert "EMERGENCY STOP" not in _html(admin_services, admin, calm.ctx.session_id)
    own = admin_services.stories.story(admin, stopped.ctx.session_id).lines_of("alarm")
    assert [line.action for line in own] == ["alarm.raised", "alarm.acknowledged"]
    assert own[1].actor == "thera" and "EMERGENCY STOP" in own[0].text


@pytest.mark.req("SES-OVR-2")
@pytest.mark.req("ADM-STORY-2")
def test_story_and_pdf_keep_the_override_reason_after_a_titration(
    services: ConsoleServices,
    therapist: SignedInUser,
    patient_id: str,
    pump: Pump,
    admin_services: AdminServices,
) -> None:
    """Defect: after planning 3.8 bar with a reason and titrating to 3.0 the story and the PDF
    showed "Parameter override reason —" and "Validation ok"."""
    plan = dataclasses.replace(EPAT_PLAN, pressure_bar=Decimal("3.80"))
    workflow = connected_session(
        services, therapist, patient_id, pump, plan=plan, override_reason=OVERRIDE_REASON
    )
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.delivered >= 30)
    workflow.pause()
    workflow.titrate(pressure_bar=Decimal("3.00"))
    workflow.stop()
    _document_and_sign(workflow)
    admin = services.login("admin", PASSWORD)  # the auditor, after the session
    html = _html(admin_services, admin, workflow.ctx.session_id)
    reason = escape(OVERRIDE_REASON)
    assert f"Parameter override reason</td><td>{reason}</td>" in html
    assert "Parameter override reason</td><td>—" not in html
    assert "Validation</td><td>ok</td>" not in html
    assert "overrides earlier in the session below" in html
    assert f"for pressure 3.80 bar, frequency 10.0 Hz, 1,500 pulses: “{reason}”" in html
    assert "3.80 bar" in html and "3.00 bar" in html


@pytest.mark.req("SES-SCREEN-1")
@pytest.mark.req("ADM-STORY-2")
def test_story_summary_shows_the_first_screening_decision_and_every_correction(
    services: ConsoleServices,
    therapist: SignedInUser,
    patient_id: str,
    pump: Pump,
    admin_services: AdminServices,
) -> None:
    """Defect: a block answered away showed only "Decision allow, Rules fired none"."""
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    pump.workflows.append(workflow)
    workflow.submit_screening({**CLEAN_ANSWERS, "pregnant": True, "nsaids": True})
    reason = "patient misheard the question; confirmed not pregnant, test negative today"
    workflow.submit_screening({**CLEAN_ANSWERS, "nsaids": True}, reason=reason)
    workflow.submit_screening(CLEAN_ANSWERS)  # after an allow: recorded, no reason needed
    workflow.abort("test of the screening story only")
    admin = services.login("admin", PASSWORD)  # the auditor, after the session
    story = admin_services.stories.story(admin, workflow.ctx.session_id)
    corrected = [line for line in story.timeline if line.action == "screening.corrected"]
    assert len(corrected) == 2 and "pregnant: True → False" in corrected[0].text
    html = _html(admin_services, admin, workflow.ctx.session_id)
    first = html.index("First decision")
    assert "block (rules fired: CI-PREG, CI-NSAID)" in html[first:]
    one, two = html.index("Correction 1"), html.index("Correction 2")
    assert first < one < two < html.index("Decision in force")
    assert f"pregnant: True → False — decision block → allow; reason “{escape(reason)}”" in html
    assert "nsaids: True → False — decision allow → allow" in html


@pytest.mark.req("SES-SIGN-1")
@pytest.mark.req("ADM-PDF-2")
def test_addenda_follow_the_signed_original_in_the_story_and_the_pdf(
    services: ConsoleServices,
    therapist: SignedInUser,
    patient_id: str,
    pump: Pump,
    admin_services: AdminServices,
) -> None:
    """Defect: the signed record could be changed in place; a later fact must be an addendum
    with a reason, signed on its own, printed after the original it follows."""
    workflow = _screened(services, therapist, patient_id, pump)
    workflow.abort("patient had to leave before the treatment")
    _document_and_sign(workflow)
    reason = "haematoma reported by the patient by phone the next morning"
    services.add_addendum(
        therapist, workflow.ctx.session_id, {"adverse_events": ["haematoma"]}, reason, PASSWORD
    )
    admin = services.login("admin", PASSWORD)  # the auditor, after the session
    story = admin_services.stories.story(admin, workflow.ctx.session_id)
    [addendum] = story.addenda
    assert addendum.reason == reason and addendum.signed_by is not None
    assert "Theo Therapist (thera)" in addendum.signed_by
    [check] = story.signatures
    assert check.valid and "as signed" in check.reason
    assert story.signed_original is not None and story.signed_original["adverse_events"] == []
    html = _html(admin_services, admin, workflow.ctx.session_id)
    outcome = html.index("Outcome (as signed)")
    assert "Adverse events</td><td>none</td>" in html[outcome:]
    signatures, addenda = html.index("<h2>Signatures"), html.index("Addenda (after the signed")
    assert outcome < signatures < addenda
    assert f"“{escape(reason)}” — adverse_events: none → haematoma" in html[addenda:]
    assert "signed by Theo Therapist (thera)" in html[addenda:]
