"""The alarm *signals* of IEC 60601-1-8, computed without Qt: flashing and the audible bursts.

Visual (table 1 of the standard): high priority red, flashing 1.4–2.8 Hz with 20–60 % on;
medium yellow, flashing 0.4–0.8 Hz with 20–60 % on; low cyan or yellow, steady. We flash high
at 2.0 Hz and medium at 0.6 Hz, both 50 % on.

Audible (tables 3 and 4): a high-priority burst is ten pulses, 3 + 2, a pause, 3 + 2
(pulse spacing x = 50–125 ms, 2x + t_d between the 3rd and 4th, 0.35–1.30 s between the 5th and
6th), pulse duration t_d 75–200 ms, burst repeated every 2.5–15 s; a medium-priority burst is
three pulses (spacing y = 125–250 ms, t_d 125–250 ms), repeated every 2.5–30 s. Each pulse has a
fundamental between 150 and 1,000 Hz and at least four harmonics in 300–4,000 Hz within 15 dB of
it, with 10–20 % rise and fall. The tones are 16-bit mono PCM made here with ``array`` and
wrapped as WAV with ``wave``: no numerical library is needed for a few sine sums.
"""

from __future__ import annotations

import io
import math
import sys
import wave
from array import array
from dataclasses import dataclass

from console.alarms import AlarmPriority

SAMPLE_RATE = 22_050


@dataclass(frozen=True, slots=True)
class FlashPattern:
    frequency_hz: float
    duty: float  # fraction of each period the indicator is lit

    def lit(self, elapsed_s: float) -> bool:
        """Whether the indicator is lit ``elapsed_s`` after the alarm was first shown."""
        if self.frequency_hz <= 0:
            return True
        phase = (elapsed_s * self.frequency_hz) % 1.0
        return phase < self.duty


FLASH = {
    AlarmPriority.HIGH: FlashPattern(2.0, 0.5),
    AlarmPriority.MEDIUM: FlashPattern(0.6, 0.5),
    AlarmPriority.LOW: FlashPattern(0.0, 1.0),  # steady
}


@dataclass(frozen=True, slots=True)
class BurstPattern:
    """One burst: the start time (s) of each pulse, the pulse duration, and the repeat period."""

    fundamental_hz: float
    harmonics: tuple[float, ...]  # relative amplitudes of harmonics 2, 3, ...
    pulse_s: float
    starts_s: tuple[float, ...]
    period_s: float  # from the start of one burst to the start of the next


def _high_starts(pulse_s: float, x: float, pause_s: float) -> tuple[float, ...]:
    gaps = (x, x, 2 * x + pulse_s, x, pause_s, x, x, 2 * x + pulse_s, x)
    starts = [0.0]
    for gap in gaps:
        starts.append(starts[-1] + pulse_s + gap)
    return tuple(round(s, 6) for s in starts)


HIGH_BURST = BurstPattern(
    fundamental_hz=500.0,
    harmonics=(0.7, 0.5, 0.4, 0.3),  # 1, 1.5, 2, 2.5 kHz: all within 10.5 dB of the fundamental
    pulse_s=0.15,
    starts_s=_high_starts(0.15, 0.1, 0.5),
    period_s=7.0,
)
MEDIUM_BURST = BurstPattern(
    fundamental_hz=400.0,
    harmonics=(0.7, 0.5, 0.4, 0.3),  # 800, 1200, 1600, 2000 Hz
    pulse_s=0.2,
    starts_s=(0.0, 0.4, 0.8),  # spacing y = 0.2 s between pulses
    period_s=7.0,
)
BURSTS = {AlarmPriority.HIGH: HIGH_BURST, AlarmPriority.MEDIUM: MEDIUM_BURST}

_RISE = 0.15  # rise and fall, fraction of the pulse duration (10–20 %)
_PEAK = 0.8 * 32767


def pulse_samples(pattern: BurstPattern, rate: int = SAMPLE_RATE) -> list[float]:
    """One pulse: the fundamental and its harmonics under a trapezoid envelope, peak ≤ 1."""
    n = round(pattern.pulse_s * rate)
    ramp = max(1, round(n * _RISE))
    amplitudes = (1.0, *pattern.harmonics)
    scale = 1.0 / sum(amplitudes)
    out = []
    for i in range(n):
        t = i / rate
        value = sum(
            a * math.sin(2 * math.pi * pattern.fundamental_hz * (k + 1) * t)
            for k, a in enumerate(amplitudes)
        )
        envelope = min(1.0, i / ramp, (n - 1 - i) / ramp)
        out.append(value * scale * envelope)
    return out


def burst_pcm(pattern: BurstPattern, rate: int = SAMPLE_RATE) -> array:
    """One whole period (burst then silence) as signed 16-bit samples, ready to loop."""
    samples = array("h", bytes(2 * round(pattern.period_s * rate)))
    pulse = [int(v * _PEAK) for v in pulse_samples(pattern, rate)]
    for start in pattern.starts_s:
        first = round(start * rate)
        samples[first : first + len(pulse)] = array("h", pulse)
    return samples


def wav_bytes(samples: array, rate: int = SAMPLE_RATE) -> bytes:
    """Mono 16-bit PCM samples as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        if sys.byteorder == "big":  # WAV is little-endian
            samples = array("h", samples)
            samples.byteswap()
        out.writeframes(samples.tobytes())
    return buffer.getvalue()
