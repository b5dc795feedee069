"""Verifying a trail: every event, every link, every checkpoint signature, every anchor.

A trail verifies when, for every event: ``seq`` is the previous ``seq`` + 1 (from 1), ``prev`` is
the previous event's ``hash``, ``hash`` is SHA-256 of the canonical bytes, no float appears,
every checkpoint's signature is valid for a trusted key and names the event just before it
(``shared/audit-format.md``). This verifier also reports, with the seq where it shows:

- a stored ``data`` text that is not canonical JSON (what is exported would hash differently);
- an event that does not have the format's shape (types, role, action, timestamp);
- more than ``max_checkpoint_gap`` events without a signed checkpoint (the console signs at
  least every 1,000 events, so a trail stripped of its checkpoints shows here);
- an anchor kept outside the database (the witness file, an earlier export) that the trail no
  longer contains: a truncated tail or a rebuilt chain.

It never stops at the first problem. Rows are streamed in batches on the DB-API cursor (no ORM
objects); large trails are split into seq ranges checked by worker processes, whose results are
stitched together at the range boundaries exactly as one pass would link them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from audit.canonical import GENESIS_HASH, canonical_json, quote
from audit.events import CHECKPOINT_ACTION, EVENT_ROLES
from audit.keys import PublicKey, parse_public_keys
from audit.schema import AUDIT_COLUMNS
from audit.store import RecordStore, describe, open_store
from audit.witness import Anchor

ProgressCallback = Callable[[int, int], None]
MAX_CHECKPOINT_GAP = 1001  # seq distance between signed checkpoints (1,000 events + itself)
PARALLEL_THRESHOLD = 200_000
CHUNK_EVENTS = 125_000
BATCH = 5_000
EXPORT_KEYS = frozenset(
    ("v", "seq", "ts", "actor", "role", "workstation", "action", "subject", "data", "prev", "hash")
)
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z").fullmatch
_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+").fullmatch
_ROLES = frozenset(EVENT_ROLES)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One reason the trail does not verify, at the seq where it shows."""

    seq: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerificationReport:
    source: str
    events: int
    checkpoints: int
    last_seq: int
    last_hash: str
    problems: tuple[Problem, ...]
    trusted_keys: tuple[str, ...]
    anchors: tuple[str, ...]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_failing_seq(self) -> int | None:
        return min((p.seq for p in self.problems), default=None)

    def summary(self) -> str:
        rate = self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0
        head = (
            f"{self.source}: {self.events} events, {self.checkpoints} signed checkpoints, "
            f"last seq {self.last_seq} ({rate:,.0f} events/s)"
        )
        if self.ok:
            return f"{head}: VERIFIED"
        return (
            f"{head}: FAILED — {len(self.problems)} problem(s), first at seq "
            f"{self.first_failing_seq}"
        )


# --------------------------------------------------------------------------- the checker
@dataclass
class _Segment:
    """The result of checking one run of rows (the whole trail, or one seq range)."""

    problems: list[Problem] = field(default_factory=list)
    count: int = 0
    first_seq: int | None = None
    first_prev: str | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    checkpoints: list[int] = field(default_factory=list)
    anchors_seen: list[int] = field(default_factory=list)


def _link(problems: list[Problem], last_seq: int, last_hash: str, seq: int, prev: str) -> None:
    """Check that the event ``seq``/``prev`` follows the event ``last_seq``/``last_hash``."""
    if seq == last_seq + 1:
        if prev != last_hash:
            problems.append(
                Problem(
                    seq,
                    "prev_mismatch",
                    f"prev does not match the hash of seq {last_seq} (an event before it was "
                    "altered, removed or inserted)"
                    if last_seq
                    else "prev of the first event is not 64 zeros",
                )
            )
    elif seq > last_seq + 1:
        missing = f"{last_seq + 1}" if seq == last_seq + 2 else f"{last_seq + 1}..{seq - 1}"
        problems.append(
            Problem(
                last_seq + 1,
                "missing",
                f"event(s) {missing} missing: seq {seq} follows seq {last_seq}",
            )
        )
    else:
        problems.append(
            Problem(
                seq,
                "order",
                f"seq {seq} appears after seq {last_seq} (duplicated or out of order)",
            )
        )


def _float_flag(text: str) -> Any:
    raise _FloatFound(text)


class _FloatFound(Exception):
    pass


_scan = json.JSONDecoder(parse_float=_float_flag, parse_constant=_float_flag).scan_once


def _parse_data(text: Any) -> tuple[Any, str | None, str | None]:
    """(data, problem kind, message) for a stored data text; data None when unusable."""
    if type(text) is not str:
        return None, "malformed", "data is not text"
    try:
        data, end = _scan(text, 0)
    except _FloatFound as found:
        return None, "float", f"data holds the floating-point number {found}"
    except (ValueError, StopIteration):
        return None, "malformed", "data is not valid JSON"
    if type(data) is not dict:
        return None, "malformed", "data is not a JSON object"
    if end != len(text) or canonical_json(data) != text:
        return data, "not_canonical", "stored data is not in canonical form (it was rewritten)"
    return data, None, None


def check_rows(
    batches: Iterable[Sequence[tuple[Any, ...]]],
    keys: Mapping[str, PublicKey],
    anchors: Mapping[int, Anchor],
    *,
    start: tuple[int, str] | None = (0, GENESIS_HASH),
    on_batch: Callable[[int], None] | None = None,
) -> _Segment:
    """Check rows ``(seq, v, ts, actor, role, workstation, action, subject_type, subject_id,
    data_text, prev, hash)`` in order. ``start``: the (seq, hash) before the first row, or None
    for a range whose first link is checked when ranges are stitched together.

    The loop is written for speed (it is the 200,000 events/s path): locals only, the C JSON
    scanner and encoder, and strings that repeat (actor, role, action …) quoted once."""
    seg = _Segment()
    problems = seg.problems
    add = problems.append
    sha256 = hashlib.sha256
    scan = _scan
    encode = canonical_json
    ts_ok = _TS
    # (actor, role, workstation, action, subject type) repeat: checked and quoted once each
    quoted: dict[tuple[Any, ...], tuple[str, str, str, str, str]] = {}
    last_seq, last_hash = start if start is not None else (None, None)
    count = 0
    for batch in batches:
        for row in batch:
            seq, v, ts, actor, role, ws, action, stype, sid, data_text, prev, digest = row
            count += 1
            if type(seq) is not int:
                where = last_seq + 1 if last_seq is not None else 0
                add(Problem(where, "malformed", f"seq {seq!r} is not an integer"))
                continue
            # ---- the event's own content (a malformed event still takes part in the links)
            malformed = None
            shape_key = (actor, role, ws, action, stype)
            try:
                quotes = quoted.get(shape_key)
            except TypeError:  # an unhashable value where a string belongs
                quotes = None
            if quotes is None:
                malformed = _shape_problem(actor, role, ws, action, stype)
                if malformed is None:
                    quotes = quoted[shape_key] = (
                        quote(actor),
                        quote(role),
                        quote(ws),
                        quote(action),
                        quote(stype),
                    )
            if malformed is None and (v != 1 or type(v) is not int):
                malformed = f"format version {v!r} is not 1"
            if malformed is None and (type(ts) is not str or not ts_ok(ts)):
                malformed = f"ts {ts!r} is not RFC 3339 UTC with microseconds and Z"
            if malformed is None and (type(sid) is not str or not sid or type(prev) is not str):
                malformed = "subject id or prev is not a non-empty string"
            if malformed is None and type(data_text) is not str:
                malformed = "data is not text"
            if malformed is not None or quotes is None:
                add(Problem(seq, "malformed", malformed or "malformed event"))
            else:
                q_actor, q_role, q_ws, q_action, q_stype = quotes
                data = None
                try:
                    data, end = scan(data_text, 0)
                    if type(data) is not dict or end != len(data_text) or encode(data) != data_text:
                        data = None
                except (_FloatFound, ValueError, StopIteration):
                    data = None
                if data is None:
                    data, kind, message = _parse_data(data_text)
                    if kind is not None and message is not None:
                        add(Problem(seq, kind, message))
                text = (
                    f'{{"action":{q_action},"actor":{q_actor},"data":{data_text},'
                    f'"prev":{quote(prev)},"role":{q_role},"seq":{seq},'
                    f'"subject":{{"id":{quote(sid)},"type":{q_stype}}},'
                    f'"ts":"{ts}","v":1,"workstation":{q_ws}}}'
                )
                if sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != digest:
                    add(
                        Problem(
                            seq,
                            "hash_mismatch",
                            "hash does not match the event's content (the event was altered)",
                        )
                    )
                if action == CHECKPOINT_ACTION and not _checkpoint_problems(
                    add, seq, prev, data, keys
                ):
                    seg.checkpoints.append(seq)
            if seq in anchors:
                anchor = anchors[seq]
                seg.anchors_seen.append(seq)
                if anchor.hash != digest:
                    add(
                        Problem(
                            seq,
                            "anchor_mismatch",
                            f"hash differs from the one recorded in {anchor.source} "
                            "(the trail was rewritten)",
                        )
                    )
            # ---- the link to the event before
            if last_seq is None:
                seg.first_seq, seg.first_prev = seq, prev
            else:
                if seq != last_seq + 1 or prev != last_hash:
                    _link(problems, last_seq, last_hash, seq, prev)
                if seq <= last_seq:
                    continue
            last_seq, last_hash = seq, digest
        if on_batch is not None:
            on_batch(len(batch))
    seg.count = count
    seg.last_seq, seg.last_hash = last_seq, last_hash
    return seg


def _shape_problem(actor: Any, role: Any, ws: Any, action: Any, stype: Any) -> str | None:
    for name, value in (("actor", actor), ("workstation", ws), ("subject type", stype)):
        if type(value) is not str or not value:
            return f"{name} is not a non-empty string"
    if type(role) is not str or role not in _ROLES:
        return f"role {role!r} is not one of {', '.join(EVENT_ROLES)}"
    if type(action) is not str or not _ACTION(action):
        return f"action {action!r} is not a dotted lowercase name"
    return None


def _checkpoint_problems(
    add: Callable[[Problem], None],
    seq: int,
    prev: str,
    data: Any,
    keys: Mapping[str, PublicKey],
) -> bool:
    """Add the checkpoint's problems; True when there were any."""
    if not isinstance(data, dict) or set(data) != {"head_seq", "head_hash", "key_id", "signature"}:
        add(
            Problem(
                seq, "checkpoint", "checkpoint data is not {head_seq, head_hash, key_id, signature}"
            )
        )
        return True
    head_seq, head_hash = data["head_seq"], data["head_hash"]
    key_id, signature = data["key_id"], data["signature"]
    if head_seq != seq - 1 or type(head_seq) is not int or head_hash != prev:
        add(
            Problem(
                seq,
                "checkpoint",
                f"checkpoint names seq {head_seq} / hash {str(head_hash)[:12]}…, not the "
                f"event just before it (seq {seq - 1})",
            )
        )
        return True
    key = keys.get(key_id) if isinstance(key_id, str) else None
    if key is None:
        trusted = ", ".join(sorted(keys)) or "none"
        add(
            Problem(
                seq,
                "checkpoint_key",
                f"checkpoint signed with key {key_id!r}, which is not a trusted key "
                f"(trusted: {trusted})",
            )
        )
        return True
    if not isinstance(signature, str) or not key.verifies(head_seq, head_hash, signature):
        add(
            Problem(
                seq,
                "checkpoint_signature",
                f"checkpoint signature is not valid for key {key_id} ({key.source})",
            )
        )
        return True
    return False


# --------------------------------------------------------------------------- putting it together
def _finish(
    source: str,
    segments: list[_Segment],
    keys: Mapping[str, PublicKey],
    anchors: Mapping[int, Anchor],
    max_checkpoint_gap: int,
    started: float,
    extra: Sequence[Problem] = (),
) -> VerificationReport:
    problems: list[Problem] = list(extra)
    last_seq, last_hash = 0, GENESIS_HASH
    events = 0
    checkpoints: list[int] = []
    seen: set[int] = set()
    for seg in segments:
        problems.extend(seg.problems)
        events += seg.count
        checkpoints.extend(seg.checkpoints)
        seen.update(seg.anchors_seen)
        if seg.count == 0 or seg.last_seq is None:
            continue
        if seg.first_seq is not None:  # a range: link its first row to the previous range
            _link(problems, last_seq, last_hash, seg.first_seq, seg.first_prev or "")
        last_seq, last_hash = seg.last_seq, seg.last_hash or ""
    previous = 0
    for cp in [*sorted(checkpoints), None]:
        end = last_seq if cp is None else cp
        if end - previous > max_checkpoint_gap:
            problems.append(
                Problem(
                    previous + max_checkpoint_gap,
                    "checkpoint_missing",
                    f"no valid signed checkpoint between seq {previous} and seq {end} "
                    f"(one is made at least every {max_checkpoint_gap - 1} events)",
                )
            )
        if cp is not None:
            previous = cp
    for seq, anchor in sorted(anchors.items()):
        if seq not in seen and seq > last_seq:
            problems.append(
                Problem(
                    last_seq + 1,
                    "truncated",
                    f"the trail ends at seq {last_seq}, but {anchor.source} recorded seq {seq} "
                    f"(events {last_seq + 1}..{seq} or more were removed from the tail)",
                )
            )
    unique = {(p.seq, p.kind): p for p in reversed(problems)}  # one per seq and kind
    problems = sorted(unique.values(), key=lambda p: (p.seq, p.kind))
    return VerificationReport(
        source=source,
        events=events,
        checkpoints=len(checkpoints),
        last_seq=last_seq,
        last_hash=last_hash,
        problems=tuple(problems),
        trusted_keys=tuple(sorted(keys)),
        anchors=tuple(f"seq {a.seq} from {a.source}" for a in anchors.values()),
        elapsed_s=time.perf_counter() - started,
    )


def _anchor_map(anchors: Iterable[Anchor]) -> dict[int, Anchor]:
    result: dict[int, Anchor] = {}
    for anchor in anchors:
        result.setdefault(anchor.seq, anchor)
    return result


# --------------------------------------------------------------------------- a database
def trusted_keys_from_store(store: RecordStore) -> tuple[dict[str, PublicKey], list[Problem]]:
    """The public keys registered in the database, each checked against its key id."""
    keys: dict[str, PublicKey] = {}
    problems: list[Problem] = []
    with store.connection() as conn:
        rows = conn.exec_driver_sql(
            "SELECT key_id, public_key_pem, audit_seq FROM signing_keys ORDER BY audit_seq"
        ).all()
    for key_id, pem, audit_seq in rows:
        try:
            (key,) = parse_public_keys(pem, f"the database's signing_keys row {key_id}")
        except Exception as exc:  # any unreadable row is a problem to report, not a crash
            problems.append(Problem(int(audit_seq), "signing_key", str(exc)))
            continue
        if key.key_id != key_id:
            problems.append(
                Problem(
                    int(audit_seq),
                    "signing_key",
                    f"signing_keys row {key_id} holds the key {key.key_id} (altered)",
                )
            )
            continue
        keys[key_id] = key
    return keys, problems


def _db_batches(store: RecordStore, lo: int | None, hi: int | None) -> Iterator[list[Any]]:
    where, params = "", []
    mark = "?" if store.dialect == "sqlite" else "%s"
    if lo is not None:
        where = f" WHERE seq >= {mark} AND seq < {mark}"
        params = [lo, hi]
    sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events{where} ORDER BY seq"
    raw = store.engine.raw_connection()
    try:
        if store.is_postgres:
            cursor = raw.driver_connection.cursor(name=f"verify_{os.getpid()}_{lo}")
            cursor.itersize = BATCH
        else:
            cursor = raw.cursor()
        try:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(BATCH):
                yield batch
        finally:
            cursor.close()
        raw.rollback()
    finally:
        raw.close()


def _verify_range(
    url: str, lo: int, hi: int, key_pems: dict[str, tuple[str, str]], anchors: dict[int, Anchor]
) -> _Segment:
    """Worker process: check seq range [lo, hi) of the database at ``url``."""
    keys = {k: parse_public_keys(pem, source)[0] for k, (pem, source) in key_pems.items()}
    store = open_store(url, check_schema=False)
    try:
        return check_rows(_db_batches(store, lo, hi), keys, anchors, start=None)
    finally:
        store.dispose()


def verify_store(
    store: RecordStore,
    *,
    keys: Mapping[str, PublicKey] | None = None,
    anchors: Iterable[Anchor] = (),
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    max_checkpoint_gap: int = MAX_CHECKPOINT_GAP,
) -> VerificationReport:
    """Verify the trail in ``store``.

    ``keys``: the trusted public keys by key id; None means those registered in the database
    (an auditor passes their own copy instead, which is what exposes a chain rebuilt and
    re-signed with another key). ``progress(done, total)`` is called as rows are checked.
    ``workers``: processes to use (default: one per CPU for SQLite trails over 200,000
    events, else one).
    """
    started = time.perf_counter()
    extra: list[Problem] = []
    if keys is None:
        keys, extra = trusted_keys_from_store(store)
    anchor_map = _anchor_map(anchors)
    with store.connection() as conn:
        lo, hi, total = conn.exec_driver_sql(
            "SELECT min(seq), max(seq), count(*) FROM audit_events"
        ).one()
    total = int(total or 0)
    done = 0

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if workers is None:
        # SQLite: the file is read in every worker at full speed. PostgreSQL: the server's own
        # processes serve the rows, so on one machine more workers only compete with it.
        parallel = total >= PARALLEL_THRESHOLD and not store.is_postgres
        workers = (os.cpu_count() or 1) if parallel else 1
    source = describe(store.url)
    if workers <= 1 or total == 0:
        segment = check_rows(_db_batches(store, None, None), keys, anchor_map, on_batch=on_batch)
        return _finish(source, [segment], keys, anchor_map, max_checkpoint_gap, started, extra)
    ranges = list(range(int(lo), int(hi) + 1, CHUNK_EVENTS))
    key_pems = {k: (key.pem, key.source) for k, key in keys.items()}
    url = store.url.render_as_string(hide_password=False)
    segments: list[_Segment | None] = [None] * len(ranges)
    pending = deque(enumerate(ranges))
    # The helpers take ranges from the front, this process from the back (no helper start-up to
    # wait for): the work balances itself. Spawn, not fork: a forked child must not inherit
    # open database connections or a GUI's threads.
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=get_context("spawn")) as pool:
        running: dict[Any, int] = {}

        def top_up() -> None:
            while pending and sum(not f.done() for f in running) < 2 * (workers - 1):
                index, first = pending.popleft()
                future = pool.submit(
                    _verify_range, url, first, first + CHUNK_EVENTS, key_pems, anchor_map
                )
                running[future] = index

        def collect(done: Iterable[Any]) -> None:
            for future in done:
                index = running.pop(future)
                segments[index] = future.result()
                on_batch(segments[index].count)  # type: ignore[union-attr]

        top_up()
        while pending:
            index, first = pending.pop()
            segments[index] = check_rows(
                _db_batches(store, first, first + CHUNK_EVENTS), keys, anchor_map, start=None
            )
            on_batch(segments[index].count)  # type: ignore[union-attr]
            collect([f for f in list(running) if f.done()])
            top_up()
        collect(as_completed(list(running)))
    return _finish(
        source,
        [s for s in segments if s is not None],
        keys,
        anchor_map,
        max_checkpoint_gap,
        started,
        extra,
    )


# --------------------------------------------------------------------------- an export file
def _file_batches(path: Path, problems: list[Problem]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    last_seq = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = _file_row(line, number, last_seq, problems)
            if row is None:
                continue
            if type(row[0]) is int:
                last_seq = max(last_seq, row[0])
            batch.append(row)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _file_row(line: str, number: int, last_seq: int, problems: list[Problem]) -> Any:
    where = last_seq + 1
    try:
        event = json.loads(line, parse_float=_float_flag, parse_constant=_float_flag)
    except _FloatFound as found:
        problems.append(Problem(where, "float", f"line {number} holds the float {found}"))
        event = json.loads(line)
    except ValueError:
        problems.append(Problem(where, "malformed", f"line {number} is not a JSON object"))
        return None
    if not isinstance(event, dict) or set(event) != EXPORT_KEYS:
        got = sorted(event) if isinstance(event, dict) else type(event).__name__
        problems.append(
            Problem(where, "malformed", f"line {number} does not have the event keys ({got})")
        )
        return None
    subject = event["subject"]
    if not isinstance(subject, dict) or set(subject) != {"type", "id"}:
        problems.append(Problem(where, "malformed", f"line {number}: subject is not {{type, id}}"))
        return None
    data = event["data"]
    try:
        data_text = canonical_json(data) if isinstance(data, dict) else "null"
    except (TypeError, ValueError):
        data_text = "null"
    return (
        event["seq"],
        event["v"],
        event["ts"],
        event["actor"],
        event["role"],
        event["workstation"],
        event["action"],
        subject["type"],
        subject["id"],
        data_text,
        event["prev"],
        event["hash"],
    )


def verify_file(
    path: Path,
    keys: Mapping[str, PublicKey],
    *,
    anchors: Iterable[Anchor] = (),
    progress: ProgressCallback | None = None,
    max_checkpoint_gap: int = MAX_CHECKPOINT_GAP,
) -> VerificationReport:
    """Verify a JSONL export against the trusted ``keys`` (an auditor's own public keys)."""
    started = time.perf_counter()
    anchor_map = _anchor_map(anchors)
    problems: list[Problem] = []
    done = 0

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, 0)

    segment = check_rows(_file_batches(Path(path), problems), keys, anchor_map, on_batch=on_batch)
    return _finish(str(path), [segment], keys, anchor_map, max_checkpoint_gap, started, problems)
