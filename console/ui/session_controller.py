"""The GUI's link to one ``SessionWorkflow``: threads, signals and readable failures.

- Every workflow call runs on the session executor (never the GUI thread); its outcome comes
  back as a new ``SessionSnapshot``, or as ``refused`` (every reason of a ``TransitionRefused``)
  or ``failed`` (a device error with what to do).
- The device worker's messages arrive here through a queued signal: live readings go straight
  to the screens (``reading``), and every message is handed to ``workflow.handle`` on the
  session thread.
- The emergency stop goes to ``workflow.emergency_stop()`` at once on the controller's own
  emergency-stop thread; it never queues behind a running session call. (One long-lived thread,
  not one per press: the record store keeps a database connection per thread that writes.)
- A 250 ms timer asks the workflow to check the worker's heartbeat and polls the alarm board.
- A record write that fails (the database unavailable or locked, SES-DB-1): the unit is let
  go of at once (stopped, its count kept on it), a HIGH alarm says so, and a thread of its own
  (never the GUI thread) retries, bounded, until the session is recorded by recovery
  (``record_finished``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from audit.errors import AuditError, StoreError
from console.alarms import Alarm, AlarmBoard
from console.auth import AuthError
from console.session.device_worker import DeviceWorker, Outbox, WorkerAlive, WorkerMessage
from console.session.record_failure import RecordedLater, record_when_store_is_back
from console.session.workflow import SessionWorkflow, TransitionRefused
from console.ui.executor import SessionExecutor
from console.ui.snapshot import SessionSnapshot, take_snapshot
from device_drivers.errors import (
    CommandRefused,
    DeviceError,
    DeviceFault,
    DeviceRejected,
    LinkLost,
    LinkTimeout,
    ProtocolError,
)
from device_drivers.interface import DeviceStatus

WATCHDOG_CHECK_MS = 250


def device_error_advice(exc: BaseException) -> str:
    """What the therapist should do about a device error, in plain words."""
    if isinstance(exc, DeviceFault):
        faults = ", ".join(exc.faults) or "a fault"
        return (
            f"The unit is latched in fault ({faults}). Remove the cause (let the applicator "
            "cool, refit it), then use 'Clear unit fault' on the unit screen."
        )
    if isinstance(exc, DeviceRejected):
        return (
            f"The unit refused the command ({exc.name}). Check the applicator and the "
            "parameters; nothing was changed on the unit."
        )
    if isinstance(exc, CommandRefused):
        return "The console did not send this command in the unit's present state."
    if isinstance(exc, LinkTimeout):
        return "The unit did not answer. Check that it is switched on and its cable, then retry."
    if isinstance(exc, LinkLost):
        return "The link to the unit is lost. Check the cable and the unit's power; reconnect."
    if isinstance(exc, ProtocolError):
        return (
            "The unit answered in an unexpected way; nothing was armed. Retry once; if it "
            "happens again, stop using the unit and call service."
        )
    if isinstance(exc, TimeoutError):
        return "The device worker did not answer in time. Reconnect; call service if it recurs."
    return "Unexpected error: note what you did and call service."


class MessageBridge(QObject):
    """The device worker's outbox: thread-safe, lands on the GUI thread as ``received``."""

    received = Signal(object)

    def outbox(self, message: WorkerMessage) -> None:
        with contextlib.suppress(RuntimeError):  # the window is gone: nobody to show it to
            self.received.emit(message)


#: The emergency stop's answers when there was no unit to stop: not a failed stop (whose
#: cue is to switch the unit off at the mains), and said as exactly that.
NO_UNIT_TO_STOP = "No unit is connected: there is nothing to stop."
NO_UNIT_STOPPED = "Emergency stop recorded; no unit was connected to stop."
NO_UNIT_ANSWERS = frozenset({NO_UNIT_TO_STOP, NO_UNIT_STOPPED})


class SessionController(QObject):
    snapshot_changed = Signal(object)  # SessionSnapshot
    reading = Signal(object)  # DeviceStatus, as it arrives, for counters and plots
    refused = Signal(str, list)  # title, reasons
    failed = Signal(str, str, str)  # title, message, advice
    alarms_changed = Signal(list)  # active alarms, highest first
    audio_changed = Signal(object, object)  # AlarmPriority to sound or None, paused-until or None
    estop_finished = Signal(bool, str)  # confirmed by the unit?, message
    busy_changed = Signal(bool)
    record_finished = Signal(bool, str)  # recorded after a record failure?, what was recorded

    def __init__(self, alarms: AlarmBoard, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.alarms = alarms
        self.workflow: SessionWorkflow | None = None
        self.snapshot: SessionSnapshot | None = None
        self._connecting_worker: DeviceWorker | None = None
        # Every worker this controller started; the workflow forgets a worker whose link was
        # lost, but its thread must still be ended when the session closes.
        self._workers: list[DeviceWorker] = []
        self.executor = SessionExecutor(self)
        self.executor.busy_changed.connect(self.busy_changed)
        self._snapshots = _SnapshotRelay(self)
        self._snapshots.arrived.connect(self._on_snapshot, Qt.ConnectionType.QueuedConnection)
        self.bridge = MessageBridge(self)
        self.bridge.received.connect(self._on_message, Qt.ConnectionType.QueuedConnection)
        self._last_alarms: list[Alarm] = []
        self._last_audio: tuple[object, object] = (None, None)
        self._closing = threading.Event()  # ends a wait for the database (SES-DB-1)
        self._recording: dict[str, threading.Thread] = {}  # session id → its record-later thread
        self._estop_requests: queue.SimpleQueue[
            tuple[SessionWorkflow | None, DeviceWorker | None] | None
        ] = queue.SimpleQueue()
        self._estop_thread = threading.Thread(
            target=self._estop_loop, name="emergency-stop", daemon=True
        )
        self._estop_thread.start()
        self._watchdog = QTimer(self)
        self._watchdog.setInterval(WATCHDOG_CHECK_MS)
        self._watchdog.timeout.connect(self._check)
        self._watchdog.start()

    # ------------------------------------------------------------------ session
    @property
    def busy(self) -> bool:
        return self.executor.busy

    def attach(self, workflow: SessionWorkflow) -> None:
        """Show and drive ``workflow`` from now on."""
        if workflow.alarms is not self.alarms:
            raise ValueError("a session must raise its alarms on the console's one alarm board")
        self.workflow = workflow
        workflow.listeners.append(self._listener)
        self.executor.submit(lambda: take_snapshot(workflow), self._on_snapshot, track=False)

    def detach(self) -> None:
        """Forget the session (after signing); its worker is shut down on the session thread."""
        workflow, self.workflow = self.workflow, None
        self.snapshot = None
        if workflow is None:
            return
        if self._listener in workflow.listeners:
            workflow.listeners.remove(self._listener)
        self.executor.submit(self._closer(workflow), track=False)

    def _closer(self, workflow: SessionWorkflow) -> Callable[[], None]:
        workers, self._workers = self._workers, []

        def close() -> None:
            workflow.close()  # leaves the unit safe
            for worker in workers:
                worker.shutdown()  # idempotent; ends a worker the workflow let go of

        return close

    def unit_connected(self) -> bool:
        """Whether a unit is (being) connected: the emergency-stop key is live then."""
        workflow = self.workflow
        return self._connecting_worker is not None or (
            workflow is not None and workflow.worker is not None
        )

    def run(
        self,
        title: str,
        action: Callable[[SessionWorkflow], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run ``action(workflow)`` on the session thread; report its outcome on the GUI thread.

        ``title`` names the action in refusal and error dialogs; ``on_error`` (GUI thread)
        replaces the generic report of a failure, after the snapshot is refreshed.
        """
        workflow = self.workflow
        if workflow is None:
            self.refused.emit(title, ["no session is open"])
            return

        def job() -> tuple[Any, SessionSnapshot]:
            result = action(workflow)
            return result, take_snapshot(workflow)

        def done(value: tuple[Any, SessionSnapshot]) -> None:
            result, snapshot = value
            self._on_snapshot(snapshot)
            if on_done is not None:
                on_done(result)

        def failed(exc: BaseException) -> None:
            if on_error is None:
                self._report(title, exc, workflow)
                return
            self.executor.submit(lambda: take_snapshot(workflow), self._on_snapshot, track=False)
            on_error(exc)

        self.executor.submit(job, done, failed)

    def _report(self, title: str, exc: BaseException, workflow: SessionWorkflow) -> None:
        self.executor.submit(lambda: take_snapshot(workflow), self._on_snapshot, track=False)
        if isinstance(exc, StoreError):  # the HIGH alarm says it; record_finished ends it
            self._record_later(workflow, exc)
        elif isinstance(exc, TransitionRefused):
            self.refused.emit(title, list(exc.reasons))
        elif isinstance(exc, DeviceError | TimeoutError):
            self.failed.emit(title, str(exc) or type(exc).__name__, device_error_advice(exc))
        elif isinstance(exc, AuthError | AuditError):  # our own one-line, what-to-do messages
            self.failed.emit(title, str(exc), "")
        else:  # never an exception's class name to the user: what happened and what to do
            self.failed.emit(title, str(exc) or "unexpected error", device_error_advice(exc))

    def connect_unit(self, start_worker: Callable[[Outbox], DeviceWorker]) -> None:
        """Start the unit's device worker and connect the session to it (session thread).

        The worker is reachable by the emergency stop from the moment it exists, before the
        workflow has attached it.
        """
        workflow = self.workflow
        if workflow is None:
            self.refused.emit("Connect", ["no session is open"])
            return

        def job() -> SessionSnapshot:
            worker = start_worker(self.bridge.outbox)
            self._workers.append(worker)
            self._connecting_worker = worker
            try:
                workflow.connect(worker)  # reads the unit and starts its status stream
            except BaseException:
                worker.shutdown()
                raise
            finally:
                self._connecting_worker = None
            return take_snapshot(workflow)

        self.executor.submit(
            job, self._on_snapshot, lambda exc: self._report("Connect", exc, workflow)
        )

    # ------------------------------------------------------------------ the record unavailable
    def _record_later(self, workflow: SessionWorkflow, exc: StoreError) -> None:
        """SES-DB-1: let go of the unit and record the session once the store is back, on a
        thread of its own (the wait is long; never the GUI thread, nor the session thread that
        shows the alarm and takes the emergency stop's record)."""
        session_id = workflow.ctx.session_id
        running = self._recording.get(session_id)
        if running is not None and running.is_alive():
            return

        def run() -> None:
            result: RecordedLater = record_when_store_is_back(
                workflow, str(exc), stop=self._closing
            )
            self._snapshots.arrived.emit(take_snapshot(workflow))
            self.record_finished.emit(result.recorded, result.message)

        thread = threading.Thread(target=run, name="record-later", daemon=True)
        self._recording[session_id] = thread
        thread.start()

    # ------------------------------------------------------------------ emergency stop
    def emergency_stop(self) -> None:
        """Send the emergency stop now on the emergency-stop thread (never the session queue)."""
        workflow = self.workflow
        connecting = self._connecting_worker
        if workflow is None and connecting is None:
            self.estop_finished.emit(False, NO_UNIT_TO_STOP)
            return
        self._estop_requests.put((workflow, connecting))

    def _estop_loop(self) -> None:
        while True:
            request = self._estop_requests.get()
            if request is None:
                return
            self._stop_now(*request)

    def _stop_now(self, workflow: SessionWorkflow | None, connecting: DeviceWorker | None) -> None:
        futures: list[Future[int]] = []
        try:
            if connecting is not None:  # a unit is opening but not yet attached to the session
                futures.append(connecting.emergency_stop())
            if workflow is not None:
                result = workflow.emergency_stop()
                if result is not None:
                    futures.append(result)
            if not futures:
                self.estop_finished.emit(False, NO_UNIT_STOPPED)
                return
            counts = [f.result(10.0) for f in futures]
        except BaseException as exc:  # the therapist must know the stop may not have landed
            self.estop_finished.emit(
                False,
                f"EMERGENCY STOP NOT CONFIRMED by the unit ({type(exc).__name__}: {exc}). "
                "Switch the unit off at its mains switch now.",
            )
            return
        finally:
            if workflow is not None:  # show the end state even if no listener fired
                self._snapshots.arrived.emit(take_snapshot(workflow))
        self.estop_finished.emit(
            True,
            f"Emergency stop confirmed by the unit: {max(counts):,} pulses delivered. "
            "The unit is latched in fault.",
        )

    # ------------------------------------------------------------------ messages and checks
    def _listener(self, workflow: SessionWorkflow) -> None:
        # Runs on whichever thread changed the workflow, with its lock held.
        self._snapshots.arrived.emit(take_snapshot(workflow))

    @Slot(object)
    def _on_snapshot(self, snapshot: SessionSnapshot) -> None:
        self.snapshot = snapshot
        self.snapshot_changed.emit(snapshot)

    @Slot(object)
    def _on_message(self, message: WorkerMessage) -> None:
        if isinstance(message, WorkerAlive):
            return  # the workflow reads the worker's alive time itself
        if isinstance(message, DeviceStatus):
            self.reading.emit(message)
        workflow = self.workflow
        if workflow is not None:
            self.executor.submit(
                lambda: workflow.handle(message),
                on_error=lambda exc: self._report("Unit message", exc, workflow),
                track=False,
            )

    def _check(self) -> None:
        workflow = self.workflow
        if workflow is not None:
            workflow.check_worker()
        active = self.alarms.active()
        if active != self._last_alarms:
            self._last_alarms = active
            self.alarms_changed.emit(active)
        audio = (self.alarms.sounding(), self.alarms.audio_paused_until())
        if audio != self._last_audio:
            self._last_audio = audio
            self.audio_changed.emit(*audio)

    def pause_audio(self, user_id: str) -> None:
        """Pause the alarm sound for two minutes (audited by the board's listener)."""
        self.executor.submit(
            lambda: self.alarms.pause_audio(user_id),
            lambda _: self._check(),
            lambda exc: self.failed.emit("Pause audio", str(exc), ""),
        )

    def acknowledge(self, key: str, user_id: str) -> None:
        """Acknowledge an alarm (the board's listener audits it) on the session thread."""

        def acknowledge() -> None:
            if any(a.key == key and not a.acknowledged for a in self.alarms.active()):
                self.alarms.acknowledge(key, user_id)  # a second click finds nothing to do

        self.executor.submit(
            acknowledge,
            lambda _: self._check(),
            lambda exc: self.failed.emit("Acknowledge", str(exc), ""),
        )

    def shutdown(self) -> None:
        """Close the session's worker (leaves the unit safe) and the session thread."""
        self._watchdog.stop()
        self._closing.set()  # a wait for the database gives up: the session stays open
        self._estop_requests.put(None)  # after any press still queued
        workflow, self.workflow = self.workflow, None
        if workflow is not None:
            self.executor.submit(self._closer(workflow), track=False)
        self.executor.shutdown(wait=True)


class _SnapshotRelay(QObject):
    arrived = Signal(object)
