"""Shared set-up of the GUI benchmarks: the real console on the demo, driven from a thread.

The main thread runs the Qt event loop exactly as the console does (``app.exec()``); a driver
thread clicks through the screens by posting calls to the GUI thread and waits for the answers,
so nothing in the measurement runs an event loop the product would not run.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtWidgets import QPushButton  # noqa: E402

from console.demo import demo_units, prepare_demo  # noqa: E402
from console.services import ConsoleServices  # noqa: E402
from console.session.states import SessionState  # noqa: E402
from console.ui.adapters import ServicesBackend  # noqa: E402
from console.ui.app import application  # noqa: E402
from console.ui.executor import GuiDispatcher  # noqa: E402
from console.ui.main_window import MainWindow  # noqa: E402
from tests.console.ui.gui_flow import CLEAN_ANSWERS  # noqa: E402

T = TypeVar("T")

OVERRIDE_REASON = "benchmark: repeated sessions on one demo patient, not a treatment"


def percentiles(values_ms: list[float]) -> str:
    ordered = sorted(values_ms)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return (
        f"n={len(ordered)}  p50={pick(0.50):.2f} ms  p90={pick(0.90):.2f} ms  "
        f"p99={pick(0.99):.2f} ms  max={ordered[-1]:.2f} ms  "
        f"mean={statistics.fmean(ordered):.2f} ms"
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} on {os.cpu_count()} CPUs"


class GuiDriver:
    """Runs calls on the GUI thread from the driver thread and waits for their results."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self._dispatch = GuiDispatcher()  # made on the GUI thread

    def call(self, fn: Callable[[], T], timeout_s: float = 20.0) -> T:
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:
                box["error"] = exc
            done.set()

        self._dispatch.post(run)
        if not done.wait(timeout_s):
            raise TimeoutError("the GUI thread did not answer")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.call(condition):
            if time.monotonic() > deadline:
                lines = self.call(
                    lambda: list(getattr(self.window.current_screen().notice, "lines", []))
                )
                snapshot = self.window.controller.snapshot
                held = [i for i in snapshot.interlocks if not i.held] if snapshot else []
                raise TimeoutError(
                    f"timed out waiting for {what}; screen says {lines}; interlocks not held: "
                    f"{held}"
                )
            time.sleep(0.01)

    def click(self, button: QPushButton, what: str) -> None:
        self.wait(lambda: button.isEnabled() and button.isVisible(), f"{what} to be enabled")
        self.call(button.click)

    def state(self) -> SessionState | None:
        snapshot = self.window.controller.snapshot
        return snapshot.state if snapshot else None

    def wait_state(self, state: SessionState, timeout_s: float = 30.0) -> None:
        self.wait(lambda: self.state() is state, f"state {state}", timeout_s)

    # ------------------------------------------------------------------ the session, by screen
    def login(self, user: str, password: str) -> None:
        w = self.window
        self.user = user  # the first signature since sign-in takes the user name too
        self.call(lambda: w.login_screen.username.setText(user))
        self.call(lambda: w.login_screen.password.setText(password))
        self.click(w.login_screen.sign_in, "sign in")
        self.wait(lambda: w.current_screen() is w.patients_screen, "the patient list")

    def open_patient(self, pseudonym: str) -> None:
        w = self.window
        self.call(lambda: w.patients_screen.search.setText(pseudonym))
        self.wait(
            lambda: (
                (row := w.patients_screen.selected()) is not None and row.pseudonym == pseudonym
            ),
            "the patient",
        )
        self.click(w.patients_screen.open_button, "open patient")
        self.wait(lambda: w.current_screen() is w.patient_screen, "the patient page")

    def session_to_delivery(self, protocol_id: str, plan: dict[str, str]) -> None:
        """From the patient page: screening, plan, connect, confirm, arm, start."""
        w = self.window
        page = w.patient_screen
        self.wait(lambda: page.protocol.findData(protocol_id) >= 0, "the protocol list")
        self.call(lambda: page.protocol.setCurrentIndex(page.protocol.findData(protocol_id)))
        self.click(page.start_button, "new session")
        self.wait(lambda: w.current_screen() is w.screening_screen, "the screening")
        screening = w.screening_screen

        def answer() -> None:
            for key, value in CLEAN_ANSWERS.items():
                screening.rows[key].set_answer(value)

        self.call(answer)
        self.click(screening.submit_button, "check answers")
        self.click(screening.continue_button, "continue to planning")
        planning = w.planning_screen

        def values() -> None:
            for name, text in plan.items():
                planning.editors[name].edit.setText(text)

        self.call(values)
        self.click(planning.validate_button, "validate")
        self.wait_state(SessionState.PLANNED)
        self.click(planning.continue_button, "continue to the unit")
        unit = w.unit_screen
        self.click(unit.connect_button, "connect")
        self.wait_state(SessionState.CONNECTED)
        self.wait(lambda: w.controller.snapshot.validated_against_unit, "the unit check")
        if self.call(unit.clear_fault_button.isVisible):  # latched by the previous E-stop
            self.click(unit.clear_fault_button, "clear unit fault")
            self.wait(
                lambda: w.controller.snapshot.last_status.state.value != "FAULT", "fault cleared"
            )
        if self.call(unit.override_box.isVisible):  # e.g. sessions closer than the course allows
            self.call(lambda: unit.override_reason.set_text(OVERRIDE_REASON))
            self.click(unit.override_button, "validate with override")
            self.wait(lambda: bool(w.controller.snapshot.parameter_override_reason), "the override")
        self.click(unit.confirm_button, "confirm")
        self.click(unit.arm_button, "arm")
        self.wait_state(SessionState.ARMED)
        self.click(unit.start_button, "start")
        self.wait_state(SessionState.DELIVERING)

    def document_and_sign(self, password: str) -> None:
        w = self.window
        self.click(w.delivery_screen.document_button, "document")
        doc = w.documentation_screen

        def fill() -> None:
            doc.pain_before.set_value(5)
            doc.pain_after.set_value(4)
            doc.no_adverse.setChecked(True)

        self.call(fill)
        self.click(doc.save_button, "save documentation")
        self.wait_state(SessionState.DOCUMENTED)
        self.call(lambda: doc.user_name.setText(self.user))
        self.call(lambda: doc.password.setText(password))
        self.click(doc.sign_button, "sign")
        self.wait_state(SessionState.SIGNED)
        self.click(doc.done_button, "back to the patient")
        self.wait(lambda: w.current_screen() is w.patient_screen, "the patient page")


@contextmanager
def demo_console(speed: float) -> Iterator[tuple[MainWindow, ConsoleServices, str]]:
    """The console on the demo units and record; yields (window, services, therapist password)."""
    app = application()
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as folder, demo_units(speed) as units:
        setup = prepare_demo(Path(folder), units[0], units[1], speed)
        services = ConsoleServices.open(setup.config)
        window = MainWindow(ServicesBackend(services))
        window.resize(1366, 860)
        window.show()
        try:
            yield window, services, setup.passwords["therapist"]
        finally:
            window.shutdown()
            window.close()
            services.close()
            app.processEvents()


def run_with_event_loop(window: MainWindow, scenario: Callable[[GuiDriver], None]) -> None:
    """Run ``scenario`` on a driver thread while this thread runs the Qt event loop."""
    app = application()
    driver = GuiDriver(window)
    failure: list[BaseException] = []

    def main() -> None:
        try:
            scenario(driver)
        except BaseException as exc:
            failure.append(exc)
        finally:
            # exit, not quit: quit asks the window to close, which it refuses with a unit attached
            driver._dispatch.post(lambda: app.exit(1 if failure else 0))

    thread = threading.Thread(target=main, name="bench-driver", daemon=True)
    thread.start()
    app.exec()
    thread.join(5)
    if failure:
        raise failure[0]
