"""How fast is a page of the admin's audit table on a trail of a million events?

Generates a clinic-like trail (``admin_trail.populate_admin_trail``: ~28,000 sessions of 8
therapists on 4 units over two years) in a SQLite file — and with ``--postgres`` also in a fresh
PostgreSQL database — then times the page queries the review table runs: the first page and the
pages after it (keyset: each page starts below the last row's (ts, seq)) for each filter the
admin has, alone and combined. The console's requirement is < 200 ms per page.

    .venv/bin/python bench/admin_audit_page.py [--events 1000000] [--postgres] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from admin_trail import THERAPISTS, UNITS, TrailFacts, populate_admin_trail
from audit_common import temporary_database

from audit.keys import CheckpointSigner
from audit.migrate import upgrade
from audit.store import RecordStore, open_store
from console.admin.audit_query import AuditFilter, AuditQueries

PAGE = 200
PAGES = 5
LIMIT_MS = 200.0


def _cases(facts: TrailFacts) -> list[tuple[str, AuditFilter]]:
    first = datetime.fromisoformat(facts.first_ts.replace("Z", "+00:00"))
    last = datetime.fromisoformat(facts.last_ts.replace("Z", "+00:00"))
    middle = first + (last - first) / 2
    week = (middle, middle + timedelta(days=7))
    old_week = (first + timedelta(days=30), first + timedelta(days=37))
    session = facts.session_ids[len(facts.session_ids) // 3]
    patient = facts.patients[17]
    return [
        ("no filter", AuditFilter()),
        ("one week (middle)", AuditFilter(start=week[0], end=week[1])),
        ("one week (long ago)", AuditFilter(start=old_week[0], end=old_week[1])),
        ("user th03", AuditFilter(actor=THERAPISTS[2])),
        ("user svc1 (rare)", AuditFilter(actor="svc1")),
        ("action device.arm", AuditFilter(action="device.arm")),
        ("action family device.*", AuditFilter(action="device.*")),
        ("action key.created (once)", AuditFilter(action="key.created")),
        ("session", AuditFilter(session_id=session)),
        ("patient (pseudonym)", AuditFilter(patient=f"KN-{17:06d}")),
        ("patient id", AuditFilter(patient=patient)),
        ("device RPW200-00001", AuditFilter(device_serial=UNITS["epat"][0])),
        ("device E100-24-0118", AuditFilter(device_serial=UNITS["emtt"][1])),
        ("user th03 + week", AuditFilter(actor=THERAPISTS[2], start=week[0], end=week[1])),
        ("device + week", AuditFilter(device_serial=UNITS["epat"][1], start=week[0], end=week[1])),
        ("device + device.*", AuditFilter(device_serial=UNITS["emtt"][0], action="device.*")),
        ("user th05 + device.stop", AuditFilter(actor=THERAPISTS[4], action="device.stop")),
        ("user svc1 + device.raw_command", AuditFilter(actor="svc1", action="device.raw_command")),
        ("patient + session.*", AuditFilter(patient=patient, action="session.*")),
        ("nothing matches", AuditFilter(actor="nobody")),
    ]


def _time_filter(queries: AuditQueries, flt: AuditFilter) -> tuple[list[float], int]:
    """Milliseconds for the first page and up to PAGES-1 following pages; rows seen."""
    times: list[float] = []
    rows = 0
    cursor = None
    for _ in range(PAGES):
        started = time.perf_counter()
        page = queries.page(flt, cursor, PAGE)
        times.append((time.perf_counter() - started) * 1000)
        rows += len(page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return times, rows


def run(store: RecordStore, facts: TrailFacts, label: str) -> bool:
    queries = AuditQueries(store)
    queries.page(AuditFilter(), None, PAGE)  # warm the connection pool and the page cache
    started = time.perf_counter()
    actions = queries.actions()
    serials = queries.device_serials()
    lists_ms = (time.perf_counter() - started) * 1000
    print(f"\n{label}: {facts.events:,} events, {facts.sessions:,} sessions")
    print(f"filter lists: {len(actions)} actions, {len(serials)} units in {lists_ms:.1f} ms")
    print(f"{'filter':34s} {'first':>8s} {'next':>8s} {'worst':>8s}  rows (pages of {PAGE})")
    worst_all = 0.0
    for name, flt in _cases(facts):
        times, rows = _time_filter(queries, flt)
        following = statistics.median(times[1:]) if len(times) > 1 else float("nan")
        worst = max(times)
        worst_all = max(worst_all, worst)
        flag = "" if worst < LIMIT_MS else "  <-- over 200 ms"
        print(f"{name:34s} {times[0]:7.1f}  {following:7.1f}  {worst:7.1f}   {rows:5d}{flag}")
    ok = worst_all < LIMIT_MS
    print(f"worst page: {worst_all:.1f} ms ({'within' if ok else 'OVER'} {LIMIT_MS:.0f} ms)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--keep", type=Path, help="keep the SQLite file in this folder")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for postgres in (False, True) if args.postgres else (False,):
            with temporary_database(folder, postgres) as url:
                if not postgres and Path(url).exists():
                    Path(url).unlink()
                upgrade(url)
                store = open_store(url)
                try:
                    started = time.perf_counter()
                    facts = populate_admin_trail(store, CheckpointSigner.generate(), args.events)
                    if postgres:
                        with store.connection() as conn:
                            conn.exec_driver_sql("ANALYZE")
                            conn.commit()
                    made = time.perf_counter() - started
                    kind = "PostgreSQL" if postgres else "SQLite"
                    ok &= run(store, facts, f"{kind} (generated in {made:.0f} s)")
                finally:
                    store.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
