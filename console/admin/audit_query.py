"""Paged, filtered reads of the audit trail for the admin's review table.

The trail may hold millions of events, so nothing here ever loads it whole or skips rows with
OFFSET: a page is the next ``limit`` events after a *cursor* (the last row's ``(ts, seq)``),
newest first, with every filter in SQL so the database's indexes do the work:

- time range, action, user and subject each have a ``(…, ts)`` index, so "newest first within
  the filter" is an index range read that stops after ``limit`` rows;
- a filter that means "any of several subjects" (a patient: the patient, their programmes and
  sessions; a unit: its own events and the sessions treated on it) becomes one top-``limit``
  query per subject type with the ids as an IN list on the subject index, and an action family
  (``device.*``) one top-``limit`` query per action; the database merges the few rows each
  returns. (A single query with OR or a sub-select lets the planner gather every match of a
  busy unit before sorting: half a second on a million events, instead of a few ms.)

Order is by ``(ts, seq)``: ``ts`` is stamped inside the one-writer-at-a-time append, so it is the
seq order whenever the clocks behave; ordering by it lets a time filter be exact and indexed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text

from audit.canonical import format_ts
from audit.events import AuditEvent
from audit.schema import AUDIT_COLUMNS
from audit.store import RecordStore

DEFAULT_PAGE = 200
MAX_PAGE = 1000
#: subject ids one filter may expand to (SQLite binds at most 32,766 values per statement)
MAX_SUBJECTS = 30_000
SUMMARY_CHARS = 160
_COLS = ", ".join(AUDIT_COLUMNS)


class FilterError(ValueError):
    """A filter the admin typed cannot be used; the message says what to change."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the admin narrowed the table to; every field optional (None = any).

    ``start``/``end`` are UTC instants, ``start`` inclusive, ``end`` exclusive. ``action`` is an
    exact action (``device.arm``) or a family ending in ``.*`` (``device.*``). ``patient`` is the
    patient's pseudonym or id.
    """

    start: datetime | None = None
    end: datetime | None = None
    actor: str | None = None
    patient: str | None = None
    device_serial: str | None = None
    action: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise FilterError(f"the {name} time must carry its time zone (UTC)")
        if self.start and self.end and self.start >= self.end:
            raise FilterError("the time range is empty: 'from' must be before 'to'")
        if self.action is not None:
            action = self.action.strip()
            family = action.endswith(".*")
            stem = action[:-2] if family else action
            if not stem or not all(part.isidentifier() for part in stem.split(".")):
                raise FilterError(
                    f"action {self.action!r} must be an action such as 'device.arm' or a family "
                    "such as 'device.*'"
                )

    @property
    def is_empty(self) -> bool:
        return all(
            getattr(self, name) in (None, "")
            for name in (
                "start",
                "end",
                "actor",
                "patient",
                "device_serial",
                "action",
                "session_id",
            )
        )

    def describe(self) -> dict[str, str]:
        """The filter as plain text values (for the audit event that records the query)."""
        out: dict[str, str] = {}
        for name in ("actor", "patient", "device_serial", "action", "session_id"):
            value = getattr(self, name)
            if value:
                out[name] = str(value)
        if self.start is not None:
            out["start"] = format_ts(self.start)
        if self.end is not None:
            out["end"] = format_ts(self.end)
        return out


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Where a page ended: the last row's time and seq (the next page starts below it)."""

    ts: str
    seq: int


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One line of the review table."""

    seq: int
    ts: str
    actor: str
    role: str
    workstation: str
    action: str
    subject_type: str
    subject_id: str
    summary: str

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.ts, self.seq)


@dataclass(frozen=True, slots=True)
class AuditPage:
    rows: tuple[AuditRow, ...]
    #: where the next page starts; None when this page reached the end of the filter
    next_cursor: Cursor | None
    elapsed_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ChainLink:
    """An event with its neighbours in the chain and whether the links hold."""

    event: AuditEvent
    previous: AuditEvent | None
    following: AuditEvent | None
    hash_ok: bool
    prev_link_ok: bool
    next_link_ok: bool | None
    covering_checkpoint: AuditEvent | None
    notes: tuple[str, ...] = field(default=())


def summarise(data_json: str, limit: int = SUMMARY_CHARS) -> str:
    """A one-line reading of an event's data: ``key=value`` pairs, long values shortened."""
    try:
        data = json.loads(data_json)
    except ValueError:
        return data_json[:limit]
    if not isinstance(data, Mapping) or not data:
        return ""
    parts = []
    for key in sorted(data):
        value = data[key]
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(shown) > 48:
            shown = shown[:45] + "…"
        parts.append(f"{key}={shown}")
    line = ", ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _row(raw: Sequence[Any]) -> AuditRow:
    seq, _v, ts, actor, role, ws, action, stype, sid, data, _prev, _hash = raw
    return AuditRow(int(seq), ts, actor, role, ws, action, stype, sid, summarise(data))


class AuditQueries:
    """The SQL behind the review table. Permission checks happen in ``AuditReview``; this class
    only reads (it never appends), so the benchmark can time exactly the page queries."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ lists for the filters
    def actions(self) -> list[str]:
        """Every distinct action in the trail (a skip scan of the action index: one index probe
        per distinct action, not a read of the trail)."""
        sql = (
            "WITH RECURSIVE a(x) AS (SELECT min(action) FROM audit_events UNION ALL "
            "SELECT (SELECT min(action) FROM audit_events WHERE action > a.x) FROM a "
            "WHERE a.x IS NOT NULL) SELECT x FROM a WHERE x IS NOT NULL"
        )
        with self.store.connection() as conn:
            return [r[0] for r in conn.execute(text(sql))]

    def device_serials(self) -> list[str]:
        """Units named in the record: sessions' device serials and device subjects."""
        with self.store.connection() as conn:
            sessions = conn.execute(
                text(
                    "SELECT DISTINCT device_serial FROM treatment_sessions "
                    "WHERE device_serial IS NOT NULL"
                )
            )
            serials = {r[0] for r in sessions}
            devices = conn.execute(
                text(
                    "WITH RECURSIVE d(x) AS (SELECT min(subject_id) FROM audit_events WHERE "
                    "subject_type = 'device' UNION ALL SELECT (SELECT min(subject_id) FROM "
                    "audit_events WHERE subject_type = 'device' AND subject_id > d.x) FROM d "
                    "WHERE d.x IS NOT NULL) SELECT x FROM d WHERE x IS NOT NULL"
                )
            )
            serials |= {r[0] for r in devices}
        return sorted(serials)

    def resolve_patient(self, pseudonym_or_id: str) -> str:
        """The patient id for a pseudonym (or an id); ``FilterError`` when there is none."""
        key = pseudonym_or_id.strip()
        with self.store.connection() as conn:
            row = conn.execute(
                text("SELECT id FROM patients WHERE pseudonym = :k OR id = :k"), {"k": key}
            ).first()
        if row is None:
            raise FilterError(f"there is no patient {key!r}; give the pseudonym, e.g. KN-0042")
        return str(row[0])

    # ------------------------------------------------------------------ pages
    def page(
        self, flt: AuditFilter, after: Cursor | None = None, limit: int = DEFAULT_PAGE
    ) -> AuditPage:
        """The ``limit`` newest events matching ``flt`` strictly below ``after``."""
        if not 1 <= limit <= MAX_PAGE:
            raise FilterError(f"a page holds 1..{MAX_PAGE} rows, not {limit}")
        started = time.perf_counter()
        where, params = self._common_where(flt, after)
        with self.store.connection() as conn:
            subjects = self._subjects(conn, flt)
            actions = self._actions(conn, flt)
            if (actions is not None and not actions) or (subjects is not None and not subjects):
                raw_rows: list[Any] = []  # an empty family, or subject filters that exclude
            elif subjects is not None or (actions is not None and len(actions) > 1):
                raw_rows = self._branches(conn, where, params, limit, subjects, actions)
            else:
                if actions:
                    where = [*where, "action = :action0"]
                    params = {**params, "action0": actions[0]}
                raw_rows = self._single(conn, where, params, limit)
        rows = tuple(_row(r) for r in raw_rows[:limit])
        next_cursor = rows[-1].cursor if len(raw_rows) > limit else None
        return AuditPage(rows, next_cursor, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _common_where(flt: AuditFilter, after: Cursor | None) -> tuple[list[str], dict[str, Any]]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if flt.start is not None:
            where.append("ts >= :start")
            params["start"] = format_ts(flt.start)
        if flt.end is not None:
            where.append("ts < :end")
            params["end"] = format_ts(flt.end)
        if flt.actor:
            where.append("actor = :actor")
            params["actor"] = flt.actor.strip()
        if after is not None:
            # (ts, seq) < (:ts, :seq), written so that both databases use the ts range
            where.append("ts <= :after_ts AND (ts < :after_ts OR seq < :after_seq)")
            params["after_ts"], params["after_seq"] = after.ts, after.seq
        return where, params

    def _actions(self, conn: Any, flt: AuditFilter) -> list[str] | None:
        if not flt.action:
            return None
        action = flt.action.strip()
        if not action.endswith(".*"):
            return [action]
        stem = action[:-1]  # "device."
        upper = stem[:-1] + "/"  # "/" sorts right after "."
        rows = conn.execute(
            text(
                "WITH RECURSIVE a(x) AS (SELECT min(action) FROM audit_events WHERE action >= :lo "
                "AND action < :hi UNION ALL SELECT (SELECT min(action) FROM audit_events WHERE "
                "action > a.x AND action < :hi) FROM a WHERE a.x IS NOT NULL) "
                "SELECT x FROM a WHERE x IS NOT NULL"
            ),
            {"lo": stem, "hi": upper},
        )
        return [r[0] for r in rows]

    def _subjects(self, conn: Any, flt: AuditFilter) -> dict[str, list[str]] | None:
        """The subjects the filter allows, by subject type (None: any subject). Several subject
        filters intersect (a session that is not the patient's gives nothing)."""
        sets: list[set[tuple[str, str]]] = []
        if flt.session_id:
            sets.append({("session", flt.session_id.strip())})
        if flt.patient:
            patient_id = self.resolve_patient(flt.patient)
            found = {("patient", patient_id)}
            found |= self._ids(conn, "session", "treatment_sessions", "patient_id", patient_id)
            found |= self._ids(conn, "programme", "programme_assignments", "patient_id", patient_id)
            sets.append(found)
        if flt.device_serial:
            serial = flt.device_serial.strip()
            found = {("device", serial)}
            found |= self._ids(conn, "session", "treatment_sessions", "device_serial", serial)
            sets.append(found)
        if not sets:
            return None
        by_type: dict[str, list[str]] = {}
        for stype, sid in sorted(set.intersection(*sets)):
            by_type.setdefault(stype, []).append(sid)
        for stype, ids in by_type.items():
            if len(ids) > MAX_SUBJECTS:
                raise FilterError(
                    f"the filter names {len(ids):,} {stype}s; narrow it (a time range, a patient "
                    "or a session) so the review stays fast"
                )
        return by_type

    @staticmethod
    def _ids(conn: Any, stype: str, table: str, column: str, value: str) -> set[tuple[str, str]]:
        rows = conn.execute(text(f"SELECT id FROM {table} WHERE {column} = :v"), {"v": value})
        return {(stype, r[0]) for r in rows}

    def _in_list(self, column: str, name: str) -> str:
        """Membership in a list bound as one value: an array on PostgreSQL (``= ANY``: one
        parameter, planned in a few ms even for 10,000 ids, where an IN list of 10,000
        parameters costs ~50 ms), an expanded IN list on SQLite (which has no arrays)."""
        return f"{column} = ANY(:{name})" if self.store.is_postgres else f"{column} IN :{name}"

    @staticmethod
    def _order_limit(limit: int) -> str:
        return f" ORDER BY ts DESC, seq DESC LIMIT {int(limit) + 1}"

    def _single(self, conn: Any, where: list[str], params: dict[str, Any], limit: int) -> list:
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_COLS} FROM audit_events{clause}{self._order_limit(limit)}"
        return list(conn.execute(text(sql), params))

    def _branches(
        self,
        conn: Any,
        where: list[str],
        params: dict[str, Any],
        limit: int,
        subjects: dict[str, list[str]] | None,
        actions: list[str] | None,
    ) -> list:
        """Top-``limit`` queries merged: one per subject type (its ids as an IN list on the
        subject index) or, without subjects, one per action (each an action-index range)."""
        values: dict[str, Any] = dict(params)
        expanding: list[str] = []
        groups: list[list[str]] = []
        if subjects is not None:
            action_term = []
            if actions is not None:
                values["acts"] = actions
                expanding.append("acts")
                action_term = [self._in_list("action", "acts")]
            for i, (stype, ids) in enumerate(sorted(subjects.items())):
                values[f"st{i}"], values[f"ids{i}"] = stype, ids
                expanding.append(f"ids{i}")
                groups.append(
                    [f"subject_type = :st{i}", self._in_list("subject_id", f"ids{i}"), *action_term]
                )
        else:
            assert actions is not None
            for j, action in enumerate(actions):
                values[f"ac{j}"] = action
                groups.append([f"action = :ac{j}"])
        branches = [
            f"SELECT * FROM (SELECT {_COLS} FROM audit_events WHERE "
            f"{' AND '.join(terms + where)}{self._order_limit(limit)}) b{k}"
            for k, terms in enumerate(groups)
        ]
        sql = text(
            f"SELECT {_COLS} FROM ({' UNION ALL '.join(branches)}) merged{self._order_limit(limit)}"
        )
        if not self.store.is_postgres:
            sql = sql.bindparams(*(bindparam(name, expanding=True) for name in expanding))
        return list(conn.execute(sql, values))

    # ------------------------------------------------------------------ one event
    def event(self, seq: int) -> AuditEvent | None:
        with self.store.connection() as conn:
            row = conn.execute(
                text(f"SELECT {_COLS} FROM audit_events WHERE seq = :s"), {"s": seq}
            ).first()
        return None if row is None else AuditEvent.from_row(tuple(row))

    def chain_link(self, seq: int, verify_signature: Any = None) -> ChainLink | None:
        """The event, its neighbours by seq, whether the links hold, and the first signed
        checkpoint after it (``verify_signature(checkpoint) -> bool`` checks it, if given)."""
        with self.store.connection() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLS} FROM audit_events WHERE seq BETWEEN :a AND :b ORDER BY seq"),
                {"a": seq - 1, "b": seq + 1},
            ).all()
            checkpoint_row = conn.execute(
                text(
                    f"SELECT {_COLS} FROM audit_events WHERE seq > :s AND "
                    "action = 'audit.checkpoint' ORDER BY seq LIMIT 1"
                ),
                {"s": seq},
            ).first()
        events = {int(r[0]): AuditEvent.from_row(tuple(r)) for r in rows}
        event = events.get(seq)
        if event is None:
            return None
        previous, following = events.get(seq - 1), events.get(seq + 1)
        notes: list[str] = []
        hash_ok = event.computed_hash() == event.hash
        if not hash_ok:
            notes.append("the stored hash does not match the event's content (altered)")
        if seq == 1:
            prev_ok = event.prev == "0" * 64
        else:
            prev_ok = previous is not None and event.prev == previous.hash
            if previous is None:
                notes.append(f"event {seq - 1} is missing")
        if not prev_ok:
            notes.append("prev does not match the hash of the event before")
        next_ok = None if following is None else following.prev == event.hash
        if next_ok is False:
            notes.append("the next event does not link to this one")
        checkpoint = None if checkpoint_row is None else AuditEvent.from_row(tuple(checkpoint_row))
        if checkpoint is not None and verify_signature is not None:
            if verify_signature(checkpoint):
                notes.append(
                    f"covered by the signed checkpoint seq {checkpoint.seq} (signature valid)"
                )
            else:
                notes.append(f"the checkpoint seq {checkpoint.seq} does NOT verify")
        elif checkpoint is None:
            notes.append("no signed checkpoint after it yet")
        return ChainLink(
            event, previous, following, hash_ok, prev_ok, next_ok, checkpoint, tuple(notes)
        )


def parse_when(text_value: str, *, end_of_day: bool = False) -> datetime | None:
    """A date or date-time the admin typed (UTC): ``2026-03-01`` or ``2026-03-01 14:30``.

    Empty gives None. A bare date means the start of that day, or with ``end_of_day`` the start
    of the next (so "to 2026-03-01" includes the whole of 1 March)."""
    value = text_value.strip()
    if not value:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise FilterError(
            f"{value!r} is not a date: write 2026-03-01 or 2026-03-01 14:30 (UTC)"
        ) from None
    return day + timedelta(days=1) if end_of_day else day
