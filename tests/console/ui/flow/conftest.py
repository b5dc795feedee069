"""The real main window over the real services, record and simulated units (tests/console).

This folder holds the tests that drive the real window over the real services (its fixtures
override the simulators of tests/console/conftest.py for these tests only).

The simulated units run at the services' own speed factor (``SPEED``, 5x: the EPAT watchdog's
500 ms simulated are 100 ms of wall time, the console heartbeats every 40 ms). They ran at 10x
while the services heartbeat for 5x: a heartbeat every 40 ms against a 50 ms watchdog left
10 ms of margin, and a GUI test (the lock during delivery) tripped it about once in eight runs
(COMM_LOSS). The speed is imported, so the two cannot drift apart again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication

from console.services import ConsoleServices
from console.ui.adapters import ServicesBackend
from console.ui.main_window import MainWindow
from console.ui.theme import apply_theme
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator
from tests.console.conftest import SPEED

GUI_SPEED = SPEED


@pytest.fixture
def epat_sim() -> Iterator[tuple[EpatSimulator, str]]:
    simulator = EpatSimulator(speed=GUI_SPEED, applicator="D20-S")
    with EpatTcpServer(simulator).start() as server:
        yield simulator, server.url


@pytest.fixture
def emtt_sim() -> Iterator[tuple[EmttSimulator, str]]:
    simulator = EmttSimulator(speed=GUI_SPEED)
    with EmttTcpServer(simulator).start() as server:
        yield simulator, server.resource


@pytest.fixture
def window(qtbot, services: ConsoleServices, patient_id: str) -> Iterator[MainWindow]:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app)
    win = MainWindow(ServicesBackend(services))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    try:
        yield win
    finally:
        win.shutdown()
