"""Benchmark: STATUS stream at 20 ms for 60 s of simulated time — frames lost must be 0.

The simulated unit runs in this process (its counters tell how many STATUS frames it sent) and
is reached over TCP loopback through the driver, during a real delivery: 8.0 Hz, 2.50 bar,
480 pulses = 60 s simulated, with heartbeats and EVENT frames interleaved. Lost = frames the
unit sent − frames the host's listener received; the delivered counts seen must never go
backwards and must end at the target. The stream period is wall time (ICD), so at ``--speed X``
the run takes 60/X s of wall time and carries 3000/X frames.

    .venv/bin/python bench/epat_stream_loss.py [--speed 1]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from device_drivers.epat.constants import State  # noqa: E402
from device_drivers.epat.driver import EpatDriver  # noqa: E402
from device_drivers.epat.server import EpatTcpServer  # noqa: E402
from device_drivers.epat.simulator import EpatSimulator  # noqa: E402
from device_drivers.interface import DeviceParameters, DeviceStatus, UnitState  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speed", type=float, default=1.0, help="simulated-time factor")
    args = parser.parse_args()
    sim = EpatSimulator(speed=args.speed)
    server = EpatTcpServer(sim).start()
    received: list[DeviceStatus] = []
    lock = threading.Lock()

    def collect(message: object) -> None:
        if isinstance(message, DeviceStatus):
            with lock:
                received.append(message)

    params = DeviceParameters(Decimal("8.0"), 480, pressure_bar=Decimal("2.50"))
    try:
        with EpatDriver(server.url, heartbeat_interval_s=0.2 / args.speed) as driver:
            driver.add_listener(collect)
            driver.load_parameters(params)
            driver.arm()
            sent_before = sim.stats().status_frames_sent
            driver.start_status_stream(0.020)
            t0 = time.monotonic()
            driver.start()
            while sim.snapshot().state is State.FIRING:
                time.sleep(0.05)
            driver.stop_status_stream()
            wall = time.monotonic() - t0
            time.sleep(0.1)  # the last frames in flight reach the listener
            sent = sim.stats().status_frames_sent - sent_before
            final = driver.status()
    finally:
        server.stop()
        sim.close()
    with lock:
        counts = [s.delivered for s in received]
        firing = [s for s in received if s.state is UnitState.DELIVERING]
    lost = sent - len(received)
    monotonic = all(a <= b for a, b in itertools.pairwise(counts))
    print(f"STATUS every 20 ms during {final.delivered} pulses at 8.0 Hz (speed {args.speed:g}):")
    print(f"  simulated time {wall * args.speed:.1f} s, wall {wall:.1f} s")
    print(f"  frames sent by the unit {sent}, received by the host {len(received)}")
    print(f"  frames lost = {lost}")
    print(f"  frames while delivering {len(firing)}; delivered count monotonic: {monotonic}")
    print(f"  final state {final.state.value}, delivered {final.delivered}/{final.target}")
    ok = lost == 0 and monotonic and final.delivered == 480
    print(f"  target frames lost = 0: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
