"""Fault campaign: randomized sessions on the simulators, faults during delivery, the record
compared with what the unit really fired (issue 10).

Each run is one treatment session driven through the real workflow (``ConsoleServices`` on one
SQLite record for the whole campaign, the steps ``session run`` and the GUI take) on a fresh
simulated unit over a real link: EPAT over TCP ``socket://`` or a pseudo-terminal, EMTT over a
TCP VISA ``SOCKET``. TCP links pass through a proxy written here that forwards bytes and can
black-hole, lose, delay or corrupt them (the link faults a simulator cannot make itself). One or
two faults hit the session during delivery at seeded random pulses; three scenarios run the
``therapy-console`` CLI in a child process instead: SIGKILL mid-delivery then ``session
recover``; the same with the unit switched off and on and another patient treated on it before
recovering. A second host connecting mid-delivery (``open_device`` on the same link while the
session delivers, as a second console or ``device info`` would) runs in-process.

Ground truth is the simulator's own cumulative fired count (``stats().pulses_fired_total``,
not reset by a power cycle). Per run:

- hang: the session did not end within its deadline (or a CLI step did not);
- mismatch: the record's ``delivered`` differs from the truth, or, when the record says the
  count is unconfirmed, the truth lies outside ``delivered_min..delivered_max``; a session left
  open (not ended, not recoverable) is a mismatch too;
- unsupervised: the unit fired more after the console lost it (its link closed or black-holed,
  the console killed, the session ended) than one watchdog period at the set frequency allows;
- traceback: an exception escaped the workflow, a thread died of one, or a CLI child printed one.

At the end ``therapy-console audit verify`` checks the record's trail. Usage::

    python bench/fault_campaign.py --sessions 40 --seed 1 [--speed 5] [--modalities epat,emtt]
        [--pulses 200-600] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import math
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from argon2 import PasswordHasher, Type  # noqa: E402

from console.devices import open_device  # noqa: E402
from console.services import ConsoleConfig, ConsoleServices  # noqa: E402
from console.session.ports import PlannedParameters  # noqa: E402
from console.session.states import ENDED_STATES, UNFINISHED_STATES  # noqa: E402
from console.session.workflow import SessionWorkflow, TransitionRefused  # noqa: E402
from device_drivers.emtt.server import EmttTcpServer  # noqa: E402
from device_drivers.emtt.simulator import EmttSimulator  # noqa: E402
from device_drivers.epat.server import EpatPtyServer, EpatTcpServer  # noqa: E402
from device_drivers.epat.simulator import EpatSimulator  # noqa: E402
from device_drivers.errors import DeviceError  # noqa: E402
from tests.console.session_helpers import (  # noqa: E402
    CLEAN_ANSWERS,
    SHORT_DOSE_REASON,
    Pump,
    connected_session,
)

PASSWORD = "campaign horse battery"
SESSION_DATE = date(2026, 11, 24)
PROGRAMME = "knee-load-sharing"
#: Each modality's protocol at its highest frequency (a short dose: below range, overridden).
PROTOCOLS = {"epat": "knee-pt-epat", "emtt": "knee-oa-emtt"}
FREQUENCY_HZ = {"epat": Decimal("10.0"), "emtt": Decimal("8.0")}
WATCHDOG_SIM_S = {"epat": 0.5, "emtt": 1.0}  # the ICDs' watchdog periods (simulated seconds)
#: Wall seconds a session may take beyond twice its delivery time before it counts as a hang.
SETUP_S = 10.0

#: Faults injected into a session driven in this process.
UNIT_FAULTS = (
    "reset",
    "cut",
    "blackhole",
    "lossy",
    "drop",
    "corrupt",
    "delay",
    "lost_start",
    "pull",
    "overtemp",
    "deviation",
    "estop",
    "second_host",
)
#: Scenarios around a CLI child process killed mid-delivery.
CLI_SCENARIOS = ("kill_recover", "crash_other")
FAULT_KINDS = UNIT_FAULTS + CLI_SCENARIOS
#: Faults that need the TCP proxy (a pseudo-terminal has no connection to hold or lose).
PROXY_FAULTS = frozenset({"blackhole", "lossy"})
#: Faults that may come second in a run.
SECOND_FAULTS = ("reset", "cut", "drop", "corrupt", "delay", "pull", "overtemp", "estop")
#: How long a transient fault lasts (wall seconds, before the speed factor).
TRANSIENT = frozenset({"blackhole", "lossy", "drop", "corrupt", "delay"})


# ----------------------------------------------------------------------------- the TCP proxy
class LinkProxy:
    """A TCP forwarder between the console and the unit that can break the link on purpose.

    The console's configured link is the proxy's stable port; :meth:`route` points it at the
    unit of the next session. ``blackhole`` swallows bytes both ways (connections stay open:
    the unit stops answering and hears nothing), ``loss`` drops that fraction of chunks,
    ``corrupt`` flips a byte in that fraction of chunks, ``delay_s`` holds every chunk back;
    :meth:`lose_reply_after` drops the unit's next line after a host line containing a marker
    (the EMTT "lost START reply" before the simulators offer it). ``on_loss`` is called the
    first time the session's first connection closes or is black-holed.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = int(self._listener.getsockname()[1])
        self._target: tuple[str, int] | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.blackhole = False
        self.loss = 0.0
        self.corrupt = 0.0
        self.delay_s = 0.0
        self._first: socket.socket | None = None
        self.on_loss: Callable[[str], None] | None = None
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def route(self, host: str, port: int, on_loss: Callable[[str], None] | None) -> None:
        """Send new connections to ``host:port``; forget the previous session's."""
        self.drop_all()
        with self._lock:
            self._target = (host, port)
            self._first = None
            self.on_loss = on_loss
            self.blackhole, self.loss, self.corrupt, self.delay_s = False, 0.0, 0.0, 0.0

    def set_blackhole(self, on: bool) -> None:
        self.blackhole = on
        if on:
            self._lost("link black-holed")

    def drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _hang_up(sock)

    def close(self) -> None:
        self._closed = True
        self.drop_all()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _lost(self, why: str) -> None:
        callback = self.on_loss
        if callback is not None:
            self.on_loss = None
            callback(why)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                target = self._target
            try:
                if target is None:
                    raise OSError("no unit routed")
                upstream = socket.create_connection(target, timeout=2.0)
                upstream.settimeout(None)
            except OSError:
                _hang_up(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
                if self._first is None:
                    self._first = client
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, up, client), daemon=True
                ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, up: bool, client: socket.socket
    ) -> None:
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                data = self._filter(data, up)
                if self.delay_s:
                    time.sleep(self.delay_s)
                if data:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(src)
            _hang_up(dst)
            if client is self._first:
                self._lost("link closed")

    def _filter(self, data: bytes, up: bool) -> bytes:
        if self.blackhole:
            return b""
        if self.loss and self._rng.random() < self.loss:
            return b""
        if self.corrupt and data and self._rng.random() < self.corrupt:
            flipped = bytearray(data)
            flipped[self._rng.randrange(len(flipped))] ^= self._rng.randrange(1, 256)
            data = bytes(flipped)
        return data


def _hang_up(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


# ----------------------------------------------------------------------------- one unit
class Unit:
    """A fresh simulated unit for one run, served on one link, with its ground truth."""

    def __init__(self, modality: str, link: str, serial: str, speed: float, seed: int) -> None:
        self.modality = modality
        self.link_kind = link
        self.sim: Any
        self.server: Any
        if modality == "epat":
            self.sim = EpatSimulator(speed=speed, serial=serial, applicator="D20-S", seed=seed)
            self.server = (EpatPtyServer if link == "pty" else EpatTcpServer)(self.sim).start()
        else:
            self.sim = EmttSimulator(speed=speed, serial=serial, seed=seed)
            self.server = EmttTcpServer(self.sim).start()

    def fired(self) -> int:
        """Pulses the unit has fired since it was made (across resets): the ground truth."""
        return int(self.sim.stats().pulses_fired_total)

    def state(self) -> str:
        state = self.sim.snapshot().state
        return str(getattr(state, "name", state))

    def firing(self) -> bool:
        return self.state() in ("FIRING", "DELIVERING")

    def watched(self) -> bool:
        return self.state() in ("ARMED", "FIRING", "DELIVERING", "PAUSED")

    def lose_start_reply(self) -> str:
        """Lose the unit's answer to the next START: EPAT, the reply and both retries' (the
        host's command times out while the unit fires); EMTT, the confirmation (SYST:ERR?)."""
        if self.modality == "epat":
            self.sim.drop_reply_to("START", times=3)
            return "drop_reply_to('START', times=3)"
        self.sim.drop_reply_to("SESS:STAR")
        return "drop_reply_to('SESS:STAR')"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.stop()
        with contextlib.suppress(Exception):
            if hasattr(self.sim, "close"):
                self.sim.close()


# ----------------------------------------------------------------------------- rooms
@dataclasses.dataclass
class Room:
    """One treatment room: a console (``ConsoleServices``) whose unit link never changes."""

    name: str
    modality: str
    link: str  # what the console is configured with
    services: ConsoleServices
    user: Any
    proxy: LinkProxy | None = None
    tty_link: Path | None = None  # the stable name of a pty unit (a udev-style symlink)


class PtyFollower:
    """Keeps a stable symlink on the pty an EPAT pty server serves now (it changes on a cut)."""

    def __init__(self, link: Path, server: EpatPtyServer) -> None:
        self._link = link
        self._server = server
        self._stop = threading.Event()
        self._point()
        self._thread = threading.Thread(target=self._run, name="pty-follow", daemon=True)
        self._thread.start()

    def _point(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            target = self._server.path
            if not self._link.is_symlink() or os.readlink(self._link) != target:
                temporary = self._link.with_suffix(".new")
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
                temporary.symlink_to(target)
                os.replace(temporary, self._link)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._point()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


# ----------------------------------------------------------------------------- results
@dataclasses.dataclass
class RunResult:
    index: int
    modality: str
    link: str
    faults: list[dict[str, Any]]
    pulses: int
    truth: int | None = None
    recorded: int | None = None
    record_state: str | None = None
    count_status: str | None = None
    bounds: list[int | None] | None = None
    mismatch: bool = False
    unconfirmed: bool = False
    hang: bool = False
    unsupervised: bool = False
    tracebacks: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0

    def note(self, text: str) -> None:
        self.notes.append(text)


class Supervision:
    """When the console lost the unit, and what the unit had fired then (unsupervised check)."""

    def __init__(self, unit: Unit, frequency_hz: Decimal) -> None:
        self.unit = unit
        self.allowance = math.ceil(float(frequency_hz) * WATCHDOG_SIM_S[unit.modality]) + 2
        self.lost: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def lose(self, why: str) -> None:
        with self._lock:
            if self.lost is None:
                self.lost = (why, self.unit.fired())

    def check(self, result: RunResult, fired_final: int) -> None:
        if self.lost is None:
            return
        why, fired_then = self.lost
        beyond = fired_final - fired_then - self.allowance
        if beyond > 0:
            result.unsupervised = True
            result.note(
                f"unsupervised: {fired_final - fired_then} pulses fired after the console lost "
                f"the unit ({why} at {fired_then}); one watchdog period allows {self.allowance}"
            )


# ----------------------------------------------------------------------------- the campaign
class Campaign:
    """See the module docstring."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.speed = float(args.speed)
        self.rng = random.Random(args.seed)
        self.db_path = folder / "record.sqlite3"
        self.key_path = folder / "keys" / "signing-key.pem"
        self.data_dir = folder / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.rooms: dict[str, Room] = {}
        self.results: list[RunResult] = []
        self.thread_tracebacks: list[str] = []
        self._serial = 0
        self._patient = 0
        self.screening_file = folder / "screening.json"
        self.screening_file.write_text(json.dumps(CLEAN_ANSWERS), encoding="utf-8")
        # Long-lived threads, as the GUI has (its session executor and emergency-stop thread):
        # the record store keeps one SQLite connection per thread that writes.
        self.session_lane = _lane("campaign-session")
        self.estop_lane = _lane("campaign-estop")
        self.current: RunResult | None = None
        self._previous_hook = threading.excepthook
        threading.excepthook = self._thread_died

    # --- plumbing --------------------------------------------------------------------------
    def _thread_died(self, hook: threading.ExceptHookArgs) -> None:
        text = "".join(
            traceback.format_exception(hook.exc_type, hook.exc_value, hook.exc_traceback)
        )
        name = hook.thread.name if hook.thread is not None else "?"
        line = f"thread {name}: {text.strip().splitlines()[-1]}"
        if self.current is not None:
            self.current.tracebacks.append(line)
        else:
            self.thread_tracebacks.append(line)
        self._previous_hook(hook)

    def _config(self, name: str, link: str, modality: str, first: bool) -> ConsoleConfig:
        return ConsoleConfig(
            db_url=f"sqlite:///{self.db_path}",
            signing_key_path=self.key_path,
            workstation=f"campaign-{name}",
            epat_url=link if modality == "epat" else None,
            emtt_resource=link if modality == "emtt" else None,
            device_speed=self.speed,
            commlog_dir=self.folder / "commlogs",
            create_schema=first,
        )

    def room(self, name: str) -> Room:
        """The room ``epat-tcp``, ``epat-pty`` or ``emtt-tcp`` (opened on first use)."""
        if name in self.rooms:
            return self.rooms[name]
        modality, link_kind = name.split("-")
        proxy = None
        tty_link = None
        if link_kind == "tcp":
            proxy = LinkProxy(random.Random(self.rng.random()))
            link = (
                f"socket://127.0.0.1:{proxy.port}"
                if modality == "epat"
                else f"TCPIP0::127.0.0.1::{proxy.port}::SOCKET"
            )
        else:
            tty_link = self.folder / "ttyEPAT0"
            link = str(tty_link)
        first = not self.rooms
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
        services = ConsoleServices.open(self._config(name, link, modality, first), hasher=hasher)
        if first:
            services.auth.add_user(None, "admin", "Ada Admin", "admin", PASSWORD)
            admin = services.login("admin", PASSWORD)
            services.auth.add_user(admin, "thera", "Theo Therapist", "therapist", PASSWORD)
            services.logout(admin)
        user = services.login("thera", PASSWORD)
        room = Room(name, modality, link, services, user, proxy, tty_link)
        self.rooms[name] = room
        return room

    def new_unit(self, room: Room, supervision_hook: Callable[[str], None] | None) -> Unit:
        self._serial += 1
        serial = (
            f"RPW200-C{self._serial:04d}"
            if room.modality == "epat"
            else f"E100-C-{self._serial:04d}"
        )
        unit = Unit(
            room.modality, room.name.split("-")[1], serial, self.speed, self.rng.randrange(1 << 30)
        )
        if room.proxy is not None:
            host, port = _tcp_address(unit.server)
            room.proxy.route(host, port, supervision_hook)
        return unit

    def new_patient(self, room: Room) -> str:
        self._patient += 1
        patient = room.services.create_patient(
            room.user, f"FC-{self.args.seed}-{self._patient:04d}", date(1980, 5, 17)
        )
        room.services.assign_programme(room.user, patient.patient_id, PROGRAMME, date(2026, 10, 1))
        return patient.patient_id

    def plan(self, modality: str, pulses: int) -> PlannedParameters:
        if modality == "epat":
            return PlannedParameters(
                frequency_hz=FREQUENCY_HZ["epat"], pulses=pulses, pressure_bar=Decimal("2.50")
            )
        return PlannedParameters(
            frequency_hz=FREQUENCY_HZ["emtt"], pulses=pulses, field_mt=Decimal("40.0")
        )

    def delivery_wall_s(self, modality: str, pulses: int) -> float:
        return pulses / float(FREQUENCY_HZ[modality]) / self.speed

    # --- the schedule -------------------------------------------------------------------------
    def schedule(self) -> list[tuple[str, list[str]]]:
        """(modality, faults) per run: every (modality, fault) pair once, then at random."""
        modalities = [m.strip() for m in self.args.modalities.split(",") if m.strip()]
        kinds = self.args.faults or FAULT_KINDS
        pairs = [(m, k) for m in modalities for k in kinds]
        self.rng.shuffle(pairs)
        runs: list[tuple[str, list[str]]] = []
        for i in range(self.args.sessions):
            modality, kind = (
                pairs[i]
                if i < len(pairs)
                else (
                    self.rng.choice(modalities),
                    self.rng.choice(kinds),
                )
            )
            faults = [kind]
            if kind in UNIT_FAULTS and kind != "second_host" and self.rng.random() < 0.35:
                faults.append(self.rng.choice(SECOND_FAULTS))
            runs.append((modality, faults))
        return runs

    def room_for(self, modality: str, faults: list[str]) -> str:
        if modality == "emtt":
            return "emtt-tcp"
        if PROXY_FAULTS & set(faults):
            return "epat-tcp"
        return "epat-pty" if self.rng.random() < 0.4 else "epat-tcp"

    # --- running ---------------------------------------------------------------------------
    def run(self) -> None:
        low, high = self.args.pulse_range
        for index, (modality, faults) in enumerate(self.schedule()):
            pulses = self.rng.randint(low, high)
            room = self.room(self.room_for(modality, faults))
            result = RunResult(index, modality, room.name, [], pulses)
            self.current = result
            started = time.monotonic()
            try:
                if faults[0] in CLI_SCENARIOS:
                    self.run_cli_scenario(room, faults[0], result)
                else:
                    self.run_in_process(room, faults, result)
            except Exception as exc:  # the bench's own failure: reported, never hidden
                result.tracebacks.append(f"campaign: {type(exc).__name__}: {exc}")
                result.note("".join(traceback.format_exc()).strip().splitlines()[-1])
            result.wall_s = round(time.monotonic() - started, 2)
            self.current = None
            self.results.append(result)
            if not self.args.quiet:
                print(_one_line(result), file=sys.stderr, flush=True)

    # --- an in-process session -----------------------------------------------------------
    @contextlib.contextmanager
    def _supervised_unit(self, room: Room) -> Iterator[tuple[Unit, Supervision]]:
        """A fresh unit on ``room``'s link, supervised from its first pulse (its link's loss
        is noted at once); afterwards the unit, its pty follower and the proxy's links end."""
        supervision_ref: list[Supervision] = []

        def lost(why: str) -> None:
            if supervision_ref:
                supervision_ref[0].lose(why)

        unit = self.new_unit(room, lost)
        follower = PtyFollower(room.tty_link, unit.server) if room.tty_link is not None else None
        supervision = Supervision(unit, FREQUENCY_HZ[room.modality])
        supervision_ref.append(supervision)
        try:
            yield unit, supervision
        finally:
            if follower is not None:
                follower.stop()
            if room.proxy is not None:
                room.proxy.drop_all()
            unit.close()

    def run_in_process(self, room: Room, faults: list[str], result: RunResult) -> None:
        with self._supervised_unit(room) as (unit, supervision):
            self._in_process(room, faults, unit, supervision, result)

    def _in_process(
        self,
        room: Room,
        faults: list[str],
        unit: Unit,
        supervision: Supervision,
        result: RunResult,
    ) -> None:
        holder: dict[str, Any] = {}
        plan = self.plan(room.modality, result.pulses)
        patient = self.new_patient(room)
        deadline_s = SETUP_S + 2.0 * self.delivery_wall_s(room.modality, result.pulses)
        injector = Injector(self, room, unit, supervision, faults, result, holder)
        errors: list[str] = []
        done = self.session_lane.submit(
            self._drive, room, patient, plan, injector, holder, deadline_s, result, errors
        )
        injector.start()
        try:
            done.result(deadline_s + 20.0)
        except concurrent.futures.TimeoutError:
            result.hang = True
            result.note(f"hang: the session thread did not return in {deadline_s + 20:.0f} s")
            self.session_lane = _lane("campaign-session")  # the stuck one is left behind
            self._rescue(holder)
        injector.finish()
        supervision.lose("the session ended")
        self._settle(unit, result)
        result.tracebacks += errors
        fired = unit.fired()
        workflow: SessionWorkflow | None = holder.get("workflow")
        if workflow is not None:
            with contextlib.suppress(Exception):
                workflow.close()
        result.truth = fired
        supervision.check(result, fired)
        if workflow is not None:
            self.judge(room, workflow.ctx.session_id, fired, result)
            self._recover_left_open(room, workflow.ctx.session_id, fired, result)
        else:
            result.note("no session was begun")

    def _recover_left_open(
        self, room: Room, session_id: str, truth: int, result: RunResult
    ) -> None:
        """A session the run left open, or ended with its count unconfirmed, is recovered now
        while its unit is still there, as the clinic would do next (so no later run or
        ``session recover`` trips over it); a count recovery establishes must be the truth."""
        record = room.services.sessions.load(session_id)
        left_open = record.state in {s.value for s in UNFINISHED_STATES}
        if not left_open and getattr(record, "count_status", None) != "unconfirmed":
            return
        try:
            room.services.recover(room.user, session_id)
        except Exception as exc:
            result.note(f"could not recover afterwards: {_short(exc)}")
            return
        record = room.services.sessions.load(session_id)
        status = getattr(record, "count_status", None)
        result.note(f"recovered afterwards: {record.state} {record.delivered} ({status})")
        if status != "unconfirmed" and record.delivered != truth:
            result.mismatch = True
            result.note(f"mismatch after recovery: {record.delivered}, unit fired {truth}")

    def _drive(
        self,
        room: Room,
        patient: str,
        plan: PlannedParameters,
        injector: Injector,
        holder: dict[str, Any],
        deadline_s: float,
        result: RunResult,
        errors: list[str],
    ) -> None:
        """The session as ``session run`` drives it, with the workflow exposed to the faults."""
        pump = Pump()
        deadline = time.monotonic() + deadline_s
        workflow: SessionWorkflow | None = None
        try:
            workflow = connected_session(
                room.services,
                room.user,
                patient,
                pump,
                PROTOCOLS[room.modality],
                plan,
                override_reason=SHORT_DOSE_REASON,
            )
            holder["workflow"] = workflow
            workflow.arm()
            injector.before_start()
            workflow.start()
            injector.started.set()
            while workflow.state not in ENDED_STATES:
                if time.monotonic() > deadline:
                    result.hang = True
                    result.note(
                        f"hang: still {workflow.state.value} after {deadline_s:.0f} s "
                        f"(unit {injector.unit.state()}, workflow count {workflow.delivered})"
                    )
                    self._rescue(holder)
                    return
                with contextlib.suppress(queue.Empty):
                    workflow.handle(pump.messages.get(timeout=0.1))
                workflow.check_worker()
        except TransitionRefused as exc:
            result.note("refused: " + "; ".join(exc.reasons))
            if workflow is not None:
                _end_refused(workflow, result)
        except DeviceError as exc:
            result.note(f"unit error: {type(exc).__name__}: {exc}")
            if workflow is not None and workflow.state.value in {
                "connected",
                "armed",
                "delivering",
                "paused",
            }:
                try:
                    workflow.emergency_stop()
                except Exception as inner:
                    errors.append(f"emergency stop after a unit error: {_short(inner)}")
        except Exception as exc:
            errors.append(f"{_short(exc)} (in {workflow.state.value if workflow else 'setup'})")
            self._rescue(holder)
        finally:
            injector.started.set()
            holder["ended_at"] = time.monotonic()
            pump.close()

    def _rescue(self, holder: dict[str, Any]) -> None:
        """After a hang or an escaped exception: press the emergency stop as a user would."""
        workflow: SessionWorkflow | None = holder.get("workflow")
        if workflow is None:
            return
        with contextlib.suppress(Exception):
            self.estop_lane.submit(workflow.emergency_stop).result(15.0)

    def press_emergency_stop(self, workflow: SessionWorkflow) -> None:
        """The GUI's way: its one long-lived emergency-stop thread calls the workflow."""
        self.estop_lane.submit(workflow.emergency_stop).result(15.0)

    def _settle(self, unit: Unit, result: RunResult) -> None:
        """Let a unit that still fires on its own show it: wait while it stays watched."""
        until = time.monotonic() + 1.0 + 3 * WATCHDOG_SIM_S[unit.modality] / self.speed
        remaining_s = self.delivery_wall_s(unit.modality, result.pulses) + 1.0
        hard = time.monotonic() + remaining_s
        while time.monotonic() < hard:
            if not unit.watched() and time.monotonic() > until:
                return
            time.sleep(0.05)

    # --- judging a record ------------------------------------------------------------------
    def judge(self, room: Room, session_id: str, truth: int, result: RunResult) -> None:
        record = room.services.sessions.load(session_id)
        result.record_state = record.state
        result.recorded = record.delivered
        status = getattr(record, "count_status", None)
        result.count_status = status
        if status == "unconfirmed":
            low = getattr(record, "delivered_min", None)
            high = getattr(record, "delivered_max", None)
            result.unconfirmed = True
            result.bounds = [low, high]
            why = _find(getattr(record, "count_evidence", None), "why_unconfirmed")
            result.note(f"unconfirmed {low}..{high}: {why}")
            if low is None or high is None or not low <= truth <= high:
                result.mismatch = True
                result.note(f"mismatch: unit fired {truth}, outside the bounds {low}..{high}")
            return
        if record.state in {s.value for s in UNFINISHED_STATES}:
            result.mismatch = True
            result.note(
                f"mismatch: record left {record.state} (count {record.delivered}), "
                f"unit fired {truth}"
            )
            return
        if record.delivered != truth:
            result.mismatch = True
            result.note(
                f"mismatch: record {record.state} {record.delivered}, unit fired {truth}"
                f" ({record.end_reason})"
            )

    # --- CLI scenarios --------------------------------------------------------------------
    def cli_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            THERAPY_CONSOLE_DATA_DIR=str(self.data_dir),
            THERAPY_CONSOLE_LOG_DIR=str(self.folder / "logs"),
            THERAPY_CONSOLE_SIGNING_KEY=str(self.key_path),
            THERAPY_CONSOLE_WORKSTATION="campaign-cli",
            PYTHONPATH=str(ROOT),
        )
        return env

    def cli(self, args: list[str], stdin: str | None, timeout_s: float) -> tuple[int, str, str]:
        """Run ``therapy-console ARGS`` to the end; (exit code, stdout, stderr); -9 = timeout."""
        process = subprocess.Popen(
            [sys.executable, "-m", "console", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.cli_env(),
            cwd=str(ROOT),
        )
        try:
            out, err = process.communicate(stdin, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            return -9, out, err
        return process.returncode, out, err

    def _unit_args(self, room: Room) -> list[str]:
        flag = "--epat" if room.modality == "epat" else "--emtt"
        return [flag, room.link, "--speed", str(self.speed), "--db", str(self.db_path)]

    def run_cli_scenario(self, room: Room, kind: str, result: RunResult) -> None:
        with self._supervised_unit(room) as (unit, supervision):
            self._cli_scenario(room, kind, unit, supervision, result)

    def _cli_scenario(
        self, room: Room, kind: str, unit: Unit, supervision: Supervision, result: RunResult
    ) -> None:
        patient = self.new_patient(room)
        plan = self.plan(room.modality, result.pulses)
        trigger = self.rng.randint(result.pulses // 8, result.pulses // 2)
        result.faults.append({"kind": kind, "at_pulse": trigger})
        intensity = (
            f"pressure_bar={plan.pressure_bar}"
            if plan.pressure_bar
            else f"field_mt={plan.field_mt}"
        )
        run_args = [
            "session",
            "run",
            "--user",
            "thera",
            "--patient",
            patient,
            "--protocol",
            PROTOCOLS[room.modality],
            "--screening",
            str(self.screening_file),
            "--set",
            f"frequency_hz={plan.frequency_hz}",
            "--set",
            f"pulses={plan.pulses}",
            "--set",
            intensity,
            "--override-reason",
            SHORT_DOSE_REASON,
            "--date",
            SESSION_DATE.isoformat(),
            *self._unit_args(room),
        ]
        process = subprocess.Popen(
            [sys.executable, "-m", "console", *run_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.cli_env(),
            cwd=str(ROOT),
        )
        assert process.stdin is not None
        process.stdin.write(PASSWORD + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + 40.0 + 2 * self.delivery_wall_s(room.modality, result.pulses)
        killed = False
        while time.monotonic() < deadline and process.poll() is None:
            if unit.firing() and unit.fired() >= trigger:
                process.send_signal(signal.SIGKILL)
                supervision.lose("console process killed")
                killed = True
                break
            time.sleep(0.01)
        if not killed and process.poll() is None:
            process.kill()
            result.hang = True
            result.note("hang: session run never reached the trigger pulse")
        _, err = process.communicate()
        self._scan(err, "session run", result)
        if not killed:
            result.note(f"session run ended before the kill: exit {process.returncode}")
        self._settle(unit, result)
        fired_a = unit.fired()
        supervision.check(result, fired_a)
        session_a = self._latest_session(room, patient)
        if kind == "crash_other":
            self._other_patient(room, unit, result)
        code, _out, err = self.cli(
            ["session", "recover", "--user", "thera", *self._unit_args(room)],
            PASSWORD + "\n",
            60.0,
        )
        self._scan(err, "session recover", result)
        if code == -9:
            result.hang = True
            result.note("hang: session recover did not end in 60 s")
        elif code != 0:
            result.note(f"session recover exit {code}: {_last_line(err)}")
        result.truth = fired_a
        if session_a is None:
            result.note("no session record for the killed console's patient")
            result.mismatch = True
            return
        self.judge(room, session_a, fired_a, result)

    def _other_patient(self, room: Room, unit: Unit, result: RunResult) -> None:
        """Staff switch the faulted unit off and on and treat another patient on it before the
        crashed session is recovered (no console command clears it: those refuse a unit the
        record shows in an open session)."""
        unit.sim.power_cycle()
        before = unit.fired()
        other = RunResult(result.index, room.modality, room.name, [], result.pulses)
        holder: dict[str, Any] = {}
        errors: list[str] = []
        injector = Injector(
            self, room, unit, Supervision(unit, FREQUENCY_HZ[room.modality]), [], other, holder
        )
        patient = self.new_patient(room)
        self._drive(
            room,
            patient,
            self.plan(room.modality, result.pulses),
            injector,
            holder,
            SETUP_S + 2.0 * self.delivery_wall_s(room.modality, result.pulses),
            other,
            errors,
        )
        workflow: SessionWorkflow | None = holder.get("workflow")
        if workflow is None or workflow.state.value not in {"armed", *_DELIVERY_OR_ENDED}:
            # Refusing another session on a unit whose last count is not established is the
            # rule (issue 10 §4): a console/audit refusal before arming is not a finding.
            result.note(f"other patient's session refused: {'; '.join(other.notes + errors)}")
            result.tracebacks += [e for e in errors if not _is_refusal(e)]
            if workflow is not None:
                workflow.close()
            return
        result.tracebacks += errors
        workflow.close()
        fired_b = unit.fired() - before
        self.judge(room, workflow.ctx.session_id, fired_b, other)
        result.note(f"other patient: {other.record_state} {other.recorded}, unit fired {fired_b}")
        if other.mismatch or other.hang:
            result.mismatch = result.mismatch or other.mismatch
            result.hang = result.hang or other.hang
            result.notes += [f"other patient: {n}" for n in other.notes]

    def _latest_session(self, room: Room, patient: str) -> str | None:
        records = room.services.sessions.for_patient(patient)
        return records[-1].session_id if records else None

    def _scan(self, stderr: str, what: str, result: RunResult) -> None:
        if "Traceback" in stderr:
            result.tracebacks.append(f"{what}: {_last_line(stderr)}")

    # --- the end ---------------------------------------------------------------------------
    def verify_trail(self) -> tuple[bool, str]:
        code, out, err = self.cli(["audit", "verify", "--db", str(self.db_path)], None, 120.0)
        text = (out + err).strip()
        return code == 0, _last_line(text)

    def close(self) -> None:
        for room in self.rooms.values():
            with contextlib.suppress(Exception):
                room.services.logout(room.user)
            room.services.close()
            if room.proxy is not None:
                room.proxy.close()
        threading.excepthook = self._previous_hook


class Injector:
    """Injects a run's faults at their pulses while the session delivers (its own thread)."""

    def __init__(
        self,
        campaign: Campaign,
        room: Room,
        unit: Unit,
        supervision: Supervision,
        faults: list[str],
        result: RunResult,
        holder: dict[str, Any],
    ) -> None:
        self.campaign = campaign
        self.room = room
        self.unit = unit
        self.supervision = supervision
        self.result = result
        self.holder = holder
        self.started = threading.Event()
        self._stop = threading.Event()
        rng = campaign.rng
        pulses = result.pulses
        self.plan: list[dict[str, Any]] = []
        at = 0
        for kind in faults:
            at = max(at + 5, rng.randint(pulses // 10, pulses * 6 // 10))
            self.plan.append(
                {
                    "kind": kind,
                    "at_pulse": 0 if kind == "lost_start" else at,
                    "for_s": round(rng.uniform(0.5, 2.0), 2) if kind in TRANSIENT else None,
                }
            )
        result.faults = self.plan
        self._thread = threading.Thread(target=self._run, name="campaign-injector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(15.0)

    def before_start(self) -> None:
        for fault in self.plan:
            if fault["kind"] == "lost_start":
                fault["how"] = self.unit.lose_start_reply()

    def _run(self) -> None:
        try:
            self.started.wait()
            for fault in self.plan:
                if fault["kind"] == "lost_start":
                    continue
                while not self._stop.is_set() and self.unit.fired() < fault["at_pulse"]:
                    if self._ended():
                        fault["injected"] = False
                        return
                    time.sleep(0.01)
                if self._stop.is_set():
                    return
                fault["injected_at"] = self.unit.fired()
                self._inject(fault)
        except Exception as exc:
            self.result.note(f"injector: {_short(exc)}")

    def _ended(self) -> bool:
        workflow = self.holder.get("workflow")
        ended = workflow is not None and workflow.state in ENDED_STATES
        return ended or "ended_at" in self.holder

    def _inject(self, fault: dict[str, Any]) -> None:
        kind = fault["kind"]
        sim = self.unit.sim
        proxy = self.room.proxy
        duration = fault.get("for_s") or 0.0
        if kind == "reset":
            sim.power_cycle()
        elif kind == "cut":
            if self.unit.link_kind == "pty":
                self.supervision.lose("link cut")
            sim.cut_link()
        elif kind == "blackhole":
            assert proxy is not None
            proxy.set_blackhole(True)
            self._hold(duration)
            proxy.set_blackhole(False)
        elif kind == "lossy":
            assert proxy is not None
            proxy.loss = 0.2
            self._hold(duration)
            proxy.loss = 0.0
        elif kind == "drop":
            sim.set_drop_fraction(0.3)
            self._hold(duration)
            sim.set_drop_fraction(0.0)
        elif kind == "corrupt":
            sim.set_corrupt_fraction(0.2)
            self._hold(duration)
            sim.set_corrupt_fraction(0.0)
        elif kind == "delay":
            sim.set_reply_delay(0.08)
            self._hold(duration)
            sim.set_reply_delay(0.0)
        elif kind == "pull":
            sim.remove_applicator()
        elif kind == "overtemp":
            sim.force_overtemp()
        elif kind == "deviation":
            if self.unit.modality == "epat":
                sim.set_pressure_deviation(30.0)
            else:
                sim.set_field_deviation(30.0)
        elif kind == "estop":
            workflow = self.holder.get("workflow")
            if workflow is not None:
                self.campaign.press_emergency_stop(workflow)
        elif kind == "second_host":
            self._second_host(fault)

    def _hold(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _second_host(self, fault: dict[str, Any]) -> None:
        """Another console connects to the unit (or ``device info``), looks, and leaves."""
        link = self.room.link
        try:
            driver = open_device(
                epat_url=link if self.unit.modality == "epat" else None,
                emtt_resource=link if self.unit.modality == "emtt" else None,
                speed=self.campaign.speed,
            )
        except Exception as exc:
            fault["second_host"] = f"refused: {type(exc).__name__}: {exc}"
            return
        if self.unit.link_kind == "pty":
            self.supervision.lose("a second host opened the unit's port")
        try:
            fault["second_host"] = f"connected; saw {driver.status().state.value}"
            self._hold(self.campaign.rng.uniform(1.0, 2.5))  # stays, as a second console would
        except Exception as exc:
            fault["second_host"] = f"connected; then {type(exc).__name__}: {exc}"
        finally:
            _quietly(driver.close)


# ----------------------------------------------------------------------------- helpers
def _end_refused(workflow: SessionWorkflow, result: RunResult) -> None:
    from console.session.states import Action, next_state

    if next_state(workflow.state, Action.ABORT) is not None:
        try:
            workflow.abort("refused before delivery; see the session's refusal events")
        except (TransitionRefused, DeviceError) as exc:
            result.note(f"abort after refusal failed: {exc}")


_DELIVERY_OR_ENDED = frozenset(
    {"delivering", "paused", "completed", "stopped", "aborted", "faulted", "interrupted"}
)


def _is_refusal(error: str) -> bool:
    """An error text from a domain refusal (the console's or the record's own exception)."""
    return error.startswith(("TransitionRefused", "PatientHasUnfinished", "PermissionDenied")) or (
        "Refus" in error.split(":")[0] or "Unconfirmed" in error.split(":")[0]
    )


class _Lane:
    """One long-lived daemon thread running submitted calls in order (a stuck call never
    blocks the interpreter's exit, unlike a ThreadPoolExecutor's worker)."""

    def __init__(self, name: str) -> None:
        self._calls: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.Queue()
        )
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, call: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._calls.put((lambda: call(*args), future))
        return future

    def _run(self) -> None:
        while True:
            call, future = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)


def _find(evidence: Any, key: str) -> Any:
    """The first value under ``key`` anywhere in nested evidence (None if absent)."""
    if isinstance(evidence, Mapping):
        if key in evidence:
            return evidence[key]
        evidence = list(evidence.values())
    if isinstance(evidence, list | tuple):
        for item in evidence:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def _lane(name: str) -> _Lane:
    return _Lane(name)


def _tcp_address(server: Any) -> tuple[str, int]:
    return server.host, int(server.port)


def _quietly(action: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):
        action()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _one_line(result: RunResult) -> str:
    faults = "+".join(f["kind"] for f in result.faults) or "-"
    flags = [
        name
        for name, on in (
            ("MISMATCH", result.mismatch),
            ("unconfirmed", result.unconfirmed),
            ("HANG", result.hang),
            ("UNSUPERVISED", result.unsupervised),
            ("TRACEBACK", bool(result.tracebacks)),
        )
        if on
    ]
    return (
        f"#{result.index:03d} {result.link:<9} {faults:<22} target {result.pulses:>4} "
        f"fired {result.truth!s:>4} record {result.record_state}/{result.recorded} "
        f"{' '.join(flags) or 'ok'} ({result.wall_s:.1f} s)"
        + ("" if not flags else " — " + " | ".join(result.notes + result.tracebacks))
    )


def summarise(campaign: Campaign, verified: tuple[bool, str], wall_s: float) -> dict[str, Any]:
    results = campaign.results
    extra = list(campaign.thread_tracebacks)

    def figures(rows: list[RunResult]) -> dict[str, int]:
        return {
            "runs": len(rows),
            "mismatches": sum(r.mismatch for r in rows),
            "unconfirmed": sum(r.unconfirmed for r in rows),
            "hangs": sum(r.hang for r in rows),
            "unsupervised": sum(r.unsupervised for r in rows),
            "tracebacks": sum(bool(r.tracebacks) for r in rows),
        }

    per_fault: dict[str, dict[str, int]] = {}
    for kind in FAULT_KINDS:
        rows = [r for r in results if any(f["kind"] == kind for f in r.faults)]
        if rows:
            per_fault[kind] = figures(rows)
    per_modality = {
        m: figures([r for r in results if r.modality == m])
        for m in sorted({r.modality for r in results})
    }
    totals = figures(results)
    totals["tracebacks"] += len(extra)
    return {
        "seed": campaign.args.seed,
        "speed": campaign.speed,
        "sessions": campaign.args.sessions,
        "pulses": list(campaign.args.pulse_range),
        **totals,
        "thread_tracebacks": extra,
        "trail_verifies": verified[0],
        "trail_verify_output": verified[1],
        "wall_s": round(wall_s, 1),
        "per_fault": per_fault,
        "per_modality": per_modality,
        "runs_detail": [dataclasses.asdict(r) for r in results],
    }


def print_table(summary: dict[str, Any], out: Any) -> None:
    print(
        f"fault campaign: seed {summary['seed']}, {summary['sessions']} sessions at speed "
        f"{summary['speed']}, {summary['pulses'][0]}-{summary['pulses'][1]} pulses; ground truth "
        "the simulators' pulses_fired_total",
        file=out,
    )
    keys = ("runs", "mismatches", "unconfirmed", "hangs", "unsupervised", "tracebacks")
    print(f"  {'':<14}" + "".join(f"{k:>13}" for k in keys), file=out)
    print(f"  {'ALL':<14}" + "".join(f"{summary[k]:>13}" for k in keys), file=out)
    for name, row in {**summary["per_modality"], **summary["per_fault"]}.items():
        print(f"  {name:<14}" + "".join(f"{row[k]:>13}" for k in keys), file=out)
    print(
        f"  trail verifies: {'yes' if summary['trail_verifies'] else 'NO'} "
        f"({summary['trail_verify_output']}); wall time {summary['wall_s']} s",
        file=out,
    )
    for row in summary["runs_detail"]:
        if (
            row["mismatch"]
            or row["hang"]
            or row["unsupervised"]
            or row["tracebacks"]
            or row["unconfirmed"]
        ):
            faults = "+".join(f["kind"] for f in row["faults"])
            print(
                f"  #{row['index']:03d} {row['link']} {faults}: "
                + " | ".join(row["notes"] + row["tracebacks"]),
                file=out,
            )
    for text in summary["thread_tracebacks"]:
        print(f"  {text}", file=out)


def _pulse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    pair = (int(low), int(high or low))
    if not 1 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError("give pulses as MIN-MAX, e.g. 200-600")
    return pair


def _fault_list(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown fault kinds {unknown}; known: {FAULT_KINDS}")
    return kinds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--modalities", default="epat,emtt")
    parser.add_argument("--pulses", dest="pulse_range", type=_pulse_range, default=(200, 600))
    parser.add_argument(
        "--faults",
        type=_fault_list,
        help=f"only these fault kinds, comma-separated (default all: {', '.join(FAULT_KINDS)})",
    )
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no line per run on stderr")
    parser.add_argument("--keep", type=Path, help="keep the record and logs in this folder")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="fault-campaign-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with _folder(args.keep) as folder:
        campaign = Campaign(args, folder)
        try:
            campaign.run()
        finally:
            campaign.close()
        verified = campaign.verify_trail()
        summary = summarise(campaign, verified, time.monotonic() - started)
    if args.json:
        print(json.dumps(summary, default=str))
        print_table(summary, sys.stderr)
    else:
        print_table(summary, sys.stdout)
    clean = not any(summary[k] for k in ("mismatches", "hangs", "unsupervised", "tracebacks"))
    return 0 if clean and summary["trail_verifies"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
