"""The record projection (audit-format.md, "Record projection"): every record row in the trail.

Every event that creates or changes a record row carries ``data.record`` = ``{"type", "id",
"fields"}`` with the row's complete fields after the change, made here from the table's own
columns (``row_projection``), so a column added to a table is projected without a second list.
``verify_records`` replays those objects in seq order and compares the result with every
record table: a row changed, added or removed behind the trail's back, a signature whose
content hash does not match the record it signs, or a record changed after a "performed"
signature without an amendment is reported with type, id, field and the seq of the event that
last set the row. ``export_records`` writes the store's rows as the format's JSONL.

A migration that adds a column to a record table must append ``record.backfilled`` events for
the rows it changes (as 0004 does), or every existing row would differ from its replay.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import String, Table, cast, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from audit.canonical import canonical_json, to_json_value
from audit.events import Actor, AuditEvent, Subject
from audit.schema import (
    Patient,
    ProgrammeAssignment,
    ProgrammePhase,
    SessionSignature,
    TreatmentSession,
    User,
)
from audit.store import RecordStore, describe

#: record type → its table; the projection covers exactly these tables
RECORD_TABLES: dict[str, Table] = {
    "patient": Patient.__table__,  # type: ignore[dict-item]
    "programme": ProgrammeAssignment.__table__,  # type: ignore[dict-item]
    "programme_phase": ProgrammePhase.__table__,  # type: ignore[dict-item]
    "session": TreatmentSession.__table__,  # type: ignore[dict-item]
    "signature": SessionSignature.__table__,  # type: ignore[dict-item]
    "user": User.__table__,  # type: ignore[dict-item]
}
_TYPE_OF_TABLE = {table.name: kind for kind, table in RECORD_TABLES.items()}
#: the action of an event that carries a further row changed by the same operation
ROW_ACTION = "record.written"
BACKFILL_ACTION = "record.backfilled"
BATCH = 2_000


def credential_digest(value: Any) -> str | None:
    """How a credential column appears in the trail: ``sha256:`` + hex of its stored value."""
    if value is None:
        return None
    return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()


def row_projection(kind: str, row: Any) -> dict[str, Any]:
    """The complete ``fields`` of a row of record type ``kind`` (an ORM object or a Core row):
    every column of its table, dates as ISO text, JSON columns as their value, credentials
    digested; keys renamed where the format names them (``info["record_key"]``)."""
    table = RECORD_TABLES[kind]
    fields: dict[str, Any] = dict(table.info.get("record_constants", {}))
    for column in table.columns:
        value = getattr(row, column.key)
        if column.info.get("credential"):
            value = credential_digest(value)
        elif isinstance(value, date):
            value = value.isoformat()
        fields[column.info.get("record_key", column.name)] = value
    result: dict[str, Any] = to_json_value(fields, f"{kind} record")
    return result


def record_id(kind: str, row: Any) -> str:
    (key,) = RECORD_TABLES[kind].primary_key.columns
    return str(getattr(row, key.key))


def record_of(kind: str, row: Any) -> dict[str, Any]:
    """The ``data.record`` object for a row."""
    return {"type": kind, "id": record_id(kind, row), "fields": row_projection(kind, row)}


def fields_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical bytes of a record's fields (a signature's ``content_hash``)."""
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def append_rows(
    trail: Any,
    session: Session,
    actor: Actor,
    action: str,
    subject: Subject,
    data: Mapping[str, Any],
    rows: Sequence[tuple[str, Any]],
) -> AuditEvent:
    """Append ``action`` carrying the first row's record, then one ``record.written`` event
    (same actor and subject, ``part_of`` the first event's seq) for each further row the
    operation changed: one event carries one row, as the format says. Flushes first, so ids
    given by the database are known."""
    session.flush()
    first, *more = rows
    event: AuditEvent = trail.append_in(
        session, actor, action, subject, {**data, "record": record_of(*first)}
    )
    for row in more:
        trail.append_in(
            session, actor, ROW_ACTION, subject, {"part_of": event.seq, "record": record_of(*row)}
        )
    return event


# --------------------------------------------------------------------------- the store's rows
@contextmanager
def snapshot(store: RecordStore) -> Iterator[Connection]:
    """One read transaction that sees one state of the whole database (SQLite WAL: from its
    first read; PostgreSQL: REPEATABLE READ), so the trail and the tables read in it belong
    together even while consoles keep writing."""
    with store.connection() as conn:
        if store.is_postgres:
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _ordered_rows(conn: Connection, kind: str) -> Iterator[Any]:
    """The rows of one record type ordered by id as text (code-point order on both
    databases), streamed in batches."""
    table = RECORD_TABLES[kind]
    (key,) = table.primary_key.columns
    as_text: ColumnElement[Any] = cast(key, String)
    if conn.dialect.name == "postgresql":
        as_text = as_text.collate("C")
    query = select(table).order_by(as_text)
    yield from conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)


def records_in(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every record row, sorted by type then id (the export's order), read on ``conn``."""
    for kind in sorted(RECORD_TABLES):
        for row in _ordered_rows(conn, kind):
            yield record_of(kind, row)


def store_records(store: RecordStore) -> Iterator[dict[str, Any]]:
    """Every record row of the store, sorted by type then id, from one snapshot."""
    with snapshot(store) as conn:
        yield from records_in(conn)


def _head_seq(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM audit_events").scalar_one())


@dataclass(frozen=True, slots=True)
class RecordsExport:
    path: Path
    records: int
    sha256: str
    last_seq: int  # the trail's head in the same snapshot: the record is the replay up to it


def export_records(store: RecordStore, out: Path) -> RecordsExport:
    """Write the store's rows as ``{"type", "id", "fields"}`` lines (the format's records
    export), through a temporary file renamed at the end. ``last_seq``: the record is the
    trail's replay up to that seq (a trail exported later holds more events)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    digest = hashlib.sha256()
    count = 0
    with snapshot(store) as conn, open(tmp, "w", encoding="utf-8", newline="") as handle:
        last_seq = _head_seq(conn)
        for record in records_in(conn):
            line = canonical_json(record) + "\n"
            digest.update(line.encode("utf-8"))
            handle.write(line)
            count += 1
    tmp.replace(out)
    return RecordsExport(out, count, digest.hexdigest(), last_seq)


# --------------------------------------------------------------------------- verification
@dataclass(frozen=True, slots=True)
class RecordProblem:
    """One difference between the replayed trail and the store, or a signature rule broken."""

    seq: int  # the event that last set the row (0: no event ever did)
    kind: str
    type: str
    id: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.type} {self.id}" + (f" field {self.field}" if self.field else "")
        return f"seq {self.seq}: {where}: {self.message}"


@dataclass(frozen=True, slots=True)
class RecordReport:
    source: str
    records: int
    record_events: int
    problems: tuple[RecordProblem, ...]
    replay_s: float
    compare_s: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (
            f"{self.source}: record of {self.records} rows against {self.record_events} "
            f"record events (replay {self.replay_s:.2f} s, comparison {self.compare_s:.2f} s)"
        )
        return (
            f"{head}: VERIFIED" if self.ok else f"{head}: FAILED — {len(self.problems)} problem(s)"
        )


def _short(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:57] + "..."


class Replay:
    """The trail's ``data.record`` objects replayed in seq order, with the signature rules.

    ``current[(type, id)] = (fields, seq of the event that set them)``; ``performed[(type,
    id)]`` holds the seqs of the "performed" signatures of a record."""

    def __init__(self) -> None:
        self.current: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
        self.performed: dict[tuple[str, str], set[int]] = {}
        self.problems: list[RecordProblem] = []
        self.events = 0

    def add(self, seq: int, data: Mapping[str, Any]) -> None:
        record = data.get("record")
        if not isinstance(record, dict) or set(record) != {"type", "id", "fields"}:
            self.problems.append(
                RecordProblem(seq, "record_malformed", "?", "?", None, "data.record malformed")
            )
            return
        kind, rid, fields = record["type"], record["id"], record["fields"]
        if not isinstance(kind, str) or not isinstance(rid, str) or not isinstance(fields, dict):
            self.problems.append(
                RecordProblem(seq, "record_malformed", str(kind), str(rid), None, "bad record")
            )
            return
        self.events += 1
        key = (kind, rid)
        earlier = self.current.get(key)
        signed = self.performed.get(key)
        if signed and earlier is not None and earlier[0] != fields:
            amends = data.get("amends")
            reason = data.get("reason")
            if amends not in signed or not isinstance(reason, str) or not reason.strip():
                changed = sorted(
                    name
                    for name in set(fields) | set(earlier[0])
                    if fields.get(name) != earlier[0].get(name)
                )
                self.problems.append(
                    RecordProblem(
                        seq,
                        "signed_changed",
                        kind,
                        rid,
                        ",".join(changed),
                        f"changed after its 'performed' signature (seq {min(signed)}) without "
                        "an amendment naming that signature and a reason",
                    )
                )
        self.current[key] = (fields, seq)
        if kind == "signature":
            self._signature(seq, rid, fields)

    def _signature(self, seq: int, rid: str, fields: Mapping[str, Any]) -> None:
        target = (str(fields.get("record_type")), str(fields.get("record_id")))
        signed = self.current.get(target)
        if signed is None:
            self.problems.append(
                RecordProblem(
                    seq,
                    "signature_target",
                    "signature",
                    rid,
                    "record_id",
                    f"signs {target[0]} {target[1]}, which the trail never recorded",
                )
            )
            return
        if fields.get("content_hash") != fields_hash(signed[0]):
            self.problems.append(
                RecordProblem(
                    seq,
                    "signature_hash",
                    "signature",
                    rid,
                    "content_hash",
                    f"does not match {target[0]} {target[1]} as recorded up to seq {seq} "
                    f"(last set at seq {signed[1]})",
                )
            )
        if fields.get("meaning") == "performed":
            self.performed.setdefault(target, set()).add(seq)


def replay_in(conn: Connection) -> Replay:
    """Replay the record objects of the trail read on ``conn`` (streamed; events without a
    record are skipped on a substring test before any JSON is parsed)."""
    replay = Replay()
    marker = '"record":'
    sql = "SELECT seq, data FROM audit_events ORDER BY seq"
    raw = conn.connection
    if conn.dialect.name == "postgresql":  # a server-side cursor: rows arrive in batches
        driver = raw.driver_connection
        assert driver is not None
        cursor = driver.cursor(name="records_replay")
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(5_000):
            for seq, data_text in batch:
                if marker not in data_text:
                    continue
                try:
                    data = json.loads(data_text)
                except ValueError:
                    continue  # the trail check reports it
                if isinstance(data, dict) and "record" in data:
                    replay.add(int(seq), data)
    finally:
        cursor.close()
    return replay


def compare(
    replay: Replay, records: Iterator[Mapping[str, Any]]
) -> tuple[int, list[RecordProblem]]:
    """Compare the store's records with the replay (which is consumed): every field that
    differs, every row no event made, every recorded row the store lacks."""
    problems: list[RecordProblem] = []
    remaining = replay.current
    count = 0
    for record in records:
        count += 1
        kind, rid, fields = record["type"], record["id"], record["fields"]
        entry = remaining.pop((kind, rid), None)
        if entry is None:
            problems.append(
                RecordProblem(
                    0, "extra_row", kind, rid, None, "is in the store but no event recorded it"
                )
            )
            continue
        replayed, seq = entry
        for name in sorted(set(fields) | set(replayed)):
            stored_value = fields.get(name, "<absent>")
            replayed_value = replayed.get(name, "<absent>")
            if stored_value != replayed_value or type(stored_value) is not type(replayed_value):
                problems.append(
                    RecordProblem(
                        seq,
                        "field_differs",
                        kind,
                        rid,
                        name,
                        f"store has {_short(stored_value)}, the trail {_short(replayed_value)}",
                    )
                )
    for (kind, rid), (_fields, seq) in sorted(remaining.items()):
        problems.append(
            RecordProblem(
                seq, "missing_row", kind, rid, None, "is in the trail but not in the store"
            )
        )
    return count, problems


def verify_records(store: RecordStore) -> RecordReport:
    """Replay the trail's record objects and compare them with every record table."""
    started = time.perf_counter()
    with snapshot(store) as conn:
        replay = replay_in(conn)
        replayed = time.perf_counter()
        events, problems = replay.events, list(replay.problems)
        count, differences = compare(replay, records_in(conn))
    problems.extend(differences)
    problems.sort(key=lambda p: (p.seq, p.type, p.id, p.field or "", p.kind))
    return RecordReport(
        source=describe(store.url),
        records=count,
        record_events=events,
        problems=tuple(problems),
        replay_s=replayed - started,
        compare_s=time.perf_counter() - replayed,
    )


def signature_record_seq(session: Session, signature_id: int, audit_seq: int) -> int:
    """The seq of the event that recorded a signature in the projection: its own signing
    event, or the ``record.backfilled`` event of a signature made before migration 0004."""
    backfilled = session.execute(
        text(
            "SELECT max(seq) FROM audit_events WHERE subject_type = 'signature' "
            "AND subject_id = :i AND action = :a"
        ),
        {"i": str(signature_id), "a": BACKFILL_ACTION},
    ).scalar()
    return int(backfilled) if backfilled is not None else audit_seq


def table_type(table_name: str) -> str:
    return _TYPE_OF_TABLE[table_name]
