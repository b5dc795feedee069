"""The host's frame channel: SEQ numbering, reply matching, safe retries, the reader thread.

One reader thread reads the link and routes every frame by its CMD byte: a reply (ACK/NAK) goes
to the command waiting for its SEQ; STATUS and EVENT frames go to ``on_unsolicited``; nothing
else can be mistaken for a reply. A command is one *exchange*:

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
    """A command waiting for its reply; the reader thread fills it and releases ``signal``.

    A pre-acquired lock is the cheapest wake-up CPython has (an Event is a Condition over a
    lock); it is released exactly once, by whoever completes the slot first.
    """

    __slots__ = ("cmd", "done", "error", "interrupted", "reply", "signal")

    def __init__(self, cmd: int) -> None:
        self.cmd = cmd
        self.signal = threading.Lock()
        self.signal.acquire()
        self.reply: Frame | None = None
        self.error: BaseException | None = None
        self.interrupted = False
        self.done = False

    def complete(self, reply: Frame | None = None, error: BaseException | None = None) -> bool:
        """Fill the slot and wake its waiter; False if it was already complete."""
        with _COMPLETION:  # the reader and close() may race to complete a slot
            if self.done:
                return False
            self.done = True
        self.reply, self.error = reply, error
        self.signal.release()
        return True


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
                if slot.signal.acquire(timeout=self.reply_timeout_s):
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

    # --- the reader thread ---------------------------------------------------------------------
    def _read_loop(self) -> None:
        decoder = self._decoder
        try:
            while not self._stopping:
                data = self._link.read_some(4096)
                now = time.monotonic()
                frames = decoder.feed_iter(data, now) if data else decoder.expire_iter(now)
                for frame in frames:
                    self._route(frame)
        except LinkLost as exc:
            if not self._stopping:
                self._lose(str(exc))
        except Exception as exc:  # never die silently: a dead reader is a lost link
            _log.exception("EPAT reader thread failed")
            self._lose(f"reader thread failed: {exc!r}")

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
        self._on_link_lost(reason)

    # --- end ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the reader and close the link (idempotent)."""
        self._stopping = True
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
