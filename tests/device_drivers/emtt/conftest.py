"""Fixtures for the EMTT tests: a simulated unit on a real TCP socket, and a raw line client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
