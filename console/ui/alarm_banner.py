"""The alarm signal in the top bar: the highest active alarm, its priority colour, flashing.

IEC 60601-1-8: high red flashing 1.4–2.8 Hz, medium yellow flashing 0.4–0.8 Hz, low cyan steady
(``console.alarm_signals.FLASH``). The banner lights and darkens on a 50 ms timer against a
clock that tests replace. Acknowledge silences the first unacknowledged alarm; an acknowledged
alarm whose cause persists stays shown (marked so) until it is resolved. "Pause audio" pauses
the sound for two minutes, shown while it lasts; "Alarm list" opens the session's history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.alarm_signals import FLASH
from console.alarms import Alarm, AlarmEntry, AlarmPriority

_STYLE = {
    AlarmPriority.HIGH: ("#C62828", "#4A1010", "white", "HIGH"),
    AlarmPriority.MEDIUM: ("#F2B600", "#5C4A0A", "#1D2A33", "MEDIUM"),
    AlarmPriority.LOW: ("#7FD3E6", "#7FD3E6", "#1D2A33", "LOW"),
}
FLASH_TICK_MS = 50


class AlarmBanner(QFrame):
    acknowledge_requested = Signal(str)  # the alarm's key
    pause_audio_requested = Signal()
    history_requested = Signal()

    def __init__(
        self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(parent)
        self.setObjectName("alarmBanner")
        self.clock = clock
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.more = QLabel()
        self.audio = QLabel()  # "Audio paused 1:58" / "No audio output"
        self.audio.setObjectName("alarmAudio")
        self.ack = QPushButton("Acknowledge")
        self.ack.setToolTip(
            "Acknowledge the alarm shown (Ctrl+K); it is recorded in the audit trail"
        )
        self.ack.setShortcut("Ctrl+K")
        self.ack.clicked.connect(self._acknowledge)
        self.pause = QPushButton("Pause audio")
        self.pause.setToolTip("Silence the alarm sound for 2 minutes (recorded)")
        self.pause.clicked.connect(self.pause_audio_requested)
        self.list_button = QPushButton("Alarm list")
        self.list_button.setToolTip("Every alarm of this session: raised, acknowledged, resolved")
        self.list_button.clicked.connect(self.history_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.more)
        layout.addWidget(self.audio)
        layout.addWidget(self.ack)
        layout.addWidget(self.pause)
        layout.addWidget(self.list_button)
        self._shown: Alarm | None = None
        self._to_acknowledge: Alarm | None = None
        self._since = 0.0
        self.lit = True
        self._paused_until: datetime | None = None
        self._no_audio: str | None = None
        self.label.setMinimumWidth(220)
        self._timer = QTimer(self)
        self._timer.setInterval(FLASH_TICK_MS)
        self._timer.timeout.connect(self.tick)
        self._show_none()

    @property
    def shown_alarm(self) -> Alarm | None:
        return self._shown

    def show_alarms(self, active: Sequence[Alarm]) -> None:
        """Show the first (highest priority) of ``active`` and how many more wait."""
        top = active[0] if active else None
        self._to_acknowledge = next((a for a in active if not a.acknowledged), None)
        self.ack.setVisible(self._to_acknowledge is not None)
        if top == self._shown and self.more.text() == self._more_text(active):
            return
        if top is None or self._shown is None or top.key != self._shown.key:
            self._since = self.clock()  # each new alarm starts lit
        self._shown = top
        if top is None:
            self._show_none()
            return
        kind = "technical alarm" if top.technical else "alarm"
        state = ""
        if top.acknowledged and top.active:
            state = " (acknowledged; shown until the condition clears)"
        self.label.setText(f"{_STYLE[top.priority][3]} {kind}: {top.message}{state}")
        self.more.setText(self._more_text(active))
        self.lit = not FLASH[top.priority].lit(0.0)  # force a repaint
        self.tick()
        if FLASH[top.priority].frequency_hz > 0 and self.isVisible():
            self._timer.start()
        else:
            self._timer.stop()

    def tick(self) -> None:
        """Light or darken the banner for the time since the alarm was first shown."""
        top = self._shown
        if top is None:
            return
        lit = FLASH[top.priority].lit(self.clock() - self._since)
        if lit == self.lit:
            self._show_audio()
            return
        self.lit = lit
        on, off, foreground, _ = _STYLE[top.priority]
        self.setStyleSheet(
            f"#alarmBanner {{ background: {on if lit else off}; border-radius: 6px; }}"
        )
        style = f"color: {foreground if lit else 'white'}; font-weight: bold;"
        self.label.setStyleSheet(style)
        self.more.setStyleSheet(style)
        self.audio.setStyleSheet(style)
        self._show_audio()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        top = self._shown
        if top is not None and FLASH[top.priority].frequency_hz > 0:
            self._timer.start()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 (Qt override)
        """A banner nobody can see does not tick (a closed window's timer would run on)."""
        self._timer.stop()
        super().hideEvent(event)

    def stop(self) -> None:
        """Stop flashing for good (the window is shutting down)."""
        self._timer.stop()
        self._shown = None

    def show_audio_paused(self, until: datetime | None) -> None:
        self._paused_until = until
        self._show_audio()

    def show_no_audio(self, why: str) -> None:
        self._no_audio = why
        self._show_audio()

    def _show_audio(self) -> None:
        parts = []
        if self._paused_until is not None:
            left = max(0, int((self._paused_until - datetime.now(UTC)).total_seconds()))
            parts.append(f"Audio paused {left // 60}:{left % 60:02d}")
        if self._no_audio is not None:
            parts.append("No audio output")
            self.audio.setToolTip(self._no_audio)
        text = " · ".join(parts)
        if self.audio.text() != text:
            self.audio.setText(text)

    def _show_none(self) -> None:
        self._timer.stop()
        self.lit = False
        self.setStyleSheet("#alarmBanner { background: transparent; border: none; }")
        self.label.setText("No active alarms")
        self.label.setStyleSheet("color: #56656F;")
        self.audio.setStyleSheet("color: #56656F;")
        self.more.setText("")
        self.ack.hide()
        self._show_audio()

    @staticmethod
    def _more_text(active: Sequence[Alarm]) -> str:
        return f"+{len(active) - 1} more" if len(active) > 1 else ""

    def _acknowledge(self) -> None:
        if self._to_acknowledge is not None:
            self.acknowledge_requested.emit(self._to_acknowledge.key)


class AlarmListDialog(QDialog):
    """The session's alarm history (non-modal: the emergency stop stays reachable)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Alarm list")
        self.setModal(False)
        self.resize(760, 360)
        self.entries = QListWidget()
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.entries)
        layout.addWidget(close)

    def show_history(self, history: Sequence[AlarmEntry]) -> None:
        self.entries.clear()
        for entry in reversed(history):
            local = entry.at.astimezone().strftime("%H:%M:%S %Z")
            alarm = entry.alarm
            who = alarm.acknowledged_by if entry.what == "acknowledged" else alarm.paused_by
            by = f" by {who}" if who and entry.what in ("acknowledged", "audio_paused") else ""
            self.entries.addItem(
                f"{local}  {entry.what.replace('_', ' ')}{by}  "
                f"{alarm.priority.name.lower()}: {alarm.message}"
            )
        if not history:
            self.entries.addItem("No alarms in this session")
