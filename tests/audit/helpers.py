"""Shared helpers for the audit tests: actors, filling a trail, and an attacker's raw access."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg

from audit import Actor, AuditTrail, RecordStore, Subject

WORKSTATION = "ws-test"
SYSTEM = Actor.system(WORKSTATION)
ADMIN = Actor("admin1", "admin", WORKSTATION)
THERAPIST = Actor("th1", "therapist", WORKSTATION)
THERAPIST2 = Actor("th2", "therapist", WORKSTATION)
SERVICE = Actor("svc1", "service", WORKSTATION)
SESSION = Subject("session", "se-0001")


def fill(trail: AuditTrail, n: int, actor: Actor = THERAPIST, start: int = 0) -> list[Any]:
    """Append ``n`` varied events (non-ASCII text, nested data, booleans, nulls)."""
    events = []
    for i in range(start, start + n):
        events.append(
            trail.append(
                actor,
                "device.params_set",
                SESSION,
                {
                    "i": i,
                    "parameters": {"pressure_bar": "2.5", "frequency_hz": "8", "pulses": 2000},
                    "note": "Knie rechts, Schmerz ↓ — ok" if i % 2 else None,
                    "ok": i % 3 == 0,
                    "points": [{"x": 120, "y": 340}],
                },
            )
        )
    return events


def attacker_sql(store: RecordStore, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Run SQL on the database as someone with file or superuser access would: with the
    append-only triggers out of the way (the database itself refuses it otherwise)."""
    if store.dialect == "sqlite":
        conn = sqlite3.connect(store.url.database, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for trigger in ("audit_events_no_update", "audit_events_no_delete"):
                conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            for sql, params in statements:
                conn.execute(sql.replace("%s", "?"), tuple(params))
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    url = store.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        # a superuser switches every trigger off, foreign keys included
        conn.execute("SET session_replication_role = replica")
        for sql, params in statements:
            conn.execute(sql, tuple(params))
        conn.commit()


def rows(store: RecordStore) -> list[tuple[Any, ...]]:
    with store.connection() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                "SELECT seq, v, ts, actor, role, workstation, action, subject_type, subject_id, "
                "data, prev, hash FROM audit_events ORDER BY seq"
            )
        ]
