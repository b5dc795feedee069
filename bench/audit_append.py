"""Benchmark: durable audit appends per second vs raw SQLite inserts of the same rows.

Both sides run on the same disk, in databases with the same schema (indexes and triggers), the
same pragmas (WAL, synchronous=FULL) and one row per commit. The raw side inserts the row the
trail has just appended (so it does no hashing, no head lookup, no validation); the ratio
trail/raw is the price of the audit trail's bookkeeping. The two sides alternate event by event,
so disk and CPU load changes affect both equally.

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
        trail_times, raw_times = [], []
        clock = time.perf_counter
        for _block in range(args.blocks):
            trail_s = raw_s = 0.0
            for i in range(args.per_block):
                # one durable trail append, then one raw insert of the same row: both sides see
                # the same disk and load at the same moment
                start = clock()
                event = trail.append(
                    actor,
                    "device.params_set",
                    subject,
                    {"pressure_bar": "2.5", "frequency_hz": "8", "pulses": 2000, "i": i},
                )
                middle = clock()
                raw.execute("BEGIN IMMEDIATE")
                raw.execute(insert, event.as_row())
                raw.execute("COMMIT")
                end = clock()
                trail_s += middle - start
                raw_s += end - middle
            trail_times.append(trail_s)
            raw_times.append(raw_s)
        raw.close()
        store.dispose()
    n = args.per_block
    trail_rates = [n / t for t in trail_times]
    raw_rates = [n / t for t in raw_times]
    ratios = sorted(r / w for r, w in zip(raw_times, trail_times, strict=True))
    trail_rate, raw_rate = statistics.median(trail_rates), statistics.median(raw_rates)
    print(f"disk folder:            {args.dir or tempfile.gettempdir()}")
    print(f"durable trail appends:  {trail_rate:,.0f} events/s (median of {args.blocks} blocks)")
    print(f"raw SQLite inserts:     {raw_rate:,.0f} rows/s")
    print(
        f"ratio trail/raw:        {statistics.median(ratios):.2f} median of blocks "
        f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}); overall "
        f"{sum(raw_times) / sum(trail_times):.2f} (target >= 0.80)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
