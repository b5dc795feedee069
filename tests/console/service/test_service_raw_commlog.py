"""The raw console (refused while armed, every command audited, the emergency stop), and the
communication log: decoded with times, and replayed against a fresh simulator with the
differences flagged. Units are simulators on real TCP links; logs are written by the drivers."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from console.auth import PermissionDenied, SignedInUser
from console.devices import open_device
from console.service.commlog_view import CommLogError, decode_commlog
from console.service.context import ServiceServices
from console.service.raw import RawCommandError, parse_raw
from console.service.replay import ReplayError, replay_file
from console.service.rooms import UnitLink
from console.services import ConsoleServices
from device_drivers.commlog import CommLog
from device_drivers.emtt.server import EmttTcpServer
from device_drivers.emtt.simulator import EmttSimulator
from device_drivers.epat.codec import encode_frame
from device_drivers.epat.server import EpatTcpServer
from device_drivers.epat.simulator import EpatSimulator
from device_drivers.interface import DeviceParameters
from tests.console.conftest import PASSWORD
from tests.console.service.conftest import SPEED


def _last(services: ConsoleServices):  # -> AuditEvent
    return services.trail.get(services.trail.head().seq)


@pytest.mark.req("SVC-RAW-1")
def test_raw_commands_are_decoded_and_each_is_audited(
    services: ConsoleServices,
    engineer: SignedInUser,
    service: ServiceServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    unit = service.connect(engineer, UnitLink("Room 1", "EPAT", "epat", epat_sim[1]))
    try:
        status = unit.raw(engineer, "GET_STATUS")
        assert status.outcome == "reply" and "state=IDLE" in status.reply
        audited = _last(services)
        assert (audited.action, audited.actor) == ("device.raw_command", "svc")
        assert audited.data["command"] == "GET_STATUS (0x03)"
        assert audited.data["outcome"] == "reply" and "state=IDLE" in audited.data["reply"]
        nak = unit.raw(engineer, "ARM")
        assert nak.outcome == "reply" and "NAK WRONG_STATE" in nak.reply
        events = unit.raw(engineer, "0x41 00 00")
        assert events.outcome == "reply" and "events" in events.reply
        head = services.trail.head()
        for bad, message in (("FIRE_AT_WILL", "unknown EPAT command"), ("0x03 zz", "not hex")):
            with pytest.raises(RawCommandError, match=message):
                unit.raw(engineer, bad)
        assert services.trail.head() == head  # nothing sent, nothing to record
    finally:
        unit.close(engineer)


@pytest.mark.req("SVC-RAW-2")
def test_raw_commands_are_refused_while_the_unit_is_armed_and_the_refusal_is_audited(
    services: ConsoleServices,
    engineer: SignedInUser,
    service: ServiceServices,
    epat_sim: tuple[EpatSimulator, str],
) -> None:
    simulator, url = epat_sim
    unit = service.connect(engineer, UnitLink("Room 1", "EPAT", "epat", url))
    try:
        # 2.50 bar, 8.0 Hz, 100 pulses (little-endian u16, u16, u32), then ARM
        assert "ACK" in unit.raw(engineer, "SET_PARAMS fa00 5000 64000000").reply
        assert "ACK" in unit.raw(engineer, "ARM").reply
        assert simulator.snapshot().state.name == "ARMED"
        refused = unit.raw(engineer, "START")
        assert refused.outcome == "refused" and "ARMED" in refused.reply
        assert simulator.snapshot().state.name == "ARMED"  # nothing was sent
        audited = _last(services)
        assert audited.data["outcome"] == "refused" and audited.data["command"].startswith("START")
        delivered = unit.emergency_stop(engineer)
        assert delivered == 0 and simulator.snapshot().state.name == "FAULT"
        stop = _last(services)
        assert stop.action == "device.emergency_stop" and stop.data["via"] == "service_console"
        therapist = services.login("thera", PASSWORD)
        with pytest.raises(PermissionDenied):
            unit.raw(therapist, "GET_STATUS")
        assert _last(services).data["action"] == "raw_device_command"
    finally:
        unit.close(engineer)


@pytest.mark.req("SVC-RAW-2")
def test_emtt_raw_lines_are_refused_while_armed(
    services: ConsoleServices,
    engineer: SignedInUser,
    service: ServiceServices,
    emtt_sim: tuple[EmttSimulator, str],
) -> None:
    unit = service.connect(engineer, UnitLink("Room 1", "EMTT", "emtt", emtt_sim[1]))
    try:
        assert unit.raw(engineer, "*IDN?").reply.startswith("STORM-LABS,EMT-100")
        rejected = unit.raw(engineer, "SOUR:FIEL 999")
        assert rejected.outcome == "rejected" and "-222" in rejected.reply
        unit.raw(engineer, "SOUR:FIEL 30;FREQ 5;PULS 100")
        unit.raw(engineer, "SESS:ARM")
        refused = unit.raw(engineer, "SYST:ERR?")
        assert refused.outcome == "refused" and "ARMED" in refused.reply
        assert _last(services).data["outcome"] == "refused"
        with pytest.raises(RawCommandError, match="one SCPI line"):
            parse_raw("emtt", "*IDN?\nSESS:STAR")
    finally:
        unit.close(engineer)
    assert emtt_sim[0].snapshot().state == "IDLE"  # closing left it disarmed


def _record_epat(path: Path, simulator: EpatSimulator) -> None:
    """A short service session on ``simulator`` through the real driver, logged to ``path``."""
    with EpatTcpServer(simulator).start() as server:
        log = CommLog(path)
        device = open_device(epat_url=server.url, speed=SPEED, commlog=log)
        try:
            device.identify()
            device.applicator()
            device.status()
            device.load_parameters(
                DeviceParameters(Decimal("8.0"), 100, pressure_bar=Decimal("2.50"))
            )
            device.disarm()
            device.event_log(0)
        finally:
            device.close()
            log.close()


@pytest.mark.req("SVC-LOG-1")
def test_an_epat_log_is_decoded_frame_by_frame_with_times(
    services: ConsoleServices, engineer: SignedInUser, service: ServiceServices, tmp_path: Path
) -> None:
    assert service.commlog_dir is not None
    service.commlog_dir.mkdir(parents=True, exist_ok=True)
    path = service.commlog_dir / "se-0123456789abcdef-epat.jsonl"
    _record_epat(path, EpatSimulator(speed=SPEED))
    listed = service.commlogs(engineer)
    assert [(f.session_id, f.modality) for f in listed] == [("se-0123456789abcdef", "epat")]
    view = service.read_commlog(engineer, path)
    assert _last(services).action == "device.commlog_viewed"
    texts = [row.text for row in view.rows]
    commands = [row.text for row in view.rows if row.kind == "command"]
    assert commands[0] == "[SEQ 1] HELLO" or commands[0].endswith("HELLO")
    assert any("SET_PARAMS" in t and "pressure_cbar=250" in t for t in commands)
    assert any("RPW-200" in t for t in texts)  # HELLO's ACK decoded
    assert any(row.kind == "unsolicited" and "EVENT state → READY" in row.text for row in view.rows)
    assert any(row.kind == "reply" and "DISARM" in row.text for row in view.rows)
    times = [row.t_us for row in view.rows]
    assert times[0] == 0 and times == sorted(times)
    replies = [row for row in view.rows if row.kind == "reply"]
    assert replies and all(row.seq is not None for row in replies)
    # a frame hit by noise (CRC wrong) and a frame cut off at the end show as such
    bad = bytearray(encode_frame(0, 0x81, bytes(5)))
    bad[-1] ^= 0xFF
    with open(path, "a", encoding="ascii") as handle:
        handle.write(json.dumps({"t_ns": 10**18, "dir": "rx", "hex": bad.hex()}) + "\n")
    noisy = decode_commlog(path)
    assert noisy.rows[-1].kind == "garbage" and "no valid frame" in noisy.rows[-1].text
    with open(path, "a", encoding="ascii") as handle:
        cut = encode_frame(9, 0x03)[:3]
        handle.write(json.dumps({"t_ns": 10**18 + 1, "dir": "tx", "hex": cut.hex()}) + "\n")
    assert "never finished" in decode_commlog(path).rows[-1].text


@pytest.mark.req("SVC-LOG-1")
def test_an_emtt_log_is_decoded_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "se-1-emtt.jsonl"
    simulator = EmttSimulator(speed=SPEED)
    server = EmttTcpServer(simulator).start()
    log = CommLog(path)
    try:
        device = open_device(emtt_resource=server.resource, speed=SPEED, commlog=log)
        try:
            device.identify()
            device.self_test()
        finally:
            device.close()
    finally:
        log.close()
        server.stop()
    view = decode_commlog(path)
    assert view.modality == "emtt"
    assert any(r.direction == "tx" and r.text == "*IDN?" for r in view.rows)
    assert any(r.direction == "rx" and r.text.startswith("STORM-LABS,EMT-100") for r in view.rows)
    assert any("*TST?" in r.text and r.direction == "tx" for r in view.rows)
    with pytest.raises(CommLogError, match="not a readable"):
        broken = tmp_path / "broken-epat.jsonl"
        broken.write_text("{not json\n")
        decode_commlog(broken)


@pytest.mark.req("SVC-REPLAY-1")
def test_replaying_an_epat_session_reproduces_its_replies_and_flags_what_differs(
    engineer: SignedInUser, service: ServiceServices, tmp_path: Path
) -> None:
    plain = tmp_path / "se-a-epat.jsonl"
    _record_epat(plain, EpatSimulator(speed=SPEED))
    result = service.replay(engineer, plain, speed=SPEED)
    assert result.rows and result.differences == 0, [r for r in result.rows if not r.same]
    assert any("HELLO" in row.command and "RPW-200" in row.replayed for row in result.rows)
    # the incident: the real unit had a nearly worn applicator; a fresh simulator has a new one
    worn = EpatSimulator(speed=SPEED)
    worn.fit_applicator("R15", shots_used=990_000)
    incident = tmp_path / "se-b-epat.jsonl"
    _record_epat(incident, worn)
    result = replay_file(incident, speed=SPEED)
    first = result.first_difference
    assert first is not None and "GET_APPLICATOR" in first.command
    assert "990000" in first.recorded and "990000" not in first.replayed
    assert result.differences >= 1
    audited = service.trail.events(after_seq=service.trail.head().seq - 3, limit=5)
    assert any(e.action == "device.commlog_replayed" for e in audited)


@pytest.mark.req("SVC-REPLAY-1")
def test_replaying_an_emtt_session(tmp_path: Path) -> None:
    path = tmp_path / "se-c-emtt.jsonl"
    simulator = EmttSimulator(speed=SPEED)
    simulator.remove_applicator()
    server = EmttTcpServer(simulator).start()
    log = CommLog(path)
    try:
        device = open_device(emtt_resource=server.resource, speed=SPEED, commlog=log)
        try:
            device.identify()
            device.applicator()
            device.status()
        finally:
            device.close()
    finally:
        log.close()
        server.stop()
    result = replay_file(path, speed=SPEED)
    idn = next(r for r in result.rows if r.command == "*IDN?")
    assert idn.same and idn.replayed.startswith("STORM-LABS,EMT-100")
    applicator = next(r for r in result.rows if r.command.upper().startswith("SYST:APPL"))
    assert not applicator.same and applicator.recorded.startswith("0")
    assert applicator.replayed.startswith("1")
    with pytest.raises(ReplayError, match="speed"):
        replay_file(path, speed=1000)
    assert all(r.replayed != "(no response line)" for r in result.rows if "?" in r.command)
