"""Fixtures for the EMTT tests: a simulated unit on a real TCP socket, and a raw line client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from device_drivers.commlog import CommLog
from device_drivers.emtt.driver import EmttDriver
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from tests.device_drivers.emtt.emtt_helpers import Wire


@pytest.fixture
def simulator() -> EmttSimulator:
    return EmttSimulator(speed=1.0, seed=7)


@pytest.fixture
def server(simulator: EmttSimulator) -> Iterator[EmttTcpServer]:
    with EmttTcpServer(simulator) as srv:
        yield srv


@pytest.fixture
def wire(server: EmttTcpServer) -> Iterator[Wire]:
    client = Wire(server.port)
    yield client
    client.close()


#: Speed factor of the driver tests: the 1 s watchdog is 200 ms of wall time, short enough for
#: fast tests and long enough that a loaded machine does not starve the heartbeats past it.
SPEED = 5.0


@pytest.fixture
def fast_simulator() -> EmttSimulator:
    return EmttSimulator(speed=SPEED, seed=11)


@pytest.fixture
def fast_server(fast_simulator: EmttSimulator) -> Iterator[EmttTcpServer]:
    with EmttTcpServer(fast_simulator) as srv:
        yield srv


@pytest.fixture
def commlog() -> CommLog:
    return CommLog()


@pytest.fixture
def driver(fast_server: EmttTcpServer, commlog: CommLog) -> Iterator[EmttDriver]:
    device = EmttDriver(fast_server.resource, heartbeat_interval_s=0.3 / SPEED, commlog=commlog)
    yield device
    device.close()
