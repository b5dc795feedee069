"""Opening the EPAT driver: HELLO, clear errors for wrong links and other devices, the
communication log."""

from __future__ import annotations

import dataclasses
import itertools
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_drivers.commlog import CommLog, read_commlog
from device_drivers.epat.codec import decode_frames
from device_drivers.epat.constants import Command, Reply
from device_drivers.epat.driver import EpatDriver
from device_drivers.errors import ImpossibleEnvelope, LinkLost, LinkTimeout, ProtocolError
from device_drivers.interface import DeviceIdentity, Modality
from tests.device_drivers.epat.epat_helpers import UnitFactory


class _OtherDevice:
    """A TCP peer that is not an EPAT unit: it answers each chunk with ``answer`` (or not)."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                if self.answer is not None:
                    conn.sendall(self.answer)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def other_device() -> Iterator[type[_OtherDevice]]:
    made: list[_OtherDevice] = []

    def make(answer: bytes | None) -> _OtherDevice:
        device = _OtherDevice(answer)
        made.append(device)
        return device

    yield make  # type: ignore[misc]
    for device in made:
        device.close()


@pytest.mark.req("EPAT-OPEN-1")
def test_open_says_hello_and_reports_identity(make_unit: UnitFactory) -> None:
    unit = make_unit(serial="RPW-7")
    log = CommLog()
    driver = unit.driver(commlog=log)
    first_tx = decode_frames(log.records()[0].data)
    assert first_tx[0].cmd == Command.HELLO  # every connection starts with HELLO
    assert driver.identify() == DeviceIdentity(
        Modality.EPAT, driver.identify().manufacturer, "RPW-200", "RPW-7", "1.2.0", 1
    )


@pytest.mark.req("EPAT-OPEN-1")
def test_wrong_url_is_a_clear_link_lost() -> None:
    with pytest.raises(LinkLost, match="cannot open serial link"):
        EpatDriver("nosuchscheme://here")


@pytest.mark.req("EPAT-OPEN-1")
def test_port_that_is_not_there_is_a_clear_link_lost() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(LinkLost, match="cannot open"):
        EpatDriver(f"socket://127.0.0.1:{port}")


@pytest.mark.req("EPAT-OPEN-1")
def test_device_path_that_is_not_there_is_a_clear_link_lost(tmp_path: Path) -> None:
    with pytest.raises(LinkLost, match="check the port name"):
        EpatDriver(str(tmp_path / "ttyUSB9"))


@pytest.mark.req("EPAT-OPEN-1")
def test_silent_peer_is_a_link_timeout_naming_the_url(other_device) -> None:
    peer = other_device(None)
    url = f"socket://127.0.0.1:{peer.port}"
    with pytest.raises(LinkTimeout, match=r"no EPAT unit answered at socket://127\.0\.0\.1"):
        EpatDriver(url, reply_timeout_s=0.05)


@pytest.mark.req("EPAT-OPEN-1")
def test_a_device_speaking_another_protocol_is_named_as_such(other_device) -> None:
    peer = other_device(b'-113,"Undefined header"\n')
    with pytest.raises(ProtocolError, match="another kind of device"):
        EpatDriver(f"socket://127.0.0.1:{peer.port}", reply_timeout_s=0.05)


@pytest.mark.req("EPAT-OPEN-1")
def test_a_unit_of_another_protocol_version_is_refused(make_unit: UnitFactory) -> None:
    unit = make_unit(protocol=2)
    with pytest.raises(ProtocolError, match="speaks EPAT protocol 2"):
        unit.driver()


@pytest.mark.req("EPAT-OPEN-2")
@pytest.mark.parametrize(
    ("nonsense", "words"),
    [
        (
            {"p_min_cbar": 500, "p_max_cbar": 100},
            "pressure minimum 5.00 bar above its maximum 1.00",
        ),
        ({"f_min_dhz": 200, "f_max_dhz": 10}, "frequency minimum 20.0 Hz above its maximum 1.0"),
        ({"max_pulses": 0}, "at most 0 pulses per load"),
        ({"p_min_cbar": 0, "p_max_cbar": 0}, "pressure maximum 0.00 bar"),
    ],
    ids=["pressure-min-above-max", "frequency-min-above-max", "zero-pulses", "zero-pressure"],
)
def test_unit_reporting_an_impossible_envelope_in_hello_is_refused_on_open(
    make_unit: UnitFactory, nonsense: dict[str, int], words: str
) -> None:
    """The defect: the driver took any envelope the HELLO reported (min > max, 0 pulses)."""
    unit = make_unit(speed=5.0)
    model = unit.sim._model  # the unit's own word, as a faulty unit would report it
    model.identity = dataclasses.replace(model.identity, **nonsense)
    with pytest.raises(ImpossibleEnvelope) as refused:
        unit.driver()
    message = str(refused.value)
    assert isinstance(refused.value, ProtocolError) and "\n" not in message
    assert message.startswith(f"the unit at {unit.url} reports an impossible envelope (")
    assert words in message and message.endswith(": service the unit")
    assert unit.sim.snapshot().state.name == "IDLE" and unit.sim.stats().heartbeats_received == 0


@pytest.mark.req("EPAT-LOG-1")
def test_every_byte_goes_to_the_communication_log(make_unit: UnitFactory, tmp_path: Path) -> None:
    unit = make_unit()
    path = tmp_path / "comm.jsonl"
    log = CommLog(path)
    driver = unit.driver(commlog=log)
    driver.status()
    driver.applicator()
    driver.close()
    log.close()
    records = list(read_commlog(path))
    assert records == log.records()
    tx = [f for r in records if r.direction == "tx" for f in decode_frames(r.data)]
    rx = [f for r in records if r.direction == "rx" for f in decode_frames(r.data)]
    assert [f.cmd for f in tx][:4] == [
        Command.HELLO,
        Command.GET_STATUS,  # opening reads the state without a heartbeat (EPAT-HOST-1)
        Command.GET_STATUS,
        Command.GET_APPLICATOR,
    ]
    assert [f.seq for f in rx if f.cmd in (Reply.ACK, Reply.NAK)] == [f.seq for f in tx]
    assert all(a.t_ns <= b.t_ns for a, b in itertools.pairwise(records))


@pytest.mark.req("EPAT-OPEN-1")
def test_a_loop_url_opens_but_its_echo_is_not_taken_for_a_unit() -> None:
    # loop:// hands the driver its own HELLO back: a frame, but not a reply
    with pytest.raises(LinkTimeout, match="no EPAT unit answered at loop://"):
        EpatDriver("loop://", reply_timeout_s=0.03)
