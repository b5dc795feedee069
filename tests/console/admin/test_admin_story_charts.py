"""A session's full story (from a real session through the workflow and a simulator), the
range report's figures, and the chart figures from session records."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from console.admin.context import AdminServices
from console.admin.reports import ReportError, range_report_html, session_report_html
from console.auth import PermissionDenied, SignedInUser
from console.services import ConsoleServices
from tests.console.admin.conftest import TreatedSession
from tests.console.conftest import PASSWORD, SESSION_DATE


@pytest.mark.req("ADM-STORY-1")
def test_the_story_tells_screening_parameters_delivery_outcome_and_signatures(
    services: ConsoleServices,
    admin: SignedInUser,
    admin_services: AdminServices,
    treated: TreatedSession,
) -> None:
    story = admin_services.stories.story(admin, treated.session_id)
    viewed = services.trail.get(services.trail.head().seq)
    assert (viewed.action, viewed.actor, viewed.subject_id) == (
        "session.viewed",
        "admin",
        treated.session_id,
    )
    record = story.record
    assert story.pseudonym == "KNEE-0001" and story.ruleset_version == "2026.1"
    assert record.screening_decision == "allow" and record.protocol_version
    actions = [line.action for line in story.timeline]
    for expected in (
        "session.created",
        "screening.decided",
        "parameters.validated",
        "parameters.override",
        "parameters.confirmed",
        "device.arm",
        "device.start",
        "device.pause",
        "device.stop",
        "session.signed",
    ):
        assert expected in actions, expected
    assert [line.seq for line in story.timeline] == sorted(line.seq for line in story.timeline)
    assert record.delivered == treated.delivered == 150
    assert record.titrations[0]["to"]["pressure_bar"] == "2.00"
    assert (record.pain_before, record.pain_after, record.adverse_events) == (7, 3, ("reddening",))
    assert [c.signature.meaning for c in story.signatures] == ["performed"]
    assert all(c.valid for c in story.signatures)
    assert story.lines_of("device") and story.lines_of("parameters")
    override = next(line for line in story.timeline if line.action == "parameters.override")
    assert "test dose" in override.text
    html = session_report_html(admin_services.reports.session_report(admin, treated.session_id))
    for figure in ("150 of 150", "7 → 3", "reddening", "Theo Therapist", "performed", "2.00 bar"):
        assert figure in html, figure


@pytest.mark.req("ADM-STORY-1")
@pytest.mark.req("ADM-ROLE-1")
def test_stories_are_found_and_refused_to_the_service_role(
    services: ConsoleServices,
    admin: SignedInUser,
    admin_services: AdminServices,
    treated: TreatedSession,
) -> None:
    found = admin_services.stories.find(admin, pseudonym="KNEE-0001")
    assert [s.session_id for s in found] == [treated.session_id]
    assert found[0].delivered == 150 and found[0].state == "signed"
    assert admin_services.stories.find(admin, session_id=treated.session_id[:6])
    assert admin_services.stories.find(admin, start=SESSION_DATE + timedelta(days=1)) == []
    service_user = services.login("svc", PASSWORD)
    with pytest.raises(PermissionDenied):
        admin_services.stories.story(service_user, treated.session_id)
    denied = services.trail.get(services.trail.head().seq)
    assert denied.action == "access.denied" and denied.actor == "svc"


def _session(
    services: ConsoleServices,
    therapist: SignedInUser,
    patient_id: str,
    day: date,
    modality: str,
    protocol: str,
    delivered: int,
    pain: tuple[int, int] | None,
    adverse: list[str],
) -> str:
    record = services.sessions.create(
        therapist.actor,
        patient_id=patient_id,
        protocol_id=protocol,
        protocol_version="2026.1",
        modality=modality,
        session_date=day,
    )
    fields: dict[str, object] = {"delivered": delivered, "adverse_events": adverse}
    if pain is not None:
        fields["pain_before"], fields["pain_after"] = pain
    services.sessions.update(therapist.actor, record.session_id, fields)
    return record.session_id


@pytest.mark.req("ADM-CHART-1")
def test_chart_figures_count_weeks_rates_and_mean_pain(
    services: ConsoleServices,
    admin: SignedInUser,
    therapist: SignedInUser,
    patient_id: str,
    admin_services: AdminServices,
) -> None:
    monday = date(2026, 3, 2)
    plan = [
        (monday, "epat", "knee-pt-epat", 2000, (6, 3), ["reddening"]),
        (monday + timedelta(days=2), "epat", "knee-pt-epat", 2000, (8, 4), []),
        (monday + timedelta(days=3), "emtt", "knee-oa-emtt", 4000, (5, 4), []),
        (
            monday + timedelta(days=8),
            "epat",
            "knee-pfp-epat",
            1800,
            (7, 7),
            ["petechiae", "reddening"],
        ),
        (monday + timedelta(days=9), "epat", "knee-pt-epat", 0, (9, 9), ["syncope"]),  # no pulses
        (monday + timedelta(days=10), "emtt", "knee-oa-emtt", 4000, None, []),
    ]
    for day, modality, protocol, delivered, pain, adverse in plan:
        _session(services, therapist, patient_id, day, modality, protocol, delivered, pain, adverse)
    data = admin_services.charts.data(admin, monday, monday + timedelta(days=13))
    assert data.sessions == 5  # the session without a pulse is not a treatment
    assert [(w.week_start, w.count("epat"), w.count("emtt")) for w in data.weeks] == [
        (monday, 2, 1),
        (monday + timedelta(days=7), 1, 1),
    ]
    epat, emtt = data.adverse
    assert (epat.modality, epat.sessions, epat.with_adverse_events) == ("epat", 3, 2)
    assert epat.percent == Decimal("66.7") and dict(epat.by_kind) == {
        "petechiae": 1,
        "reddening": 2,
    }
    assert (emtt.sessions, emtt.with_adverse_events, emtt.percent) == (2, 0, Decimal("0"))
    pain = {p.protocol_id: p for p in data.pain}
    assert (pain["knee-pt-epat"].sessions, pain["knee-pt-epat"].mean_before) == (2, Decimal("7.0"))
    assert pain["knee-pt-epat"].mean_after == Decimal("3.5")
    assert (pain["knee-oa-emtt"].sessions, pain["knee-oa-emtt"].mean_after) == (1, Decimal("4.0"))
    default = admin_services.charts.data(admin)  # 26 weeks up to the latest session
    assert default.end == monday + timedelta(days=10) and len(default.weeks) in (26, 27)
    with pytest.raises(PermissionDenied):
        admin_services.charts.data(therapist)


@pytest.mark.req("ADM-PDF-1")
def test_the_range_report_lists_each_session_with_its_figures_and_an_anchor(
    services: ConsoleServices,
    admin: SignedInUser,
    therapist: SignedInUser,
    patient_id: str,
    admin_services: AdminServices,
) -> None:
    first = _session(services, therapist, patient_id, date(2026, 4, 6), "epat", "knee-pt-epat",
                     2000, (6, 2), ["haematoma"])  # fmt: skip
    _session(services, therapist, patient_id, date(2026, 4, 8), "emtt", "knee-oa-emtt", 3500,
             (5, 5), [])  # fmt: skip
    _session(services, therapist, patient_id, date(2026, 5, 1), "epat", "knee-pt-epat", 1,
             None, [])  # fmt: skip
    report = admin_services.reports.range_report(admin, date(2026, 4, 1), date(2026, 4, 30))
    assert report.rows[0].session_id == first and len(report.rows) == 2
    assert report.pulses_by_modality == {"epat": 2000, "emtt": 3500}
    assert report.sessions_with_adverse_events == 1
    checkpoint = services.trail.get(report.anchor.seq)
    assert checkpoint.action == "audit.checkpoint" and checkpoint.hash == report.anchor.hash
    html = range_report_html(report)
    for figure in (first, "KNEE-0001", "6 → 2", "haematoma", "EPAT 2,000", report.anchor.hash):
        assert figure in html, figure
    with pytest.raises(ReportError, match="empty"):
        admin_services.reports.range_report(admin, date(2026, 5, 1), date(2026, 4, 1))
