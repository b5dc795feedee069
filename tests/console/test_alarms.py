"""Alarms latch until acknowledged, persisting conditions until resolved; every change is
reported (audited); the IEC 60601-1-8 flash patterns and burst tones are checked as generated."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from console.alarm_signals import (
    FLASH,
    HIGH_BURST,
    MEDIUM_BURST,
    SAMPLE_RATE,
    BurstPattern,
    burst_pcm,
    pulse_samples,
    wav_bytes,
)
from console.alarms import AUDIO_PAUSE, Alarm, AlarmBoard, AlarmPriority
from console.services import ConsoleServices


@pytest.mark.req("SES-ALARM-1")
def test_alarm_latches_until_acknowledged() -> None:
    seen: list[tuple[str, Alarm]] = []
    board = AlarmBoard(lambda what, alarm: seen.append((what, alarm)))
    board.raise_alarm("device.fault", AlarmPriority.HIGH, "EPAT unit fault: OVERTEMP")
    assert [a.key for a in board.active()] == ["device.fault"]
    acknowledged = board.acknowledge("device.fault", "u-therapist")
    assert acknowledged.acknowledged_by == "u-therapist"
    assert board.active() == []
    assert [what for what, _ in seen] == ["raised", "acknowledged"]


@pytest.mark.req("SES-ALARM-1")
def test_highest_priority_first_and_no_downgrade() -> None:
    board = AlarmBoard()
    board.raise_alarm("worker.silent", AlarmPriority.MEDIUM, "device worker silent", technical=True)
    board.raise_alarm("device.fault", AlarmPriority.HIGH, "fault")
    again = board.raise_alarm("device.fault", AlarmPriority.LOW, "fault again")
    assert again.priority is AlarmPriority.HIGH
    assert [a.key for a in board.active()] == ["device.fault", "worker.silent"]


def test_acknowledging_nothing_is_an_error() -> None:
    board = AlarmBoard()
    with pytest.raises(KeyError):
        board.acknowledge("nothing", "u1")


# --------------------------------------------------------------------------- issue 13
# Acknowledged is not resolved; audio pause; history; every change audited; the signals.


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.req("ALARM-ACK-1")
def test_acknowledging_the_emergency_stop_alarm_keeps_it_shown_while_the_unit_is_latched() -> None:
    board = AlarmBoard()
    board.raise_alarm("session.emergency_stop", AlarmPriority.HIGH, "EMERGENCY STOP", persists=True)
    assert board.sounding() is AlarmPriority.HIGH
    board.acknowledge("session.emergency_stop", "u-therapist")
    shown = board.active()
    assert [a.key for a in shown] == ["session.emergency_stop"]  # still latched in fault
    assert shown[0].acknowledged and not shown[0].resolved
    assert board.sounding() is None  # acknowledged: silent, but shown
    board.resolve("session.emergency_stop")
    assert board.active() == []


@pytest.mark.req("ALARM-ACK-1")
def test_a_resolved_condition_still_latches_until_acknowledged() -> None:
    board = AlarmBoard()
    board.raise_alarm("device.link_lost", AlarmPriority.HIGH, "link lost", persists=True)
    board.resolve("device.link_lost")
    assert [a.key for a in board.active()] == ["device.link_lost"]  # nobody has seen it yet
    board.acknowledge("device.link_lost", "u1")
    assert board.active() == []
    with pytest.raises(KeyError):
        board.acknowledge("device.link_lost", "u1")


@pytest.mark.req("ALARM-AUDIO-2")
def test_audio_pause_lasts_two_minutes_and_a_new_alarm_ends_it() -> None:
    clock = _Clock()
    board = AlarmBoard(clock=clock)
    board.raise_alarm("device.fault", AlarmPriority.HIGH, "fault", persists=True)
    until = board.pause_audio("u1")
    assert until - clock.now == AUDIO_PAUSE == timedelta(minutes=2)
    assert board.sounding() is None and board.audio_paused_until() == until
    clock.now += timedelta(seconds=119)
    assert board.sounding() is None
    clock.now += timedelta(seconds=1)
    assert board.sounding() is AlarmPriority.HIGH and board.audio_paused_until() is None
    board.pause_audio("u1")
    board.raise_alarm("worker.silent", AlarmPriority.MEDIUM, "silent", technical=True)
    assert board.sounding() is AlarmPriority.HIGH  # a new alarm is heard at once


@pytest.mark.req("ALARM-AUDIO-1")
def test_low_priority_alarms_do_not_sound() -> None:
    board = AlarmBoard()
    board.raise_alarm("note", AlarmPriority.LOW, "low")
    assert board.sounding() is None
    board.raise_alarm("worker.silent", AlarmPriority.MEDIUM, "silent")
    assert board.sounding() is AlarmPriority.MEDIUM


@pytest.mark.req("ALARM-LIST-1")
def test_every_alarm_raised_acknowledged_paused_and_resolved_is_audited_and_listed(
    services: ConsoleServices, therapist
) -> None:
    board = services.alarms
    before = services.trail.head().seq
    board.raise_alarm("device.fault", AlarmPriority.HIGH, "Unit fault: OVERTEMP", persists=True)
    board.pause_audio(therapist.user_id)
    board.acknowledge("device.fault", therapist.user_id)
    board.resolve("device.fault")
    events = [e for e in services.trail.events(after_seq=before, limit=50)]
    alarm_events = [(e.action, e.actor) for e in events if e.action.startswith("alarm.")]
    assert [a for a, _ in alarm_events] == [
        "alarm.raised",
        "alarm.audio_paused",
        "alarm.acknowledged",
        "alarm.resolved",
    ]
    actors = [str(actor) for _, actor in alarm_events]
    assert therapist.user_id in actors[1] and therapist.user_id in actors[2]
    assert therapist.user_id not in actors[0] and therapist.user_id not in actors[3]
    assert [h.what for h in board.history()] == [
        "raised",
        "audio_paused",
        "acknowledged",
        "resolved",
    ]


# ------------------------------------------------------------------ waveform analysis (pure)
def _envelope_runs(samples: list[int], rate: int) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch where the 2 ms peak exceeds 10 % of the max."""
    window = max(1, rate // 500)
    peak = max(abs(s) for s in samples)
    lit = [
        max(abs(s) for s in samples[i : i + window]) > 0.1 * peak
        for i in range(0, len(samples), window)
    ]
    runs, start = [], None
    for index, on in enumerate([*lit, False]):
        if on and start is None:
            start = index
        elif not on and start is not None:
            runs.append((start * window / rate, index * window / rate))
            start = None
    return runs


def _magnitude(samples: list[float], frequency: float, rate: int) -> float:
    """|DFT| of ``samples`` at one frequency (a single-bin Fourier sum), normalised."""
    re = sum(s * math.cos(2 * math.pi * frequency * i / rate) for i, s in enumerate(samples))
    im = sum(s * math.sin(2 * math.pi * frequency * i / rate) for i, s in enumerate(samples))
    return 2 * math.hypot(re, im) / len(samples)


def _steady(pattern: BurstPattern) -> list[float]:
    """The flat middle of one pulse, a whole number of fundamental periods long."""
    pulse = pulse_samples(pattern)
    period = SAMPLE_RATE / pattern.fundamental_hz
    start = len(pulse) // 4
    length = int(int((len(pulse) // 2) / period) * period)
    return pulse[start : start + length]


@pytest.mark.req("ALARM-AUDIO-1")
def test_high_priority_burst_is_ten_pulses_in_the_standards_rhythm() -> None:
    runs = _envelope_runs(list(burst_pcm(HIGH_BURST)), SAMPLE_RATE)
    assert len(runs) == 10
    durations = [end - start for start, end in runs]
    assert all(0.075 <= d <= 0.200 for d in durations), durations
    gaps = [runs[i + 1][0] - runs[i][1] for i in range(9)]
    x = gaps[0]
    assert 0.050 <= x <= 0.125
    td = HIGH_BURST.pulse_s
    for index in (0, 1, 3, 5, 6, 8):
        assert gaps[index] == pytest.approx(x, abs=0.01)
    for index in (2, 7):  # between the 3rd and 4th (and 8th and 9th): 2x + td
        assert gaps[index] == pytest.approx(2 * x + td, abs=0.02)
    assert 0.35 <= gaps[4] <= 1.30  # between the 5th and 6th
    interval = HIGH_BURST.period_s - runs[-1][1]  # silence before the burst repeats
    assert 2.5 <= interval <= 15.0


@pytest.mark.req("ALARM-AUDIO-1")
def test_medium_priority_burst_is_three_pulses() -> None:
    runs = _envelope_runs(list(burst_pcm(MEDIUM_BURST)), SAMPLE_RATE)
    assert len(runs) == 3
    assert all(0.125 <= end - start <= 0.250 for start, end in runs)
    gaps = [runs[i + 1][0] - runs[i][1] for i in range(2)]
    assert all(0.125 <= g <= 0.250 for g in gaps), gaps
    assert 2.5 <= MEDIUM_BURST.period_s - runs[-1][1] <= 30.0


@pytest.mark.req("ALARM-AUDIO-1")
@pytest.mark.parametrize("pattern", [HIGH_BURST, MEDIUM_BURST], ids=["high", "medium"])
def test_pulses_have_a_fundamental_and_four_harmonics_in_the_standards_bands(
    pattern: BurstPattern,
) -> None:
    steady = _steady(pattern)
    # The strongest component between 150 and 1,000 Hz (10 Hz steps) is the fundamental.
    candidates = range(150, 1001, 10)
    fundamental = max(candidates, key=lambda f: _magnitude(steady, f, SAMPLE_RATE))
    assert fundamental == pytest.approx(pattern.fundamental_hz, abs=10)
    # Zero crossings of the fundamental's period agree: the waveform repeats every 1/f0.
    period = round(SAMPLE_RATE / fundamental)
    assert max(abs(steady[i] - steady[i + period]) for i in range(len(steady) - period)) < 0.05
    base = _magnitude(steady, fundamental, SAMPLE_RATE)
    harmonics = [
        k * fundamental
        for k in range(2, 12)
        if 300 <= k * fundamental <= 4000
        and 20 * math.log10(_magnitude(steady, k * fundamental, SAMPLE_RATE) / base) >= -15
    ]
    assert len(harmonics) >= 4, harmonics
    # Nothing between the harmonics: the tone is what the table says, not noise.
    assert _magnitude(steady, 1.5 * fundamental, SAMPLE_RATE) < 0.05 * base  # -26 dB


@pytest.mark.req("ALARM-AUDIO-1")
def test_tones_are_a_playable_wav_file() -> None:
    import io
    import wave

    data = wav_bytes(burst_pcm(HIGH_BURST))
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        assert wav.getframerate() == SAMPLE_RATE
        assert wav.getnframes() == round(HIGH_BURST.period_s * SAMPLE_RATE)


@pytest.mark.req("ALARM-VIS-1")
@pytest.mark.parametrize(
    ("priority", "low_hz", "high_hz"),
    [(AlarmPriority.HIGH, 1.4, 2.8), (AlarmPriority.MEDIUM, 0.4, 0.8)],
)
def test_flash_patterns_are_within_the_standards_frequency_and_duty(
    priority: AlarmPriority, low_hz: float, high_hz: float
) -> None:
    pattern = FLASH[priority]
    step, span = 0.001, 10.0
    samples = [pattern.lit(i * step) for i in range(int(span / step))]
    rises = sum(1 for a, b in itertools.pairwise(samples) if b and not a)
    assert low_hz <= (rises + 1) / span <= high_hz
    assert 0.20 <= sum(samples) / len(samples) <= 0.60


@pytest.mark.req("ALARM-VIS-1")
def test_low_priority_is_steady() -> None:
    assert all(FLASH[AlarmPriority.LOW].lit(i / 100) for i in range(1000))
