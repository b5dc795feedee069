"""Benchmark: GET_STATUS through ``EpatDriver.status()`` vs a raw pyserial write/read.

The simulated unit runs in a separate process (a real unit is a separate box, and the simulator
must not share the host's GIL). Both clients open the same link (``socket://`` on TCP loopback,
TCP_NODELAY set) one after the other (the unit serves one host at a time), in alternating rounds
so drift hits both alike. The raw client writes the same frames (GET_STATUS, a new SEQ each
time, so the unit executes every one) and reads the 36-byte reply; the driver does the same plus
its reader thread, reply matching, decoding into a ``DeviceStatus`` and its bookkeeping.
Prints median and p99 round trips and the driver/raw ratio of the medians (target ≤ 1.3).

    .venv/bin/python bench/epat_roundtrip.py [--rounds 5] [--per-round 2000]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.epat_common import SimulatorProcess  # noqa: E402
from device_drivers.epat.codec import encode_frame  # noqa: E402
from device_drivers.epat.constants import Command  # noqa: E402
from device_drivers.epat.driver import EpatDriver  # noqa: E402

REPLY_LEN = 1 + 1 + 2 + 30 + 2  # SOF, LEN, SEQ, CMD, status block, CRC


def raw_round(url: str, count: int) -> list[float]:
    port = serial.serial_for_url(url, timeout=1.0)
    port._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    frames = [encode_frame(seq, Command.GET_STATUS) for seq in range(1, 256)]
    times: list[float] = []
    try:
        for i in range(count + 50):
            frame = frames[i % 255]
            started = time.perf_counter()
            port.write(frame)
            reply = port.read(REPLY_LEN)
            elapsed = time.perf_counter() - started
            if len(reply) != REPLY_LEN or reply[2] != frame[2]:
                raise RuntimeError(f"raw client got {reply.hex()} for {frame.hex()}")
            if i >= 50:  # warm-up excluded
                times.append(elapsed)
    finally:
        port.close()
    return times


def driver_round(url: str, count: int) -> tuple[list[float], list[float]]:
    """``status()`` round trips, and (for the breakdown) bare exchanges without decoding."""
    times: list[float] = []
    bare: list[float] = []
    with EpatDriver(url) as driver:
        for i in range(count + 50):
            started = time.perf_counter()
            driver.status()
            elapsed = time.perf_counter() - started
            if i >= 50:
                times.append(elapsed)
        channel = driver._channel  # the same path minus the DeviceStatus decoding
        for i in range(count // 4 + 50):
            started = time.perf_counter()
            channel.exchange(Command.GET_STATUS)
            elapsed = time.perf_counter() - started
            if i >= 50:
                bare.append(elapsed)
    return times, bare


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=2000)
    args = parser.parse_args()
    raw: list[float] = []
    drv: list[float] = []
    bare: list[float] = []
    with SimulatorProcess() as url:
        print(f"EPAT unit (simulator, separate process) at {url}")
        for n in range(args.rounds):
            raw += raw_round(url, args.per_round)
            times, exchanges = driver_round(url, args.per_round)
            drv += times
            bare += exchanges
            print(f"  round {n + 1}/{args.rounds} done", flush=True)
    raw_med, drv_med = statistics.median(raw), statistics.median(drv)
    print(f"GET_STATUS round trip over TCP loopback, {len(raw)} samples each:")
    print(f"  raw pyserial   median {raw_med * 1e6:7.1f} µs   p99 {p99(raw) * 1e6:7.1f} µs")
    print(f"  EpatDriver     median {drv_med * 1e6:7.1f} µs   p99 {p99(drv) * 1e6:7.1f} µs")
    print(
        f"  (driver frame exchange without decoding: median "
        f"{statistics.median(bare) * 1e6:7.1f} µs, {statistics.median(bare) / raw_med:.2f}× raw)"
    )
    ratio = drv_med / raw_med
    print(f"  ratio driver/raw (medians) {ratio:.2f}  (p99 ratio {p99(drv) / p99(raw):.2f})")
    print(f"  target ≤ 1.30: {'met' if ratio <= 1.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
