"""The service console offscreen over simulated units on real links: rooms and connection check,
connect, diagnostics, raw console (refused while armed), the emergency stop by button and by
Esc, the communication log with its replay, and role separation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from console.alarms import AlarmPriority
from console.auth import PermissionDenied, SignedInUser
from console.devices import open_device
from console.services import ConsoleServices
from console.ui.service.console import ServiceConsole
from device_drivers.commlog import CommLog
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import REFERENCE_SERIAL, EpatSimulator
from device_drivers.interface import DeviceParameters
from tests.console.conftest import PASSWORD
from tests.console.service.conftest import SPEED
from tests.console.session_helpers import Pump, connected_session

pytestmark = [pytest.mark.gui]
WAIT_MS = 20_000
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def console(qtbot: Any, services: ConsoleServices, engineer: SignedInUser, tmp_path: Path):
    widget = ServiceConsole(services, engineer, rooms_path=tmp_path / "rooms.json")
    qtbot.addWidget(widget)
    widget.resize(1366, 860)
    widget.show()
    yield widget
    widget.shutdown()


def _add_unit(
    qtbot: Any, console: ServiceConsole, room: str, name: str, modality: str, link: str
) -> None:
    page = console.rooms_page
    page.room_edit.setText(room)
    page.unit_edit.setText(name)
    page.modality_box.setCurrentText(modality)
    page.link_box.setEditText(link)
    qtbot.mouseClick(page.save_button, LEFT)
    qtbot.waitUntil(lambda: any(u.name == name for u in page.settings.units), timeout=WAIT_MS)


@pytest.mark.req("SVC-ROOM-1")
@pytest.mark.req("SVC-DIAG-1")
@pytest.mark.req("SVC-RAW-1")
@pytest.mark.req("SVC-RAW-2")
def test_connect_diagnose_raw_console_and_emergency_stop(
    qtbot: Any,
    console: ServiceConsole,
    services: ConsoleServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    simulator, url = epat_sim
    simulator.fit_applicator("R15", shots_used=930_000)
    console.show_tab("Rooms and connections")
    _add_unit(qtbot, console, "Room 1", "EPAT", "epat", url)
    qtbot.mouseClick(console.rooms_page.check_button, LEFT)
    qtbot.waitUntil(lambda: console.rooms_page.last_check is not None, timeout=WAIT_MS)
    assert "connected" in console.rooms_page.check_result.text()
    assert "RPW-200" in console.rooms_page.check_result.text()
    console.rooms_page.link_box.setEditText("http://not-a-port")
    qtbot.mouseClick(console.rooms_page.save_button, LEFT)
    qtbot.waitUntil(
        lambda: "not a serial port" in " ".join(console.rooms_page.notice.lines), timeout=WAIT_MS
    )

    console.select_unit("Room 1", "EPAT")
    qtbot.mouseClick(console.connect_button, LEFT)
    qtbot.waitUntil(lambda: console.unit is not None, timeout=WAIT_MS)
    assert "RPW-200" in console.unit_label.text()

    console.show_tab("Diagnostics")
    page = console.diagnostics_page
    qtbot.mouseClick(page.run_button, LEFT)
    qtbot.waitUntil(lambda: page.report is not None, timeout=WAIT_MS)
    assert "RPW-200" in page.identity.text() and "firmware" in page.identity.text()
    assert page.wear_bar.value() == 930 and "WARNING" in page.wear_label.text()
    assert page.checks.text().count("✔") == 4 and "passed" in page.checks.text()
    assert page.link.rowCount() > 5 and page.events.rowCount() >= 0

    console.show_tab("Raw console")
    raw = console.raw_page
    for text in ("GET_STATUS", "SET_PARAMS fa00 5000 64000000", "ARM", "START"):
        raw.input.setText(text)
        qtbot.keyClick(raw.input, Qt.Key.Key_Return)  # typed one after another: sent in order
    qtbot.waitUntil(lambda: len(raw.exchanges) == 4, timeout=WAIT_MS)
    assert [e.command.split(" ")[0] for e in raw.exchanges] == [
        "GET_STATUS",
        "SET_PARAMS",
        "ARM",
        "START",
    ]
    assert "state=IDLE" in raw.exchanges[0].reply
    assert raw.exchanges[3].outcome == "refused"
    assert "REFUSED" in raw.transcript.toPlainText()
    assert simulator.snapshot().state.name == "ARMED"
    recent = services.trail.events(after_seq=services.trail.head().seq - 4, limit=10)
    assert [e.data.get("outcome") for e in recent if e.action == "device.raw_command"][
        -1
    ] == "refused"

    qtbot.mouseClick(console.estop, LEFT)
    qtbot.waitUntil(lambda: simulator.snapshot().state.name == "FAULT", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "EMERGENCY STOP" in console.notice.heading.text(), timeout=WAIT_MS)


@pytest.mark.req("SVC-RAW-2")
def test_esc_stops_a_connected_unit_from_anywhere(
    qtbot: Any,
    console: ServiceConsole,
    services: ConsoleServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    simulator, url = epat_sim
    _add_unit(qtbot, console, "Room 1", "EPAT", "epat", url)
    console.select_unit("Room 1", "EPAT")
    qtbot.mouseClick(console.connect_button, LEFT)
    qtbot.waitUntil(lambda: console.unit is not None, timeout=WAIT_MS)
    qtbot.keyClick(console.raw_page.input, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: simulator.snapshot().state.name == "FAULT", timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: services.trail.get(services.trail.head().seq).action == "device.emergency_stop",
        timeout=WAIT_MS,
    )


@pytest.mark.req("SVC-LOG-1")
@pytest.mark.req("SVC-REPLAY-1")
def test_a_session_log_is_read_and_replayed_from_the_screen(
    qtbot: Any, console: ServiceConsole, services: ConsoleServices
) -> None:
    folder = services.config.commlog_dir
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "se-00aa11bb22cc33dd-epat.jsonl"
    with EpatTcpServer(EpatSimulator(speed=SPEED)).start() as server:
        log = CommLog(path)
        device = open_device(epat_url=server.url, speed=SPEED, commlog=log)
        try:
            device.load_parameters(
                DeviceParameters(Decimal("8.0"), 100, pressure_bar=Decimal("2.50"))
            )
            device.status()
        finally:
            device.close()
            log.close()
    console.show_tab("Communication log")
    page = console.commlog_page
    qtbot.mouseClick(page.refresh_button, LEFT)
    qtbot.waitUntil(lambda: len(page.files) == 1, timeout=WAIT_MS)
    assert page.file_table.item(0, 0).text() == "se-00aa11bb22cc33dd"
    page.file_table.selectRow(0)
    qtbot.waitUntil(lambda: page.view is not None, timeout=WAIT_MS)
    decoded = [page.rows.item(r, 3).text() for r in range(page.rows.rowCount())]
    assert any("SET_PARAMS" in text for text in decoded) and any("HELLO" in t for t in decoded)
    page.speed.setValue(SPEED)
    qtbot.mouseClick(page.replay_button, LEFT)
    qtbot.waitUntil(lambda: page.replay_result is not None, timeout=WAIT_MS)
    assert page.replay_table.rowCount() == len(page.replay_result.rows) > 3
    assert "every reply as recorded" in page.summary.text()


@pytest.mark.req("SVC-ROLE-1")
def test_therapists_and_admins_cannot_open_the_service_console(
    qtbot: Any, services: ConsoleServices, tmp_path: Path
) -> None:
    for user_id in ("thera", "admin"):
        user = services.login(user_id, PASSWORD)
        with pytest.raises(PermissionDenied):
            ServiceConsole(services, user, rooms_path=tmp_path / "rooms.json")
        denied = services.trail.get(services.trail.head().seq)
        assert (denied.action, denied.actor, denied.data["action"]) == (
            "access.denied",
            user_id,
            "device_diagnostics",
        )


@pytest.mark.req("ALARM-SVC-1")
def test_service_console_emergency_stop_raises_an_alarm_where_it_raised_none(
    qtbot: Any,
    console: ServiceConsole,
    services: ConsoleServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    simulator, url = epat_sim
    _add_unit(qtbot, console, "Room 1", "EPAT", "epat", url)
    console.select_unit("Room 1", "EPAT")
    qtbot.mouseClick(console.connect_button, LEFT)
    qtbot.waitUntil(lambda: console.unit is not None, timeout=WAIT_MS)
    qtbot.mouseClick(console.estop, LEFT)
    qtbot.waitUntil(lambda: simulator.snapshot().state.name == "FAULT", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: services.alarms.highest() is not None, timeout=WAIT_MS)
    alarm = services.alarms.highest()
    assert alarm is not None and alarm.priority is AlarmPriority.HIGH and alarm.persists
    assert "EMERGENCY STOP" in alarm.message and "latched in fault" in alarm.message
    services.alarms.acknowledge(alarm.key, "svc")
    assert [a.key for a in services.alarms.active()] == [alarm.key]  # the unit is still held
    console.disconnect_unit()
    qtbot.waitUntil(lambda: services.alarms.active() == [], timeout=WAIT_MS)
    actions = [e.action for e in services.trail.events(after_seq=0, limit=10_000)]
    assert {"alarm.raised", "alarm.acknowledged", "alarm.resolved"} <= set(actions)


@pytest.mark.req("SVC-SESS-1")
def test_service_console_refuses_a_unit_in_an_open_session_without_opening_it(
    qtbot: Any,
    console: ServiceConsole,
    services: ConsoleServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    """The defect: the service console opened a unit a therapist's session was connected to,
    which cut the session's link (a unit serves one host at a time)."""
    simulator, url = epat_sim
    therapist = services.login("thera", PASSWORD)
    patient = services.create_patient(therapist, "KNEE-0001", date(1980, 5, 17))
    services.assign_programme(therapist, patient.patient_id, "knee-load-sharing", date(2026, 10, 1))
    pump = Pump()
    try:
        workflow = connected_session(services, therapist, patient.patient_id, pump)
        session_id = workflow.ctx.session_id
        connections = simulator.stats().connections
        _add_unit(qtbot, console, "Room 1", "EPAT", "epat", url)
        qtbot.mouseClick(console.rooms_page.check_button, LEFT)
        qtbot.waitUntil(lambda: console.rooms_page.last_check is not None, timeout=WAIT_MS)
        assert "NO CONNECTION" in console.rooms_page.check_result.text()
        assert f"is in session {session_id} (connected)" in console.rooms_page.check_result.text()

        console.select_unit("Room 1", "EPAT")
        qtbot.mouseClick(console.connect_button, LEFT)
        qtbot.waitUntil(lambda: bool(console.notice.lines), timeout=WAIT_MS)
        [line] = console.notice.lines
        assert line == (
            f"unit {REFERENCE_SERIAL} is in session {session_id} (connected) — use the "
            "treating console"
        )
        assert console.unit is None and console.connect_button.isEnabled()
        assert simulator.stats().connections == connections  # nothing was opened
        refused = [e for e in services.trail.events() if e.action == "device.service_refused"]
        assert [(e.actor, e.data["session_id"], e.data["matched"]) for e in refused] == [
            ("svc", session_id, "link"),
            ("svc", session_id, "link"),
        ]
        workflow.arm()  # the treating console still holds its unit
        assert simulator.snapshot().state.name == "ARMED"
    finally:
        pump.close()


@pytest.mark.req("SVC-SESS-1")
def test_service_console_shows_a_unit_in_another_consoles_treatment_as_one_line(
    qtbot: Any, console: ServiceConsole, services: ConsoleServices
) -> None:
    """The defect: connecting to a unit another console armed was not told as a refusal."""
    # Real time: the other console's heartbeats keep its unit armed (a 500 ms watchdog).
    simulator = EpatSimulator(speed=1.0, applicator="D20-S")
    with EpatTcpServer(simulator).start() as server, open_device(epat_url=server.url) as other:
        other.load_parameters(
            DeviceParameters(frequency_hz=Decimal("8.0"), pulses=100, pressure_bar=Decimal("2.50"))
        )
        other.arm()
        _add_unit(qtbot, console, "Room 2", "EPAT", "epat", server.url)
        console.select_unit("Room 2", "EPAT")
        qtbot.mouseClick(console.connect_button, LEFT)
        qtbot.waitUntil(lambda: bool(console.notice.lines), timeout=WAIT_MS)
        [line] = console.notice.lines
        assert line.startswith(f"Room 2 / EPAT (EPAT) at {server.url} refused: this unit is in")
        assert "\n" not in line and "Traceback" not in line
        assert console.unit is None and simulator.snapshot().delivered == 0
    refused = [e for e in services.trail.events() if e.action == "device.service_refused"]
    assert [e.actor for e in refused] == ["svc"]
    assert "another console's treatment" in refused[0].data["reason"]
