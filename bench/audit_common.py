"""A realistic large trail for the audit benchmarks, written in bulk.

Appending a million events one commit at a time would take minutes and measure the disk, not the
verifier or the query. This builds the same rows the console would write (same canonical JSON,
hashes and signed checkpoints: one after every session and at least every 1,000 events), for
``patients`` patients with ~50 events per treatment session spread over one year, and inserts
them with ``executemany`` in large transactions.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from audit.canonical import GENESIS_HASH, canonical_json, event_canonical_text, format_ts
from audit.keys import CheckpointSigner
from audit.schema import AUDIT_COLUMNS
from audit.store import RecordStore

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
EVENTS_PER_SESSION = 50
SESSION_ACTIONS = (
    "session.created",
    "screening.decided",
    "session.updated",
    "session.planned",
    "parameters.validated",
    "device.identify",
    "session.connected",
    "session.updated",
    "parameters.confirmed",
    "device.load",
    "device.arm",
    "session.armed",
    "device.start",
    "session.delivering",
)


def populate(
    store: RecordStore,
    signer: CheckpointSigner,
    n_events: int,
    *,
    patients: int = 2000,
    seed: int = 1,
) -> dict[str, object]:
    """Fill an empty, migrated store; returns a few facts for the queries (ids, counts)."""
    rng = random.Random(seed)
    mark = "?" if store.dialect == "sqlite" else "%s"
    insert = (
        f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(AUDIT_COLUMNS))})"
    )
    now = format_ts(YEAR_START)
    patient_ids = [f"pt{i:06d}" for i in range(patients)]
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if store.dialect == "sqlite":
            cur.execute("BEGIN")
        cur.execute(
            f"INSERT INTO users (id, full_name, role, password_hash, active, failed_logins, "
            f"locked, created_at, password_changed_at) VALUES "
            f"({', '.join([mark] * 9)})",
            ("therapist1", "Bench Therapist", "therapist", "x", True, 0, False, now, now),
        )
        cur.executemany(
            f"INSERT INTO patients (id, pseudonym, birth_date, created_at, created_by) "
            f"VALUES ({', '.join([mark] * 5)})",
            [
                (pid, f"KN-{i:06d}", date(1950 + i % 50, 1 + i % 12, 1 + i % 28), now, "bench")
                for i, pid in enumerate(patient_ids)
            ],
        )
        raw.commit()
        seq, prev = 0, GENESIS_HASH
        rows: list[tuple[object, ...]] = []
        sessions: list[tuple[object, ...]] = []
        span = timedelta(days=365) / max(n_events, 1)
        session_no = 0

        def add(actor: str, role: str, action: str, stype: str, sid: str, data: dict) -> None:
            nonlocal seq, prev
            seq += 1
            ts = format_ts(YEAR_START + span * seq)
            data_json = canonical_json(data)
            text = event_canonical_text(
                seq=seq,
                ts=ts,
                actor=actor,
                role=role,
                workstation="room-1",
                action=action,
                subject_type=stype,
                subject_id=sid,
                data_json=data_json,
                prev=prev,
            )
            digest = hashlib.sha256(text.encode()).hexdigest()
            rows.append(
                (seq, 1, ts, actor, role, "room-1", action, stype, sid, data_json, prev, digest)
            )
            prev = digest

        def checkpoint() -> None:
            add(
                "system",
                "system",
                "audit.checkpoint",
                "trail",
                "audit",
                {
                    "head_seq": seq,
                    "head_hash": prev,
                    "key_id": signer.key_id,
                    "signature": signer.sign(seq, prev),
                },
            )

        def flush() -> None:
            if store.dialect == "sqlite":
                cur.execute("BEGIN")
            if sessions:
                cur.executemany(
                    "INSERT INTO treatment_sessions (id, patient_id, protocol_id, "
                    "protocol_version, modality, therapist_id, session_date, state, titrations, "
                    "segments, interruptions, faults, treatment_points, adverse_events, notes, "
                    f"created_at, updated_at) VALUES ({', '.join([mark] * 17)})",
                    sessions,
                )
            cur.executemany(insert, rows)
            raw.commit()
            rows.clear()
            sessions.clear()

        while seq < n_events:
            session_no += 1
            patient = rng.choice(patient_ids)
            sid = f"se{session_no:07d}"
            day = (YEAR_START + span * (seq + 1)).date()
            sessions.append(
                (
                    sid,
                    patient,
                    "knee-pt-epat",
                    "1",
                    "epat",
                    "therapist1",
                    day,
                    "signed",
                    "[]",
                    "[]",
                    "[]",
                    "[]",
                    "[]",
                    "[]",
                    "",
                    now,
                    now,
                )
            )
            add("therapist1", "therapist", "patient.viewed", "patient", patient, {})
            for k in range(EVENTS_PER_SESSION - 1):
                action = SESSION_ACTIONS[k % len(SESSION_ACTIONS)]
                add(
                    "therapist1",
                    "therapist",
                    action,
                    "session",
                    sid,
                    {
                        "parameters": {"pressure_bar": "2.5", "frequency_hz": "8", "pulses": 2000},
                        "delivered": k * 40,
                        "state": "delivering",
                        "ok": True,
                    },
                )
                if seq % 1000 == 0:
                    checkpoint()
            checkpoint()
            if len(rows) >= 50_000:
                flush()
        flush()
        cur.close()
    finally:
        raw.close()
    return {"patients": patient_ids, "events": seq, "sessions": session_no}


@contextmanager
def temporary_database(folder: Path, postgres: bool) -> Iterator[str]:
    """A fresh SQLite file in ``folder``, or a fresh database on the local PostgreSQL server
    (dropped afterwards)."""
    if not postgres:
        yield str(folder / "bench.sqlite3")
        return
    import psycopg

    name = f"therapy_bench_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
