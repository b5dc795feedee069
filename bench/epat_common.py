"""Serve a simulated EPAT unit in a separate process for the EPAT benchmarks.

The measured host must not share the GIL with the simulator (a real unit is a separate box),
so the benchmarks start the unit in a child process and talk to it over TCP loopback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SERVE = """
import sys
sys.path.insert(0, sys.argv[2])
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator

sim = EpatSimulator(speed=float(sys.argv[1]))
server = EpatTcpServer(sim).start()
print(server.url, flush=True)
sys.stdin.read()  # serve until the parent closes our standard input
server.stop()
sim.close()
"""


class SimulatorProcess:
    """``with SimulatorProcess(speed) as url:`` — a unit on ``socket://127.0.0.1:PORT``."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.speed), str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        url = self._process.stdout.readline().strip()
        if not url.startswith("socket://"):
            self.__exit__()
            raise RuntimeError("the simulator process did not start")
        return url

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
