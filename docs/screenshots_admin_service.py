"""Screenshots of the admin and service consoles for the docs, taken offscreen over real parts.

Builds a small clinic in a temporary folder (SQLite record, users, a patient, simulated EPAT and
EMTT units on loopback TCP), treats one session through the real workflow (so the trail, the
session story and the communication log are the console's own), adds a few months of session
records for the charts, then shows each screen and saves it as ``docs/screenshots/admin_*.png``
and ``service_*.png``.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots_admin_service.py
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argon2 import PasswordHasher, Type  # noqa: E402

from console.services import ConsoleConfig, ConsoleServices  # noqa: E402
from console.session.ports import PlannedParameters  # noqa: E402
from console.session.states import SessionState  # noqa: E402
from console.ui.app import application  # noqa: E402
from device_drivers.emtt.server import EmttTcpServer  # noqa: E402
from device_drivers.emtt.simulator import EmttSimulator  # noqa: E402
from device_drivers.epat.server import EpatTcpServer  # noqa: E402
from device_drivers.epat.simulator import EpatSimulator  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PASSWORD = "demo password 2026"
SPEED = 10.0
SIZE = (1366, 860)
ANSWERS = {
    "pregnant": False,
    "malignancy_in_area": False,
    "infection_at_site": False,
    "active_implant": None,
    "active_implant_in_field": False,
    "coagulation_disorder": False,
    "anticoagulants": False,
    "thrombosis_in_limb": False,
    "corticosteroid_injection_date": None,
    "open_growth_plates": False,
    "metal_implant_in_field": False,
    "epilepsy": False,
    "polyneuropathy": False,
    "tendon_rupture": False,
    "fever": False,
    "nsaids": False,
    "failed_conservative_care_months": 0,
}


def pump(app: object, until: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("the screen did not get there in time")
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.01)


def settle(app: object, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.01)


def treat(services: ConsoleServices, patient_id: str) -> str:
    """One short EPAT session through the workflow and the simulator, titrated and signed."""
    therapist = services.login("thera", PASSWORD)
    messages: queue.Queue = queue.Queue()
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat")
    workflow.submit_screening(ANSWERS)
    workflow.plan(PlannedParameters(Decimal("10.0"), 300, pressure_bar=Decimal("2.50")))
    workflow.connect(services.start_worker(workflow, messages.put))
    workflow.revalidate("demo: a short dose to show the record, not a treatment")
    workflow.confirm_parameters()
    workflow.arm()
    workflow.start()

    def until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not done() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                workflow.handle(messages.get(timeout=0.1))
        if not done():
            raise TimeoutError(f"session stuck in {workflow.state}")

    until(lambda: workflow.delivered >= 120)
    workflow.pause()
    workflow.titrate(pressure_bar=Decimal("2.20"))
    workflow.resume()
    until(lambda: workflow.state is SessionState.COMPLETED)
    workflow.document(
        pain_before=7,
        pain_after=4,
        adverse_events=["reddening"],
        treatment_points=[{"x": 410, "y": 600}],
        notes="tolerated well; continue the loading programme",
    )
    workflow.sign(PASSWORD)
    workflow.close()
    return workflow.ctx.session_id


def seed_history(services: ConsoleServices, patients: list[str]) -> None:
    """Half a year of session records (what the charts summarise)."""
    rng = random.Random(4)
    therapist = services.login("thera", PASSWORD)
    start = date.today() - timedelta(weeks=26)
    protocols = [
        ("knee-pt-epat", "epat", 2000),
        ("knee-pfp-epat", "epat", 2000),
        ("knee-oa-epat", "epat", 2000),
        ("knee-oa-emtt", "emtt", 4000),
        ("knee-tendon-emtt", "emtt", 3000),
    ]
    for week in range(26):
        for _ in range(rng.randint(3, 9)):
            protocol, modality, pulses = rng.choice(protocols)
            day = start + timedelta(weeks=week, days=rng.randint(0, 4))
            record = services.sessions.create(
                therapist.actor,
                patient_id=rng.choice(patients),
                protocol_id=protocol,
                protocol_version="2026.1",
                modality=modality,
                session_date=day,
                state="documented",
            )
            before = rng.randint(4, 9)
            services.sessions.update(
                therapist.actor,
                record.session_id,
                {
                    "delivered": pulses,
                    "device_serial": "RPW200-00001" if modality == "epat" else "E100-24-0117",
                    "pain_before": before,
                    "pain_after": max(0, before - rng.randint(0, 4)),
                    "adverse_events": rng.choice([[], [], [], [], ["reddening"], ["petechiae"]]),
                },
            )


def main() -> int:
    app = application([])
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tc-shots-"))
    epat = EpatSimulator(speed=SPEED, applicator="R15", applicator_shots_used=918_400)
    emtt = EmttSimulator(speed=SPEED)
    with EpatTcpServer(epat).start() as epat_server:
        emtt_server = EmttTcpServer(emtt).start()
        try:
            config = ConsoleConfig(
                db_url=f"sqlite:///{tmp / 'clinic.sqlite3'}",
                signing_key_path=tmp / "signing-key.pem",
                workstation="room-1",
                witness_path=tmp / "witness.json",
                epat_url=epat_server.url,
                emtt_resource=emtt_server.resource,
                device_speed=SPEED,
                commlog_dir=tmp / "commlogs",
                create_schema=True,
            )
            hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
            services = ConsoleServices.open(config, hasher=hasher)
            services.auth.add_user(None, "admin", "Ada Admin", "admin", PASSWORD)
            admin = services.login("admin", PASSWORD)
            services.auth.add_user(admin, "thera", "Theo Therapist", "therapist", PASSWORD)
            services.auth.add_user(admin, "rita", "Rita Reviewer", "therapist", PASSWORD)
            services.auth.add_user(admin, "svc", "Sam Service", "service", PASSWORD)
            therapist = services.login("thera", PASSWORD)
            patients = []
            for i in range(6):
                patient = services.create_patient(
                    therapist, f"KN-{i + 41:04d}", date(1970 + i, 3, 4)
                )
                services.assign_programme(
                    therapist,
                    patient.patient_id,
                    "knee-load-sharing",
                    date.today() - timedelta(weeks=30),
                )
                patients.append(patient.patient_id)
            session_id = treat(services, patients[0])
            seed_history(services, patients)
            admin_shots(app, services, tmp, session_id)
            service_shots(app, services, tmp, epat_server.url, emtt_server.resource, session_id)
            services.close()
        finally:
            emtt_server.stop()
    print(f"screenshots in {OUT}")
    return 0


def _save(app: object, widget: object, name: str) -> None:
    settle(app)
    widget.grab().save(str(OUT / name))  # type: ignore[attr-defined]
    print(f"wrote {name}")


def admin_shots(app: object, services: ConsoleServices, tmp: Path, session_id: str) -> None:
    from console.ui.admin.console import AdminConsole

    admin = services.login("admin", PASSWORD)
    console = AdminConsole(services, admin, policy_folder=tmp / "policy")
    console.resize(*SIZE)
    console.show()
    audit = console.audit_page
    pump(app, lambda: audit.model.pages_loaded >= 1)
    audit.verify_now()
    pump(app, lambda: audit.last_outcome is not None)
    audit.table.selectRow(3)
    pump(app, lambda: audit.details.toPlainText() != "")
    _save(app, console, "admin_audit.png")
    audit.action_box.setEditText("device.*")
    audit.apply_filter()
    pump(app, lambda: audit.model.pages_loaded >= 1 and not audit.model.loading)
    audit.table.selectRow(0)
    pump(app, lambda: audit.details.toPlainText() != "")
    _save(app, console, "admin_audit_filtered.png")

    console.show_tab("Session story")
    console.story_page.session_edit.setText(session_id)
    console.story_page.find()
    pump(app, lambda: console.story_page.results.rowCount() == 1)
    console.story_page.open_session(session_id)
    pump(app, lambda: console.story_page.story is not None)
    _save(app, console, "admin_session_story.png")
    pdf = tmp / "session.pdf"
    console.story_page.ask_path = lambda *_: pdf
    console.story_page.print_session()
    pump(app, lambda: console.story_page.last_pdf is not None)

    console.show_tab("Exports and reports")
    console.exports_page.ask_path = lambda *_: tmp / "trail.jsonl"
    console.exports_page.export_trail()
    pump(app, lambda: console.exports_page.last_export is not None)
    _save(app, console, "admin_exports.png")

    console.show_tab("Users")
    pump(app, lambda: len(console.users_page.users) == 4)
    console.users_page.select("rita")
    _save(app, console, "admin_users.png")

    console.show_tab("Policy")
    pump(app, lambda: console.policy_page.view is not None)
    _save(app, console, "admin_policy.png")

    console.show_tab("Charts")
    pump(app, lambda: console.charts_page.data is not None)
    _save(app, console, "admin_charts.png")
    console.shutdown()
    console.close()


def service_shots(
    app: object,
    services: ConsoleServices,
    tmp: Path,
    epat_url: str,
    emtt_resource: str,
    session_id: str,
) -> None:
    from console.service.rooms import UnitLink
    from console.ui.service.console import ServiceConsole

    engineer = services.login("svc", PASSWORD)
    console = ServiceConsole(services, engineer, rooms_path=tmp / "rooms.json")
    console.resize(*SIZE)
    console.show()
    service = console.services
    service.save_unit(engineer, UnitLink("Room 1", "EPAT", "epat", epat_url))
    service.save_unit(engineer, UnitLink("Room 1", "EMTT", "emtt", emtt_resource))
    service.save_unit(engineer, UnitLink("Room 2", "EPAT", "epat", "/dev/ttyUSB0"))
    rooms = console.rooms_page
    rooms.load()
    pump(app, lambda: len(rooms.settings.units) == 3)
    console.show_tab("Rooms and connections")
    rooms.units.selectRow(1)
    rooms.check()
    pump(app, lambda: rooms.last_check is not None)
    _save(app, console, "service_rooms.png")

    console.select_unit("Room 1", "EPAT")
    console.connect_unit()
    pump(app, lambda: console.unit is not None)
    console.show_tab("Diagnostics")
    console.diagnostics_page.run()
    pump(app, lambda: console.diagnostics_page.report is not None)
    _save(app, console, "service_diagnostics.png")

    console.show_tab("Raw console")
    raw = console.raw_page
    for text in (
        "GET_STATUS",
        "GET_APPLICATOR",
        "SET_PARAMS fa00 5000 64000000",
        "ARM",
        "START",
    ):
        raw.input.setText(text)
        raw.send()
    pump(app, lambda: len(raw.exchanges) == 5)
    _save(app, console, "service_raw_console.png")
    console.disconnect_unit()
    settle(app)

    console.show_tab("Communication log")
    log = console.commlog_page
    log.load()
    pump(app, lambda: len(log.files) >= 1)
    log.open(next(f.path for f in log.files if f.session_id == session_id))
    pump(app, lambda: log.view is not None)
    log.replay()
    pump(app, lambda: log.replay_result is not None, timeout_s=120)
    _save(app, console, "service_commlog_replay.png")
    console.shutdown()
    console.close()


if __name__ == "__main__":
    sys.exit(main())
