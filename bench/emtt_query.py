"""Benchmark: ``SESS:STAT?`` through ``EmttDriver.status()`` vs a raw pyvisa query.

The simulated unit runs in a separate process (as a real instrument would be a separate box);
both clients use the same VISA resource with TCP_NODELAY set, one after the other (the unit
serves one host at a time), in alternating rounds so drift hits both alike. Prints median and
p99 round trips and the driver/raw ratio of the medians (target: at most 1.2).

    .venv/bin/python bench/emtt_query.py [--rounds 5] [--queries 2000]
"""

from __future__ import annotations

import argparse
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


def time_raw(resource: str, queries: int) -> list[float]:
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=200)
    sock = inst.visalib.sessions[inst.session].interface  # type: ignore[attr-defined]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for _ in range(200):  # warm-up
            inst.query("SESS:STAT?")
        samples = []
        for _ in range(queries):
            started = time.perf_counter()
            inst.query("SESS:STAT?")
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        inst.close()
        rm.close()


def time_driver(resource: str, queries: int) -> list[float]:
    with EmttDriver(resource) as driver:  # VisaLink sets TCP_NODELAY on the session's socket
        for _ in range(200):
            driver.status()
        samples = []
        for _ in range(queries):
            started = time.perf_counter()
            driver.status()
            samples.append(time.perf_counter() - started)
        return samples


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    proc, resource = start_unit()
    raw: list[float] = []
    driver: list[float] = []
    round_ratios: list[float] = []
    try:
        for _ in range(args.rounds):
            raw_round = time_raw(resource, args.queries)
            driver_round = time_driver(resource, args.queries)
            round_ratios.append(statistics.median(driver_round) / statistics.median(raw_round))
            raw += raw_round
            driver += driver_round
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(5)
    raw_median, driver_median = statistics.median(raw), statistics.median(driver)
    ratio = driver_median / raw_median
    print(f"resource       {resource}  ({args.rounds} rounds x {args.queries} queries each)")
    print(f"raw pyvisa     median {raw_median * 1e6:8.1f} us   p99 {p99(raw) * 1e6:8.1f} us")
    print(f"EmttDriver     median {driver_median * 1e6:8.1f} us   p99 {p99(driver) * 1e6:8.1f} us")
    print(
        f"ratio (median) {ratio:.3f}   per round {min(round_ratios):.3f}..{max(round_ratios):.3f}"
        f"   target <= 1.2   {'OK' if ratio <= 1.2 else 'MISSED'}"
    )
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
