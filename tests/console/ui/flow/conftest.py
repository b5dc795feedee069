"""The real main window over the real services, record and simulated units (tests/console).

This folder holds the tests that drive the real window over the real services (its fixtures
override the simulators of tests/console/conftest.py for these tests only).

The simulated units run 10 times faster here, not 20: the GUI adds a busy thread of its own, and
at 20x the EPAT watchdog (500 ms simulated = 25 ms wall) trips on a loaded two-core CI machine.
At 10x it allows 50 ms; the services still heartbeat for 20x (every 10 ms), which only adds
margin.
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

#: Speed 5 like the other session tests: the unit watchdog then has 100 ms of wall time (at
#: 10 it had 50 ms, and a GUI thread busy under a loaded 2-core machine tripped it: COMM_LOSS).
GUI_SPEED = 5.0


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
