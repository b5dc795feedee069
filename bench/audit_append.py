"""Benchmark: durable audit appends per second vs raw SQLite inserts of the same rows.

Both sides run on the same disk, in databases with the same schema (indexes and triggers), the
same pragmas (WAL, synchronous=FULL) and one row per commit. The raw side inserts rows
precomputed by the trail (so it does no hashing, no head lookup, no validation); the ratio
trail/raw is the price of the audit trail's bookkeeping. Blocks alternate between the two sides
so disk-cache drift affects both equally; medians of the blocks are reported.

    .venv/bin/python bench/audit_append.py [--dir DIR] [--blocks 8] [--per-block 500]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit import AuditTrail, CheckpointSigner, open_store
from audit.events import Actor, Subject
from audit.migrate import upgrade
from audit.schema import AUDIT_COLUMNS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to test")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--per-block", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="audit-bench-") as tmp:
        folder = Path(tmp)
        trail_db, raw_db = folder / "trail.sqlite3", folder / "raw.sqlite3"
        upgrade(str(trail_db))
        upgrade(str(raw_db))
        store = open_store(str(trail_db))
        trail = AuditTrail(store, CheckpointSigner.generate(), "bench-ws")
        actor = Actor("therapist1", "therapist", "bench-ws")
        subject = Subject("session", "S-000001")

        raw = sqlite3.connect(raw_db, isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        insert = (
            f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})"
        )
        trail_rates, raw_rates, appended = [], [], []
        n = args.per_block
        for block in range(args.blocks):
            start = time.perf_counter()
            for i in range(n):
                appended.append(
                    trail.append(
                        actor,
                        "device.params_set",
                        subject,
                        {"pressure_bar": "2.5", "frequency_hz": "8", "pulses": 2000, "i": i},
                    )
                )
            trail_rates.append(n / (time.perf_counter() - start))
            rows = [e.as_row() for e in appended[block * n : (block + 1) * n]]
            start = time.perf_counter()
            for row in rows:
                raw.execute("BEGIN IMMEDIATE")
                raw.execute(insert, row)
                raw.execute("COMMIT")
            raw_rates.append(n / (time.perf_counter() - start))
        raw.close()
        store.dispose()
    trail_rate, raw_rate = statistics.median(trail_rates), statistics.median(raw_rates)
    print(f"disk folder:            {args.dir or tempfile.gettempdir()}")
    print(f"durable trail appends:  {trail_rate:,.0f} events/s (median of {args.blocks} blocks)")
    print(f"raw SQLite inserts:     {raw_rate:,.0f} rows/s")
    print(f"ratio trail/raw:        {trail_rate / raw_rate:.2f} (target >= 0.80)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
