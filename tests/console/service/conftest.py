"""Fixtures for the service engineer's application layer: the record and simulated units of
``tests/console/admin/conftest.py`` (units at speed 10), the signed-in service engineer, and the
service services with a room settings file in the test's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.auth import SignedInUser
from console.service.context import ServiceServices
from console.services import ConsoleServices
from tests.console.admin.conftest import (  # noqa: F401 (fixtures)
    SPEED,
    emtt_sim,
    epat_sim,
    services,
)
from tests.console.conftest import PASSWORD


@pytest.fixture
def engineer(services: ConsoleServices) -> SignedInUser:  # noqa: F811
    return services.login("svc", PASSWORD)


@pytest.fixture
def service(services: ConsoleServices, tmp_path: Path) -> ServiceServices:  # noqa: F811
    return ServiceServices.from_console(services, tmp_path / "rooms.json")
