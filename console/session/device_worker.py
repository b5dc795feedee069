"""One worker thread per device: it owns the driver, so no two threads ever drive one unit.

The workflow (and through it the GUI) submits commands as callables on a queue and gets
``Future`` results; the driver's status, events and link losses, and the worker's own "alive"
ticks, arrive as messages through ``outbox`` (a thread-safe callable: ``queue.Queue.put`` in the
CLI, a Qt signal emit in the GUI). The emergency stop has its own thread so it never waits
behind a queued or blocking command. When ``poll_status_after_s`` is set and no status has come
from the unit for that long, the worker reads one itself and passes it on: a unit that reset
stops streaming, and its silence must not hide the reset (SES-RESET-1). When those reads fail
too for ``link_silence_s``, the link is reported lost (``LinkDown``): a unit no longer heard
(garbled or black-holed link) is a lost link, whatever the socket says (SES-COUNT-2).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from device_drivers.errors import DeviceError, LinkLost
from device_drivers.interface import DeviceMessage, DeviceStatus, LinkDown, TherapyDevice

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkerAlive:
    """Periodic proof that the worker thread is not stuck (the UI alarms after 1 s without)."""

    received_ns: int = field(default_factory=time.monotonic_ns)


@dataclass(frozen=True, slots=True)
class WorkerStopped:
    """The worker has closed its driver and ended."""

    received_ns: int = field(default_factory=time.monotonic_ns)


WorkerMessage = DeviceMessage | WorkerAlive | WorkerStopped
Outbox = Callable[[WorkerMessage], None]

_SHUTDOWN = object()
_Job = tuple[Callable[[TherapyDevice], Any], Future[Any]]


class DeviceWorker:
    """Runs ``open_driver()`` and every command on its own thread; see the module docstring."""

    def __init__(
        self,
        open_driver: Callable[[], TherapyDevice],
        outbox: Outbox,
        *,
        alive_period_s: float = 0.2,
        name: str = "device-worker",
        link: str | None = None,
    ) -> None:
        self._open_driver = open_driver
        #: the unit's link (URL or VISA resource) ``open_driver`` opens, for the record
        self.link = link
        self._outbox = outbox
        self._alive_period_s = alive_period_s
        self._commands: queue.Queue[object] = queue.Queue()
        self._driver: TherapyDevice | None = None
        self._opened: Future[TherapyDevice] = Future()
        self._estop_requested = threading.Event()
        self._estop_results: list[Future[int]] = []
        self._estop_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._estop_thread = threading.Thread(
            target=self._run_estop, name=f"{name}-estop", daemon=True
        )
        self.last_alive_ns = time.monotonic_ns()
        self.poll_status_after_s: float | None = None
        self.link_silence_s: float | None = None
        self._last_status_s = time.monotonic()
        self._silence_reported = False

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> Future[TherapyDevice]:
        """Start the threads; the returned future resolves once the driver is open."""
        self._thread.start()
        self._estop_thread.start()
        return self._opened

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Close the driver (which leaves the unit stopped and disarmed) and end the threads."""
        if not self._thread.is_alive():
            return
        self._commands.put(_SHUTDOWN)
        self._thread.join(timeout_s)
        self._stopping.set()
        self._estop_requested.set()
        self._estop_thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- commands ---------------------------------------------------------------------
    def submit(self, command: Callable[[TherapyDevice], T]) -> Future[T]:
        """Queue ``command(driver)`` for the worker thread; its result or error in a Future."""
        future: Future[T] = Future()
        if not self._thread.is_alive():
            future.set_exception(LinkLost("the device worker is not running; reconnect"))
            return future
        self._commands.put((command, future))
        if self._opened.done() and self._opened.exception() is not None:
            self._fail_pending(LinkLost("the unit could not be opened; reconnect"))
        return future

    def call(self, command: Callable[[TherapyDevice], T], timeout_s: float = 10.0) -> T:
        """Blocking convenience for the CLI and tests (never call from the GUI thread)."""
        return self.submit(command).result(timeout_s)

    def emergency_stop(self) -> Future[int]:
        """Send the emergency stop now, ahead of anything queued; resolves to the final count."""
        future: Future[int] = Future()
        with self._estop_lock:
            self._estop_results.append(future)
        self._estop_requested.set()
        return future

    # --- threads ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            driver = self._open_driver()
        except BaseException as exc:
            self._opened.set_exception(exc)
            # Commands queued while opening fail now with the reason, not at their timeout.
            self._fail_pending(exc if isinstance(exc, Exception) else LinkLost(str(exc)))
            self._outbox(WorkerStopped())
            return
        self._driver = driver
        driver.add_listener(self._relay)
        self._opened.set_result(driver)
        try:
            self._serve(driver)
        finally:
            driver.remove_listener(self._relay)
            driver.close()
            self._fail_pending(LinkLost("the device worker has stopped"))
            self._outbox(WorkerStopped())

    def _relay(self, message: DeviceMessage) -> None:
        if isinstance(message, DeviceStatus):
            self._last_status_s = time.monotonic()
        self._outbox(message)

    def _poll_if_silent(self, driver: TherapyDevice, now: float) -> None:
        after = self.poll_status_after_s
        if after is None or now - self._last_status_s < after:
            return
        try:
            status = driver.status()
        except DeviceError as exc:
            silent = now - self._last_status_s
            limit = self.link_silence_s
            if limit is not None and silent > limit and not self._silence_reported:
                self._silence_reported = True
                self._outbox(LinkDown(f"the unit has not been heard for {silent:.1f} s ({exc})"))
            return
        self._relay(status)

    def _serve(self, driver: TherapyDevice) -> None:
        next_alive = 0.0
        while True:
            now = time.monotonic()
            if now >= next_alive:
                self.last_alive_ns = time.monotonic_ns()
                self._outbox(WorkerAlive())
                self._poll_if_silent(driver, now)
                next_alive = now + self._alive_period_s
            try:
                item = self._commands.get(timeout=max(0.0, next_alive - time.monotonic()))
            except queue.Empty:
                continue
            if item is _SHUTDOWN:
                return
            command, future = cast(_Job, item)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(command(driver))
            except BaseException as exc:  # delivered to the caller, never lost
                future.set_exception(exc)

    def _run_estop(self) -> None:
        while True:
            self._estop_requested.wait()
            if self._stopping.is_set():
                self._fail_estops(LinkLost("the device worker has stopped"))
                return
            self._estop_requested.clear()
            with self._estop_lock:
                waiting, self._estop_results = self._estop_results, []
            if not waiting:
                continue
            try:
                driver = self._opened.result(timeout=5.0)
                delivered = driver.emergency_stop()
            except (DeviceError, TimeoutError, OSError) as exc:
                for future in waiting:
                    future.set_exception(exc)
                continue
            for future in waiting:
                future.set_result(delivered)

    def _fail_estops(self, exc: Exception) -> None:
        with self._estop_lock:
            waiting, self._estop_results = self._estop_results, []
        for future in waiting:
            future.set_exception(exc)

    def _fail_pending(self, exc: Exception) -> None:
        while True:
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                return
            if item is not _SHUTDOWN:
                _, future = cast(_Job, item)
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
