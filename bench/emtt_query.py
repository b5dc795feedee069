"""Benchmark: ``SESS:STAT?`` through ``EmttDriver.status()`` vs a raw pyvisa query.

Two identical simulated units run in separate processes (as a real instrument would be a
separate box); both clients use VISA SOCKET resources with TCP_NODELAY set. In each round the raw
client holds one unit and the driver the other (they swap every round), and the queries are
interleaved one by one, alternating which side goes first, so load changes on a shared machine
hit both alike. Prints the load average, median and p99 round trips, the driver/raw ratio of the
pooled medians (target: at most 1.1) and p99s, and the spread of the per-round ratios.

    .venv/bin/python bench/emtt_query.py [--rounds 6] [--queries 2000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyvisa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from device_drivers.emtt.driver import EmttDriver  # noqa: E402

SERVE = """
import sys, threading
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
server = EmttTcpServer(EmttSimulator()).start()
print(server.resource, flush=True)
sys.stdin.read()
server.stop()
"""


def start_unit() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    resource = proc.stdout.readline().strip()
    if not resource.startswith("TCPIP0::"):
        proc.kill()
        raise SystemExit(f"the simulator did not start: {resource!r}")
    return proc, resource


def one_round(raw_resource: str, driver_resource: str, queries: int) -> tuple[list[float], ...]:
    """(raw, driver) round trips, interleaved query by query."""
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(
        raw_resource, read_termination="\n", write_termination="\n", timeout=200
    )
    sock = inst.visalib.sessions[inst.session].interface  # type: ignore[attr-defined]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples: tuple[list[float], ...] = ([], [])
    clock = time.perf_counter
    try:
        # VisaLink sets TCP_NODELAY on the driver's session's socket
        with EmttDriver(driver_resource) as driver:
            steps = (lambda: inst.query("SESS:STAT?"), driver.status)
            for i in range(queries + 200):  # 200 warm-up
                for k in range(2):
                    which = (i + k) % 2
                    started = clock()
                    steps[which]()
                    elapsed = clock() - started
                    if i >= 200:
                        samples[which].append(elapsed)
    finally:
        inst.close()
        rm.close()
    return samples


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    print(f"{load()} (start)")
    (proc_a, unit_a), (proc_b, unit_b) = start_unit(), start_unit()
    raw: list[float] = []
    driver: list[float] = []
    round_ratios: list[float] = []
    try:
        for n in range(args.rounds):
            resources = (unit_a, unit_b) if n % 2 == 0 else (unit_b, unit_a)
            raw_round, driver_round = one_round(*resources, args.queries)
            round_ratios.append(statistics.median(driver_round) / statistics.median(raw_round))
            raw += raw_round
            driver += driver_round
    finally:
        for proc in (proc_a, proc_b):
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(5)
    print(f"{load()} (end)")
    raw_median, driver_median = statistics.median(raw), statistics.median(driver)
    ratio = driver_median / raw_median
    print(f"units          {unit_a}, {unit_b}  ({args.rounds} rounds x {args.queries} queries)")
    print(f"raw pyvisa     median {raw_median * 1e6:8.1f} us   p99 {p99(raw) * 1e6:8.1f} us")
    print(f"EmttDriver     median {driver_median * 1e6:8.1f} us   p99 {p99(driver) * 1e6:8.1f} us")
    print(
        f"ratio (median) {ratio:.3f}   per round {min(round_ratios):.3f}..{max(round_ratios):.3f}"
        f"   p99 ratio {p99(driver) / p99(raw):.3f}   target <= 1.1   "
        f"{'OK' if ratio <= 1.1 else 'MISSED'}"
    )
    return 0 if ratio <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
