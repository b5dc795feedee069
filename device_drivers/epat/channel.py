"""The host's frame channel: SEQ numbering, reply matching, safe retries, who reads the link.

Exactly one thread at a time reads the link: whoever holds the *read turn* (``_turn``). It
routes every frame it decodes by its CMD byte, in wire order: a reply (ACK/NAK) goes to the
command waiting for its SEQ (and the ``on_reply`` hook runs first), STATUS and EVENT frames go
to ``on_unsolicited``; nothing else can be mistaken for a reply.

Who reads: a thread waiting for a reply takes the turn itself when it is free and reads until
its own reply is in — no thread hand-off on the common path. The reader thread takes the turn
only while no exchange waits and none ended within the last ``_LINGER_S`` (so a burst of
commands is never split by it), or at once when a partial frame must be expired (ICD: 20 ms).
Whoever releases the turn passes it on: to another waiting exchange (woken on its slot), else
the reader thread resumes. A waiter never blocks on the turn itself: it sleeps on its own slot,
which the turn holder fills with its reply or wakes to pass the turn, so an emergency stop never
waits for a blocked reader or caller.

A command is one *exchange*:

- only one ordinary exchange is in flight at a time (``_exchange_lock``), and on a timeout it is
  re-sent **at once with the same SEQ**, before any other frame, because the unit's retry cache
  only holds the last command (ICD: Retry cache). A command is never re-sent with a new SEQ, so
  a lost reply to START cannot start a second treatment.
- an emergency stop (``priority=True``) does not queue behind an exchange in flight: it is
  written at once and ordinary exchanges wait until it is answered. An exchange that was in
  flight loses its retry window (the ESTOP frame ended it), so it is not retried: it fails with
  ``LinkTimeout`` if its own reply was lost. The ESTOP itself is retried with its own SEQ; an
  ESTOP executed twice is harmless (the ICD makes a second one a no-op in FAULT).
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from device_drivers.epat.codec import Frame, FrameDecoder, encode_frame
from device_drivers.epat.constants import Reply, Unsolicited, code_name
from device_drivers.errors import LinkLost, LinkTimeout
from device_drivers.transports.serial_link import SerialLink

_log = logging.getLogger(__name__)

_REPLY_CODES = (Reply.ACK, Reply.NAK)
_UNSOLICITED_CODES = (Unsolicited.STATUS, Unsolicited.EVENT)
#: The reader thread leaves the link to the exchanges until none has run for this long.
_LINGER_S = 0.005
#: Slack after a partial frame's 20 ms deadline before the holder of the turn expires it.
_EXPIRY_SLACK_S = 0.001
#: A waiter looks at the turn at least this often even if nobody passes it (defence in depth:
#: the turn is always passed on release, see ``_pass_turn``).
_TURN_CHECK_S = 0.01


@dataclass(frozen=True, slots=True)
class LinkStats:
    """What the link has been through, for the service console."""

    commands: int
    retries: int
    timeouts: int
    crc_errors: int
    bad_lengths: int
    partial_frames: int
    stale_replies: int
    unexpected_frames: int
    unsolicited_frames: int
    rtt_median_ms: float | None
    rtt_p99_ms: float | None
    rtt_max_ms: float | None


_COMPLETION = threading.Lock()


class _Pending:
    """A command waiting for its reply: filled by whoever reads the link, or woken to read.

    ``signal`` is a pre-acquired lock (the cheapest wake-up CPython has), made only when the
    waiter first sleeps (a thread that reads its own reply never does); ``woken`` says a wake
    is pending, so the lock is released at most once per sleep whoever completes or wakes.
    """

    __slots__ = ("cmd", "done", "error", "interrupted", "reply", "signal", "woken")

    def __init__(self, cmd: int) -> None:
        self.cmd = cmd
        self.signal: threading.Lock | None = None  # made by the first sleep (rarely needed)
        self.reply: Frame | None = None
        self.error: BaseException | None = None
        self.interrupted = False
        self.done = False
        self.woken = False

    def complete(self, reply: Frame | None = None, error: BaseException | None = None) -> bool:
        """Fill the slot and wake its waiter; False if it was already complete."""
        with _COMPLETION:  # readers and close() may race to complete a slot
            if self.done:
                return False
            self.reply, self.error = reply, error
            self.done = True  # after the reply: a waiter that sees done reads the reply
            self._wake_locked()
        return True

    def wake(self) -> None:
        """Wake the waiter to try the read turn."""
        with _COMPLETION:
            self._wake_locked()

    def _wake_locked(self) -> None:
        if not self.woken:
            self.woken = True
            if self.signal is not None:
                self.signal.release()

    def sleep(self, timeout: float) -> None:
        """Until completed or woken, at most ``timeout`` seconds."""
        with _COMPLETION:
            if self.woken:  # woken before it slept: look again at once
                self.woken = False
                if self.signal is not None:
                    self.signal.acquire(blocking=False)  # released by that wake: take it back
                return
            if self.signal is None:
                self.signal = threading.Lock()
                self.signal.acquire()
            signal = self.signal
        if signal.acquire(timeout=timeout):
            with _COMPLETION:
                self.woken = False


ReplyHook = Callable[[int, Frame], None]
UnsolicitedHook = Callable[[Frame], None]
LostHook = Callable[[str], None]


class FrameChannel:
    """Exchanges frames with one unit over a :class:`SerialLink`; see the module docstring."""

    def __init__(
        self,
        link: SerialLink,
        *,
        reply_timeout_s: float,
        retries: int,
        on_reply: ReplyHook,
        on_unsolicited: UnsolicitedHook,
        on_link_lost: LostHook,
    ) -> None:
        if retries < 0:
            raise ValueError("retries cannot be negative")
        if not reply_timeout_s > 0:
            raise ValueError("reply_timeout_s must be > 0")
        self._link = link
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        self._on_reply = on_reply
        self._on_unsolicited = on_unsolicited
        self._on_link_lost = on_link_lost
        self._decoder = FrameDecoder()
        self._seq = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._bare_frames: dict[tuple[int, int], bytes] = {}
        self._current: _Pending | None = None
        self._write_lock = threading.Lock()
        self._exchange_lock = threading.Lock()
        self._priority_lock = threading.Lock()
        self._gate = threading.Condition()
        self._priority_active = 0
        self._turn = threading.Lock()  # held by the one thread that reads the link
        self._reader_wake = threading.Event()
        self._last_exchange_end = time.monotonic()
        self._lost: str | None = None
        self._stopping = False
        self.last_tx = time.monotonic()
        self._rtts: deque[float] = deque(maxlen=2000)
        self._commands = 0
        self._retries = 0
        self._timeouts = 0
        self._stale = 0
        self._unexpected = 0
        self._unsolicited = 0
        self._routed = 0
        self._reader = threading.Thread(target=self._read_loop, name="epat-reader", daemon=True)
        self._reader.start()

    # --- exchanges ----------------------------------------------------------------------------
    @property
    def lost(self) -> str | None:
        """Why the link was lost, or None while it is up."""
        return self._lost

    def exchange(self, cmd: int, payload: bytes = b"", *, priority: bool = False) -> Frame:
        """Send one command and return its reply frame (ACK or NAK, not interpreted here).

        Raises ``LinkTimeout`` after the allowed same-SEQ retries, ``LinkLost`` if the link
        is (or goes) down.
        """
        if priority:
            with self._gate:
                self._priority_active += 1
            try:
                with self._priority_lock:
                    return self._transact(cmd, payload, priority=True)
            finally:
                with self._gate:
                    self._priority_active -= 1
                    self._gate.notify_all()
        with self._exchange_lock:
            if self._priority_active:  # unlocked read: a racing ESTOP is handled in _transact
                with self._gate:
                    while self._priority_active:
                        self._gate.wait()
            return self._transact(cmd, payload, priority=False)

    def _transact(self, cmd: int, payload: bytes, *, priority: bool) -> Frame:
        if self._lost is not None:
            raise LinkLost(self._lost)
        seq = next(self._seq) % 255 + 1  # 1..255; 0 is the unit's own frames' SEQ
        if payload:
            data = encode_frame(seq, cmd, payload)
        else:  # the frequent case (polls, heartbeats): each frame is encoded once
            data = self._bare_frames.get((seq, cmd)) or self._encode_bare(seq, cmd)
        slot = _Pending(cmd)
        self._pending[seq] = slot
        self._commands += 1
        try:
            for attempt in range(self.retries + 1):
                started = time.perf_counter()
                if not self._write_attempt(slot, data, retry=attempt > 0, priority=priority):
                    raise LinkTimeout(
                        f"no reply to {code_name(cmd)} (SEQ {seq}) and it cannot be retried: "
                        "an emergency stop was sent meanwhile; read the unit's status"
                    )
                if attempt:
                    self._retries += 1
                if self._await_reply(slot, started + self.reply_timeout_s):
                    if slot.error is not None:
                        raise slot.error
                    self._rtts.append(time.perf_counter() - started)
                    assert slot.reply is not None
                    return slot.reply
                self._timeouts += 1
            raise LinkTimeout(
                f"no reply to {code_name(cmd)} (SEQ {seq}) after {self.retries + 1} attempts of "
                f"{self.reply_timeout_s * 1000:.0f} ms; check the cable and that the unit is on"
            )
        finally:
            self._pending.pop(seq, None)
            if self._current is slot:
                self._current = None
            self._last_exchange_end = time.monotonic()
            if not slot.done:  # it may have been woken to read: pass that turn on
                self._pass_turn(slot)

    def _write_attempt(self, slot: _Pending, data: bytes, *, retry: bool, priority: bool) -> bool:
        """Write one attempt; False if a retry may no longer be sent.

        Decided under the write lock: an ESTOP written after the first attempt has ended the
        unit's retry window, so a retry now would be executed a second time.
        """
        with self._write_lock:
            if retry and slot.interrupted:
                return False
            if priority:
                if self._current is not None:
                    self._current.interrupted = True
            else:
                self._current = slot
            self._link.write(data)
            self.last_tx = time.monotonic()
        return True

    def _encode_bare(self, seq: int, cmd: int) -> bytes:
        data = self._bare_frames[seq, cmd] = encode_frame(seq, cmd)
        return data

    def _await_reply(self, slot: _Pending, deadline_perf: float) -> bool:
        """Wait for ``slot``'s reply until ``deadline_perf`` (``perf_counter``); True if it came
        (or the link was lost: ``slot.error``). Reads the link itself whenever the turn is free.
        """
        turn = self._turn
        while not slot.done:
            if turn.acquire(blocking=False):
                try:
                    self._read_until(slot, deadline_perf)
                finally:
                    turn.release()
                    self._pass_turn(slot)
                return slot.done
            # Another thread reads: it completes this slot, or wakes it to take the turn.
            remaining = deadline_perf - time.perf_counter()
            if remaining <= 0:
                return slot.done
            slot.sleep(min(remaining, _TURN_CHECK_S))
        return True

    def _pass_turn(self, released_by: _Pending | None) -> None:
        """After releasing the turn: wake one exchange still waiting, else the reader if a
        partial frame is held (its 20 ms rule needs someone reading)."""
        for slot in list(self._pending.values()):
            if slot is not released_by and not slot.done:
                slot.wake()
                return
        if self._decoder.pending:
            self._reader_wake.set()

    # --- reading (by whoever holds the turn) ----------------------------------------------------
    def _read_until(self, slot: _Pending, deadline_perf: float) -> None:
        """Read and route frames until ``slot`` is complete or the deadline passes."""
        link, decoder, route = self._link, self._decoder, self._route
        try:
            while not slot.done and not self._stopping:
                wait = deadline_perf - time.perf_counter()
                if wait <= 0:
                    return
                if decoder.pending:  # a partial frame is held: expire it on time
                    expiry = decoder.deadline() or 0.0
                    wait = min(wait, max(0.0, expiry - time.monotonic()) + _EXPIRY_SLACK_S)
                data = link.read_some(4096, wait)
                now = time.monotonic()
                for frame in decoder.feed(data, now) if data else decoder.expire(now):
                    route(frame)
        except Exception as exc:
            self._reading_failed(exc)

    def _read_loop(self) -> None:
        """The reader thread: reads only while no exchange does (see the module docstring)."""
        wake, turn = self._reader_wake, self._turn
        link, decoder, route = self._link, self._decoder, self._route
        while not self._stopping and self._lost is None:
            wake.clear()
            pause = self._reader_pause()
            if pause > 0 or not turn.acquire(blocking=False):
                wake.wait(pause or _LINGER_S)
                continue
            try:
                if self._stopping:
                    return
                data = link.read_some(4096)
                now = time.monotonic()
                for frame in decoder.feed(data, now) if data else decoder.expire(now):
                    route(frame)
            except Exception as exc:
                self._reading_failed(exc)
            finally:
                turn.release()
                self._pass_turn(None)
            if self._pending:  # an exchange was handed its reply or the turn: let it run first
                time.sleep(0)  # (releases the GIL now, not after the reader's bookkeeping)

    def _reader_pause(self) -> float:
        """How long the reader thread leaves the link to the exchanges; 0 = read now."""
        if self._decoder.pending:
            return 0.0
        if self._pending:
            return _LINGER_S
        idle = time.monotonic() - self._last_exchange_end
        return _LINGER_S - idle if idle < _LINGER_S else 0.0

    def _reading_failed(self, exc: Exception) -> None:
        if self._stopping:
            return  # close() closed the link under the reader
        if not isinstance(exc, LinkLost):  # never die silently: a failed read is a lost link
            _log.error("EPAT link reading failed", exc_info=exc)
            exc = LinkLost(f"reading the link failed: {exc!r}")
        self._lose(str(exc))

    def _route(self, frame: Frame) -> None:
        self._routed += 1
        cmd = frame.cmd
        if cmd in _REPLY_CODES:
            slot = self._pending.get(frame.seq)
            if slot is None or slot.done:
                self._stale += 1  # a late or duplicate reply (e.g. to a retried command)
                return
            try:
                self._on_reply(slot.cmd, frame)
            except Exception:
                _log.exception("EPAT reply hook failed on %s", frame)
            slot.complete(reply=frame)
        elif cmd in _UNSOLICITED_CODES:
            self._unsolicited += 1
            try:
                self._on_unsolicited(frame)
            except Exception:
                _log.exception("EPAT unsolicited-frame hook failed on %s", frame)
        else:
            self._unexpected += 1
            _log.warning("EPAT frame with unexpected CMD ignored: %s", frame)

    def _lose(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        for slot in list(self._pending.values()):
            slot.complete(error=LinkLost(reason))
        self._reader_wake.set()
        self._on_link_lost(reason)

    # --- end ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the reader and close the link (idempotent)."""
        self._stopping = True
        self._reader_wake.set()
        if self._reader is not threading.current_thread():
            self._reader.join(1.0)
        self._link.close()
        if self._lost is None:
            self._lost = "the driver was closed"
        for slot in list(self._pending.values()):
            slot.complete(error=LinkLost(self._lost))

    def stats(self) -> LinkStats:
        rtts = sorted(self._rtts)
        ms = [r * 1000 for r in rtts]
        return LinkStats(
            commands=self._commands,
            retries=self._retries,
            timeouts=self._timeouts,
            crc_errors=self._decoder.crc_errors,
            bad_lengths=self._decoder.bad_lengths,
            partial_frames=self._decoder.partial_timeouts,
            stale_replies=self._stale,
            unexpected_frames=self._unexpected,
            unsolicited_frames=self._unsolicited,
            rtt_median_ms=statistics.median(ms) if ms else None,
            rtt_p99_ms=ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else None,
            rtt_max_ms=ms[-1] if ms else None,
        )

    @property
    def heard_only_garbage(self) -> bool:
        """True if bytes arrived but none formed a valid frame (another kind of device?)."""
        d = self._decoder
        junk = d.skipped_bytes + d.crc_errors + d.bad_lengths + d.partial_timeouts + d.pending
        return self._routed == 0 and junk > 0
