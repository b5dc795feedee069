"""Delivery: the big live count, the progress bar, live plots, and the ways to end or adjust.

Pause, resume, titrate (while paused), stop (planned end), abort (reason required) are ordinary
actions; the EMERGENCY STOP lives in the top bar and on its key, like on every screen. The
count shown is the workflow's (the unit's own counts); readings come from the unit's stream.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QVBoxLayout, QWidget

from console.session.interlocks import MIN_OVERRIDE_REASON_CHARS
from console.session.states import ENDED_STATES, Action, SessionState
from console.ui import theme
from console.ui.counter import PulseCounter
from console.ui.numbers import parse_number
from console.ui.plot import LivePlot
from console.ui.screens.base import Screen
from console.ui.screens.planning import decimal_point
from console.ui.screens.unit import plan_text
from console.ui.snapshot import SessionSnapshot
from console.ui.widgets import AbortBox, Notice, ReasonBox, button, label, panel, set_text
from device_drivers.interface import DeviceStatus

_STATE_TEXT = {
    SessionState.ARMED: "Armed: press Start on the unit screen",
    SessionState.DELIVERING: "Delivering",
    SessionState.PAUSED: "Paused: the count is kept",
    SessionState.COMPLETED: "Completed: target reached",
    SessionState.STOPPED: "Stopped by the therapist",
    SessionState.ABORTED: "Aborted",
    SessionState.FAULTED: "Ended by a fault or the emergency stop",
}


class DeliveryScreen(Screen):
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()
    abort_requested = Signal(str)
    titrate_requested = Signal(object, object)  # Decimal intensity, override reason or None
    document_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Delivery", "", parent)
        top = QHBoxLayout()
        top.setSpacing(14)
        count_card, count = panel()
        self.state_label = label("—", "section")
        self.state_label.setObjectName("deliveryState")
        self.counter = PulseCounter()
        self.plan_label = label("", "muted")
        count.addWidget(self.state_label)
        count.addWidget(self.counter)
        count.addWidget(self.plan_label)
        top.addWidget(count_card, 3)

        plots = QVBoxLayout()
        self.intensity_plot = LivePlot(
            "Measured pressure", "bar", theme.PLOT_PRESSURE, y_max=5.0, decimals=2
        )
        self.intensity_plot.setObjectName("intensityPlot")
        self.temperature_plot = LivePlot(
            "Applicator temperature", "°C", theme.PLOT_TEMPERATURE, y_max=50.0
        )
        self.temperature_plot.setObjectName("temperaturePlot")
        plots.addWidget(self.intensity_plot)
        plots.addWidget(self.temperature_plot)
        top.addLayout(plots, 4)
        self.body.addLayout(top, 1)

        self.pause_button = button("&Pause", role="primary", name="pauseDelivery")
        self.resume_button = button("&Resume", role="primary", name="resumeDelivery")
        self.stop_button = button(
            "S&top (planned end)",
            name="stopDelivery",
            tooltip="End delivery now because the dose is enough; the count is recorded",
        )
        self.document_button = button(
            "&Document the session", role="primary", name="toDocumentation"
        )
        self.abort = AbortBox()
        controls = QHBoxLayout()
        for widget in (self.pause_button, self.resume_button, self.stop_button):
            controls.addWidget(widget)
        controls.addWidget(self.abort, 1)
        controls.addStretch(0)
        controls.addWidget(self.document_button)
        self.body.addLayout(controls)

        self.titration = QWidget()
        titrate_layout = QHBoxLayout(self.titration)
        titrate_layout.setContentsMargins(0, 0, 0, 0)
        self.titrate_label = label("New intensity", wrap=False)
        self.titrate_value = QLineEdit()
        self.titrate_value.setObjectName("titrateValue")
        self.titrate_value.setMaximumWidth(120)
        self.titrate_reason = ReasonBox(
            "Only when outside the protocol range: why? (recorded)", MIN_OVERRIDE_REASON_CHARS
        )
        self.titrate_button = button("Apply new &intensity", name="applyTitration")
        titrate_layout.addWidget(self.titrate_label)
        titrate_layout.addWidget(self.titrate_value)
        titrate_layout.addWidget(self.titrate_reason, 1)
        titrate_layout.addWidget(self.titrate_button)
        self.titration.hide()
        self.body.addWidget(self.titration)
        self.summary = Notice()
        self.summary.setObjectName("deliverySummary")
        self.body.addWidget(self.summary)

        self.actions = [
            self.pause_button,
            self.resume_button,
            self.stop_button,
            self.titrate_button,
            self.document_button,
        ]
        self.pause_button.clicked.connect(self.pause_requested)
        self.resume_button.clicked.connect(self.resume_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.document_button.clicked.connect(self.document_requested)
        self.abort.abort_requested.connect(self.abort_requested)
        self.titrate_button.clicked.connect(self._titrate)
        self._snapshot: SessionSnapshot | None = None
        self._field_mode = False
        self.update_actions()

    def reset(self, modality: str) -> None:
        """Prepare for a new session on a unit of ``modality`` (epat | emtt)."""
        self._field_mode = modality == "emtt"
        if self._field_mode:
            self.intensity_plot.title, self.intensity_plot.unit = "Measured field", "mT"
            self.titrate_label.setText("New field (mT)")
        else:
            self.intensity_plot.title, self.intensity_plot.unit = "Measured pressure", "bar"
            self.titrate_label.setText("New pressure (bar)")
        self.intensity_plot.clear()
        self.temperature_plot.clear()
        self.counter.show_count(0, 0)
        self.summary.clear()
        self.abort.reset()
        self.clear_notice()
        self._snapshot = None

    def add_reading(self, status: DeviceStatus) -> None:
        t = status.received_ns / 1e9
        measured = status.field_measured_mt if self._field_mode else status.pressure_measured_bar
        if measured is not None:
            self.intensity_plot.add(t, float(measured))
        self.temperature_plot.add(t, float(status.temperature_c))

    def show_snapshot(self, snapshot: SessionSnapshot) -> None:
        self._snapshot = snapshot
        self.counter.show_count(snapshot.delivered, snapshot.target)
        set_text(self.state_label, _STATE_TEXT.get(snapshot.state, snapshot.state.value))
        plan = snapshot.plan
        set_text(self.plan_label, plan_text(plan))
        if plan is not None:
            intensity = plan.field_mt if self._field_mode else plan.pressure_bar
            self.intensity_plot.set_reference(float(intensity) if intensity is not None else None)
        paused = snapshot.state is SessionState.PAUSED
        if paused and not self.titration.isVisible() and plan is not None:
            current = plan.field_mt if self._field_mode else plan.pressure_bar
            self.titrate_value.setText(str(current).replace(".", decimal_point()))
        self.titration.setVisible(paused)
        if snapshot.state in ENDED_STATES:
            heading = _STATE_TEXT.get(snapshot.state, snapshot.state.value)
            lines = [f"{snapshot.delivered:,} of {snapshot.target:,} pulses delivered."]
            if snapshot.end_reason:
                lines.append(f"Reason: {snapshot.end_reason}")
            severity = "refuse" if snapshot.state is SessionState.FAULTED else "ok"
            self.summary.show_lines(heading, lines, severity)
        self.update_actions()

    def _titrate(self) -> None:
        value, problem = parse_number(
            self.titrate_value.text(), decimal_point(), what="titrated value"
        )
        if value is None:
            self.show_refusal("Titrate", [problem or "not a number"])
            return
        reason = self.titrate_reason.text().strip() or None
        self.titrate_requested.emit(value, reason)

    def update_actions(self) -> None:
        snapshot = self._snapshot
        allowed = snapshot.allowed if snapshot else frozenset()
        idle = not self.busy
        self.pause_button.setEnabled(idle and Action.PAUSE in allowed)
        self.resume_button.setEnabled(idle and Action.RESUME in allowed)
        self.stop_button.setEnabled(idle and Action.STOP in allowed)
        self.titrate_button.setEnabled(idle and Action.TITRATE in allowed)
        ended = snapshot is not None and snapshot.state in ENDED_STATES
        self.document_button.setVisible(ended)
        self.document_button.setEnabled(idle and ended)
        self.abort.set_available(idle and Action.ABORT in allowed)
        self.abort.setVisible(not ended)
