"""Each screen on its own, filled with plain values: what it shows and what it asks for."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from PySide6.QtCore import Qt

from console.session.interlocks import Interlock
from console.session.ports import (
    Finding,
    ScreeningOutcome,
    ScreeningVerdict,
    ValidationOutcome,
    ValidationVerdict,
)
from console.session.states import SessionState, allowed_actions
from console.ui.screens.delivery import DeliveryScreen
from console.ui.screens.documentation import DocumentationScreen
from console.ui.screens.planning import PlanningScreen
from console.ui.screens.screening import ScreeningScreen
from console.ui.screens.unit import UnitScreen
from console.ui.snapshot import SessionSnapshot
from device_drivers.interface import (
    ApplicatorInfo,
    DeviceEnvelope,
    DeviceIdentity,
    DeviceStatus,
    Modality,
    UnitState,
    ValueRange,
)
from tests.console.ui.snapshots import PLAN, PROTOCOL, QUESTIONS, snapshot

pytestmark = [pytest.mark.gui]


def _screening(verdict: ScreeningVerdict, *findings: Finding) -> ScreeningOutcome:
    return ScreeningOutcome(verdict, tuple(findings), {}, "test", {})


@pytest.mark.req("UI-SCREEN-1")
def test_screening_has_no_defaults_and_reads_every_kind_of_answer(qtbot) -> None:
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.set_questions(QUESTIONS)
    assert screen.answers() == {}  # nothing pre-filled: unanswered stays unanswered
    rows = screen.rows
    rows["pregnant"].set_answer(False)
    rows["active_implant"].set_answer(None)
    rows["corticosteroid_injection_date"].set_answer(date(2025, 1, 2))
    rows["failed_conservative_care_months"].set_answer(7)
    assert screen.answers() == {
        "pregnant": False,
        "active_implant": None,
        "corticosteroid_injection_date": "2025-01-02",
        "failed_conservative_care_months": 7,
    }
    with qtbot.waitSignal(screen.submit_requested) as blocker:
        qtbot.mouseClick(screen.submit_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0]["failed_conservative_care_months"] == 7


@pytest.mark.req("UI-SCREEN-1")
def test_screening_incomplete_flags_the_unanswered_questions(qtbot) -> None:
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.set_questions(QUESTIONS)
    outcome = _screening(
        ScreeningVerdict.INCOMPLETE,
        Finding("INCOMPLETE", "incomplete", "not answered", field="pregnant"),
    )
    screen.show_snapshot(snapshot(screening=outcome))
    assert screen.verdict.lines == ["Not answered: Pregnant or possibly pregnant?"]
    assert "#C62828" in screen.rows["pregnant"].marker.styleSheet()
    assert "transparent" in screen.rows["active_implant"].marker.styleSheet()
    assert not screen.continue_button.isEnabled()


@pytest.mark.req("UI-SCREEN-1")
def test_a_block_is_explained_in_the_rules_words_and_cannot_be_overridden(qtbot) -> None:
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.set_questions(QUESTIONS)
    steroid = Finding(
        "CI-STEROID",
        "block",
        "corticosteroid injection at the site 20 days ago (< 42 days)",
        eligible_from=date(2025, 3, 1),
    )
    screen.show_snapshot(snapshot(screening=_screening(ScreeningVerdict.BLOCK, steroid)))
    text = " ".join(screen.verdict.lines)
    assert "CI-STEROID (block): corticosteroid injection at the site 20 days ago" in text
    assert "first eligible date 2025-03-01" in text
    assert screen.override_box.isHidden()
    assert not screen.continue_button.isEnabled()
    assert screen.abort.open_button.isEnabled()


@pytest.mark.req("UI-SCREEN-1")
def test_a_relative_contraindication_needs_a_recorded_reason_before_planning(qtbot) -> None:
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.show()
    screen.set_questions(QUESTIONS)
    coag = Finding("CI-COAG", "override_required", "anticoagulant medication")
    outcome = _screening(ScreeningVerdict.OVERRIDE_REQUIRED, coag)
    screen.show_snapshot(snapshot(screening=outcome))
    assert screen.override_box.isVisible()
    assert not screen.continue_button.isEnabled()
    assert "at least 20" in screen.override_reason.count.text()
    screen.override_reason.set_text("INR stable at 2.1, low pressure, checked with the GP")
    with qtbot.waitSignal(screen.override_requested) as blocker:
        qtbot.mouseClick(screen.override_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["INR stable at 2.1, low pressure, checked with the GP"]
    screen.show_snapshot(
        snapshot(screening=outcome, screening_override_reason="INR stable at 2.1, low pressure")
    )
    assert screen.continue_button.isEnabled()
    assert screen.override_box.isHidden()
    assert any("Override recorded" in line for line in screen.verdict.lines)


@pytest.mark.req("UI-SCREEN-1")
def test_an_allow_with_a_warning_shows_the_warning(qtbot) -> None:
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.set_questions(QUESTIONS)
    nsaid = Finding("CI-NSAID", "warning", "regular NSAIDs may blunt the effect")
    screen.show_snapshot(snapshot(screening=_screening(ScreeningVerdict.ALLOW, nsaid)))
    assert screen.verdict.lines == ["CI-NSAID (warning): regular NSAIDs may blunt the effect"]
    assert screen.continue_button.isEnabled()


ENVELOPE = DeviceEnvelope(
    Modality.EPAT,
    frequency_hz=ValueRange(Decimal("1.0"), Decimal("21.0")),
    pulses=ValueRange(Decimal(1), Decimal(10000)),
    pressure_bar=ValueRange(Decimal("1.00"), Decimal("5.00")),
)
APPLICATOR = ApplicatorInfo(True, "R15", "A-1", 250_000, 1_000_000, Decimal("4.00"))
IDENTITY = DeviceIdentity(Modality.EPAT, "ACME", "RPW-200", "SN1", "1.2.0", 1)


@pytest.mark.req("UI-PARAM-1")
def test_parameter_editor_shows_ranges_and_never_clamps(qtbot) -> None:
    screen = PlanningScreen()
    qtbot.addWidget(screen)
    screen.set_protocol(PROTOCOL)
    pressure = screen.editors["pressure_bar"]
    assert pressure.caption.text() == "Pressure (bar)"
    assert pressure.protocol_range.text() == "protocol 1.5–3.5 bar (default 2.5)"
    assert screen.editors["pulses"].edit.text() == "2,000"
    pressure.edit.setText("abc")
    with qtbot.assertNotEmitted(screen.plan_requested):
        qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
    assert pressure.problem.text() == "'abc' is not a number"
    pressure.edit.setText("9.75")  # far outside: sent as typed, the rules judge it
    with qtbot.waitSignal(screen.plan_requested) as blocker:
        qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
    plan, reason = blocker.args
    assert plan.pressure_bar == Decimal("9.75") and plan.pulses == 2000 and reason is None
    assert pressure.edit.text() == "9.75"


@pytest.mark.req("UI-PARAM-1")
def test_refusals_are_shown_beside_their_field_with_the_unit_limits(qtbot) -> None:
    screen = PlanningScreen()
    qtbot.addWidget(screen)
    screen.show()
    screen.set_protocol(PROTOCOL)
    refused = ValidationOutcome(
        ValidationVerdict.REFUSED,
        (
            Finding(
                "VAL-APPLICATOR",
                "refuse",
                "4.5 bar is above the R15 limit of 4.00 bar",
                field="pressure_bar",
            ),
            Finding(
                "VAL-PROTOCOL",
                "override_required",
                "4.5 bar is above the protocol's 3.5",
                field="pressure_bar",
            ),
        ),
        {},
    )
    screen.show_snapshot(
        snapshot(
            SessionState.CONNECTED,
            plan=PLAN,
            validation=refused,
            validated_against_unit=True,
            envelope=ENVELOPE,
            applicator=APPLICATOR,
        )
    )
    pressure = screen.editors["pressure_bar"]
    assert pressure.problem.text().splitlines() == [
        "4.5 bar is above the R15 limit of 4.00 bar",
        "4.5 bar is above the protocol's 3.5",
    ]
    assert pressure.unit_range.text() == "unit 1.00–5.00 bar · applicator ≤ 4.00 bar"
    assert len(screen.findings.lines) == 2
    assert screen.findings.heading.text() == "Plan refused: change the highlighted values"
    over = ValidationOutcome(
        ValidationVerdict.OVERRIDE_REQUIRED,
        (Finding("VAL-PROTOCOL", "override_required", "above the protocol", "pressure_bar"),),
        {},
    )
    screen.show_snapshot(snapshot(SessionState.PLANNED, plan=PLAN, validation=over))
    assert screen.override_box.isVisible()
    screen.override_reason.set_text("patient tolerates more; previous sessions fine")
    with qtbot.waitSignal(screen.plan_requested) as blocker:
        qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
    assert blocker.args[1] == "patient tolerates more; previous sessions fine"


def _interlocks(confirmed: bool) -> tuple[Interlock, ...]:
    return (
        Interlock("SCREENING_COMPLETE", True, "every question answered"),
        Interlock("PARAMETERS_VALID", True, "inside device, applicator limits"),
        Interlock("PARAMETERS_CONFIRMED", confirmed, "the therapist has not confirmed them"),
        Interlock("UNIT_CONNECTED", True, "RPW-200 SN1"),
    )


@pytest.mark.req("UI-FLOW-1")
@pytest.mark.req("UI-THREAD-1")
def test_connect_confirm_arm_and_start_are_separate_steps(qtbot) -> None:
    screen = UnitScreen()
    qtbot.addWidget(screen)
    screen.show()
    ok = ValidationOutcome(ValidationVerdict.OK, (), {})
    buttons = [screen.connect_button, screen.confirm_button, screen.arm_button, screen.start_button]

    def enabled() -> list[bool]:
        return [b.isEnabled() for b in buttons]

    screen.show_snapshot(snapshot(SessionState.PLANNED, plan=PLAN, validation=ok))
    assert enabled() == [True, False, False, False]
    connected = snapshot(
        SessionState.CONNECTED,
        plan=PLAN,
        validation=ok,
        validated_against_unit=True,
        identity=IDENTITY,
        envelope=ENVELOPE,
        applicator=APPLICATOR,
        interlocks=_interlocks(False),
        unit_connected=True,
        last_status=DeviceStatus(UnitState.IDLE, 0, 0, Decimal("24.0")),
    )
    screen.show_snapshot(connected)
    assert enabled() == [False, True, False, False]
    assert screen.fields["applicator"].text() == "R15 A-1, max 4.00 bar"
    assert screen.fields["wear"].text() == "250,000 of 1,000,000 (25.0 %), 750,000 remaining"
    assert [row.property("held") for row in screen.interlocks.rows] == [True, True, False, True]
    assert "PARAMETERS_CONFIRMED" in screen.interlocks.rows[2].text()
    screen.show_snapshot(_replace(connected, interlocks=_interlocks(True), confirmed=True))
    assert enabled() == [False, False, True, False]
    screen.show_snapshot(
        _replace(connected, state=SessionState.ARMED, interlocks=_interlocks(True), confirmed=True)
    )
    assert enabled() == [False, False, False, True]
    screen.set_busy(True)  # a call in flight: every action waits
    assert enabled() == [False, False, False, False]


def _replace(snap: SessionSnapshot, **changes: object) -> SessionSnapshot:
    if "state" in changes:
        changes["allowed"] = allowed_actions(changes["state"])  # type: ignore[arg-type]
    return replace(snap, **changes)  # type: ignore[arg-type]


@pytest.mark.req("UI-LIVE-1")
def test_delivery_counter_plots_and_titration(qtbot) -> None:
    screen = DeliveryScreen()
    qtbot.addWidget(screen)
    screen.show()
    screen.reset("epat")
    screen.show_snapshot(snapshot(SessionState.DELIVERING, plan=PLAN, delivered=1234, target=2000))
    assert screen.counter.count_label.text() == "1,234 / 2,000"
    assert screen.pause_button.isEnabled() and not screen.resume_button.isEnabled()
    for i in range(5):
        screen.add_reading(
            DeviceStatus(
                UnitState.DELIVERING,
                1234 + i,
                2000,
                Decimal("31.5"),
                pressure_measured_bar=Decimal("2.48"),
                received_ns=i * 50_000_000,
            )
        )
    assert screen.intensity_plot.sample_count == 5
    assert screen.intensity_plot.latest == pytest.approx(2.48)
    assert screen.temperature_plot.latest == pytest.approx(31.5)
    assert screen.titration.isHidden()
    screen.show_snapshot(snapshot(SessionState.PAUSED, plan=PLAN, delivered=1240, target=2000))
    assert screen.titration.isVisible()
    assert screen.titrate_value.text() == "2.5"
    screen.titrate_value.setText("2.2")
    with qtbot.waitSignal(screen.titrate_requested) as blocker:
        qtbot.mouseClick(screen.titrate_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [Decimal("2.2"), None]
    screen.show_snapshot(
        snapshot(
            SessionState.COMPLETED,
            plan=PLAN,
            delivered=2000,
            target=2000,
            end_reason="target reached",
        )
    )
    assert screen.document_button.isVisible()
    assert screen.summary.lines == ["2,000 of 2,000 pulses delivered.", "Reason: target reached"]


@pytest.mark.req("UI-DOC-1")
def test_documentation_asks_for_every_answer_and_signs_with_the_password(qtbot) -> None:
    screen = DocumentationScreen()
    qtbot.addWidget(screen)
    screen.show()
    screen.reset()
    screen.show_snapshot(snapshot(SessionState.COMPLETED, plan=PLAN, delivered=2000, target=2000))
    with qtbot.assertNotEmitted(screen.document_requested):
        qtbot.mouseClick(screen.save_button, Qt.MouseButton.LeftButton)
    assert len(screen.notice.lines) == 3  # pain before, pain after, adverse events
    assert not screen.sign_button.isEnabled()
    screen.pain_before.set_value(6)
    screen.pain_after.set_value(3)
    screen.adverse["reddening"].setChecked(True)
    screen.knee.add_point(480, 560)
    screen.notes.setPlainText("tolerated well")
    with qtbot.waitSignal(screen.document_requested) as blocker:
        qtbot.mouseClick(screen.save_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0] == {
        "pain_before": 6,
        "pain_after": 3,
        "adverse_events": ["reddening"],
        "treatment_points": [{"n": 1, "x": 480, "y": 560}],
        "notes": "tolerated well",
    }
    screen.no_adverse.setChecked(True)  # exclusive with the listed events
    assert not screen.adverse["reddening"].isChecked()
    screen.show_snapshot(snapshot(SessionState.DOCUMENTED, plan=PLAN))
    assert screen.sign_button.isEnabled()
    assert screen.user_name.isEnabled()  # the first signature since sign-in
    qtbot.keyClicks(screen.user_name, "thera")
    qtbot.keyClicks(screen.password, "pw")
    with qtbot.waitSignal(screen.sign_requested) as blocker:
        qtbot.mouseClick(screen.sign_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["thera", "pw"]
    assert screen.password.text() == ""  # cleared after every attempt


@pytest.mark.req("UI-SIGN-1")
def test_after_signing_the_documentation_screen_no_longer_accepts_edits(qtbot) -> None:
    """Defect: after signing, the documentation screen still accepted edits (points cleared,
    adverse events ticked), so it showed something other than the signed record."""
    screen = DocumentationScreen()
    qtbot.addWidget(screen)
    screen.show()
    screen.reset()
    screen.show_snapshot(snapshot(SessionState.DOCUMENTED, plan=PLAN))
    screen.pain_before.set_value(6)
    screen.knee.add_point(480, 560)
    banner = "Signed by Theo Therapist at 2026-11-24T10:15:30.123456Z UTC; later facts are addenda"
    screen.show_snapshot(snapshot(SessionState.SIGNED, plan=PLAN, signed_banner=banner))
    assert screen.signed_banner.isVisible() and screen.signed_banner.text() == banner
    assert not screen.save_button.isEnabled() and not screen.sign_button.isEnabled()
    assert not screen.password.isEnabled() and not screen.user_name.isEnabled()
    for widget in (screen.clear_points, screen.remove_point, screen.knee, screen.no_adverse):
        assert not widget.isEnabled()
    assert not any(box.isEnabled() for box in screen.adverse.values())
    assert not any(b.isEnabled() for b in screen.pain_before.group.buttons())
    assert screen.notes.isReadOnly() and not screen.notes.isEnabled()
    qtbot.mouseClick(screen.clear_points, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(screen.adverse["haematoma"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(screen.pain_before.group.button(2), Qt.MouseButton.LeftButton)
    assert len(screen.knee.points()) == 1
    assert not screen.adverse["haematoma"].isChecked()
    assert screen.pain_before.value() == 6


@pytest.mark.req("UI-SCREEN-2")
def test_correcting_an_answer_after_a_block_asks_for_the_reason(qtbot) -> None:
    """Defect: a block could be answered away silently: the screen gave no place for the
    correction's reason and sent the new answers alone."""
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.show()
    screen.set_questions(QUESTIONS)
    assert screen.correction_reason.isHidden()
    pregnant = Finding("CI-PREG", "block", "pregnant or possibly pregnant")
    screen.show_snapshot(snapshot(screening=_screening(ScreeningVerdict.BLOCK, pregnant)))
    assert screen.correction_reason.isVisible()
    assert "correct it and give the reason" in " ".join(screen.verdict.lines)
    screen.rows["pregnant"].set_answer(False)
    screen.correction_reason.set_text("patient misheard the question; test negative today")
    with qtbot.waitSignal(screen.submit_requested) as blocker:
        qtbot.mouseClick(screen.submit_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0]["pregnant"] is False
    assert blocker.args[1] == "patient misheard the question; test negative today"
