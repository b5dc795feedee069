"""Run session calls off the GUI thread, one at a time, and bring their results back to it.

Workflow methods may block on the device worker (up to its call timeout), so the GUI thread never
calls them. They run in submission order on one dedicated thread (one session, one lock holder);
the result or the exception comes back to the GUI thread through a queued Qt signal. The
emergency stop never goes through here: it must not queue behind a running call.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

OnResult = Callable[[Any], None]
OnError = Callable[[BaseException], None]


class GuiDispatcher(QObject):
    """Calls a function on the GUI thread, whatever thread asks (a queued signal)."""

    _call = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._call.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def post(self, fn: Callable[[], None]) -> None:
        """Queue ``fn`` for the GUI thread; safe from any thread."""
        self._call.emit(fn)

    @Slot(object)
    def _run(self, fn: Callable[[], None]) -> None:
        fn()


class SessionExecutor(QObject):
    """One background thread for session calls; ``busy_changed`` tells the screens to wait."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-executor")
        self._dispatch = GuiDispatcher(self)
        self._in_flight = 0  # touched on the GUI thread only
        self._closed = False

    @property
    def busy(self) -> bool:
        """True while a user-initiated call is queued or running."""
        return self._in_flight > 0

    def submit(
        self,
        fn: Callable[[], Any],
        on_result: OnResult | None = None,
        on_error: OnError | None = None,
        *,
        track: bool = True,
    ) -> None:
        """Run ``fn`` on the session thread; ``on_result``/``on_error`` run on the GUI thread.

        ``track`` False is for background work (worker messages) that must not grey out the
        action buttons.
        """
        if self._closed:
            return  # the window has closed: nothing is left to show a result to
        if track:
            self._set_in_flight(+1)

        def job() -> None:
            try:
                result = fn()
            except BaseException as exc:  # handed to the GUI thread, never lost
                error = exc  # ``exc`` is unbound after the except block ends
                self._dispatch.post(lambda: self._finish(track, on_error, error, failed=True))
                return
            self._dispatch.post(lambda: self._finish(track, on_result, result, failed=False))

        self._pool.submit(job)

    def _finish(
        self, track: bool, callback: Callable[[Any], None] | None, value: Any, *, failed: bool
    ) -> None:
        if track:
            self._set_in_flight(-1)
        if callback is not None:
            callback(value)
        elif failed:
            raise value

    def _set_in_flight(self, delta: int) -> None:
        was_busy = self._in_flight > 0
        self._in_flight += delta
        if (self._in_flight > 0) != was_busy:
            self.busy_changed.emit(self._in_flight > 0)

    def shutdown(self, wait: bool = True) -> None:
        """Finish what is queued (closing the session leaves the unit safe), accept no more."""
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=False)
