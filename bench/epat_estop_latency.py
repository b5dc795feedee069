"""Benchmark: ESTOP latency, from the ``emergency_stop()`` call to the unit's acknowledgement,
while the unit streams STATUS every 20 ms and delivers pulses (heartbeats running).

The simulated unit runs in a separate process, real time (speed 1), on TCP loopback. Each
sample: load parameters, arm, start, wait a random 0–40 ms (so the ESTOP lands at every phase
of the stream), then ``emergency_stop()`` is timed until it returns (it returns when the ACK
has arrived, and the unit acts before it answers); CLEAR_FAULT ends the sample.
Prints median, p99 and max (target: p99 ≤ 5 ms).

    .venv/bin/python bench/epat_estop_latency.py [--samples 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.epat_common import SimulatorProcess  # noqa: E402
from device_drivers.epat.driver import EpatDriver  # noqa: E402
from device_drivers.interface import DeviceParameters, DeviceStatus  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(1)
    params = DeviceParameters(Decimal("15.0"), 5000, pressure_bar=Decimal("2.50"))
    latencies: list[float] = []
    statuses = 0

    def count(message: object) -> None:
        nonlocal statuses
        if isinstance(message, DeviceStatus):
            statuses += 1

    with SimulatorProcess() as url, EpatDriver(url) as driver:
        print(f"EPAT unit (simulator, separate process, real time) at {url}")
        driver.add_listener(count)
        driver.start_status_stream(0.020)
        started = time.monotonic()
        for _ in range(args.samples):
            driver.load_parameters(params)
            driver.arm()
            driver.start()
            time.sleep(rng.uniform(0.0, 0.040))
            t0 = time.perf_counter()
            driver.emergency_stop()
            latencies.append(time.perf_counter() - t0)
            driver.clear_fault()
        elapsed = time.monotonic() - started
        stats = driver.link_stats
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"ESTOP call → ACK, {len(latencies)} samples while firing, STATUS every 20 ms:")
    print(f"  median {statistics.median(latencies) * 1e3:.3f} ms")
    print(f"  p99    {p99 * 1e3:.3f} ms")
    print(f"  max    {ordered[-1] * 1e3:.3f} ms")
    print(f"  STATUS frames received meanwhile: {statuses} in {elapsed:.1f} s")
    print(
        f"  link: {stats.retries} retries, {stats.timeouts} timeouts, {stats.crc_errors} CRC errors"
    )
    print(f"  target p99 ≤ 5 ms: {'met' if p99 <= 0.005 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
