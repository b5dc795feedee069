"""The alarm banner flashes at the standard's rates (sampled against a fake clock, no sleeps);
the sound starts on a computer without audio output and the console says so once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt

from console.alarms import Alarm, AlarmBoard, AlarmPriority
from console.ui.alarm_banner import AlarmBanner, AlarmListDialog
from console.ui.alarm_sound import NO_AUDIO, AlarmSound

pytestmark = [pytest.mark.gui]


class _Seconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _alarm(priority: AlarmPriority, key: str = "device.fault", **kw: object) -> Alarm:
    return Alarm(key, priority, "Unit fault: OVERTEMP", datetime.now(UTC), **kw)  # type: ignore[arg-type]


def _sample(banner: AlarmBanner, clock: _Seconds, span_s: float, step_s: float) -> list[bool]:
    seen = []
    for _ in range(int(span_s / step_s)):
        banner.tick()
        seen.append(banner.lit)
        assert ("#C62828" in banner.styleSheet() or "#F2B600" in banner.styleSheet()) == banner.lit
        clock.now += step_s
    return seen


@pytest.mark.req("ALARM-VIS-1")
@pytest.mark.parametrize(
    ("priority", "low_hz", "high_hz"),
    [(AlarmPriority.HIGH, 1.4, 2.8), (AlarmPriority.MEDIUM, 0.4, 0.8)],
)
def test_high_priority_alarm_flashes_where_eight_samples_in_a_second_were_identical(
    qtbot, priority: AlarmPriority, low_hz: float, high_hz: float
) -> None:
    clock = _Seconds()
    banner = AlarmBanner(clock=clock)
    qtbot.addWidget(banner)
    banner.show_alarms([_alarm(priority)])
    eight = _sample(banner, clock, 1.0 if priority is AlarmPriority.HIGH else 2.5, 0.125)
    assert len(set(eight)) == 2  # the defect: eight samples over one second all the same
    seen = _sample(banner, clock, 10.0, 0.01)
    rises = sum(1 for a, b in itertools.pairwise(seen) if b and not a)
    assert low_hz <= rises / 10.0 <= high_hz
    assert 0.20 <= sum(seen) / len(seen) <= 0.60


@pytest.mark.req("ALARM-VIS-1")
def test_low_priority_alarm_is_steady_cyan(qtbot) -> None:
    clock = _Seconds()
    banner = AlarmBanner(clock=clock)
    qtbot.addWidget(banner)
    banner.show_alarms([_alarm(AlarmPriority.LOW)])
    for _ in range(300):
        banner.tick()
        assert banner.lit and "#7FD3E6" in banner.styleSheet()
        clock.now += 0.01


@pytest.mark.req("ALARM-VIS-1")
def test_the_flash_timer_runs_on_the_real_clock(qtbot) -> None:
    banner = AlarmBanner()
    qtbot.addWidget(banner)
    banner.show()
    qtbot.waitExposed(banner)
    banner.show_alarms([_alarm(AlarmPriority.HIGH)])
    assert banner.lit
    qtbot.waitUntil(lambda: not banner.lit, timeout=2000)
    qtbot.waitUntil(lambda: banner.lit, timeout=2000)
    banner.hide()  # a banner nobody sees does not tick (a closed window's would run on)
    assert not banner._timer.isActive()
    banner.show()
    assert banner._timer.isActive()


@pytest.mark.req("ALARM-ACK-1")
def test_acknowledged_emergency_stop_alarm_stays_on_the_banner_while_latched(qtbot) -> None:
    banner = AlarmBanner()
    qtbot.addWidget(banner)
    board = AlarmBoard()
    board.raise_alarm("session.emergency_stop", AlarmPriority.HIGH, "EMERGENCY STOP", persists=True)
    banner.show_alarms(board.active())
    with qtbot.waitSignal(banner.acknowledge_requested) as blocker:
        qtbot.mouseClick(banner.ack, Qt.MouseButton.LeftButton)
    board.acknowledge(blocker.args[0], "u1")
    banner.show_alarms(board.active())
    assert banner.label.text() != "No active alarms"  # the defect
    assert "acknowledged; shown until the condition clears" in banner.label.text()
    assert banner.ack.isHidden()  # nothing left to acknowledge
    board.resolve("session.emergency_stop")
    banner.show_alarms(board.active())
    assert banner.label.text() == "No active alarms"


@pytest.mark.req("ALARM-AUDIO-2")
def test_audio_pause_is_shown_while_it_lasts(qtbot) -> None:
    banner = AlarmBanner()
    qtbot.addWidget(banner)
    banner.show_alarms([_alarm(AlarmPriority.HIGH)])
    banner.show_audio_paused(datetime.now(UTC) + timedelta(minutes=2))
    assert banner.audio.text() in ("Audio paused 2:00", "Audio paused 1:59")
    with qtbot.waitSignal(banner.pause_audio_requested):
        qtbot.mouseClick(banner.pause, Qt.MouseButton.LeftButton)
    banner.show_audio_paused(None)
    assert "paused" not in banner.audio.text()


@pytest.mark.req("ALARM-LIST-1")
def test_alarm_list_shows_the_sessions_history(qtbot) -> None:
    board = AlarmBoard()
    board.raise_alarm("device.fault", AlarmPriority.HIGH, "Unit fault: OVERTEMP", persists=True)
    board.acknowledge("device.fault", "thera")
    board.resolve("device.fault")
    dialog = AlarmListDialog()
    qtbot.addWidget(dialog)
    dialog.show_history(board.history())
    lines = [dialog.entries.item(i).text() for i in range(dialog.entries.count())]
    assert len(lines) == 3
    assert "resolved" in lines[0] and "acknowledged by thera" in lines[1] and "raised" in lines[2]
    assert not dialog.isModal()


@pytest.mark.req("ALARM-NOAUDIO-1")
@pytest.mark.req("ALARM-AUDIO-1")
def test_a_high_alarm_starts_playback_without_an_audio_device_and_says_so_once(qtbot) -> None:
    from PySide6.QtMultimedia import QMediaDevices

    if QMediaDevices.audioOutputs():  # a computer with sound: it plays and says nothing
        sound = AlarmSound()
        sound.play(AlarmPriority.HIGH)
        assert sound.playing is AlarmPriority.HIGH and sound.problem is None
        sound.close()
        return
    sound = AlarmSound()
    said: list[str] = []
    sound.unavailable.connect(said.append)
    try:
        sound.play(AlarmPriority.HIGH)  # no exception on a null device
        assert sound.playing is AlarmPriority.HIGH
        qtbot.waitUntil(lambda: len(said) == 1, timeout=5000)
        sound.play(None)
        sound.play(AlarmPriority.MEDIUM)
        sound.play(AlarmPriority.HIGH)
        qtbot.wait(200)  # the effects' error statuses arrive asynchronously
        assert said == [NO_AUDIO] or (len(said) == 1 and said[0].startswith(NO_AUDIO))
        assert sound.problem == said[0]
    finally:
        sound.close()
