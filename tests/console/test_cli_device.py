"""The service command line against simulated units over real links."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from console.cli import main
from device_drivers import simcontrol
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator
from device_drivers.interface import UnitState

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


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.req("CLI-DEV-1")
def test_info_shows_identity_envelope_and_wear(
    epat: tuple[EpatSimulator, str], capsys: pytest.CaptureFixture[str]
) -> None:
    simulator, url = epat
    simulator.fit_applicator("R15", shots_used=905_000)
    code, out, _ = run(["device", "info", "--epat", url, "--speed", str(SPEED)], capsys)
    assert code == 0
    assert "RPW-200" in out and "1.00–5.00 bar" in out
    assert "905,000 of 1,000,000 shots = 90.5 %" in out and "WARNING" in out


@pytest.mark.req("CLI-DEV-1")
def test_info_as_json_for_emtt(
    emtt: tuple[EmttSimulator, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, resource = emtt
    code, out, _ = run(["device", "info", "--emtt", resource, "--json"], capsys)
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
) -> None:
    link = ["--epat", epat[1]] if unit == "epat" else ["--emtt", emtt[1]]
    code, out, _ = run(["device", "selftest", *link], capsys)
    assert (code, out.strip()) == (0, "Self-test passed.")
    code, out, _ = run(["device", "watch", *link, "--count", "2", "--period", "0.05"], capsys)
    assert code == 0
    assert out.count("IDLE") == 2
    code, out, _ = run(["device", "events", *link, "--json"], capsys)
    assert code == 0
    assert isinstance(json.loads(out), list)


@pytest.mark.req("CLI-DEV-2")
def test_raw_command_decodes_the_reply_and_is_refused_while_armed(
    epat: tuple[EpatSimulator, str], capsys: pytest.CaptureFixture[str]
) -> None:
    simulator, url = epat
    code, out, _ = run(["device", "raw", "--epat", url, "GET_STATUS"], capsys)
    assert code == 0 and "ACK" in out and "IDLE" in out
    from decimal import Decimal

    from console.devices import open_device
    from device_drivers.interface import DeviceParameters

    with open_device(epat_url=url, speed=SPEED) as driver:
        driver.load_parameters(
            DeviceParameters(frequency_hz=Decimal("8.0"), pulses=100, pressure_bar=Decimal("2.50"))
        )
        driver.arm()
        assert driver.status().state is UnitState.ARMED
        # A second host connection replaces this one; the unit stays armed until its watchdog.
        code, _, err = run(["device", "raw", "--epat", url, "START"], capsys)
    assert code == 1
    assert "refused" in err.lower() or "armed" in err.lower()
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
    link: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["device", "info", *link], capsys)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("therapy-console: error: cannot reach the unit")


@pytest.mark.req("CLI-DEV-3")
def test_a_unit_speaking_another_protocol_is_named(
    emtt: tuple[EmttSimulator, str], capsys: pytest.CaptureFixture[str]
) -> None:
    port = emtt[1].split("::")[2]
    code, _, err = run(["device", "info", "--epat", f"socket://127.0.0.1:{port}"], capsys)
    assert code != 0
    assert "EPAT" in err and len(err.strip().splitlines()) == 1


@pytest.mark.req("CLI-SIM-1")
def test_simulate_serves_and_takes_fault_commands_on_stdin(
    capsys: pytest.CaptureFixture[str],
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
        code, out, _ = run(["device", "watch", "--epat", url, "--count", "1", "--json"], capsys)
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
