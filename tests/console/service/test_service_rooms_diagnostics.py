"""Room links, discovery without broadcasts, connection checks, and a unit's diagnostics over
simulated units on real TCP links; role separation for the service engineer."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from serial.tools import list_ports

from console.auth import PermissionDenied, SignedInUser
from console.service.context import ServiceServices
from console.service.diagnostics import self_test_checks
from console.service.rooms import RoomSettingsError, UnitLink
from console.services import ConsoleServices
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.simulator import EpatSimulator
from tests.console.conftest import PASSWORD


def _last(services: ConsoleServices):  # -> AuditEvent
    return services.trail.get(services.trail.head().seq)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.req("SVC-ROOM-1")
def test_room_links_are_validated_saved_and_audited(
    services: ConsoleServices,
    engineer: SignedInUser,
    service: ServiceServices,
    epat_sim: tuple[EpatSimulator, str],
    emtt_sim: tuple[EmttSimulator, str],
) -> None:
    assert service.rooms(engineer).rooms == ()
    service.save_unit(engineer, UnitLink("Room 1", "EPAT", "epat", epat_sim[1]))
    changed = _last(services)
    assert (changed.action, changed.actor, changed.data["unit"]) == (
        "rooms.changed",
        "svc",
        "Room 1 / EPAT (EPAT)",
    )
    service.save_unit(engineer, UnitLink("Room 1", "EMTT", "emtt", emtt_sim[1]))
    service.save_unit(engineer, UnitLink("Room 2", "EPAT", "epat", "/dev/ttyUSB0"))
    saved = json.loads(service.rooms_path.read_text())
    assert [r["name"] for r in saved["rooms"]] == ["Room 1", "Room 2"]
    settings = service.rooms(engineer)
    assert settings.unit_for("Room 1", "emtt") == UnitLink("Room 1", "EMTT", "emtt", emtt_sim[1])
    head = services.trail.head()
    for bad, message in (
        (UnitLink("Room 1", "EMTT", "emtt", "TCPIP0::10.0.0.255::INSTR::broadcast"), "VISA"),
        (UnitLink("Room 1", "EMTT", "emtt", "?*::INSTR"), "not a VISA resource"),
        (UnitLink("Room 1", "EPAT", "epat", "ttyUSB0 "), "spaces"),
        (UnitLink("Room 1", "EPAT", "epat", "http://unit"), "not a serial port"),
        (UnitLink("Room 1", "X", "ultrasound", "/dev/ttyS1"), "modality"),
    ):
        with pytest.raises(RoomSettingsError, match=message):
            service.save_unit(engineer, bad)
    assert services.trail.head() == head and service.rooms(engineer) == settings
    service.remove_unit(engineer, "Room 2", "EPAT")
    assert [r.name for r in service.rooms(engineer).rooms] == ["Room 1"]
    with pytest.raises(RoomSettingsError, match="no unit"):
        service.remove_unit(engineer, "Room 9", "EPAT")


@pytest.mark.req("SVC-ROOM-2")
def test_discovery_lists_local_ports_and_named_resources_only(
    engineer: SignedInUser,
    service: ServiceServices,
    emtt_sim: tuple[EmttSimulator, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyvisa

    asked: list[Any] = []

    def never(*args: Any, **kwargs: Any) -> Any:  # records the call; discovery must not make it
        asked.append(args)
        raise AssertionError("list_resources probes the network and must never be called")

    monkeypatch.setattr(pyvisa.ResourceManager, "list_resources", never)
    service.save_unit(engineer, UnitLink("Room 1", "EMTT", "emtt", emtt_sim[1]))
    found = service.discover(engineer)
    serial_ports = sorted(p.device for p in list_ports.comports())
    assert [p.name for p in found if p.kind == "serial"] == serial_ports
    assert [p.name for p in found if p.kind == "visa"] == [emtt_sim[1]]
    assert asked == []


@pytest.mark.req("SVC-ROOM-1")
def test_check_connection_reads_the_identity_or_says_why_not(
    services: ConsoleServices,
    engineer: SignedInUser,
    service: ServiceServices,
    epat_sim: tuple[EpatSimulator, str],
    emtt_sim: tuple[EmttSimulator, str],
) -> None:
    good = service.check_connection(engineer, UnitLink("R", "EPAT", "epat", epat_sim[1]))
    assert good.ok and good.identity is not None and good.identity.model == "RPW-200"
    assert "firmware" in good.message and _last(services).action == "device.connection_checked"
    emtt = service.check_connection(engineer, UnitLink("R", "EMTT", "emtt", emtt_sim[1]))
    assert emtt.ok and emtt.identity is not None and emtt.identity.model == "EMT-100"
    silent = service.check_connection(
        engineer, UnitLink("R", "EPAT", "epat", f"socket://127.0.0.1:{_free_port()}")
    )
    assert not silent.ok and silent.message
    assert _last(services).data["ok"] is False
    wrong = service.check_connection(
        engineer,
        UnitLink(
            "R", "EMTT", "emtt", f"TCPIP0::127.0.0.1::{epat_sim[1].rsplit(':', 1)[1]}::SOCKET"
        ),
    )
    assert not wrong.ok


@pytest.mark.req("SVC-DIAG-1")
def test_epat_diagnostics_show_identity_wear_self_test_per_check_link_and_event_log(
    services: ConsoleServices,
    engineer: SignedInUser,
    service: ServiceServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    simulator, url = epat_sim
    simulator.fit_applicator("R15", shots_used=905_000)
    unit = service.connect(engineer, UnitLink("Room 1", "EPAT", "epat", url))
    try:
        report = unit.diagnostics(engineer)
        assert (report.identity.model, report.identity.protocol_version) == ("RPW-200", 1)
        assert report.identity.firmware and report.envelope is not None
        assert (
            report.wear is not None and str(report.wear.percent) == "90.5" and report.wear.warning
        )
        assert report.self_test.ran and report.self_test.passed
        assert [c.name for c in report.self_test.checks] == list(self_test_checks("epat"))
        assert all(c.passed for c in report.self_test.checks)
        assert report.status is not None and report.status.temperature_c is not None
        assert report.link is not None and report.link.exchanges > 0
        assert report.link.rtt_median_ms is not None and report.link.crc_errors_unit == 0
        audited = _last(services)
        assert (audited.action, audited.subject_type, audited.subject_id) == (
            "device.diagnostics",
            "device",
            report.identity.serial,
        )
        assert audited.data["wear_warning"] is True and audited.data["self_test"]["passed"]
        simulator.set_self_test_failures(0b0110)
        failed = unit.diagnostics(engineer)
        assert not failed.self_test.passed
        assert {c.name: c.passed for c in failed.self_test.checks} == {
            "HV_SUPPLY": True,
            "PRESSURE_SENSOR": False,
            "TEMPERATURE_SENSOR": False,
            "APPLICATOR_LINK": True,
        }
        assert any("INTERNAL" in e.text for e in failed.events)  # a failed self-test latches
        again = unit.diagnostics(engineer)
        assert not again.self_test.ran and "FAULT" in again.self_test.reason
    finally:
        unit.close(engineer)
    assert _last(services).action == "device.service_closed"


@pytest.mark.req("SVC-DIAG-1")
def test_emtt_diagnostics(
    engineer: SignedInUser, service: ServiceServices, emtt_sim: tuple[EmttSimulator, str]
) -> None:
    unit = service.connect(engineer, UnitLink("Room 1", "EMTT", "emtt", emtt_sim[1]))
    try:
        assert unit.raw(engineer, "SOUR:FIEL 30;FREQ 5;PULS 100").outcome == "reply"  # → READY
        assert unit.raw(engineer, "SESS:STOP").outcome == "reply"  # → IDLE
        report = unit.diagnostics(engineer)
    finally:
        unit.close(engineer)
    assert report.identity.model == "EMT-100" and report.self_test.passed
    assert [c.name for c in report.self_test.checks] == list(self_test_checks("emtt"))
    assert report.wear is not None and not report.wear.warning
    assert report.coil and "µH" in report.coil and "mΩ" in report.coil
    assert report.link is not None and report.link.crc_errors_host is None
    assert [e.text for e in report.events] == ["state READY", "state IDLE"]


@pytest.mark.req("SVC-ROLE-1")
def test_a_service_engineer_cannot_open_a_patients_record_and_the_attempt_is_audited(
    services: ConsoleServices, engineer: SignedInUser
) -> None:
    therapist = services.login("thera", PASSWORD)
    patient = services.create_patient(
        therapist, "KNEE-0042", __import__("datetime").date(1975, 1, 2)
    )
    for attempt in (
        lambda: services.patient_overview(engineer, patient.patient_id),
        lambda: services.search_patients(engineer, "KNEE"),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
        denied = _last(services)
        assert (denied.action, denied.actor, denied.data["action"]) == (
            "access.denied",
            "svc",
            "view_patient",
        )


@pytest.mark.req("SVC-ROLE-1")
def test_only_the_service_role_uses_the_service_layer(
    services: ConsoleServices, service: ServiceServices, epat_sim: tuple[EpatSimulator, str]
) -> None:
    for user_id in ("thera", "admin"):
        user = services.login(user_id, PASSWORD)
        with pytest.raises(PermissionDenied):
            service.connect(user, UnitLink("R", "EPAT", "epat", epat_sim[1]))
        assert _last(services).data["action"] == "device_diagnostics"
    assert Path(service.rooms_path).exists() is False
