"""The service command line against simulated units over real links.

Every device command signs a service user in (password on the first line of standard input),
so each test runs on a real SQLite installation with an admin, a service user and a therapist.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from console.cli import EXIT_AUTH, EXIT_UNIT_BUSY, EXIT_UNIT_LINK, EXIT_USAGE, main
from console.devices import open_device
from console.services import ConsoleConfig, ConsoleServices
from device_drivers import simcontrol
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.constants import State
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import REFERENCE_SERIAL, EpatSimulator
from device_drivers.interface import DeviceParameters, UnitState
from tests.console.cli_helpers import cli_environment, run_cli
from tests.console.conftest import PASSWORD, light_hasher
from tests.console.session_helpers import Pump, connected_session

SPEED = 20.0


@pytest.fixture
def epat() -> Iterator[tuple[EpatSimulator, str]]:
    simulator = EpatSimulator(speed=SPEED)
    with EpatTcpServer(simulator).start() as server:
        yield simulator, server.url


@pytest.fixture
def emtt() -> Iterator[tuple[EmttSimulator, str]]:
    simulator = EmttSimulator(speed=SPEED)
    with EmttTcpServer(simulator).start() as server:
        yield simulator, server.resource


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A record with an admin, a service user ``svc`` and a therapist ``thera``; the console's
    environment points at it. Yields the database URL."""
    home = tmp_path / "installation"
    config = ConsoleConfig(
        db_url=f"sqlite:///{home / 'record.sqlite3'}",
        signing_key_path=home / "keys" / "signing-key.pem",
        workstation="ws-test",
        create_schema=True,
    )
    services = ConsoleServices.open(config, hasher=light_hasher())
    try:
        services.auth.add_user(None, "admin", "Ada Admin", "admin", PASSWORD)
        admin = services.login("admin", PASSWORD)
        services.auth.add_user(admin, "svc", "Sam Service", "service", PASSWORD)
        services.auth.add_user(admin, "thera", "Theo Therapist", "therapist", PASSWORD)
    finally:
        services.close()
    for name, value in cli_environment(services, home).items():
        monkeypatch.setenv(name, value)
    yield config.db_url


def run(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    user: str = "svc",
    password: str = PASSWORD,
) -> tuple[int, str, str]:
    """``therapy-console ARGV --user USER`` in-process, the password on standard input."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    code = main([*argv, "--user", user])
    out, err = capsys.readouterr()
    return code, out, err


def audit_actions(db_url: str) -> list[tuple[str, str, str]]:
    """(actor, action, subject id) of the device.* events, oldest first."""
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute(
            "SELECT actor, action, subject_id FROM audit_events "
            "WHERE action LIKE 'device.%' ORDER BY seq"
        )
        return [tuple(row) for row in rows.fetchall()]


pytestmark = pytest.mark.usefixtures("installation")


@pytest.mark.req("CLI-DEV-1")
def test_info_shows_identity_envelope_and_wear(
    epat: tuple[EpatSimulator, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    simulator, url = epat
    simulator.fit_applicator("R15", shots_used=905_000)
    code, out, _ = run(
        ["device", "info", "--epat", url, "--speed", str(SPEED)], capsys, monkeypatch
    )
    assert code == 0
    assert "RPW-200" in out and "1.00–5.00 bar" in out
    assert "905,000 of 1,000,000 shots = 90.5 %" in out and "WARNING" in out


@pytest.mark.req("CLI-DEV-1")
def test_info_as_json_for_emtt(
    emtt: tuple[EmttSimulator, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, resource = emtt
    code, out, _ = run(["device", "info", "--emtt", resource, "--json"], capsys, monkeypatch)
    assert code == 0
    info = json.loads(out)
    assert info["identity"]["model"] == "EMT-100"
    assert info["envelope"]["field_mt"]["maximum"] == "80.0"
    assert info["applicator"]["type"] == "EMT-A1"


@pytest.mark.req("CLI-DEV-1")
@pytest.mark.parametrize("unit", ["epat", "emtt"])
def test_selftest_events_and_watch(
    unit: str,
    epat: tuple[EpatSimulator, str],
    emtt: tuple[EmttSimulator, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link = ["--epat", epat[1]] if unit == "epat" else ["--emtt", emtt[1]]
    code, out, _ = run(["device", "selftest", *link], capsys, monkeypatch)
    assert (code, out.strip()) == (0, "Self-test passed.")
    code, out, _ = run(
        ["device", "watch", *link, "--count", "2", "--period", "0.05"], capsys, monkeypatch
    )
    assert code == 0
    assert out.count("IDLE") == 2
    code, out, _ = run(["device", "events", *link, "--json"], capsys, monkeypatch)
    assert code == 0
    assert isinstance(json.loads(out), list)


@pytest.mark.req("CLI-DEV-2")
def test_raw_command_decodes_the_reply_and_is_refused_while_armed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from decimal import Decimal

    from console.devices import open_device
    from device_drivers.interface import DeviceParameters

    # Real time: this driver's heartbeats keep the unit armed (a 500 ms watchdog) while the
    # command signs in on a loaded machine.
    simulator = EpatSimulator(speed=1.0)
    with EpatTcpServer(simulator).start() as server:
        url = server.url
        code, out, _ = run(["device", "raw", "--epat", url, "GET_STATUS"], capsys, monkeypatch)
        assert code == 0 and "ACK" in out and "IDLE" in out
        with open_device(epat_url=url) as driver:
            driver.load_parameters(
                DeviceParameters(
                    frequency_hz=Decimal("8.0"), pulses=100, pressure_bar=Decimal("2.50")
                )
            )
            driver.arm()
            assert driver.status().state is UnitState.ARMED
            # The unit is in this driver's treatment: the service command is refused on
            # opening, sends nothing and keeps nothing alive (CLI-DEV-4, UnitInTreatment).
            code, out, err = run(["device", "raw", "--epat", url, "START"], capsys, monkeypatch)
        assert code == EXIT_UNIT_BUSY and out == ""
        assert len(err.strip().splitlines()) == 1
        assert "another console's treatment" in err and "state ARMED" in err
        assert simulator.snapshot().delivered == 0


@pytest.mark.req("CLI-DEV-3")
@pytest.mark.parametrize(
    "link",
    [
        ["--epat", "socket://127.0.0.1:1"],
        ["--epat", "/dev/tty-does-not-exist"],
        ["--epat", "nosuchscheme://x"],
        ["--emtt", "TCPIP0::127.0.0.1::1::SOCKET"],
        ["--emtt", "NOT-A-RESOURCE"],
    ],
)
def test_unreachable_units_give_one_line_and_non_zero_exit(
    link: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run(["device", "info", *link], capsys, monkeypatch)
    assert code == EXIT_UNIT_LINK
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("therapy-console: error: cannot reach the unit")


@pytest.mark.req("CLI-DEV-3")
def test_a_unit_speaking_another_protocol_is_named(
    emtt: tuple[EmttSimulator, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = emtt[1].split("::")[2]
    code, _, err = run(
        ["device", "info", "--epat", f"socket://127.0.0.1:{port}"], capsys, monkeypatch
    )
    assert code == EXIT_UNIT_LINK
    assert "EPAT" in err and len(err.strip().splitlines()) == 1


@pytest.mark.req("CLI-SIM-1")
def test_simulate_serves_and_takes_fault_commands_on_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "simulate", "epat", "--port", "0", "--speed", "10"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        banner = proc.stdout.readline()
        assert banner.startswith("EPAT simulator serving on socket://127.0.0.1:")
        url = banner.split()[4]
        proc.stdout.readline()  # the help hint
        proc.stdin.write("overtemp\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ok: overtemp"
        code, out, _ = run(
            ["device", "watch", "--epat", url, "--count", "1", "--json"], capsys, monkeypatch
        )
        assert code == 0
        # Heated to the 43.0 °C cut-out, then cooling: still above the 40.0 °C clear threshold.
        assert float(json.loads(out)["temperature_c"]) > 40.0
    finally:
        proc.terminate()
        proc.wait(10)


def test_fault_command_help_lists_every_command() -> None:
    text = simcontrol.help_text()
    for command in simcontrol.COMMANDS:
        assert command.name in text


# --------------------------------------------------------------------------- sign-in and audit
@pytest.mark.req("CLI-DEV-4")
def test_device_commands_are_audited_with_the_service_user(
    epat: tuple[EpatSimulator, str],
    installation: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = epat[1]
    for argv in (["info"], ["selftest"], ["events"], ["watch", "--count", "1"],
                 ["raw", "GET_STATUS"]):  # fmt: skip
        code, _, err = run(["device", argv[0], "--epat", url, *argv[1:]], capsys, monkeypatch)
        assert code == 0, err
    events = audit_actions(installation)
    assert [(actor, action) for actor, action, _ in events] == [
        ("svc", "device.info"),
        ("svc", "device.selftest"),
        ("svc", "device.events"),
        ("svc", "device.watch"),
        ("svc", "device.raw_command"),
    ]
    assert {subject for _, _, subject in events} == {REFERENCE_SERIAL}


@pytest.mark.req("CLI-DEV-4")
@pytest.mark.parametrize("job", ["info", "selftest", "events", "watch", "raw"])
def test_device_commands_need_a_signed_in_service_user(
    job: str,
    epat: tuple[EpatSimulator, str],
    installation: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The defect: `device info` needed no login and took a unit from its treating console."""
    argv = ["device", job, "--epat", epat[1], *(["GET_STATUS"] if job == "raw" else [])]
    code, out, err = run(argv, capsys, monkeypatch, user="thera")
    assert (code, out) == (EXIT_AUTH, "")
    assert err.count("\n") == 1 and "a therapist may not" in err
    code, out, err = run(argv, capsys, monkeypatch, password="not the password")
    assert (code, out) == (EXIT_AUTH, "")
    assert err.count("\n") == 1 and "Wrong user name or password" in err
    code, out, err = run(argv, capsys, monkeypatch, password="")
    assert code == EXIT_USAGE and err.count("\n") == 1
    with pytest.raises(SystemExit) as no_user:
        main(argv)  # no --user at all: argparse's usage error
    assert no_user.value.code == EXIT_USAGE
    assert epat[0].stats().connections == 0  # nobody who failed to sign in touched the unit
    assert audit_actions(installation) == []


# --------------------------------------------------------------------------- units in treatment
@pytest.mark.req("CLI-DEV-4")
@pytest.mark.parametrize("job", ["info", "selftest", "events", "watch", "raw"])
def test_service_command_on_a_unit_in_an_open_session_is_refused(
    job: str,
    services: ConsoleServices,
    therapist: object,
    patient_id: str,
    pump: Pump,
    epat_sim: tuple[EpatSimulator, str],
    tmp_path: Path,
) -> None:
    """The defect: `device info` took a unit from the console treating with it."""
    workflow = connected_session(services, therapist, patient_id, pump)
    assert workflow.state.value == "connected"
    ran = run_cli(
        cli_environment(services, tmp_path),
        *("device", job, "--user", "svc", "--epat", epat_sim[1], "--speed", "5"),
        *(["GET_STATUS"] if job == "raw" else []),
        stdin=PASSWORD + "\n",
    )
    assert ran.code == EXIT_UNIT_BUSY and ran.out == ""
    assert ran.error_line == (
        f"therapy-console: error: unit {REFERENCE_SERIAL} is in session "
        f"{workflow.ctx.session_id} (connected) — use the treating console"
    )
    refused = [e for e in services.trail.events() if e.action == "device.service_refused"]
    assert [(e.actor, e.data["session_id"]) for e in refused] == [("svc", workflow.ctx.session_id)]


@pytest.mark.req("CLI-DEV-4", "SVC-SESS-1")
def test_service_command_against_the_link_of_a_connected_session_opens_nothing(
    services: ConsoleServices,
    therapist: object,
    patient_id: str,
    pump: Pump,
    epat_sim: tuple[EpatSimulator, str],
    tmp_path: Path,
) -> None:
    """The defect: the command had to open the unit to learn its serial, and that opening
    alone cut the connected session's link (a unit serves one host at a time)."""
    simulator, url = epat_sim
    workflow = connected_session(services, therapist, patient_id, pump)
    connections = simulator.stats().connections
    ran = run_cli(
        cli_environment(services, tmp_path),
        *("device", "info", "--user", "svc", "--epat", url, "--speed", "5"),
        stdin=PASSWORD + "\n",
    )
    assert ran.code == EXIT_UNIT_BUSY and ran.out == ""
    assert f"is in session {workflow.ctx.session_id} (connected)" in ran.error_line
    assert simulator.stats().connections == connections  # nothing was opened
    refused = [e for e in services.trail.events() if e.action == "device.service_refused"]
    assert [(e.data["session_id"], e.data["matched"]) for e in refused] == [
        (workflow.ctx.session_id, "link")
    ]
    # the treating console still holds its unit: it arms and answers on its own link
    workflow.arm()
    assert simulator.snapshot().state == State.ARMED


@pytest.mark.req("CLI-DEV-4")
def test_service_command_on_an_armed_unit_is_refused_without_keeping_it_armed(
    services: ConsoleServices, tmp_path: Path
) -> None:
    # Another console (not in this record) armed the unit; real time: its heartbeats keep the
    # unit armed (a 500 ms watchdog) while the service command's process starts on a loaded
    # machine. This record knows nothing of the unit, so the command opens it and the unit
    # itself says it is in treatment.
    simulator = EpatSimulator(speed=1.0, applicator="D20-S")
    with EpatTcpServer(simulator).start() as server, open_device(epat_url=server.url) as other:
        other.load_parameters(
            DeviceParameters(frequency_hz=Decimal("8.0"), pulses=100, pressure_bar=Decimal("2.50"))
        )
        other.arm()
        ran = run_cli(
            cli_environment(services, tmp_path),
            *("device", "info", "--user", "svc", "--epat", server.url),
            stdin=PASSWORD + "\n",
        )
        assert ran.code == EXIT_UNIT_BUSY and ran.out == ""
        assert "another console's treatment" in ran.error_line
        # Nothing from the refused command keeps the unit armed: its watchdog ends it.
        deadline = time.monotonic() + 5
        while simulator.snapshot().state == State.ARMED:
            assert time.monotonic() < deadline, "the unit stayed armed after the refusal"
            time.sleep(0.05)
        assert simulator.snapshot().delivered == 0
    refused = [e for e in services.trail.events() if e.action == "device.service_refused"]
    assert [e.actor for e in refused] == ["svc"]
