"""Benchmark: an admin's query — one patient, one month — on a 1,000,000-event trail (< 100 ms).

The query is ``AuditTrail.patient_events``: every event about the patient, their programmes and
their sessions in the window, in seq order (the admin's review of a patient). The trail is built
by ``audit_common.populate`` (2,000 patients, ~50 events per session over one year); the query is
run for 20 different patients, and the median and slowest times are printed.

    .venv/bin/python bench/audit_query.py [--events 1000000] [--postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_common import populate, temporary_database

from audit import AuditTrail, CheckpointSigner, open_store
from audit.migrate import upgrade

MONTH = ("2026-03-01T00:00:00.000000Z", "2026-04-01T00:00:00.000000Z")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true", help="use 127.0.0.1:5432, not SQLite")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp,
        temporary_database(Path(tmp), args.postgres) as url,
    ):
        upgrade(url)
        store = open_store(url)
        signer = CheckpointSigner.generate()
        facts = populate(store, signer, args.events)
        if store.is_postgres:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        trail = AuditTrail(store, signer, "bench-ws")
        patients = random.Random(7).sample(list(facts["patients"]), 20)  # type: ignore[arg-type]
        timings, found = [], []
        for patient in patients:
            start = time.perf_counter()
            events = trail.patient_events(patient, *MONTH)
            timings.append((time.perf_counter() - start) * 1000)
            found.append(len(events))
        store.dispose()
    print(f"trail: {facts['events']:,} events, {facts['sessions']:,} sessions, 2,000 patients")
    print(
        f"query: one patient, {MONTH[0][:10]} .. {MONTH[1][:10]}; events found per patient: "
        f"median {statistics.median(found):.0f}, max {max(found)}"
    )
    print(
        f"time: median {statistics.median(timings):.1f} ms, slowest {max(timings):.1f} ms, "
        f"first (cold) {timings[0]:.1f} ms (target < 100 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
