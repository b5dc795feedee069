"""``therapy-console --demo``: the whole console on built-in simulators and demo data.

Both simulated units are served in-process on loopback TCP ports (the real drivers talk to them
over real sockets), a demo record is created in a new temporary folder with a therapist, an
admin and a service engineer (their passwords are printed once), and three patients with
movement programmes and a session history. The console then opens, logged out. Nothing outside
the temporary folder is touched.
"""

from __future__ import annotations

import secrets
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from audit.events import Actor
from console.auth import SignedInUser
from console.services import ConsoleConfig, ConsoleServices
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator

#: Demo units run this much faster than real time, so a 2,000-pulse session takes under a minute.
DEFAULT_DEMO_SPEED = 5.0

DEMO_USERS = (
    ("therapist", "Tess Therapist", "therapist"),
    ("admin", "Adam Admin", "admin"),
    ("service", "Sid Service", "service"),
)


@dataclass(frozen=True)
class DemoSetup:
    folder: Path
    config: ConsoleConfig
    passwords: dict[str, str]


def _password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(3))


@contextmanager
def demo_units(speed: float) -> Iterator[tuple[str, str]]:
    """Serve the reference EPAT unit (with the 5-bar D20-S applicator) and EMTT unit."""
    epat = EpatTcpServer(EpatSimulator(speed=speed, applicator="D20-S")).start()
    try:
        emtt = EmttTcpServer(EmttSimulator(speed=speed)).start()
        try:
            yield epat.url, emtt.resource
        finally:
            emtt.stop()
    finally:
        epat.stop()


def prepare_demo(
    folder: Path, epat_url: str, emtt_resource: str, speed: float, **auth_options: object
) -> DemoSetup:
    """Create the demo record in ``folder``: users, patients, programmes, history."""
    config = ConsoleConfig(
        db_url=f"sqlite:///{folder / 'demo.sqlite3'}",
        signing_key_path=folder / "audit-signing-key.pem",
        witness_path=folder / "checkpoint-witness.json",
        workstation="demo-console",
        epat_url=epat_url,
        emtt_resource=emtt_resource,
        device_speed=speed,
        commlog_dir=folder / "commlogs",
        policy_dir=folder / "policy",
        rooms_path=folder / "rooms.json",
        create_schema=True,
    )
    passwords = {user_id: _password() for user_id, _, _ in DEMO_USERS}
    services = ConsoleServices.open(config, **auth_options)
    try:
        admin_id, admin_name, _ = DEMO_USERS[1]
        services.auth.add_user(None, admin_id, admin_name, "admin", passwords[admin_id])
        admin = services.login(admin_id, passwords[admin_id])
        for user_id, name, role in DEMO_USERS:
            if user_id != admin_id:
                services.auth.add_user(admin, user_id, name, role, passwords[user_id])
        services.logout(admin)
        therapist = services.login("therapist", passwords["therapist"])
        _demo_patients(services, therapist, passwords["therapist"])
        services.logout(therapist)
    finally:
        services.close()
    return DemoSetup(folder, config, passwords)


def _demo_patients(services: ConsoleServices, therapist: SignedInUser, password: str) -> None:
    today = date.today()
    runner = services.create_patient(therapist, "KNEE-1042", date(1984, 3, 12))
    programme = services.assign_programme(
        therapist, runner.patient_id, "knee-load-sharing", today - timedelta(days=35)
    )
    services.programmes.change_phase(
        therapist.actor, programme.programme_id, 2, today - timedelta(days=14), "control achieved"
    )
    for days_ago, pain in ((21, (6, 4)), (14, (5, 3))):
        _history(services, therapist, password, runner.patient_id, "knee-pt-epat", days_ago, pain)

    teen = services.create_patient(therapist, "KNEE-2077", date(today.year - 14, 6, 1))
    services.assign_programme(
        therapist, teen.patient_id, "knee-adolescent-osg", today - timedelta(days=20)
    )

    arthritic = services.create_patient(therapist, "KNEE-3310", date(1956, 9, 30))
    services.assign_programme(
        therapist, arthritic.patient_id, "knee-load-sharing", today - timedelta(days=60)
    )
    _history(services, therapist, password, arthritic.patient_id, "knee-oa-emtt", 4, (5, 4))


def _history(
    services: ConsoleServices,
    therapist: SignedInUser,
    password: str,
    patient_id: str,
    protocol_id: str,
    days_ago: int,
    pain: tuple[int, int],
) -> None:
    """A past, signed session (demo data, marked as such in its notes)."""
    protocol = services.protocol(protocol_id)
    programme = services.programmes.active_for(patient_id)
    defaults = services.rules.defaults_for(protocol_id)
    actor: Actor = therapist.actor
    record = services.sessions.create(
        actor,
        patient_id=patient_id,
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        modality=protocol.modality.value,
        session_date=date.today() - timedelta(days=days_ago),
        programme_id=programme.programme_id if programme else None,
        programme_phase=programme.current_phase if programme else None,
        state="completed",
    )
    services.sessions.update(
        actor,
        record.session_id,
        {
            "parameters": defaults,
            "delivered": int(defaults["pulses"]),
            "segments": [int(defaults["pulses"])],
            "screening_decision": "allow",
            "end_reason": "target reached",
            "notes": "demo history",
        },
    )
    services.sessions.transition(actor, record.session_id, "completed", "documented", "document")
    services.sessions.update(
        actor, record.session_id, {"pain_before": pain[0], "pain_after": pain[1]}
    )
    services.auth.sign_session(
        services.sessions, therapist, password, record.session_id, user_name=therapist.user_id
    )
    services.sessions.transition(actor, record.session_id, "documented", "signed", "sign")


def run_demo(speed: float = DEFAULT_DEMO_SPEED, exit_after_s: float | None = None) -> int:
    """Serve the simulators, create the demo record, open the console (logged out)."""
    folder = Path(tempfile.mkdtemp(prefix="therapy-console-demo-"))
    with demo_units(speed) as (epat_url, emtt_resource):
        setup = prepare_demo(folder, epat_url, emtt_resource, speed)
        print(f"Demo record in {folder} (units simulated {speed:g}x faster than real time)")
        print(f"  EPAT unit: {epat_url}   EMTT unit: {emtt_resource}")
        print("Demo users (shown once):")
        for user_id, name, role in DEMO_USERS:
            print(f"  {user_id:<10} {setup.passwords[user_id]}   ({role}, {name})")
        print("Emergency stop: the red button or the Esc key, from any screen.", flush=True)
        from PySide6.QtCore import QTimer

        from console.ui.adapters import ServicesBackend
        from console.ui.app import application, run

        services = ConsoleServices.open(setup.config)
        try:
            app = application()
            if exit_after_s is not None:
                QTimer.singleShot(int(exit_after_s * 1000), app.quit)
            return run(ServicesBackend(services))
        finally:
            services.close()
