"""The emergency stop from every screen and state, the lock during delivery, alarms."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from console.alarms import AlarmPriority
from console.services import ConsoleServices
from console.session.states import SessionState
from console.session.workflow import RECORD_UNAVAILABLE_ALARM
from console.ui.adapters import ServicesBackend
from console.ui.main_window import MainWindow
from device_drivers.epat.constants import Fault, State
from tests.console.conftest import PASSWORD, light_hasher
from tests.console.session_helpers import ExclusiveLock
from tests.console.ui import gui_flow as flow

pytestmark = [pytest.mark.gui]

UNIT_STATES = [
    SessionState.CONNECTED,
    SessionState.ARMED,
    SessionState.DELIVERING,
    SessionState.PAUSED,
]


def _unit_estopped(simulator) -> bool:
    snap = simulator.snapshot()
    return snap.state == State.FAULT and bool(snap.faults & Fault.ESTOP)


@pytest.mark.req("UI-ESTOP-1")
@pytest.mark.req("UI-ESTOP-2")
@pytest.mark.parametrize("state", UNIT_STATES, ids=lambda s: s.value)
def test_escape_stops_the_unit_from_every_state_with_a_unit(
    window: MainWindow, epat_sim, state: SessionState
) -> None:
    simulator, _ = epat_sim
    flow.login(window, "thera", PASSWORD)
    flow.to_state(window, state, "KNEE-0001")
    assert not _unit_estopped(simulator)
    delivered_before = window.controller.snapshot.delivered
    flow.press_escape(window)
    flow.wait_until(lambda: _unit_estopped(simulator), "the unit to latch ESTOP")
    flow.wait_state(window, SessionState.FAULTED)
    flow.wait_until(
        lambda: "confirmed by the unit" in window.statusBar().currentMessage(),
        "the confirmation on screen",
    )
    snapshot = window.controller.snapshot
    assert snapshot.delivered >= delivered_before
    assert snapshot.delivered == simulator.snapshot().delivered or state is SessionState.CONNECTED
    # The workflow names the cause "emergency stop", or, when the unit's own ESTOP fault
    # report reaches it first, "device fault: ... ESTOP" (reported to the workflow's owner).
    reason = snapshot.end_reason or ""
    assert "emergency stop" in reason or "ESTOP" in reason
    flow.wait_until(
        lambda: (
            window.top.alarms.shown_alarm is not None
            and window.top.alarms.shown_alarm.key == "session.emergency_stop"
        ),
        "the emergency-stop alarm in the top bar",
    )
    estop = window.top.estop  # a red alarm banner in the top bar never squeezes the button
    assert estop.width() >= estop.sizeHint().width()
    # The session is not lost: it goes on to documentation.
    assert window.current_screen() in (window.delivery_screen, window.documentation_screen)


@pytest.mark.req("UI-ESTOP-1")
@pytest.mark.req("UI-ESTOP-2")
@pytest.mark.parametrize("where", ["login", "patients", "screening", "planned"])
def test_the_button_says_so_where_no_unit_is_connected(
    window: MainWindow, epat_sim, where: str
) -> None:
    simulator, _ = epat_sim
    if where != "login":
        flow.login(window, "thera", PASSWORD)
    if where == "screening":
        flow.to_state(window, SessionState.SCREENING, "KNEE-0001")
    elif where == "planned":
        flow.to_state(window, SessionState.PLANNED, "KNEE-0001")
    assert window.top.estop.isVisible() and window.top.estop.isEnabled()
    QTest.mouseClick(window.top.estop, Qt.MouseButton.LeftButton)
    flow.wait_until(
        lambda: "no unit" in window.statusBar().currentMessage().lower(),
        "the 'no unit connected' answer",
    )
    assert not simulator.snapshot().host_attached  # nothing was ever connected to stop
    if where in ("screening", "planned"):  # the press is recorded; the session carries on
        assert flow.state_of(window) is SessionState(where)


@pytest.mark.req("UI-LOCK-1")
@pytest.mark.req("UI-ESTOP-1")
def test_the_lock_hides_the_patient_but_not_the_delivery_or_the_emergency_stop(
    window: MainWindow, services: ConsoleServices, epat_sim
) -> None:
    simulator, _ = epat_sim
    flow.login(window, "thera", PASSWORD)
    flow.open_patient(window, "KNEE-0001")
    flow.new_session(window, "knee-pt-epat")
    flow.answer_screening(window)
    flow.plan(window, {"pulses": "1000", "frequency_hz": "10"})
    flow.connect(window)
    flow.confirm_and_arm(window)
    flow.start(window)
    window.inactivity.timeout_s = 0.3  # the default is 300 s; the test cannot wait that long
    flow.wait_until(lambda: window.locked, "the inactivity lock")
    overlay = window.lock_overlay
    assert overlay.isVisible()
    assert window.top.patient_label.text() == ""
    assert not window.stack.isEnabled()  # nothing behind the cover takes input
    estop = window.top.estop
    assert estop.isVisible() and estop.isEnabled()
    overlay_top = overlay.mapTo(window, overlay.rect().topLeft()).y()
    assert estop.mapTo(window, estop.rect().bottomLeft()).y() < overlay_top  # not covered
    count = window.controller.snapshot.delivered
    flow.wait_until(
        lambda: window.controller.snapshot.delivered > count + 20, "pulses while locked"
    )
    assert flow.state_of(window) is SessionState.DELIVERING
    assert "delivering" in overlay.delivery.text()
    assert f"of {1000:,} pulses" in overlay.delivery.text()

    flow.type_into(overlay.password, "not the password")
    QTest.mouseClick(overlay.unlock, Qt.MouseButton.LeftButton)
    flow.wait_until(lambda: bool(overlay.error.text()), "the wrong-password message")
    assert window.locked
    window.inactivity.timeout_s = 300.0
    flow.type_into(overlay.password, PASSWORD)
    QTest.mouseClick(overlay.unlock, Qt.MouseButton.LeftButton)
    flow.wait_until(lambda: not window.locked, "the unlock")
    assert not overlay.isVisible() and window.stack.isEnabled()
    assert window.top.patient_label.text() == "Patient <b>KNEE-0001</b>"
    assert flow.state_of(window) is SessionState.DELIVERING

    QTest.mouseClick(window.top.lock_button, Qt.MouseButton.LeftButton)  # lock by hand
    flow.wait_until(lambda: window.locked, "the lock")
    QTest.keyClick(overlay.password, Qt.Key.Key_Escape)  # the key works on the lock screen
    flow.wait_until(lambda: _unit_estopped(simulator), "the unit to latch ESTOP")
    flow.wait_state(window, SessionState.FAULTED)
    trail = [
        e.action for e in services.trail.events(limit=100_000)
    ]  # locks and unlocks are audited
    assert "user.screen_locked" in trail and "user.screen_unlocked" in trail


@pytest.mark.req("UI-WATCH-1")
@pytest.mark.req("ALARM-ACK-1")
def test_a_stuck_worker_and_a_lost_link_raise_alarms_that_are_acknowledged(
    window: MainWindow, services: ConsoleServices, epat_sim
) -> None:
    simulator, _ = epat_sim
    flow.login(window, "thera", PASSWORD)
    flow.to_state(window, SessionState.CONNECTED, "KNEE-0001")
    worker = window.controller.workflow.worker
    worker.submit(lambda driver: time.sleep(1.6))  # a driver call that hangs the worker
    banner = window.top.alarms
    flow.wait_until(
        lambda: banner.shown_alarm is not None and banner.shown_alarm.key == "worker.silent",
        "the worker-silent technical alarm",
    )
    assert "MEDIUM technical alarm" in banner.label.text()
    flow.wait_until(  # acknowledged while still silent, the condition would raise it again
        lambda: time.monotonic_ns() - worker.last_alive_ns < 300_000_000, "the worker to recover"
    )
    QTest.mouseClick(banner.ack, Qt.MouseButton.LeftButton)
    flow.wait_until(lambda: banner.shown_alarm is None, "the alarm to be acknowledged")
    simulator.cut_link()
    flow.wait_state(window, SessionState.FAULTED)
    flow.wait_until(
        lambda: banner.shown_alarm is not None and banner.shown_alarm.key == "device.link_lost",
        "the link-lost alarm",
    )
    assert "HIGH alarm" in banner.label.text()
    QTest.mouseClick(banner.ack, Qt.MouseButton.LeftButton)
    # The link is still lost: acknowledged, silenced, but shown until it is back (ALARM-ACK-1).
    flow.wait_until(lambda: banner.ack.isHidden(), "the alarm to be acknowledged")
    assert banner.shown_alarm is not None and banner.shown_alarm.key == "device.link_lost"
    assert "shown until the condition clears" in banner.label.text()
    acknowledged = [
        e for e in services.trail.events(limit=100_000) if e.action == "alarm.acknowledged"
    ]
    assert {e.subject_id for e in acknowledged} >= {"worker.silent", "device.link_lost"}
    assert all(e.actor == "thera" for e in acknowledged)


@pytest.mark.req("UI-ESTOP-2")
def test_many_presses_use_one_emergency_stop_thread(
    window: MainWindow, services: ConsoleServices
) -> None:
    """Each press is recorded from the controller's one E-stop thread: the record store keeps a
    connection per writing thread, so a thread per press would drain its pool (15) and then
    every write, the emergency stop's own record included, would fail."""
    flow.login(window, "thera", PASSWORD)
    flow.to_state(window, SessionState.SCREENING, "KNEE-0001")
    messages: list[str] = []
    window.controller.estop_finished.connect(lambda _ok, text: messages.append(text))
    for _ in range(20):
        QTest.mouseClick(window.top.estop, Qt.MouseButton.LeftButton)
    flow.wait_until(lambda: len(messages) == 20, "20 recorded presses")
    assert all("no unit was connected" in m for m in messages)
    assert [t.name for t in threading.enumerate()].count("emergency-stop") == 1
    pressed = [
        e
        for e in services.trail.events(limit=100_000)
        if e.action == "session.emergency_stop_pressed"
    ]
    assert len(pressed) == 20
    flow.answer_screening(window)  # the record still takes writes
    assert flow.state_of(window) is SessionState.SCREENING


@pytest.mark.req("ALARM-ACK-1")
@pytest.mark.req("ALARM-NOAUDIO-1")
@pytest.mark.req("ALARM-LIST-1")
def test_acknowledging_the_emergency_stop_alarm_no_longer_shows_no_active_alarms_while_latched(
    window: MainWindow, services: ConsoleServices, epat_sim
) -> None:
    simulator, _ = epat_sim
    flow.login(window, "thera", PASSWORD)
    flow.to_state(window, SessionState.CONNECTED, "KNEE-0001")
    flow.press_escape(window)
    flow.wait_until(lambda: _unit_estopped(simulator), "the unit to latch ESTOP")
    banner = window.top.alarms
    flow.wait_until(
        lambda: (
            banner.shown_alarm is not None and banner.shown_alarm.key == "session.emergency_stop"
        ),
        "the emergency-stop alarm",
    )
    flow.wait_until(lambda: window.sound.playing is AlarmPriority.HIGH, "the high alarm sound")
    # No audio device here (CI): said once beside the alarms, the console carries on.
    flow.wait_until(lambda: "No audio output" in banner.audio.text(), "the no-audio notice")
    for _ in range(5):  # the emergency stop and, if it raced us, the unit's own fault alarm
        pending = banner._to_acknowledge
        if pending is None:
            break
        QTest.mouseClick(banner.ack, Qt.MouseButton.LeftButton)
        flow.wait_until(
            lambda pending=pending: banner._to_acknowledge != pending, "the acknowledgement"
        )
    flow.wait_until(lambda: banner.ack.isHidden(), "nothing left to acknowledge")
    assert simulator.snapshot().state == State.FAULT  # still latched
    assert banner.label.text() != "No active alarms"
    assert "shown until the condition clears" in banner.label.text()
    flow.wait_until(lambda: window.sound.playing is None, "silence once acknowledged")
    QTest.mouseClick(banner.list_button, Qt.MouseButton.LeftButton)
    assert window.alarm_list is not None and window.alarm_list.entries.count() >= 2


@pytest.mark.req("UI-ESTOP-3")
@pytest.mark.parametrize("where", ["patients", "screening"])
def test_emergency_stop_with_no_unit_says_exactly_that_not_emergency_stop_not_confirmed(
    window: MainWindow, services: ConsoleServices, where: str
) -> None:
    flow.login(window, "thera", PASSWORD)
    if where == "screening":
        flow.to_state(window, SessionState.SCREENING, "KNEE-0001")
    QTest.mouseClick(window.top.estop, Qt.MouseButton.LeftButton)
    screen = window.current_screen()
    flow.wait_until(lambda: "no unit" in screen.notice.heading.text(), "the on-screen answer")
    assert screen.notice.heading.text() == "Emergency stop: no unit connected"
    assert "NOT CONFIRMED" not in " ".join(screen.notice.lines)
    assert "nothing to stop" in " ".join(screen.notice.lines) or "no unit was connected" in (
        " ".join(screen.notice.lines)
    )
    window.controller._check()
    assert services.alarms.sounding() is None  # no alarm sound for a stop with nothing to stop
    if where == "screening":
        alarm = services.alarms.highest()
        assert (
            alarm is not None and alarm.message == "Emergency stop pressed: no unit was connected"
        )


@pytest.mark.req("SES-DB-1")
@pytest.mark.timeout(180)
def test_database_locked_mid_delivery_stops_the_unit_alarms_and_records_the_session_when_back(
    qtbot, services: ConsoleServices, patient_id: str, epat_sim
) -> None:
    """The defect: a record write that failed in the GUI's session left the session
    "delivering" with the unit attached, and nothing recorded it when the database came back."""
    simulator, _ = epat_sim
    # The same record, with a 1 s busy timeout instead of 30 s (a configuration parameter).
    config = dataclasses.replace(services.config, create_schema=False, db_busy_timeout_s=1.0)
    console = ConsoleServices.open(config, hasher=light_hasher())
    window = MainWindow(ServicesBackend(console))
    qtbot.addWidget(window)
    window.show()
    try:
        flow.login(window, "thera", PASSWORD)
        flow.open_patient(window, "KNEE-0001")
        flow.new_session(window, "knee-pt-epat")
        flow.answer_screening(window)
        flow.plan(window)
        flow.connect(window)
        flow.confirm_and_arm(window)
        flow.start(window)
        session_id = window.controller.workflow.ctx.session_id
        flow.wait_until(lambda: window.controller.snapshot.delivered > 0, "the first pulses")
        banner = window.top.alarms
        with ExclusiveLock(services.config.db_url):  # until the end of delivery and beyond
            flow.wait_until(
                lambda: (
                    banner.shown_alarm is not None
                    and banner.shown_alarm.key == RECORD_UNAVAILABLE_ALARM
                ),
                "the record-unavailable alarm",
                timeout_s=60,
            )
            assert "HIGH alarm" in banner.label.text()
            assert "the unit was stopped" in banner.label.text()
            assert not simulator.snapshot().host_attached  # the console let go of the unit
            assert simulator.snapshot().state in (State.IDLE, State.COMPLETE, State.FAULT)
            assert services.sessions.load(session_id).state == "delivering"
            flow.wait_until(  # the retries run on a thread of their own
                lambda: "record-later" in [t.name for t in threading.enumerate()],
                "the record-later thread",
            )
            flow.pump_events(1.5)  # and the GUI thread stays free meanwhile
        flow.wait_state(window, SessionState.INTERRUPTED, timeout_s=60)
        flow.wait_until(
            lambda: "recorded interrupted" in window.statusBar().currentMessage(),
            "the 'recorded' message",
        )
        record = services.sessions.load(session_id)
        assert record.state == "interrupted" and record.count_status == "confirmed"
        assert record.delivered == simulator.snapshot().delivered > 0
        assert window.controller.snapshot.delivered == record.delivered
    finally:
        window.shutdown()
        console.close()
