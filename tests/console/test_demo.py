"""The demo: built-in simulators, a demo record, the console opening logged out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.verify import verify_store
from console.demo import DEMO_USERS, demo_units, prepare_demo
from console.services import ConsoleServices
from tests.console.conftest import light_hasher


@pytest.mark.req("DEMO-1")
def test_demo_record_has_users_patients_programmes_and_signed_history(tmp_path: Path) -> None:
    with demo_units(speed=5.0) as (epat_url, emtt_resource):
        setup = prepare_demo(tmp_path, epat_url, emtt_resource, 5.0, hasher=light_hasher())
        services = ConsoleServices.open(setup.config)
        try:
            assert {u.user_id for u in services.users.list()} == {u for u, _, _ in DEMO_USERS}
            therapist = services.login("therapist", setup.passwords["therapist"])
            patients = services.search_patients(therapist)
            assert len(patients) == 3
            for patient in patients:
                overview = services.patient_overview(therapist, patient.patient_id)
                assert overview.programme is not None and overview.template is not None
            history = [s for p in patients for s in services.sessions.for_patient(p.patient_id)]
            assert len(history) == 3 and all(s.state == "signed" for s in history)
            for session in history:
                assert all(c.valid for c in services.sessions.verify_signatures(session.session_id))
            assert verify_store(services.store).ok
        finally:
            services.close()


@pytest.mark.req("DEMO-1")
@pytest.mark.gui
def test_demo_command_starts_the_console_and_prints_the_users_once(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "console", "--demo", "--exit-after", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for user_id, _, role in DEMO_USERS:
        assert f"  {user_id:<10} " in result.stdout and f"({role}," in result.stdout
    assert "Esc" in result.stdout
    assert any(p.name.startswith("therapy-console-demo-") for p in tmp_path.iterdir())
