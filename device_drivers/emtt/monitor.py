"""What the EMTT driver knows of its unit between commands, and the threads that keep it so.

- every status the driver reads passes through :meth:`UnitMonitor.observe`, which turns state
  changes into events;
- listeners are called on one dispatcher thread, in order, never under a lock and never on the
  caller's thread (a listener may call the driver);
- heartbeats (``SYST:HEAR``) go out only for a delivery armed through this driver
  (:attr:`UnitMonitor.armed_here`) while the last known state is ARMED, DELIVERING or PAUSED;
  the mark is cleared as soon as a status shows any other state;
- the status poller publishes readings; a unit that stops answering for a second counts as
  a lost link, which stops the heartbeats so that the unit's own watchdog stops it. Every
  line feeds the unit's watchdog (ICD), so while the unit is in a watched state that was not
  armed here the poller reads at most every :data:`UNSUPERVISED_POLL_S`, twice the watchdog
  period: watching a unit never keeps it alive.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from device_drivers.emtt import constants as c
from device_drivers.emtt.codec import parse_status
from device_drivers.emtt.verdicts import events_between
from device_drivers.emtt.wire import ScpiWire
from device_drivers.errors import DeviceError, LinkLost
from device_drivers.interface import WATCHED_STATES, DeviceMessage, DeviceStatus, LinkDown

_log = logging.getLogger(__name__)

#: Polls that may fail in a row (each after its retries) before the unit counts as gone …
POLL_FAILURES_FOR_LINK_DOWN = 3
#: … provided it has been silent at least this long.
POLL_SILENCE_FOR_LINK_DOWN_S = 1.0
#: Longest poll period while a delivery not armed here is watched: a poll is a line, and lines
#: further apart than the watchdog (1 s; less on a sped-up simulator) cannot keep a unit alive.
UNSUPERVISED_POLL_S = 2 * c.WATCHDOG_S


class UnitMonitor:
    """The latest status, the lost-link latch, and the dispatcher/heartbeat/poller threads."""

    def __init__(
        self,
        wire: ScpiWire,
        notify: Callable[[DeviceMessage], None],
        *,
        heartbeat_interval_s: float,
        name: str,
    ) -> None:
        self._wire = wire
        self._notify = notify
        self.heartbeat_interval_s = heartbeat_interval_s
        self._name = name
        self._lock = threading.Lock()
        self.last_status: DeviceStatus | None = None
        #: A delivery was armed through this driver and the unit has not left the watched
        #: states since: only then do heartbeats go out.
        self.armed_here = False
        self.lost: str | None = None
        self._messages: queue.SimpleQueue[DeviceMessage | None] = queue.SimpleQueue()
        self._stop_heartbeat = threading.Event()
        self._poll_stop: threading.Event | None = None
        self._poller: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._heartbeater: threading.Thread | None = None

    def start(self) -> None:
        self._dispatcher = self._thread(self._dispatch_loop, "dispatch")
        self._heartbeater = self._thread(self._heartbeat_loop, "heartbeat")

    def _thread(self, target: Callable[[], None], role: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"emtt-{role}", daemon=True)
        thread.start()
        return thread

    # --- observation --------------------------------------------------------------------
    def observe(self, status: DeviceStatus, publish: bool = False) -> DeviceStatus:
        """Remember the latest status; queue it (``publish``) and the events it implies.

        Call it with the wire's ``exchange`` lock still held from the reading (from the decode
        function of the query), so statuses are observed in the order they were read."""
        previous, self.last_status = self.last_status, status
        if status.state not in WATCHED_STATES:
            self.armed_here = False
        if publish:
            self._messages.put(status)
        if previous is not None and previous.state is not status.state:
            for event in events_between(previous, status):
                self._messages.put(event)
        return status

    @property
    def supervising(self) -> bool:
        """A delivery armed here is in a watched state: heartbeats are due."""
        last = self.last_status
        return self.armed_here and last is not None and last.state in WATCHED_STATES

    @property
    def watching_another(self) -> bool:
        """The unit is in a watched state that was not armed here: nothing may keep it alive."""
        last = self.last_status
        return not self.armed_here and last is not None and last.state in WATCHED_STATES

    def _publish_status(self, reply: str) -> DeviceStatus:
        return self.observe(parse_status(reply), publish=True)

    def link_lost(self, exc: DeviceError) -> None:
        """Latch the link as dead once: listeners get LinkDown and the heartbeats stop."""
        with self._lock:
            if self.lost is not None:
                return
            self.lost = str(exc)
            self._messages.put(LinkDown(str(exc)))

    # --- polling ------------------------------------------------------------------------
    def start_polling(self, period_s: float) -> None:
        self.stop_polling()
        stop = threading.Event()
        self._poll_stop = stop
        self._poller = self._thread(lambda: self._poll_loop(period_s, stop), "status")

    def stop_polling(self) -> None:
        stop, poller = self._poll_stop, self._poller
        self._poll_stop = self._poller = None
        if stop is not None:
            stop.set()
        if poller is not None and poller is not threading.current_thread():
            poller.join(2.0)

    def stop(self) -> None:
        """End every thread; messages already queued are still delivered first."""
        self.stop_polling()
        self._stop_heartbeat.set()
        self._messages.put(None)
        for thread in (self._heartbeater, self._dispatcher):
            if thread is not None and thread is not threading.current_thread():
                thread.join(2.0)

    # --- threads ------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while (message := self._messages.get()) is not None:
            self._notify(message)

    def _heartbeat_loop(self) -> None:
        """Wake at half the interval and send unless another line went out just before: the
        unit hears from the host at least every interval even if this thread runs late."""
        half = self.heartbeat_interval_s / 2
        while not self._stop_heartbeat.wait(half):
            if self.lost is not None:
                return
            if not self.supervising:
                continue
            if time.perf_counter() - self._wire.last_tx < half:
                continue
            try:
                self._wire.write("SYST:HEAR")
                self._wire.heartbeats += 1
            except LinkLost as exc:
                self.link_lost(exc)
                return
            except DeviceError:
                _log.warning("heartbeat to %s failed", self._name, exc_info=True)

    def _poll_loop(self, period_s: float, stop: threading.Event) -> None:
        due = time.monotonic()
        failures, failing_since = 0, 0.0
        while not stop.is_set() and self.lost is None:
            try:
                self._wire.query("SESS:STAT?", self._publish_status)
                failures = 0
            except LinkLost as exc:
                self.link_lost(exc)
                return
            except DeviceError as exc:
                failures += 1
                failing_since = failing_since if failures > 1 else time.monotonic()
                if (
                    failures >= POLL_FAILURES_FOR_LINK_DOWN
                    and time.monotonic() - failing_since >= POLL_SILENCE_FOR_LINK_DOWN_S
                ):
                    self.link_lost(LinkLost(f"the unit stopped answering status queries: {exc}"))
                    return
            due += max(period_s, UNSUPERVISED_POLL_S) if self.watching_another else period_s
            now = time.monotonic()
            if due < now:
                due = now
            stop.wait(due - now)
