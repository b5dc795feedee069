"""SCPI exchanges over one VISA session, shared safely by the driver's threads.

Two locks, because two kinds of traffic exist:

- ``exchange`` (re-entrant) serialises everything that reads: a query and its answer, or a
  command and the ``SYSTem:ERRor?`` reads that judge it, stay together;
- the transmit lock only keeps lines whole. A line that needs no answer (the heartbeat, the
  emergency stop) takes just this one, so it is never held up by a slow exchange on another
  thread, and it cannot disturb the pairing of a query with its answer.

Queries are retried after a timeout or a garbled answer (they are idempotent); commands are
written once and never repeated here. When an answer may arrive late (only after a timeout),
the next exchange first resynchronises on a marker query, so a late line is never taken for the
answer to a later question.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from device_drivers.emtt.codec import ErrorEntry, parse_error
from device_drivers.errors import LinkTimeout, ProtocolError
from device_drivers.transports.visa_link import VisaLink

T = TypeVar("T")

#: Three answers joined by ``;`` that no other question of the driver produces.
RESYNC_QUERY = "*OPC?;*OPC?;*OPC?"
RESYNC_ANSWER = "1;1;1"
_RESYNC_MAX_LINES = 8
#: The queue holds 16 entries; one more read proves it empty.
_MAX_ERROR_READS = 17


@dataclass(frozen=True, slots=True)
class LinkStats:
    """Round trips and trouble on the link since it was opened, for the service console."""

    exchanges: int
    timeouts: int
    retries: int
    garbled: int
    resyncs: int
    heartbeats: int
    rtt_last_ms: float | None
    rtt_median_ms: float | None
    rtt_p99_ms: float | None
    rtt_max_ms: float | None


class ScpiWire:
    """Query/command primitives with retry and resynchronisation; see the module docstring."""

    def __init__(self, link: VisaLink, *, retries: int = 2) -> None:
        if retries < 0:
            raise ValueError("retries cannot be negative")
        self.link = link
        self.retries = retries
        self.exchange = threading.RLock()
        self._tx_lock = threading.Lock()
        self._maybe_late = False
        self._markers_sent = 0
        self._cancel = threading.Event()
        self.last_tx = time.perf_counter()  # when the last line went out (any thread)
        self._rtts: deque[float] = deque(maxlen=2000)
        self._exchanges = self._timeouts = self._retries = 0
        self._garbled = self._resyncs = self.heartbeats = 0

    # --- lines that need no answer ------------------------------------------------------
    def write(self, line: str) -> None:
        """Send one line now (any thread); never waits behind an exchange."""
        with self._tx_lock:
            self.link.write(line)
            self.last_tx = time.perf_counter()

    # --- exchanges ----------------------------------------------------------------------
    def query(self, line: str, parse: Callable[[str], T], *, retry: bool = True) -> T:
        """Ask ``line`` and decode the answer; retried after a timeout or a garbled answer."""
        attempts = 1 + self.retries if retry else 1
        with self.exchange:
            failure: LinkTimeout | ProtocolError | None = None
            if not self._maybe_late:  # the common case, kept lean: one line out, one back
                try:
                    return self._ask(line, parse)
                except (LinkTimeout, ProtocolError) as exc:
                    failure = exc
            # an answer that did not fit says more than silence
            garbled = failure if isinstance(failure, ProtocolError) else None
            tried = 0 if failure is None else 1
            while tried < attempts:
                if tried:
                    if self._cancel.is_set():
                        break
                    self._retries += 1
                tried += 1
                try:
                    if self._maybe_late:
                        self._resync()
                    return self._ask(line, parse)
                except LinkTimeout:
                    continue
                except ProtocolError as exc:
                    garbled = garbled or exc
            if garbled is not None:
                raise garbled
            raise LinkTimeout(
                f"the unit did not answer {line!r} within {self.link.timeout_ms} ms "
                f"({tried} attempt{'s' if tried > 1 else ''})"
            )

    def _ask(self, line: str, parse: Callable[[str], T]) -> T:
        """One attempt: write, read, decode (inside ``exchange``)."""
        with self._tx_lock:
            started = self.last_tx = time.perf_counter()
            self.link.write(line)
        try:
            reply = self.link.read()
        except LinkTimeout:
            self._timeouts += 1
            self._maybe_late = True
            raise
        if reply == RESYNC_ANSWER:  # a marker answer later than its resynchronisation
            self._maybe_late = True
            raise LinkTimeout(f"a late resynchronisation answer came instead of {line!r}'s")
        self._exchanges += 1
        self._rtts.append(time.perf_counter() - started)
        try:
            return parse(reply)
        except ProtocolError:
            # One line still answered one question: the pairing holds (only a timeout can
            # leave a late line behind), so a plain retry is enough.
            self._garbled += 1
            raise

    def read_answer(self) -> str:
        """Read one line for a query written with :meth:`write` (inside ``exchange``)."""
        try:
            return self.link.read()
        except LinkTimeout:
            self._timeouts += 1
            self._maybe_late = True
            raise

    def drain_errors(self) -> list[ErrorEntry]:
        """Read ``SYSTem:ERRor?`` until the queue is empty; the entries, oldest first."""
        entries: list[ErrorEntry] = []
        with self.exchange:
            for _ in range(_MAX_ERROR_READS):
                entry = self.query("SYST:ERR?", parse_error)
                if entry.code == 0:
                    return entries
                entries.append(entry)
        raise ProtocolError("the unit's error queue never reported empty")

    def cancel_retries(self, cancel: bool = True) -> None:
        """Make exchanges give up after their current attempt (an emergency stop is waiting)."""
        if cancel:
            self._cancel.set()
        else:
            self._cancel.clear()

    def _resync(self) -> None:
        """Discard late lines: ask the marker question and read up to its answer.

        The unit answers in order, so nothing older can follow the marker's answer. Markers
        of earlier failed attempts may still be on their way: read until every marker sent
        has been seen, or until silence after at least one (the others were lost).
        """
        self._resyncs += 1
        self.write(RESYNC_QUERY)
        self._markers_sent += 1
        seen = 0
        for _ in range(_RESYNC_MAX_LINES + self._markers_sent):
            try:
                line = self.link.read()
            except LinkTimeout:
                self._timeouts += 1
                if not seen:
                    raise  # still unsynchronised; the next exchange tries again
                break
            if line == RESYNC_ANSWER:
                seen += 1
                if seen == self._markers_sent:
                    break
        else:
            raise ProtocolError("the unit keeps sending lines nobody asked for; cannot resync")
        self._markers_sent = 0
        self._maybe_late = False

    # --- statistics ---------------------------------------------------------------------
    def stats(self) -> LinkStats:
        rtts = sorted(self._rtts)

        def ms(value: float) -> float:
            return round(value * 1000, 3)

        return LinkStats(
            exchanges=self._exchanges,
            timeouts=self._timeouts,
            retries=self._retries,
            garbled=self._garbled,
            resyncs=self._resyncs,
            heartbeats=self.heartbeats,
            rtt_last_ms=ms(self._rtts[-1]) if self._rtts else None,
            rtt_median_ms=ms(statistics.median(rtts)) if rtts else None,
            rtt_p99_ms=ms(rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]) if rtts else None,
            rtt_max_ms=ms(rtts[-1]) if rtts else None,
        )
