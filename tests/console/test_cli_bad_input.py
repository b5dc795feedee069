"""Bad input and broken surroundings never give a traceback (issue 10 item 8).

Each test runs the real ``therapy-console`` program as a subprocess, as a user would, and checks
what the user sees: one error line on standard error, no traceback, the exit code of the
error's class; and what the record keeps: no session left open, nothing stored from a refused
input.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from console.cli import (
    EXIT_DATABASE,
    EXIT_REFUSED,
    EXIT_UNIT,
    EXIT_UNIT_BUSY,
    EXIT_UNIT_LINK,
    EXIT_USAGE,
)
from console.devices import open_device
from console.services import ConsoleServices
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.constants import State
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator
from device_drivers.interface import DeviceParameters
from tests.console.cli_helpers import (
    cli_environment,
    closed_port,
    junk_unit,
    run_cli,
    sessions_by_state,
)
from tests.console.conftest import PASSWORD, SESSION_DATE, SPEED
from tests.console.session_helpers import CLEAN_ANSWERS, SHORT_DOSE_REASON, ExclusiveLock

OPEN_STATES = {"screening", "planned", "connected", "armed", "delivering", "paused"}


@pytest.fixture
def env(services: ConsoleServices, tmp_path: Path) -> dict[str, str]:
    return cli_environment(services, tmp_path)


@pytest.fixture
def screening(tmp_path: Path) -> Path:
    path = tmp_path / "screening.json"
    path.write_text(json.dumps({"id": "X", "screening": CLEAN_ANSWERS}))
    return path


@pytest.fixture
def nonsense_unit() -> Iterator[tuple[EpatSimulator, str]]:
    """An EPAT unit whose HELLO reports an impossible envelope (every minimum above its
    maximum, 0 pulses per load): the simulator's identity is the unit's own word."""
    simulator = EpatSimulator(speed=SPEED, applicator="D20-S")
    model = simulator._model
    model.identity = dataclasses.replace(
        model.identity, p_min_cbar=500, p_max_cbar=100, f_min_dhz=200, f_max_dhz=10, max_pulses=0
    )
    with EpatTcpServer(simulator).start() as server:
        yield simulator, server.url


def session_run(
    env: dict[str, str], patient: str, screening: Path, link: list[str], *extra: str
) -> tuple[int, str, str]:
    ran = run_cli(
        env,
        *("session", "run", "--user", "thera", "--patient", patient),
        *("--protocol", "knee-pt-epat", "--screening", str(screening), *link),
        *("--speed", str(SPEED), "--date", SESSION_DATE.isoformat(), *extra),
        stdin=PASSWORD + "\n",
    )
    return ran.code, ran.out, ran.error_line


# --------------------------------------------------------------------------- the unit
@pytest.mark.req("CLI-ERR-1", "CLI-RUN-1")
def test_unreachable_unit_is_one_line_at_once_and_leaves_no_open_session(
    env: dict[str, str], patient_id: str, screening: Path, services: ConsoleServices
) -> None:
    started = time.monotonic()
    url = f"socket://127.0.0.1:{closed_port()}"
    code, out, error = session_run(env, patient_id, screening, ["--epat", url])
    assert time.monotonic() - started < 8  # was a 10 s wait for a unit that never opened
    assert code == EXIT_UNIT_LINK
    assert "cannot reach the unit" in error and "Connection refused" in error
    assert "aborted" in error and json.loads(out)["state"] == "aborted"
    assert sessions_by_state(services.config.db_url) == {"aborted": 1}
    [record] = services.sessions.for_patient(patient_id)
    assert record.end_reason is not None and record.end_reason.startswith("not performed:")


@pytest.mark.req("CLI-ERR-1", "CLI-RUN-1")
def test_garbled_unit_is_named_in_one_line_and_leaves_no_open_session(
    env: dict[str, str], patient_id: str, screening: Path, services: ConsoleServices
) -> None:
    with junk_unit() as url:
        code, _, error = session_run(env, patient_id, screening, ["--epat", url])
    assert code == EXIT_UNIT_LINK
    assert "not in EPAT frames" in error
    assert sessions_by_state(services.config.db_url) == {"aborted": 1}


class NonsenseEmtt(EmttSimulator):
    """An EMTT unit whose limit queries answer an impossible envelope (field 80.0–5.0 mT)."""

    def handle_line(self, line: str) -> str | None:
        reply = super().handle_line(line)
        if "FIEL? MIN" in line and reply is not None:
            return "80.0;5.0;20.0;1.0;5000;1"
        return reply


@pytest.mark.req("CLI-ERR-1", "CLI-RUN-1")
def test_emtt_unit_with_a_nonsense_envelope_is_refused_in_one_line(
    env: dict[str, str], patient_id: str, screening: Path, services: ConsoleServices
) -> None:
    simulator = NonsenseEmtt(speed=SPEED)
    with EmttTcpServer(simulator).start() as server:
        ran = run_cli(
            env,
            *("session", "run", "--user", "thera", "--patient", patient_id),
            *("--protocol", "knee-oa-emtt", "--screening", str(screening)),
            *("--emtt", server.resource, "--speed", str(SPEED)),
            stdin=PASSWORD + "\n",
        )
    assert ran.code == EXIT_UNIT
    assert "reports values the console cannot use" in ran.error_line
    assert "impossible field range" in ran.error_line
    assert sessions_by_state(services.config.db_url) == {"aborted": 1}


@pytest.mark.req("CLI-ERR-1", "CLI-RUN-1", "EPAT-OPEN-2")
def test_unit_with_a_nonsense_envelope_is_refused_in_one_line_and_never_armed(
    env: dict[str, str],
    patient_id: str,
    screening: Path,
    services: ConsoleServices,
    nonsense_unit: tuple[EpatSimulator, str],
) -> None:
    simulator, url = nonsense_unit
    code, _, error = session_run(env, patient_id, screening, ["--epat", url])
    assert code == EXIT_UNIT
    assert "reports values the console cannot use" in error and "minimum" in error
    assert "impossible envelope" in error and "service the unit" in error  # refused on opening
    assert sessions_by_state(services.config.db_url) == {"aborted": 1}
    assert simulator.snapshot().delivered == 0 and simulator.snapshot().state == State.IDLE


@pytest.mark.req("CLI-RUN-1")
def test_session_run_on_a_unit_armed_by_another_host_is_refused_and_left_to_it(
    env: dict[str, str], patient_id: str, screening: Path, services: ConsoleServices
) -> None:
    # Real time: the other host's heartbeats must keep its unit armed (a 500 ms watchdog)
    # while the console process starts on a loaded machine.
    simulator = EpatSimulator(speed=1.0, applicator="D20-S")
    with EpatTcpServer(simulator).start() as server, open_device(epat_url=server.url) as other:
        other.load_parameters(
            DeviceParameters(frequency_hz=Decimal("8.0"), pulses=100, pressure_bar=Decimal("2.50"))
        )
        other.arm()
        code, out, error = session_run(env, patient_id, screening, ["--epat", server.url])
        assert code == EXIT_UNIT_BUSY, error
        assert "another console's treatment" in error
    assert json.loads(out)["state"] == "aborted"
    assert sessions_by_state(services.config.db_url) == {"aborted": 1}
    assert simulator.snapshot().delivered == 0


# --------------------------------------------------------------------------- the command line
@pytest.mark.req("CLI-ERR-1", "CLI-IN-2")
@pytest.mark.parametrize(
    ("extra", "link", "words"),
    [
        pytest.param(["--set", "pulses=1e20"], "epat", "whole number of pulses", id="pulses-1e20"),
        pytest.param(
            ["--set", "pulses=100000000000000000000"], "epat", "1 to 1,000,000", id="pulses-huge"
        ),
        pytest.param(
            ["--set", "field_mt=30"], "epat", "not a setting of the EPAT protocol", id="field-epat"
        ),
        pytest.param([], "emtt", "name its unit with --epat", id="epat-protocol-emtt-unit"),
        pytest.param(["--set", "pressure_bar=NaN"], "epat", "above 0", id="nan"),
        pytest.param(["--set", "pressure_bar=sNaN"], "epat", "above 0", id="snan"),
        pytest.param(["--set", "frequency_hz=inf"], "epat", "above 0", id="inf"),
        pytest.param(["--set", "frequency_hz=-Infinity"], "epat", "above 0", id="minus-inf"),
        pytest.param(["--set", "pressure_bar=1e-30"], "epat", "two decimal", id="tiny"),
        pytest.param(["--set", "colour=red"], "epat", "FIELD=VALUE", id="unknown-field"),
        pytest.param(["--set", "pulses"], "epat", "FIELD=VALUE", id="no-value"),
    ],
)
def test_bad_settings_are_one_line_and_create_no_session(
    env: dict[str, str],
    patient_id: str,
    screening: Path,
    services: ConsoleServices,
    extra: list[str],
    link: str,
    words: str,
) -> None:
    unit = ["--epat", services.config.epat_url or ""] if link == "epat" else ["--emtt", "X::1"]
    code, out, error = session_run(env, patient_id, screening, unit, *extra)
    assert code == EXIT_USAGE
    assert words in error and out == ""
    assert sessions_by_state(services.config.db_url) == {}


@pytest.mark.req("CLI-ERR-1", "CLI-IN-2")
def test_unknown_protocol_id_is_one_line_listing_the_known_ones(
    env: dict[str, str], patient_id: str, screening: Path, services: ConsoleServices
) -> None:
    ran = run_cli(
        env,
        *("session", "run", "--user", "thera", "--patient", patient_id),
        *("--protocol", "knee-nope", "--screening", str(screening)),
        *("--epat", services.config.epat_url or ""),
        stdin=PASSWORD + "\n",
    )
    assert ran.code == EXIT_USAGE
    assert "there is no protocol 'knee-nope'" in ran.error_line and "knee-pt-epat" in ran.error_line
    assert ran.err.count("\n") == 1  # nothing else was said: nothing was begun
    assert sessions_by_state(services.config.db_url) == {}


# --------------------------------------------------------------------------- bounded inputs
@pytest.mark.req("CLI-IN-1")
def test_screening_file_over_64_kib_is_refused_before_parsing(
    env: dict[str, str], patient_id: str, tmp_path: Path, services: ConsoleServices
) -> None:
    big = tmp_path / "big.json"
    big.write_text("{" + " " * (64 * 1024))  # not even JSON: it must never be parsed
    code, _, error = session_run(env, patient_id, big, ["--epat", "socket://127.0.0.1:9"])
    assert code == EXIT_USAGE
    assert "over 64 KiB" in error and "JSON" not in error.split("over 64 KiB")[0]
    assert sessions_by_state(services.config.db_url) == {}


@pytest.mark.req("CLI-IN-1")
def test_screening_file_of_exactly_64_kib_is_read(
    env: dict[str, str], patient_id: str, tmp_path: Path, services: ConsoleServices
) -> None:
    text = json.dumps({"screening": CLEAN_ANSWERS})
    exact = tmp_path / "exact.json"
    exact.write_text(text + " " * (64 * 1024 - len(text.encode())))
    code, _, error = session_run(
        env, patient_id, exact, ["--epat", services.config.epat_url or ""], "--protocol", "nope"
    )
    assert code == EXIT_USAGE and "there is no protocol" in error  # got past the file


@pytest.mark.req("CLI-IN-1")
def test_unknown_screening_answer_keys_are_refused_by_name_and_not_stored(
    env: dict[str, str], patient_id: str, tmp_path: Path, services: ConsoleServices
) -> None:
    path = tmp_path / "extra.json"
    path.write_text(json.dumps({**CLEAN_ANSWERS, "favourite_colour": "red", "zz_notes": "x"}))
    code, _, error = session_run(env, patient_id, path, ["--epat", services.config.epat_url or ""])
    assert code == EXIT_USAGE
    assert "unknown screening answer(s) favourite_colour, zz_notes" in error
    assert sessions_by_state(services.config.db_url) == {}
    with sqlite3.connect(services.config.db_url.removeprefix("sqlite:///")) as conn:
        stored = conn.execute("SELECT count(*) FROM audit_events WHERE data LIKE '%favourite%'")
        assert stored.fetchone() == (0,)


@pytest.mark.req("CLI-IN-1")
@pytest.mark.parametrize(
    ("option", "size", "limit"),
    [("--notes", 4001, "4,000"), ("--override-reason", 1001, "1,000"),
     ("--screening-override", 1001, "1,000"), ("--patient", 129, "128")],
)  # fmt: skip
def test_oversized_texts_are_refused_before_anything_is_recorded(
    env: dict[str, str],
    patient_id: str,
    screening: Path,
    services: ConsoleServices,
    option: str,
    size: int,
    limit: str,
) -> None:
    code, _, error = session_run(
        env, patient_id, screening, ["--epat", services.config.epat_url or ""], option, "x" * size
    )
    assert code == EXIT_USAGE
    assert f"{option} is {size:,} characters; at most {limit}" in error
    assert sessions_by_state(services.config.db_url) == {}


# --------------------------------------------------------------------------- refused runs
@pytest.mark.req("CLI-RUN-1")
@pytest.mark.slow
def test_refused_session_runs_leave_no_session_open(
    env: dict[str, str],
    patient_id: str,
    screening: Path,
    tmp_path: Path,
    services: ConsoleServices,
    epat_sim: tuple[EpatSimulator, str],
    nonsense_unit: tuple[EpatSimulator, str],
) -> None:
    """The defect: 16 refused runs left sessions open in screening/planned."""
    blocked = tmp_path / "blocked.json"
    blocked.write_text(json.dumps({**CLEAN_ANSWERS, "thrombosis_in_limb": True}))
    url = epat_sim[1]
    runs = [
        (screening, ["--epat", f"socket://127.0.0.1:{closed_port()}"], [], EXIT_UNIT_LINK),
        (blocked, ["--epat", url], [], EXIT_REFUSED),  # absolute contraindication
        (screening, ["--epat", url], ["--set", "pulses=300"], EXIT_REFUSED),  # no override reason
        (screening, ["--epat", nonsense_unit[1]], [], EXIT_UNIT),
        (screening, ["--epat", url], ["--set", "pressure_bar=9.99"], EXIT_REFUSED),  # over the unit
    ]
    with junk_unit() as junk:
        runs.append((screening, ["--epat", junk], [], EXIT_UNIT_LINK))
        for path, link, extra, expected in runs * 2:
            code, _, error = session_run(env, patient_id, path, link, *extra)
            assert code == expected, error
    states = sessions_by_state(services.config.db_url)
    assert states == {"aborted": len(runs) * 2}, states
    assert not OPEN_STATES & set(states)
    for record in services.sessions.for_patient(patient_id):
        assert record.end_reason and record.end_reason.startswith("not performed:")
    assert epat_sim[0].snapshot().delivered == 0


# --------------------------------------------------------------------------- the database
@pytest.mark.req("CLI-DB-1")
@pytest.mark.slow
def test_database_locked_at_start_is_one_line_and_creates_no_session(
    env: dict[str, str], patient_id: str, screening: Path, services: ConsoleServices
) -> None:
    with ExclusiveLock(services.config.db_url):
        code, out, error = session_run(
            env, patient_id, screening, ["--epat", services.config.epat_url or ""]
        )
    assert code == EXIT_DATABASE
    assert "locked" in error and "nothing was done" in error and out == ""
    assert sessions_by_state(services.config.db_url) == {}


@pytest.mark.req("CLI-DB-1", "SES-DB-1")
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_database_locked_mid_delivery_stops_the_unit_and_records_the_end_when_released(
    env: dict[str, str],
    patient_id: str,
    screening: Path,
    services: ConsoleServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    """The defect: the database locked for more than 30 s left the session "delivering"."""
    simulator, url = epat_sim
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "session", "run", "--user", "thera",
         "--patient", patient_id, "--protocol", "knee-pt-epat", "--screening", str(screening),
         "--epat", url, "--speed", str(SPEED), "--date", SESSION_DATE.isoformat(),
         "--set", "pulses=600", "--override-reason", SHORT_DOSE_REASON],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None and proc.stdout is not None
    proc.stdin.write(PASSWORD + "\n")
    proc.stdin.flush()
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("delivered ") and int(line.split()[1]) > 0:
            break
    lock = ExclusiveLock(services.config.db_url).__enter__()
    try:
        # Delivery ends while the lock is held; the end cannot be written for > 30 s.
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            lines.append(line)
            if "waiting up to" in line:
                break
            assert time.monotonic() < deadline, "".join(lines)
        assert simulator.snapshot().state in (State.IDLE, State.FAULT)  # it cannot fire
        fired = simulator.snapshot().delivered
        time.sleep(1.0)
        assert simulator.snapshot().delivered == fired  # nothing more while the store is away
        assert sessions_by_state(services.config.db_url) == {"delivering": 1}
    finally:
        lock.release()
    rest = proc.stderr.read()
    code = proc.wait(120)
    err = "".join(lines) + rest
    assert "Traceback" not in err, err
    assert code == EXIT_DATABASE, err
    error = err.strip().splitlines()[-1]
    assert error.startswith("therapy-console: error: the database failed during the session")
    assert "recorded interrupted" in error
    [record] = services.sessions.for_patient(patient_id)
    assert record.state == "interrupted"
    assert record.delivered == simulator.snapshot().delivered > 0


@pytest.mark.req("CLI-ERR-1", "CLI-IN-1")
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["device", "info", "--epat", "x", "--user", "svc", "--speed", "0"], "above 0"),
        (["device", "info", "--epat", "x", "--user", "svc", "--speed", "nan"], "above 0"),
        (["device", "info", "--epat", "x", "--user", "svc", "--speed", "-1"], "above 0"),
        (["device", "events", "--epat", "x", "--user", "svc", "--from", "-5"], "0 to 65,535"),
        (["device", "events", "--epat", "x", "--user", "svc", "--from", "1e9"], "0 to 65,535"),
        (["device", "watch", "--epat", "x", "--user", "svc", "--period", "nan"], "at least 0.01"),
        (["device", "watch", "--epat", "x", "--user", "svc", "--count", "-1"], "whole number"),
        (["device", "info", "--epat", "x"], "the following arguments are required: --user"),
        (["device", "info", "--user", "svc"], "one of the arguments --epat --emtt is required"),
        (["session", "run", "--pain-before", "11"], "from 0 to 10"),
        (["session", "run", "--date", "2026-13-45"], "is not a date: give YYYY-MM-DD"),
        (["simulate", "epat", "--port", "70000"], "0 to 65,535"),
        (["simulate", "epat", "--delay-ms", "inf"], "at most 60000"),
        (["--demo", "--demo-speed", "0"], "above 0"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_with_exit_2_before_anything_opens(
    env: dict[str, str], argv: list[str], words: str
) -> None:
    ran = run_cli(env, *argv, stdin=PASSWORD + "\n")
    assert ran.code == EXIT_USAGE and ran.out == ""
    assert ran.err.count("\n") == 1, ran.err  # not argparse's usage block: one line
    assert words in ran.error_line and "--help" in ran.error_line


@pytest.mark.req("CLI-IN-1")
def test_unknown_adverse_event_is_refused_before_the_session_is_created(
    env: dict[str, str], patient_id: str, screening: Path, services: ConsoleServices
) -> None:
    code, _, error = session_run(
        env,
        patient_id,
        screening,
        ["--epat", services.config.epat_url or ""],
        *("--adverse-event", "reddening", "--adverse-event", "dragon bite"),
    )
    assert code == EXIT_USAGE
    assert "--adverse-event dragon bite: not an adverse event" in error and "reddening" in error
    assert sessions_by_state(services.config.db_url) == {}
