"""The main window: top bar with the EMERGENCY STOP, the guided flow of screens, the lock.

It wires the screens' intents to the application layer (``ConsoleBackend``) and to the session
workflow (through ``SessionController``), and moves between screens as the session's state
changes. It decides nothing about safety: refusals come from the workflow and are shown inline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from console.alarms import AlarmPriority
from console.app_logging import get_logger
from console.session.ports import PlannedParameters
from console.session.states import ENDED_STATES, SessionState
from console.session.workflow import TransitionRefused
from console.ui.alarm_banner import AlarmListDialog
from console.ui.alarm_sound import AlarmSound
from console.ui.estop import EmergencyKeyFilter
from console.ui.input_guard import install_input_guard
from console.ui.lock import InactivityMonitor, LockOverlay
from console.ui.ports import BackendError, ConsoleBackend
from console.ui.screens.base import Screen
from console.ui.screens.delivery import DeliveryScreen
from console.ui.screens.documentation import SIGN_MEANING, DocumentationScreen
from console.ui.screens.login import LoginScreen
from console.ui.screens.patients import PatientListScreen, PatientScreen
from console.ui.screens.planning import PlanningScreen
from console.ui.screens.screening import ScreeningScreen
from console.ui.screens.unit import UnitScreen
from console.ui.session_controller import NO_UNIT_ANSWERS, SessionController
from console.ui.snapshot import SessionSnapshot
from console.ui.top_bar import TopBar
from console.ui.views import PatientView, ProtocolView, QuestionView, UserView

#: Session states in which the unit is attached and may hold energy: closing is refused.
log = get_logger(__name__)

_UNIT_STATES = frozenset(
    {SessionState.CONNECTED, SessionState.ARMED, SessionState.DELIVERING, SessionState.PAUSED}
)


class MainWindow(QMainWindow):
    def __init__(
        self,
        backend: ConsoleBackend,
        *,
        lock_after_s: float | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Therapy console")
        self.setMinimumSize(1180, 760)
        self.resize(1366, 860)
        self.backend = backend
        self.controller = SessionController(backend.alarms, parent=self)
        self.sound = AlarmSound(self)
        self.alarm_list: AlarmListDialog | None = None
        self.user: UserView | None = None
        self.patient: PatientView | None = None
        self.protocol: ProtocolView | None = None
        self.locked = False
        self.role_widget: QWidget | None = None  # e.g. the admin console, for its role
        self._last_state: SessionState | None = None
        self.sign_dialog: QMessageBox | None = None  # the last "Not signed" dialog

        self.top = TopBar()
        self.stack = QStackedWidget()
        self.login_screen = LoginScreen()
        self.patients_screen = PatientListScreen()
        self.patient_screen = PatientScreen()
        self.screening_screen = ScreeningScreen()
        self.planning_screen = PlanningScreen()
        self.unit_screen = UnitScreen()
        self.delivery_screen = DeliveryScreen()
        self.documentation_screen = DocumentationScreen()
        for screen in self.screens():
            self.stack.addWidget(screen)
        area = QWidget()
        area_layout = QVBoxLayout(area)
        area_layout.setContentsMargins(0, 0, 0, 0)
        area_layout.addWidget(self.stack)
        self.lock_overlay = LockOverlay(area)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.top)
        layout.addWidget(area, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Ready")  # later: the last emergency stop or failure

        app = QApplication.instance()
        assert app is not None, "create the QApplication before the main window"
        self.estop_filter = EmergencyKeyFilter(
            self.emergency_stop, self.controller.unit_connected, self
        )
        app.installEventFilter(self.estop_filter)
        install_input_guard(app)  # no wheel or Alt+key changes an input by accident
        self.inactivity = InactivityMonitor(lock_after_s or backend.lock_after_s, self)
        app.installEventFilter(self.inactivity)
        self._wire()
        self._show_login()

    # ------------------------------------------------------------------ structure
    def screens(self) -> list[QWidget]:
        return [
            self.login_screen,
            self.patients_screen,
            self.patient_screen,
            self.screening_screen,
            self.planning_screen,
            self.unit_screen,
            self.delivery_screen,
            self.documentation_screen,
        ]

    def current_screen(self) -> QWidget:
        return self.stack.currentWidget()

    def _go(self, screen: QWidget) -> None:
        snapshot = self.controller.snapshot
        if snapshot is not None and hasattr(screen, "show_snapshot"):
            screen.show_snapshot(snapshot)  # type: ignore[attr-defined]
        if isinstance(screen, Screen):
            screen.set_busy(self.controller.busy)
        self.stack.setCurrentWidget(screen)

    def _wire(self) -> None:
        c = self.controller
        c.snapshot_changed.connect(self._on_snapshot)
        c.reading.connect(self.delivery_screen.add_reading)
        c.refused.connect(self._on_refused)
        c.failed.connect(self._on_failed)
        c.alarms_changed.connect(self.top.alarms.show_alarms)
        c.audio_changed.connect(self._on_audio)
        self.sound.unavailable.connect(self._no_audio)
        if self.sound.problem is not None:
            self._no_audio(self.sound.problem)
        self.top.alarms.pause_audio_requested.connect(self._pause_audio)
        self.top.alarms.history_requested.connect(self._show_alarm_list)
        c.estop_finished.connect(self._on_estop_finished)
        c.record_finished.connect(self._on_record_finished)
        c.busy_changed.connect(self._on_busy)
        self.top.estop.triggered.connect(self.emergency_stop)
        self.top.alarms.acknowledge_requested.connect(self._acknowledge)
        self.top.lock_button.clicked.connect(self.lock)
        self.top.logout_button.clicked.connect(self.logout)
        self.inactivity.idle.connect(self.lock)
        self.lock_overlay.unlock_requested.connect(self._unlock)
        QShortcut(QKeySequence("Ctrl+F"), self, self._focus_search)

        self.login_screen.login_requested.connect(self._login)
        self.patients_screen.search_changed.connect(self._search)
        self.patients_screen.patient_opened.connect(self._open_patient)
        self.patient_screen.back.connect(self._back_to_patients)
        self.patient_screen.new_session.connect(self._new_session)
        self.patient_screen.recover_requested.connect(self._recover)

        s = self.screening_screen
        s.submit_requested.connect(
            lambda answers, reason: c.run(
                "Screening", lambda w: w.submit_screening(answers, reason or None)
            )
        )
        s.override_requested.connect(
            lambda reason: c.run("Override", lambda w: w.override_screening(reason))
        )
        s.continue_requested.connect(lambda: self._go(self.planning_screen))
        s.abort_requested.connect(self._abort)

        p = self.planning_screen
        p.plan_requested.connect(self._plan)
        p.continue_requested.connect(lambda: self._go(self.unit_screen))
        p.abort_requested.connect(self._abort)

        u = self.unit_screen
        u.connect_requested.connect(self._connect_unit)
        u.revalidate_requested.connect(
            lambda reason: c.run("Validate", lambda w: w.revalidate(reason))
        )
        u.confirm_requested.connect(lambda: c.run("Confirm", lambda w: w.confirm_parameters()))
        u.arm_requested.connect(lambda: c.run("Arm", lambda w: w.arm()))
        u.start_requested.connect(lambda: c.run("Start", lambda w: w.start()))
        u.clear_fault_requested.connect(
            lambda: c.run("Clear unit fault", lambda w: w.clear_unit_fault())
        )
        u.replan_requested.connect(lambda: self._go(self.planning_screen))
        u.abort_requested.connect(self._abort)

        d = self.delivery_screen
        d.pause_requested.connect(lambda: c.run("Pause", lambda w: w.pause()))
        d.resume_requested.connect(lambda: c.run("Resume", lambda w: w.resume()))
        d.stop_requested.connect(lambda: c.run("Stop", lambda w: w.stop()))
        d.abort_requested.connect(self._abort)
        d.titrate_requested.connect(self._titrate)
        d.document_requested.connect(lambda: self._go(self.documentation_screen))

        doc = self.documentation_screen
        doc.document_requested.connect(
            lambda fields: c.run("Save documentation", lambda w: w.document(**fields))
        )
        doc.sign_requested.connect(self._sign)
        doc.finished.connect(self._session_finished)

    # ------------------------------------------------------------------ backend calls
    def _call(
        self,
        title: str,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Run an application-layer call on the session thread; show its failure inline."""

        def failed(exc: BaseException) -> None:
            message = str(exc) or "unexpected error"  # never an exception's class name
            if on_error is not None:
                on_error(message)
            else:
                self._on_failed(title, message, "")

        self.controller.executor.submit(fn, on_result, failed)

    def _show_login(self) -> None:
        self.login_screen.reset()
        self.top.show_user("not signed in")
        self.top.show_patient(None)
        self.top.show_state(None)
        self.top.lock_button.setEnabled(False)
        self.top.logout_button.setEnabled(False)
        self._go(self.login_screen)
        self.login_screen.username.setFocus()

    def _login(self, username: str, password: str) -> None:
        self.login_screen.set_busy(True)

        def done(user: UserView) -> None:
            self.login_screen.set_busy(False)
            self.user = user
            self.top.show_user(f"{user.name}\n{user.role}")
            self.top.lock_button.setEnabled(True)
            self.top.logout_button.setEnabled(True)
            self.inactivity.poke()
            self.inactivity.enabled = True
            try:
                role_widget = self.backend.role_screen(user)
            except BackendError as exc:
                self._on_failed("Open your screens", str(exc), "")
                role_widget = None
            if role_widget is not None:
                self.role_widget = role_widget
                self.stack.addWidget(role_widget)
                self._go(role_widget)
                return
            self.patients_screen.search.clear()
            self._search("")
            self._go(self.patients_screen)
            self.patients_screen.search.setFocus()

        def failed(message: str) -> None:
            self.login_screen.set_busy(False)
            self.login_screen.show_error(message)

        self._call("Sign in", lambda: self.backend.login(username, password), done, failed)

    def _search(self, text: str) -> None:
        user = self.user
        if user is None:
            return
        self._call(
            "Search",
            lambda: self.backend.search_patients(user, text),
            self.patients_screen.show_patients,
        )

    def _focus_search(self) -> None:
        if self.current_screen() is self.patients_screen:
            self.patients_screen.search.setFocus()
            self.patients_screen.search.selectAll()

    def _open_patient(self, patient_id: str) -> None:
        user = self.user
        if user is None:
            return

        def done(view: PatientView) -> None:
            self.patient = view
            self.top.show_patient(None if self.locked else view.patient.pseudonym)
            self.patient_screen.show_patient(view)
            self._go(self.patient_screen)

        self._call("Open patient", lambda: self.backend.patient(user, patient_id), done)

    def _back_to_patients(self) -> None:
        self.patient = None
        self.top.show_patient(None)
        self._search(self.patients_screen.search.text())
        self._go(self.patients_screen)

    def _new_session(self, protocol_id: str) -> None:
        user, patient = self.user, self.patient
        if user is None or patient is None:
            return
        if self.controller.workflow is not None:
            self._on_refused("New session", ["a session is already open: finish it first"])
            return

        def job() -> tuple[Any, ProtocolView, list[QuestionView], str]:
            protocol = self.backend.protocol(protocol_id)
            questions = list(self.backend.questionnaire())
            try:
                link = self.backend.unit_link(protocol.modality)
            except BackendError as exc:
                link = f"none — {exc}"
            workflow = self.backend.begin_session(user, patient.patient.patient_id, protocol_id)
            return workflow, protocol, questions, link

        def done(value: tuple[Any, ProtocolView, list[QuestionView], str]) -> None:
            workflow, protocol, questions, link = value
            self.protocol = protocol
            self._last_state = None
            self.screening_screen.set_questions(questions)
            self.planning_screen.set_protocol(protocol)
            self.unit_screen.reset()
            self.unit_screen.set_link(link)
            self.delivery_screen.reset(protocol.modality)
            self.documentation_screen.reset()
            self.controller.attach(workflow)
            self.screening_screen.set_heading(
                "Screening",
                f"{protocol.title}. Before every session: answer every question; nothing is "
                "pre-filled.",
            )
            self._go(self.screening_screen)

        self._call("New session", job, done)

    # ------------------------------------------------------------------ session actions
    def _plan(self, plan: PlannedParameters, reason: str | None) -> None:
        self.controller.run("Plan", lambda w: w.plan(plan, override_reason=reason))

    def _connect_unit(self) -> None:
        workflow = self.controller.workflow
        if workflow is None:
            return
        self.controller.connect_unit(lambda outbox: self.backend.start_worker(workflow, outbox))

    def _recover(self, session_id: str) -> None:
        user, patient = self.user, self.patient
        if user is None or patient is None:
            return

        def done(outcome: str) -> None:
            self._open_patient(patient.patient.patient_id)
            self.patient_screen.show_info("Unfinished session closed", [outcome])

        self._call("Recover", lambda: self.backend.recover(user, session_id), done)

    def _abort(self, reason: str) -> None:
        self.controller.run("Abort", lambda w: w.abort(reason))

    def _titrate(self, value: Decimal, reason: str | None) -> None:
        if self.protocol is not None and self.protocol.modality == "emtt":
            self.controller.run(
                "Titrate", lambda w: w.titrate(field_mt=value, override_reason=reason)
            )
        else:
            self.controller.run(
                "Titrate", lambda w: w.titrate(pressure_bar=value, override_reason=reason)
            )

    def _sign(self, user_name: str, password: str) -> None:
        """Sign; a failure is shown in a dialog that says what to do (UI-SIGN-1)."""
        name = user_name or None
        self.controller.run(
            "Sign",
            lambda w: w.sign(password, SIGN_MEANING, user_name=name),
            on_error=self._signing_failed,
        )

    def _signing_failed(self, exc: BaseException) -> None:
        if isinstance(exc, TransitionRefused):
            lines = list(exc.reasons)
        else:  # SignatureFailed, AccountLocked …: one line that says what to do
            lines = [str(exc) or "The signature could not be recorded; try again."]
        self.documentation_screen.password.clear()
        self.documentation_screen.show_refusal("Sign", lines)
        self.statusBar().showMessage("Not signed: see the message on the screen")
        dialog = QMessageBox(self)
        dialog.setObjectName("signFailedDialog")
        dialog.setIcon(QMessageBox.Icon.Warning)
        dialog.setWindowTitle("Not signed")
        dialog.setText("The session was not signed.")
        dialog.setInformativeText("\n".join(lines))
        dialog.setStandardButtons(QMessageBox.StandardButton.Ok)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.sign_dialog = dialog
        dialog.open()  # window-modal, does not block the event loop

    def _session_finished(self) -> None:
        self.controller.detach()
        self._last_state = None
        self.top.show_state(None)
        if self.patient is not None:
            self._open_patient(self.patient.patient.patient_id)
        else:
            self._go(self.patients_screen)

    # ------------------------------------------------------------------ session updates
    def _on_snapshot(self, snapshot: SessionSnapshot) -> None:
        self.top.show_state(snapshot.state.value)
        previous, self._last_state = self._last_state, snapshot.state
        screen = self.current_screen()
        if snapshot.state is SessionState.DELIVERING and previous is not SessionState.DELIVERING:
            if screen is not self.delivery_screen:
                self._go(self.delivery_screen)
                screen = self.delivery_screen
        elif (
            snapshot.state in ENDED_STATES
            and previous not in ENDED_STATES
            and screen in (self.screening_screen, self.planning_screen, self.unit_screen)
        ):
            self._go(self.documentation_screen)
            screen = self.documentation_screen
        if hasattr(screen, "show_snapshot"):
            screen.show_snapshot(snapshot)  # type: ignore[attr-defined]
        if self.locked:
            self.lock_overlay.show_delivery(self._delivery_line(snapshot))

    @staticmethod
    def _delivery_line(snapshot: SessionSnapshot) -> str:
        return (
            f"Session {snapshot.state.value}: {snapshot.delivered:,} of {snapshot.target:,} "
            "pulses. The session keeps running while the screen is locked."
        )

    def _on_busy(self, busy: bool) -> None:
        current = self.current_screen()
        if busy and isinstance(current, Screen):
            current.clear_notice()  # a new attempt: the last refusal no longer applies
        for screen in self.screens():
            if isinstance(screen, Screen):
                screen.set_busy(busy)

    def _on_refused(self, title: str, reasons: list[str]) -> None:
        screen = self.current_screen()
        if isinstance(screen, Screen):
            screen.show_refusal(title, reasons)
        self.statusBar().showMessage(f"{title}: refused — {'; '.join(reasons)}")

    def _on_failed(self, title: str, message: str, advice: str) -> None:
        screen = self.current_screen()
        if isinstance(screen, Screen):
            screen.show_error(title, message, advice)
        elif screen is self.login_screen:
            self.login_screen.show_error(message)
        self.statusBar().showMessage(f"{title} failed: {message}")

    # ------------------------------------------------------------------ emergency stop
    def emergency_stop(self) -> None:
        """The button and the key land here; the stop leaves at once on its own thread."""
        self.statusBar().showMessage("EMERGENCY STOP sent …")
        role_stop = getattr(self.role_widget, "emergency_stop", None)
        if role_stop is not None:  # a unit the service console holds stops too
            role_stop()
        if role_stop is None or self.controller.unit_connected():
            self.controller.emergency_stop()  # may answer at once ("no unit connected")

    def _on_estop_finished(self, confirmed: bool, message: str) -> None:
        self.statusBar().showMessage(message)
        screen = self.current_screen()
        if isinstance(screen, Screen):
            if message in NO_UNIT_ANSWERS:  # nothing to stop is not a stop that failed
                screen.notice.show_lines("Emergency stop: no unit connected", [message], "warning")
                return
            heading = "Emergency stop" if confirmed else "EMERGENCY STOP NOT CONFIRMED"
            screen.notice.show_lines(heading, [message], "refuse")

    def _on_audio(self, priority: AlarmPriority | None, paused_until: datetime | None) -> None:
        self.sound.play(priority)
        self.top.alarms.show_audio_paused(paused_until)

    def _no_audio(self, why: str) -> None:
        """Said once (the sound object reports it once): in the log and beside the alarms."""
        log.warning("alarm_audio_unavailable", why=why)
        self.top.alarms.show_no_audio(why)

    def _pause_audio(self) -> None:
        if self.user is None or self.locked:
            return
        self.controller.pause_audio(self.user.user_id)

    def _show_alarm_list(self) -> None:
        if self.alarm_list is None:
            self.alarm_list = AlarmListDialog(self)
        self.alarm_list.show_history(self.backend.alarms.history())
        self.alarm_list.show()
        self.alarm_list.raise_()

    def _on_record_finished(self, recorded: bool, message: str) -> None:
        """SES-DB-1: the session whose record failed is recorded now (or still open)."""
        self.statusBar().showMessage(message)
        screen = self.current_screen()
        if isinstance(screen, Screen):
            heading = "Session recorded" if recorded else "SESSION NOT RECORDED"
            screen.notice.show_lines(heading, [message], "ok" if recorded else "refuse")

    def _acknowledge(self, key: str) -> None:
        if self.user is None or self.locked:
            return
        self.controller.acknowledge(key, self.user.user_id)

    # ------------------------------------------------------------------ lock and sign-out
    def lock(self) -> None:
        user = self.user
        if user is None or self.locked:
            return
        self.locked = True
        self.inactivity.enabled = False
        self.stack.setEnabled(False)
        self.top.show_patient(None)
        for widget in (self.top.lock_button, self.top.logout_button, self.top.alarms.ack):
            widget.setEnabled(False)
        self.lock_overlay.lock(user.name)
        snapshot = self.controller.snapshot
        self.lock_overlay.show_delivery(self._delivery_line(snapshot) if snapshot else "")
        self._call("Lock", lambda: self.backend.lock(user), lambda _: None, lambda _: None)

    def _unlock(self, password: str) -> None:
        user = self.user
        if user is None:
            return

        def done(_: object) -> None:
            self.locked = False
            self.lock_overlay.hide()
            self.stack.setEnabled(True)
            for widget in (self.top.lock_button, self.top.logout_button, self.top.alarms.ack):
                widget.setEnabled(True)
            if self.patient is not None and self.current_screen() is not self.patients_screen:
                self.top.show_patient(self.patient.patient.pseudonym)
            self.inactivity.poke()
            self.inactivity.enabled = True

        self._call(
            "Unlock",
            lambda: self.backend.unlock(user, password),
            done,
            self.lock_overlay.show_error,
        )

    def logout(self) -> None:
        user = self.user
        if user is None:
            return
        if self.controller.workflow is not None:
            self._on_refused("Sign out", ["a session is open: finish, document and sign it first"])
            return

        def done(_: object) -> None:
            self.user = None
            self.patient = None
            self.inactivity.enabled = False
            self._drop_role_widget()
            self._show_login()

        self._call("Sign out", lambda: self.backend.logout(user), done)

    def _drop_role_widget(self) -> None:
        widget, self.role_widget = self.role_widget, None
        if widget is None:
            return
        shutdown = getattr(widget, "shutdown", None)
        if callable(shutdown):
            shutdown()  # its own worker threads
        self.stack.removeWidget(widget)
        widget.deleteLater()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        workflow = self.controller.workflow
        if workflow is not None and workflow.state in _UNIT_STATES:
            event.ignore()
            self._on_refused(
                "Close", ["a unit is connected: stop or abort the session before closing"]
            )
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Remove the application-wide filters and close the session thread (idempotent)."""
        self.inactivity.enabled = False
        self._drop_role_widget()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.estop_filter)
            app.removeEventFilter(self.inactivity)
        self.controller.shutdown()
        self.top.alarms.stop()
        self.sound.close()
