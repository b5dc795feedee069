"""The console's own widgets on their own: plot, counter, knee diagram, banner, lock, E-stop."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLineEdit, QVBoxLayout, QWidget

from console.alarms import Alarm, AlarmPriority
from console.ui.alarm_banner import AlarmBanner
from console.ui.counter import PulseCounter, format_count
from console.ui.estop import EmergencyKeyFilter, EmergencyStopButton
from console.ui.executor import SessionExecutor
from console.ui.knee import SCALE, KneeDiagram
from console.ui.lock import InactivityMonitor, LockOverlay
from console.ui.plot import MAX_FPS, LivePlot

pytestmark = [pytest.mark.gui]


@pytest.mark.req("UI-LIVE-1")
def test_plot_coalesces_repaints_and_widens_its_scale(qtbot) -> None:
    plot = LivePlot("Pressure", "bar", "#1C6E8C", y_max=5.0)
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    before = plot.repaints
    start = time.monotonic()
    for i in range(400):  # far faster than any status stream
        plot.add(i * 0.01, 2.5)
    qtbot.wait(250)
    elapsed = time.monotonic() - start
    assert plot.sample_count == 400
    assert plot.latest == 2.5
    painted = plot.repaints - before
    assert 1 <= painted <= MAX_FPS * elapsed + 3
    plot.add(5.0, 7.3)  # above the scale: the scale widens, the value is never clipped away
    assert plot.y_max >= 7.3


@pytest.mark.req("UI-LIVE-1")
def test_counter_shows_thousands_and_progress(qtbot) -> None:
    counter = PulseCounter()
    qtbot.addWidget(counter)
    counter.show_count(1234, 2000)
    assert counter.count_label.text() == "1,234 / 2,000"
    assert counter.progress.value() == 1234
    assert counter.progress.maximum() == 2000
    assert format_count(0, 0) == "0 / 0"


@pytest.mark.req("UI-DOC-1")
def test_knee_diagram_places_numbers_and_removes_points_as_integers(qtbot) -> None:
    knee = KneeDiagram()
    qtbot.addWidget(knee)
    knee.resize(400, 440)
    knee.show()
    qtbot.waitExposed(knee)
    first = knee.to_widget(500, 400).toPoint()
    second = knee.to_widget(300, 600).toPoint()
    with qtbot.waitSignal(knee.points_changed):
        qtbot.mouseClick(knee, Qt.MouseButton.LeftButton, pos=first)
    qtbot.mouseClick(knee, Qt.MouseButton.LeftButton, pos=second)
    points = knee.points()
    assert [p["n"] for p in points] == [1, 2]
    for point, (x, y) in zip(points, [(500, 400), (300, 600)], strict=True):
        assert all(type(v) is int for v in point.values())
        assert abs(point["x"] - x) <= 3 and abs(point["y"] - y) <= 3
    qtbot.mouseClick(knee, Qt.MouseButton.LeftButton, pos=first)  # click on a point removes it
    assert [(p["n"], abs(p["x"] - 300) <= 3) for p in knee.points()] == [(1, True)]
    assert not knee.add_point(SCALE + 1, 10)
    with pytest.raises(ValueError, match="within 0"):
        knee.set_points([{"x": -5, "y": 10}])


@pytest.mark.req("UI-WATCH-1")
def test_alarm_banner_shows_the_highest_and_forwards_acknowledge(qtbot) -> None:
    banner = AlarmBanner()
    qtbot.addWidget(banner)
    now = datetime.now(UTC)
    high = Alarm("device.fault", AlarmPriority.HIGH, "Unit fault: OVERTEMP", now)
    medium = Alarm("worker.silent", AlarmPriority.MEDIUM, "worker silent", now, technical=True)
    banner.show_alarms([high, medium])
    assert "HIGH alarm: Unit fault: OVERTEMP" in banner.label.text()
    assert banner.more.text() == "+1 more"
    with qtbot.waitSignal(banner.acknowledge_requested) as blocker:
        qtbot.mouseClick(banner.ack, Qt.MouseButton.LeftButton)
    assert blocker.args == ["device.fault"]
    banner.show_alarms([medium])
    assert "MEDIUM technical alarm" in banner.label.text()
    banner.show_alarms([])
    assert banner.label.text() == "No active alarms"
    assert banner.ack.isHidden()


@pytest.mark.req("UI-ESTOP-1")
def test_estop_button_cannot_be_disabled(qtbot) -> None:
    button = EmergencyStopButton()
    qtbot.addWidget(button)
    button.setEnabled(False)
    assert button.isEnabled()
    assert "Esc" in button.toolTip()
    with qtbot.waitSignal(button.triggered):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


@pytest.mark.req("UI-ESTOP-1")
def test_escape_key_triggers_from_a_dialog_only_while_a_unit_is_connected(qtbot, qapp) -> None:
    presses: list[int] = []
    connected = [True]
    key_filter = EmergencyKeyFilter(lambda: presses.append(1), lambda: connected[0])
    qapp.installEventFilter(key_filter)
    try:
        owner = QWidget()
        qtbot.addWidget(owner)
        owner.show()
        dialog = QDialog(owner)
        field = QLineEdit(dialog)
        QVBoxLayout(dialog).addWidget(field)
        dialog.open()  # window-modal, like every dialog of the console
        qtbot.waitExposed(dialog)
        field.setFocus()
        qtbot.keyClick(field, Qt.Key.Key_Escape)
        assert presses == [1]
        assert dialog.isVisible()  # Esc was the emergency stop, not "close the dialog"
        connected[0] = False
        qtbot.keyClick(field, Qt.Key.Key_Escape)
        assert presses == [1]
        assert not dialog.isVisible()  # with no unit, Esc keeps its ordinary meaning
    finally:
        qapp.removeEventFilter(key_filter)


@pytest.mark.req("UI-LOCK-1")
def test_inactivity_monitor_fires_after_quiet_and_resets_on_input(qtbot, qapp) -> None:
    with pytest.raises(ValueError, match="> 0"):
        InactivityMonitor(0)
    monitor = InactivityMonitor(0.4)
    qapp.installEventFilter(monitor)
    try:
        widget = QLineEdit()
        qtbot.addWidget(widget)
        widget.show()
        monitor.enabled = True
        for _ in range(4):  # typing keeps it awake
            qtbot.wait(150)
            qtbot.keyClick(widget, Qt.Key.Key_A)
        assert monitor.enabled
        with qtbot.waitSignal(monitor.idle, timeout=2000):
            pass
        assert not monitor.enabled  # fires once; the owner re-enables after unlocking
    finally:
        qapp.removeEventFilter(monitor)


@pytest.mark.req("UI-LOCK-1")
def test_lock_overlay_covers_its_area_and_asks_for_the_password(qtbot) -> None:
    area = QWidget()
    qtbot.addWidget(area)
    area.resize(800, 600)
    area.show()
    overlay = LockOverlay(area)
    overlay.lock("Dr Test")
    assert overlay.isVisible()
    assert overlay.geometry() == area.rect()
    area.resize(900, 700)
    qtbot.waitUntil(lambda: overlay.geometry() == area.rect())
    qtbot.keyClicks(overlay.password, "secret")
    with qtbot.waitSignal(overlay.unlock_requested) as blocker:
        qtbot.mouseClick(overlay.unlock, Qt.MouseButton.LeftButton)
    assert blocker.args == ["secret"]
    overlay.show_error("wrong password")
    assert overlay.password.text() == ""


@pytest.mark.req("UI-THREAD-1")
def test_executor_runs_off_the_gui_thread_and_reports_back(qtbot) -> None:
    executor = SessionExecutor()
    gui = threading.get_ident()
    seen: dict[str, object] = {}
    busy: list[bool] = []
    executor.busy_changed.connect(busy.append)
    release = threading.Event()

    def slow() -> int:
        seen["thread"] = threading.get_ident()
        release.wait(2)
        return 42

    executor.submit(slow, lambda r: seen.update(result=r, cb=threading.get_ident()))
    assert executor.busy
    release.set()
    qtbot.waitUntil(lambda: "result" in seen)
    assert seen["thread"] != gui and seen["cb"] == gui and seen["result"] == 42
    assert busy == [True, False]

    def broken() -> None:
        raise RuntimeError("boom")

    errors: list[BaseException] = []
    executor.submit(broken, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors))
    assert str(errors[0]) == "boom"
    executor.shutdown()


@pytest.mark.req("UI-DOC-1")
def test_knee_points_survive_a_resize(qtbot) -> None:
    knee = KneeDiagram()
    qtbot.addWidget(knee)
    knee.resize(300, 340)
    knee.add_point(700, 250)
    knee.resize(600, 700)
    where = knee.to_widget(700, 250)
    assert knee.to_normalised(where) == (700, 250)
