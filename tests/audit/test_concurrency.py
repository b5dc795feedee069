"""One writer at a time per chain, across processes: no gaps, no forks, nothing lost."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from audit import AuditTrail, RecordStore, load_or_create_signer, open_store
from audit.migrate import upgrade
from audit.verify import verify_store
from audit.witness import read_witness

ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, key: Path, worker: int, count: int, every: int = 1000) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.audit.append_worker",
            url,
            str(key),
            str(worker),
            str(count),
            str(every),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_concurrently(url: str, tmp_path: Path, workers: int, each: int) -> None:
    upgrade(url)
    key = tmp_path / "key.pem"
    signer, created = load_or_create_signer(key)
    store = open_store(url)
    AuditTrail(store, signer, "ws-main").register_signer(created)
    procs = [_spawn(url, key, w, each) for w in range(workers)]
    acknowledged: dict[int, list[tuple[int, str]]] = {}
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=150)
        assert proc.returncode == 0, err
        acknowledged[w] = [(int(s), h) for s, h in (line.split() for line in out.splitlines())]
    with store.connection() as conn:
        table = conn.exec_driver_sql(
            "SELECT seq, hash, action, data FROM audit_events ORDER BY seq"
        ).all()
    seqs = [r[0] for r in table]
    assert seqs == list(range(1, len(seqs) + 1)), "gaps or duplicates in seq"
    by_worker: dict[int, list[int]] = defaultdict(list)
    for _seq, _hash, action, data in table:
        if action == "device.params_set":
            payload = json.loads(data)
            by_worker[payload["worker"]].append(payload["n"])
    assert sum(len(v) for v in by_worker.values()) == workers * each
    for w in range(workers):
        assert by_worker[w] == list(range(each)), f"worker {w} lost or reordered events"
        stored = {s: h for s, h, _, _ in table}
        assert all(stored[s] == h for s, h in acknowledged[w])
    checkpoints = sum(1 for r in table if r[2] == "audit.checkpoint")
    assert len(table) == 1 + workers * each + checkpoints  # key.created + appends + checkpoints
    assert checkpoints == (workers * each) // 1000 + ((workers * each) // 1000) // 1000
    report = verify_store(store, keys={signer.key_id: signer.public})
    assert report.ok, report.problems[:5]
    store.dispose()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.req("AUD-CHAIN-2")
def test_eight_processes_append_500_each_to_one_postgresql_chain(
    pg_url: str, tmp_path: Path
) -> None:
    _run_concurrently(pg_url, tmp_path, workers=8, each=500)


@pytest.mark.req("AUD-CHAIN-2")
def test_four_processes_append_to_one_sqlite_chain(sqlite_url: str, tmp_path: Path) -> None:
    _run_concurrently(sqlite_url, tmp_path, workers=4, each=150)


@pytest.mark.slow
@pytest.mark.req("AUD-CHAIN-3")
def test_sigkill_while_appending_loses_no_acknowledged_event(
    sqlite_url: str, tmp_path: Path
) -> None:
    upgrade(sqlite_url)
    key = tmp_path / "key.pem"
    signer, created = load_or_create_signer(key)
    store: RecordStore = open_store(sqlite_url)
    AuditTrail(store, signer, "ws-main").register_signer(created)
    store.dispose()
    rng = random.Random(4)
    acknowledged: list[tuple[int, str]] = []
    kills = 0
    deadline = time.monotonic() + 12
    while kills < 6 and time.monotonic() < deadline:
        proc = _spawn(sqlite_url, key, 1, 0, every=40)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # running: now let it append for a random while
        assert first, proc.stderr.read() if proc.stderr else ""
        lines = [first]
        stop_at = time.monotonic() + rng.uniform(0.02, 0.25)
        while time.monotonic() < stop_at:
            lines.append(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # only whole lines are acknowledgements; a line torn by the kill is not
        for line in ("".join(lines) + rest).split("\n")[:-1]:
            seq, digest = line.split()
            acknowledged.append((int(seq), digest))
        kills += 1
    assert kills >= 3 and len(acknowledged) > 50
    store = open_store(sqlite_url)
    try:
        with store.connection() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            stored = dict(conn.exec_driver_sql("SELECT seq, hash FROM audit_events").all())
        missing = [(s, h) for s, h in acknowledged if stored.get(s) != h]
        assert missing == [], f"acknowledged but lost or changed: {missing[:5]}"
        witness = read_witness(tmp_path / "witness.json", str(store.url))
        anchors = [witness] if witness is not None else []
        report = verify_store(store, keys={signer.key_id: signer.public}, anchors=anchors)
        assert report.ok, report.problems[:5]
        assert report.checkpoints >= 1
    finally:
        store.dispose()
