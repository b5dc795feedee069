"""Fixtures for the admin console's application layer, on top of ``tests/console/conftest.py``
(a real SQLite record opened through ``ConsoleServices``, users, a patient, simulated units over
TCP): the signed-in admin, the admin services, a whole treated and signed session, and fresh
PostgreSQL databases for the query tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from console.admin.context import AdminServices
from console.auth import SignedInUser
from console.services import ConsoleConfig, ConsoleServices
from console.session.ports import PlannedParameters
from console.session.states import SessionState
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator
from tests.console.conftest import PASSWORD, light_hasher
from tests.console.session_helpers import Pump, connected_session

PG_HOST = "127.0.0.1:5432"
#: The admin tests treat one short session (150 pulses at 10 Hz: 15 s simulated, 3 s at this
#: speed). A factor of 5 leaves the EPAT unit's 500 ms watchdog 100 ms of wall time: at 20x
#: (25 ms) a busy machine occasionally trips it mid-session (COMM_LOSS), which is not what these
#: tests are about.
SPEED = 5.0
SHORT_PLAN = PlannedParameters(
    frequency_hz=Decimal("10.0"), pulses=150, pressure_bar=Decimal("2.50")
)


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
    """As ``tests/console/conftest.py`` (admin, thera, svc), with the units at ``SPEED``."""
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
    opened = ConsoleServices.open(config, hasher=light_hasher())
    opened.auth.add_user(None, "admin", "Ada Admin", "admin", PASSWORD)
    admin = opened.login("admin", PASSWORD)
    opened.auth.add_user(admin, "thera", "Theo Therapist", "therapist", PASSWORD)
    opened.auth.add_user(admin, "svc", "Sam Service", "service", PASSWORD)
    opened.logout(admin)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def admin(services: ConsoleServices) -> SignedInUser:
    return services.login("admin", PASSWORD)


@pytest.fixture
def admin_services(services: ConsoleServices, tmp_path: Path) -> AdminServices:
    return AdminServices.from_console(services, tmp_path / "policy")


@dataclass(frozen=True)
class TreatedSession:
    session_id: str
    delivered: int
    pressure_after_titration: str


def treat_and_sign(
    services: ConsoleServices, therapist: SignedInUser, patient_id: str, pump: Pump
) -> TreatedSession:
    """A whole EPAT session through the real workflow and simulator: screened, planned with an
    override, paused and titrated, completed, documented (pain 7 → 3, reddening) and signed."""
    workflow = connected_session(services, therapist, patient_id, pump, plan=SHORT_PLAN)
    workflow.arm()
    workflow.start()
    pump.until(workflow, lambda: workflow.delivered >= 50)
    workflow.pause()
    workflow.titrate(pressure_bar=Decimal("2.00"))
    workflow.resume()
    pump.until(workflow, lambda: workflow.state is SessionState.COMPLETED)
    workflow.document(
        pain_before=7,
        pain_after=3,
        adverse_events=["reddening"],
        treatment_points=[{"x": 410, "y": 600}],
        notes="tolerated well",
    )
    workflow.sign(PASSWORD, user_name="thera")
    workflow.close()
    return TreatedSession(workflow.ctx.session_id, workflow.delivered, "2.00")


@pytest.fixture
def treated(
    services: ConsoleServices, therapist: SignedInUser, patient_id: str, pump: Pump
) -> TreatedSession:
    return treat_and_sign(services, therapist, patient_id, pump)


def _pg_user() -> str:
    errors = []
    for user in ("postgres", "root"):
        try:
            psycopg.connect(f"postgresql://{user}@{PG_HOST}/postgres", connect_timeout=5).close()
            return user
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    pytest.fail(
        f"PostgreSQL is not reachable on {PG_HOST} ({'; '.join(errors)}); start it "
        "(.ci/run does) and run the tests again",
        pytrace=False,
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    user = _pg_user()
    name = f"therapy_admin_{secrets.token_hex(6)}"
    server = f"postgresql://{user}@{PG_HOST}/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
