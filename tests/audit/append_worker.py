"""A separate process appending to a trail, for the concurrency and crash tests.

    python -m tests.audit.append_worker URL KEY_FILE WORKER COUNT [CHECKPOINT_EVERY]

Appends COUNT events (COUNT 0: forever) as workstation ``ws-WORKER`` and prints ``seq hash``
for each one only after it is committed (acknowledged), flushing every line.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import structlog

from audit import Actor, AuditTrail, Subject, load_or_create_signer, open_store


def main(argv: list[str]) -> int:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: acks
    url, key_file, worker, count = argv[0], Path(argv[1]), int(argv[2]), int(argv[3])
    every = int(argv[4]) if len(argv) > 4 else 1000
    signer, _ = load_or_create_signer(key_file)
    store = open_store(url)
    witness = key_file.with_name("witness.json")
    trail = AuditTrail(store, signer, f"ws-{worker}", checkpoint_every=every, witness_path=witness)
    actor = Actor(f"th{worker}", "therapist", f"ws-{worker}")
    numbers = itertools.count() if count == 0 else range(count)
    for n in numbers:
        event = trail.append(
            actor,
            "device.params_set",
            Subject("session", f"se-{worker}"),
            {"worker": worker, "n": n, "pressure_bar": "2.5"},
        )
        sys.stdout.write(f"{event.seq} {event.hash}\n")
        sys.stdout.flush()
    store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
