"""A whole session clicked through the real window, on the simulated EPAT unit over TCP."""

from __future__ import annotations

from decimal import Decimal

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from console.services import ConsoleServices
from console.session.states import SessionState
from console.ui.main_window import MainWindow
from tests.console.conftest import PASSWORD
from tests.console.ui import gui_flow as flow

pytestmark = [pytest.mark.gui]


@pytest.mark.req("UI-E2E-1")
@pytest.mark.req("UI-FLOW-1")
@pytest.mark.req("UI-LIVE-1")
@pytest.mark.req("UI-DOC-1")
def test_a_whole_session_from_login_to_signature(
    window: MainWindow, services: ConsoleServices, epat_sim, patient_id: str
) -> None:
    simulator, _ = epat_sim
    flow.login(window, "thera", PASSWORD)
    assert window.top.user_label.text() == "Theo Therapist\ntherapist"
    flow.open_patient(window, "KNEE-0001")
    page = window.patient_screen
    assert [box.title() for box in page.programme.pillar_boxes] == [
        "Targeted strengthening",
        "Mobility",
        "Gait training",
        "Movement retraining",
    ]
    assert page.history.rowCount() == 0
    assert window.top.patient_label.text() == "Patient <b>KNEE-0001</b>"

    flow.new_session(window, "knee-pt-epat")
    flow.answer_screening(window)
    flow.plan(window)
    flow.connect(window)
    unit = window.unit_screen
    assert unit.fields["model"].text().endswith("RPW-200 (EPAT)")
    assert unit.fields["applicator"].text().startswith("D20-S")
    assert not unit.arm_button.isEnabled()  # not confirmed yet: the checklist says why
    assert any(
        not row.property("held") and "PARAMETERS_CONFIRMED" in row.text()
        for row in unit.interlocks.rows
    )
    assert not unit.start_button.isEnabled()
    flow.confirm_and_arm(window)
    assert all(row.property("held") for row in unit.interlocks.rows)
    flow.start(window)
    delivery = window.delivery_screen
    flow.wait_until(lambda: window.controller.snapshot.delivered > 0, "the first pulses")
    flow.wait_state(window, SessionState.COMPLETED, timeout_s=30)
    assert delivery.counter.count_label.text() == "300 / 300"
    assert delivery.counter.progress.value() == 300
    assert delivery.intensity_plot.sample_count > 5  # measured pressure, live from the stream
    assert delivery.temperature_plot.sample_count > 5
    assert simulator.snapshot().delivered == 300

    flow.click(delivery.document_button)
    doc = window.documentation_screen
    flow.wait_until(lambda: window.current_screen() is doc, "the documentation screen")
    QTest.mouseClick(doc.pain_before.group.button(6), Qt.MouseButton.LeftButton)
    QTest.mouseClick(doc.pain_after.group.button(3), Qt.MouseButton.LeftButton)
    QTest.mouseClick(doc.adverse["reddening"], Qt.MouseButton.LeftButton)
    QTest.mouseClick(
        doc.knee, Qt.MouseButton.LeftButton, pos=doc.knee.to_widget(500, 560).toPoint()
    )
    flow.type_into(doc.notes, "tolerated well; hip work reviewed")
    flow.click(doc.save_button)
    flow.wait_state(window, SessionState.DOCUMENTED)
    flow.type_into(doc.user_name, "thera")  # the first signature since sign-in
    flow.type_into(doc.password, PASSWORD)
    flow.click(doc.sign_button)
    flow.wait_state(window, SessionState.SIGNED)
    flow.click(doc.done_button)
    flow.wait_until(lambda: window.current_screen() is page, "the patient page again")
    flow.wait_until(lambda: page.history.rowCount() == 1, "the session in the history")
    assert page.history.item(0, 2).text() == "300 / 300"
    assert page.history.item(0, 3).text() == "6 → 3"
    assert page.history.item(0, 4).text() == "signed by Theo Therapist — target reached"

    (record,) = services.sessions.for_patient(patient_id)
    assert record.state == "signed"
    assert record.delivered == 300
    assert record.pain_before == 6 and record.pain_after == 3
    assert record.adverse_events == ("reddening",)
    (point,) = record.treatment_points
    assert point["n"] == 1 and abs(point["x"] - 500) <= 3 and abs(point["y"] - 560) <= 3
    assert record.parameter_override_reason == flow.SHORT_DOSE_REASON
    assert record.signatures[0].meaning == "performed"


@pytest.mark.req("UI-E2E-1")
@pytest.mark.req("UI-LIVE-1")
def test_an_emtt_session_plots_the_field_and_titrates_while_paused(
    window: MainWindow, services: ConsoleServices, patient_id: str
) -> None:
    flow.login(window, "thera", PASSWORD)
    flow.open_patient(window, "KNEE-0001")
    flow.new_session(window, "knee-oa-emtt")
    flow.answer_screening(window)
    assert window.planning_screen.editors["field_mt"].caption.text() == "Field intensity (mT)"
    flow.plan(window, {"pulses": "300", "frequency_hz": "8"})
    flow.connect(window)
    assert window.unit_screen.fields["model"].text() == "EMT-100 (EMTT)"
    flow.confirm_and_arm(window)
    flow.start(window)
    delivery = window.delivery_screen
    assert delivery.intensity_plot.title == "Measured field"
    flow.wait_until(lambda: window.controller.snapshot.delivered >= 40, "some pulses")
    flow.click(delivery.pause_button)
    flow.wait_state(window, SessionState.PAUSED)
    paused_at = window.controller.snapshot.delivered
    assert delivery.titrate_value.text() == "40"
    flow.type_into(delivery.titrate_value, "35")
    flow.click(delivery.titrate_button)
    flow.wait_until(lambda: window.controller.snapshot.titrations == 1, "the titration")
    assert window.controller.snapshot.plan.field_mt == Decimal("35")
    flow.click(delivery.resume_button)
    flow.wait_state(window, SessionState.COMPLETED, timeout_s=30)
    assert delivery.counter.count_label.text() == "300 / 300"
    assert delivery.intensity_plot.sample_count > 5
    assert delivery.intensity_plot.latest is not None
    (record,) = services.sessions.for_patient(patient_id)
    assert record.delivered == 300
    (change,) = record.titrations
    assert change["delivered_before"] >= paused_at
    assert change["to"]["field_mt"] == "35"


@pytest.mark.req("UI-FLOW-1")
def test_an_abort_needs_a_reason_and_leads_to_the_documentation(
    window: MainWindow, services: ConsoleServices, patient_id: str
) -> None:
    flow.login(window, "thera", PASSWORD)
    flow.to_state(window, SessionState.CONNECTED, "KNEE-0001")
    abort = window.unit_screen.abort
    flow.click(abort.open_button)
    flow.click(abort.confirm)  # no reason written: refused, with the workflow's words
    # The refusal is shown with the workflow's words in the status bar every time; the inline
    # notice can be cleared by a concurrent refresh (a known GUI defect, see the issue note).
    flow.wait_until(
        lambda: "an abort needs a reason" in window.statusBar().currentMessage(),
        "the refusal",
        window=window,
    )
    assert window.statusBar().currentMessage() == "Abort: refused — an abort needs a reason"
    assert window.unit_screen.notice.lines in ([], ["an abort needs a reason"])
    assert flow.state_of(window) is SessionState.CONNECTED
    flow.type_into(abort.reason, "patient felt unwell before the start")
    flow.click(abort.confirm)
    flow.wait_state(window, SessionState.ABORTED)
    flow.wait_until(
        lambda: window.current_screen() is window.documentation_screen, "the documentation"
    )
    (record,) = services.sessions.for_patient(patient_id)
    assert record.state == "aborted"
    assert record.end_reason == "patient felt unwell before the start"


@pytest.mark.req("UI-SIGN-1")
def test_a_failed_signature_shows_a_dialog_that_says_what_to_do_and_clears_the_password(
    window: MainWindow, services: ConsoleServices, patient_id: str
) -> None:
    """Defect: a failed signature named a Python exception in the status bar and left the
    password in the field."""
    flow.login(window, "thera", PASSWORD)
    flow.to_state(window, SessionState.CONNECTED, "KNEE-0001")
    abort = window.unit_screen.abort
    flow.click(abort.open_button)
    flow.type_into(abort.reason, "patient felt unwell before the start")
    flow.click(abort.confirm)
    doc = window.documentation_screen
    flow.wait_until(lambda: window.current_screen() is doc, "the documentation")
    QTest.mouseClick(doc.pain_before.group.button(5), Qt.MouseButton.LeftButton)
    QTest.mouseClick(doc.pain_after.group.button(5), Qt.MouseButton.LeftButton)
    doc.no_adverse.setChecked(True)
    flow.click(doc.save_button)
    flow.wait_state(window, SessionState.DOCUMENTED)
    assert doc.user_name.isEnabled()  # the first signature since sign-in: name and password
    flow.type_into(doc.user_name, "thera")
    flow.type_into(doc.password, "not my password")
    flow.click(doc.sign_button)
    assert doc.password.text() == ""
    flow.wait_until(lambda: window.sign_dialog is not None, "the 'Not signed' dialog")
    dialog = window.sign_dialog
    assert dialog is not None and dialog.isVisible()
    said = f"{dialog.text()} {dialog.informativeText()} {window.statusBar().currentMessage()}"
    assert "did not match (1 of 5 attempts failed in a row)" in said
    assert "Re-enter your user name or password and sign again" in said
    for name in ("SignatureFailed", "LoginFailed", "Error", "Traceback"):
        assert name not in said, name
    assert services.users.get("thera").failed_logins == 1
    dialog.accept()
    assert flow.state_of(window) is SessionState.DOCUMENTED
    flow.type_into(doc.password, PASSWORD)
    flow.click(doc.sign_button)
    flow.wait_state(window, SessionState.SIGNED)
    assert doc.password.text() == ""
    assert services.users.get("thera").failed_logins == 0  # reset by the signature
    flow.wait_until(lambda: doc.signed_banner.isVisible(), "the signed banner")
    assert doc.signed_banner.text().startswith("Signed by Theo Therapist at ")
    assert "later facts are addenda" in doc.signed_banner.text()
    assert not doc.save_button.isEnabled() and not doc.no_adverse.isEnabled()
