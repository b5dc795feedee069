"""Background work for the admin and service screens: database and device calls never run on the
GUI thread. Results (or exceptions) come back on the GUI thread through a queued signal."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal

from console.ui.executor import GuiDispatcher

OnResult = Callable[[Any], None]
OnError = Callable[[BaseException], None]


class BackgroundTasks(QObject):
    """A small pool of worker threads; ``busy_changed`` while anything is in flight."""

    busy_changed = Signal(bool)

    def __init__(
        self, parent: QObject | None = None, *, workers: int = 1, name: str = "bg"
    ) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._dispatch = GuiDispatcher(self)
        self._in_flight = 0
        self._closed = False

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    def submit(
        self,
        fn: Callable[[], Any],
        on_result: OnResult | None = None,
        on_error: OnError | None = None,
    ) -> None:
        """Run ``fn`` on a worker; ``on_result``/``on_error`` run on the GUI thread."""
        if self._closed:
            return
        self._change(+1)

        def job() -> None:
            try:
                value = fn()
            except BaseException as exc:  # handed to the GUI thread, never lost
                error = exc
                self._dispatch.post(lambda: self._finish(on_error, error, failed=True))
                return
            self._dispatch.post(lambda: self._finish(on_result, value, failed=False))

        self._pool.submit(job)

    def _finish(self, callback: Callable[[Any], None] | None, value: Any, *, failed: bool) -> None:
        self._change(-1)
        if self._closed:
            return
        if callback is not None:
            callback(value)
        elif failed:
            raise value

    def _change(self, delta: int) -> None:
        was = self._in_flight > 0
        self._in_flight += delta
        if (self._in_flight > 0) != was:
            self.busy_changed.emit(self._in_flight > 0)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; wait for what runs (results after this are dropped)."""
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)
