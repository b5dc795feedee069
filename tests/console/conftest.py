"""Fixtures for the application layer: a real SQLite record, users, a patient, simulated units."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from console.services import ConsoleConfig, ConsoleServices
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator
from tests.console.session_helpers import Pump

#: Simulated time runs this much faster in session tests (drivers scale heartbeats by it). At
#: 5x the units' watchdogs (500 ms EPAT, 1 s EMTT) leave 100-200 ms of wall time; host stalls of
#: 25-140 ms were measured on a loaded 2-core machine (comm-log gaps), which trip 10-20x ones.
SPEED = 5.0
PASSWORD = "correct horse battery"
SESSION_DATE = date(2026, 11, 24)


def light_hasher() -> PasswordHasher:
    """argon2id with tiny costs: the tests exercise the logic, production keeps its costs."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)


@pytest.fixture
def epat_sim() -> Iterator[tuple[EpatSimulator, str]]:
    simulator = EpatSimulator(speed=SPEED, applicator="D20-S")
    with EpatTcpServer(simulator).start() as server:
        yield simulator, server.url


@pytest.fixture
def emtt_sim() -> Iterator[tuple[EmttSimulator, str]]:
    simulator = EmttSimulator(speed=SPEED)
    with EmttTcpServer(simulator).start() as server:
        yield simulator, server.resource


@pytest.fixture
def services(
    tmp_path: Path, epat_sim: tuple[EpatSimulator, str], emtt_sim: tuple[EmttSimulator, str]
) -> Iterator[ConsoleServices]:
    config = ConsoleConfig(
        db_url=f"sqlite:///{tmp_path / 'record.sqlite3'}",
        signing_key_path=tmp_path / "keys" / "signing-key.pem",
        workstation="ws-test",
        epat_url=epat_sim[1],
        emtt_resource=emtt_sim[1],
        device_speed=SPEED,
        commlog_dir=tmp_path / "commlogs",
        create_schema=True,
    )
    services = ConsoleServices.open(config, hasher=light_hasher())
    services.auth.add_user(None, "admin", "Ada Admin", "admin", PASSWORD)
    admin = services.login("admin", PASSWORD)
    services.auth.add_user(admin, "thera", "Theo Therapist", "therapist", PASSWORD)
    services.auth.add_user(admin, "svc", "Sam Service", "service", PASSWORD)
    services.logout(admin)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture
def therapist(services: ConsoleServices):  # -> SignedInUser
    return services.login("thera", PASSWORD)


@pytest.fixture
def patient_id(services: ConsoleServices, therapist) -> str:
    patient = services.create_patient(therapist, "KNEE-0001", date(1980, 5, 17))
    services.assign_programme(therapist, patient.patient_id, "knee-load-sharing", date(2026, 10, 1))
    return patient.patient_id


@pytest.fixture
def pump() -> Iterator[Pump]:
    pump = Pump()
    try:
        yield pump
    finally:
        pump.close()
