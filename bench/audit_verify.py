"""Benchmark: verifying a 1,000,000-event trail (events/s; target >= 200,000/s).

Builds a realistic trail (``audit_common.populate``: ~50 events per session, a signed checkpoint
after every session and at least every 1,000 events) in a fresh database, then runs the full
verification (every hash, link, canonical form, float check and checkpoint signature) in one
process and with the default worker processes.

    .venv/bin/python bench/audit_verify.py [--events 1000000] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_common import populate, temporary_database

from audit import CheckpointSigner, open_store
from audit.migrate import upgrade
from audit.verify import verify_store


def _cpu_seconds() -> float:
    """CPU time of this process and its finished worker processes (load-independent)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
        started = time.perf_counter()
        facts = populate(store, signer, args.events)
        print(f"built {facts['events']:,} events in {time.perf_counter() - started:.1f} s")
        print(f"CPUs: {os.cpu_count()}, load average now: {os.getloadavg()[0]:.2f}")
        keys = {signer.key_id: signer.public}
        for label, workers in (("1 process", 1), ("default workers", None)):
            before = _cpu_seconds()
            report = verify_store(store, keys=keys, workers=workers)
            cpu = _cpu_seconds() - before
            assert report.ok, report.problems[:5]
            rate = report.events / report.elapsed_s
            print(
                f"verify ({label}): {report.events:,} events, {report.checkpoints:,} "
                f"checkpoints in {report.elapsed_s:.2f} s = {rate:,.0f} events/s "
                f"(target >= 200,000); CPU {cpu:.2f} s = {report.events / cpu:,.0f} events "
                "per CPU-second"
            )
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
