"""``session run`` end to end, and recovery after the console is killed mid-delivery."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cli import EXIT_AUTH, EXIT_REFUSED
from console.services import ConsoleServices, PatientHasUnfinishedSession
from device_drivers.epat.simulator import EpatSimulator
from tests.console.cli_helpers import cli_environment
from tests.console.conftest import PASSWORD, SESSION_DATE, SPEED
from tests.console.session_helpers import CLEAN_ANSWERS, SHORT_DOSE_REASON


@pytest.fixture
def cli_env(services: ConsoleServices, tmp_path: Path) -> dict[str, str]:
    """The environment a console process on this installation runs with."""
    return cli_environment(services, tmp_path)


@pytest.fixture
def screening_file(tmp_path: Path) -> Path:
    path = tmp_path / "screening.json"
    path.write_text(json.dumps({"id": "X", "screening": CLEAN_ANSWERS}))
    return path


def session_run(epat_url: str, patient_id: str, screening: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "console", "session", "run",
        "--user", "thera", "--patient", patient_id, "--protocol", "knee-pt-epat",
        "--screening", str(screening), "--epat", epat_url, "--speed", str(SPEED),
        "--date", SESSION_DATE.isoformat(), *extra,
    ]  # fmt: skip


@pytest.mark.req("SES-CLI-1")
def test_session_run_delivers_documents_and_signs(
    cli_env: dict[str, str],
    patient_id: str,
    screening_file: Path,
    epat_sim: tuple[EpatSimulator, str],
    services: ConsoleServices,
) -> None:
    result = subprocess.run(
        session_run(
            epat_sim[1],
            patient_id,
            screening_file,
            "--set",
            "pulses=300",
            "--override-reason",
            SHORT_DOSE_REASON,
            "--pain-before",
            "5",
            "--pain-after",
            "2",
        ),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["state"] == "signed"
    assert record["delivered"] == 300 == epat_sim[0].snapshot().delivered, (result.stderr, record)
    assert record["pain_before"] == 5 and record["signatures"][0]["meaning"] == "performed"
    assert "delivered 300 of 300" in result.stderr


@pytest.mark.req("SES-CLI-1")
def test_session_run_refuses_a_blocked_patient_and_fires_nothing(
    cli_env: dict[str, str],
    patient_id: str,
    tmp_path: Path,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    blocked = tmp_path / "blocked.json"
    blocked.write_text(json.dumps({**CLEAN_ANSWERS, "thrombosis_in_limb": True}))
    result = subprocess.run(
        session_run(epat_sim[1], patient_id, blocked),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert result.returncode == EXIT_REFUSED
    assert "CI-THROMB" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("therapy-console: error: refused:")
    assert json.loads(result.stdout)["state"] == "aborted"
    assert epat_sim[0].snapshot().delivered == 0


def test_session_run_wrong_password_is_a_clear_error(
    cli_env: dict[str, str],
    patient_id: str,
    screening_file: Path,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    result = subprocess.run(
        session_run(epat_sim[1], patient_id, screening_file),
        input="not the password\n",
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert result.returncode == EXIT_AUTH
    assert result.stdout == ""
    assert result.stderr.startswith("therapy-console: error: Wrong user name or password")
    assert result.stderr.count("\n") == 1


@pytest.mark.req("SES-RECOVER-1")
@pytest.mark.slow
def test_console_killed_mid_delivery_is_recovered_with_the_units_count(
    cli_env: dict[str, str],
    patient_id: str,
    screening_file: Path,
    epat_sim: tuple[EpatSimulator, str],
    services: ConsoleServices,
    therapist,
) -> None:
    simulator, url = epat_sim
    proc = subprocess.Popen(
        session_run(url, patient_id, screening_file, "--set", "pulses=1500"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(PASSWORD + "\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if line.startswith("delivered ") and int(line.split()[1]) >= 150:
            break
        assert time.monotonic() < deadline, "delivery never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # The unit's watchdog stops it: FAULT with COMM_LOSS, the count kept.
    deadline = time.monotonic() + 10
    while simulator.snapshot().state != 6:
        assert time.monotonic() < deadline, "the unit kept firing after the console died"
        time.sleep(0.05)
    snapshot = simulator.snapshot()
    assert snapshot.faults & 0x02 and 150 <= snapshot.delivered < 1500
    [record] = [r for r in services.sessions.for_patient(patient_id)]
    assert record.state == "delivering"
    # Nothing else can be done for this patient until the session is recovered.
    with pytest.raises(PatientHasUnfinishedSession):
        services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE)
    result = subprocess.run(
        [sys.executable, "-m", "console", "session", "recover", "--user", "thera",
         "--epat", url, "--speed", str(SPEED)],
        input=PASSWORD + "\n", capture_output=True, text=True, env=cli_env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    recovered = services.sessions.load(record.session_id)
    assert recovered.state == "interrupted"
    assert recovered.delivered == snapshot.delivered == simulator.snapshot().delivered
    assert recovered.interruptions[0]["unit_state_found"] == "FAULT"
    assert simulator.snapshot().state == 6  # the latched fault is left for a person to clear
    services.begin_session(therapist, patient_id, "knee-pt-epat", SESSION_DATE).close()
