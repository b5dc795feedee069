"""The audible alarm signal: the IEC 60601-1-8 bursts (``console.alarm_signals``) played in a loop.

Played by QtMultimedia's ``QSoundEffect`` (PySide6-Addons, same Qt as the widgets, low-latency
PCM playback that never blocks the GUI thread). A console without an audio output (or without
QtMultimedia and its system libraries) still runs: it says so once (``unavailable``) and the
alarms stay visual.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QUrl, Signal

from console.alarm_signals import BURSTS, burst_pcm, wav_bytes
from console.alarms import AlarmPriority

NO_AUDIO = "No audio output: alarms are shown but cannot be heard on this computer"


class AlarmSound(QObject):
    unavailable = Signal(str)  # emitted once, with why

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.playing: AlarmPriority | None = None  # what was last started (None: silence)
        self.problem: str | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="alarm-tones-")
        self._effects: dict[AlarmPriority, Any] = {}
        try:
            from PySide6.QtMultimedia import QMediaDevices, QSoundEffect
        except ImportError as exc:  # Addons or libpulse missing: visual alarms only
            self._report(f"{NO_AUDIO} (QtMultimedia unavailable: {exc})")
            return
        self._devices = QMediaDevices
        for priority, pattern in BURSTS.items():
            path = Path(self._folder.name) / f"{priority.name.lower()}.wav"
            path.write_bytes(wav_bytes(burst_pcm(pattern)))
            effect = QSoundEffect(self)
            effect.setSource(QUrl.fromLocalFile(str(path)))
            effect.setLoopCount(QSoundEffect.Loop.Infinite.value)
            effect.statusChanged.connect(lambda e=effect: self._on_status(e))
            self._effects[priority] = effect

    def play(self, priority: AlarmPriority | None) -> None:
        """Sound ``priority``'s burst in a loop (None: silence); idempotent."""
        if priority == self.playing:
            return
        for effect in self._effects.values():
            effect.stop()
        self.playing = priority
        if priority is None:
            return
        if self._effects and self._devices.defaultAudioOutput().isNull():
            self._report(NO_AUDIO)
        effect = self._effects.get(priority)
        if effect is not None:
            effect.play()  # on a null device it ends in Status.Error, reported once

    def _on_status(self, effect: Any) -> None:
        from PySide6.QtMultimedia import QSoundEffect

        if effect.status() is QSoundEffect.Status.Error:
            self._report(NO_AUDIO)

    def _report(self, why: str) -> None:
        if self.problem is None:
            self.problem = why
            self.unavailable.emit(why)

    def close(self) -> None:
        self.play(None)
        self._folder.cleanup()
