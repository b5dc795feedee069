"""Render every screen of the therapist's console offscreen into docs/screenshots/*.png.

It runs the real console on the demo (simulated EPAT unit over TCP, a demo record in a temporary
folder) and clicks through a session as a therapist would, saving a picture of each screen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from console.demo import demo_units, prepare_demo  # noqa: E402
from console.services import ConsoleServices  # noqa: E402
from console.session.states import SessionState  # noqa: E402
from console.ui.adapters import ServicesBackend  # noqa: E402
from console.ui.app import application  # noqa: E402
from console.ui.main_window import MainWindow  # noqa: E402
from tests.console.ui import gui_flow as flow  # noqa: E402

SPEED = 5.0
SIZE = (1366, 860)


def shoot(window: MainWindow, out: Path, name: str) -> None:
    flow.pump_events(0.25)  # let coalesced repaints land
    path = out / f"{name}.png"
    window.grab().save(str(path))
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    app = application()
    with (
        tempfile.TemporaryDirectory(prefix="console-shots-") as folder,
        demo_units(SPEED) as (
            epat_url,
            emtt_resource,
        ),
    ):
        setup = prepare_demo(Path(folder), epat_url, emtt_resource, SPEED)
        services = ConsoleServices.open(setup.config)
        window = MainWindow(ServicesBackend(services))
        window.resize(*SIZE)
        window.show()
        password = setup.passwords["therapist"]
        try:
            run(window, out, password)
        finally:
            window.shutdown()
            window.close()
            services.close()
    app.processEvents()
    return 0


def run(window: MainWindow, out: Path, password: str) -> None:
    login = window.login_screen
    flow.type_into(login.username, "therapist")
    shoot(window, out, "01-login")
    flow.login(window, "therapist", password)
    flow.wait_until(lambda: window.patients_screen.table.rowCount() >= 3, "the demo patients")
    shoot(window, out, "02-patients")
    flow.open_patient(window, "KNEE-1042")
    flow.wait_until(lambda: window.patient_screen.history.rowCount() >= 2, "the history")
    shoot(window, out, "03-patient")

    flow.new_session(window, "knee-pt-epat")
    screening = window.screening_screen
    answers = dict(flow.CLEAN_ANSWERS, anticoagulants=True, nsaids=True)
    for key, value in answers.items():
        screening.rows[key].set_answer(value)
    flow.click(screening.submit_button)
    flow.wait_until(lambda: screening.override_box.isVisible(), "the override request")
    screening.override_reason.set_text(
        "Apixaban, INR not applicable; low pressure, checked with the GP on the phone today"
    )
    shoot(window, out, "04-screening")
    flow.click(screening.override_button)
    flow.wait_until(lambda: screening.continue_button.isEnabled(), "the recorded override")
    flow.click(screening.continue_button)

    flow.wait_until(lambda: window.current_screen() is window.planning_screen, "planning")
    planning = window.planning_screen
    flow.click(planning.validate_button)
    flow.wait_state(window, SessionState.PLANNED)
    shoot(window, out, "05-planning")
    flow.click(planning.continue_button)
    flow.wait_until(lambda: window.current_screen() is window.unit_screen, "the unit screen")
    flow.connect(window, override_reason=None)
    shoot(window, out, "06-unit-connected")
    flow.confirm_and_arm(window)
    shoot(window, out, "07-unit-armed")
    flow.start(window)
    flow.pump_events(6.0)
    shoot(window, out, "08-delivery")

    window.lock()
    flow.wait_until(lambda: window.lock_overlay.isVisible(), "the lock screen")
    flow.pump_events(1.0)
    shoot(window, out, "09-locked-during-delivery")
    flow.type_into(window.lock_overlay.password, password)
    QTest.mouseClick(window.lock_overlay.unlock, Qt.MouseButton.LeftButton)
    flow.wait_until(lambda: not window.locked, "the unlock")

    flow.click(window.delivery_screen.pause_button)
    flow.wait_state(window, SessionState.PAUSED)
    window.delivery_screen.titrate_value.setText("2.2")
    shoot(window, out, "10-paused-titration")
    flow.press_escape(window)  # the emergency stop, from the keyboard
    flow.wait_state(window, SessionState.FAULTED)
    flow.wait_until(
        lambda: "confirmed" in window.statusBar().currentMessage(), "the stop's confirmation"
    )
    shoot(window, out, "11-emergency-stop")

    flow.click(window.delivery_screen.document_button)
    doc = window.documentation_screen
    flow.wait_until(lambda: window.current_screen() is doc, "documentation")
    doc.pain_before.set_value(6)
    doc.pain_after.set_value(4)
    doc.adverse["reddening"].setChecked(True)
    doc.adverse["transient_pain"].setChecked(True)
    for x, y in ((500, 640), (430, 600), (575, 600)):
        doc.knee.add_point(x, y)
    doc.notes.setPlainText(
        "Stopped early with the emergency stop (patient moved). Step-downs reviewed; "
        "hip abductor work to continue daily."
    )
    flow.click(doc.save_button)
    flow.wait_state(window, SessionState.DOCUMENTED)
    flow.type_into(doc.user_name, "therapist")  # first signature since sign-in: 21 CFR 11.200
    flow.type_into(doc.password, "x" * len(password))
    shoot(window, out, "12-documentation")
    flow.type_into(doc.password, password)
    flow.click(doc.sign_button)
    flow.wait_state(window, SessionState.SIGNED)
    flow.click(doc.done_button)
    flow.wait_until(lambda: window.current_screen() is window.patient_screen, "the patient page")
    flow.wait_until(lambda: window.patient_screen.history.rowCount() >= 3, "the new session")
    shoot(window, out, "13-patient-after-session")


if __name__ == "__main__":
    raise SystemExit(main())
