"""The unit's HELLO (identity, envelope) and the encoder-side parameter check.

No value outside the unit's own envelope, or not exactly representable in its field, is ever
encoded: :func:`encode_parameters` rejects it (never clamps or rounds) before a frame exists.
The unit itself then judges the applicator fitted at that moment.
"""

from __future__ import annotations

from decimal import Decimal

from device_drivers.epat.codec import Frame
from device_drivers.epat.constants import PROTOCOL_VERSION, Reply
from device_drivers.epat.payloads import HelloInfo, SetParams
from device_drivers.epat.units import (
    ParameterRejected,
    bar_to_cbar,
    cbar_to_bar,
    dhz_to_hz,
    hz_to_dhz,
)
from device_drivers.errors import ImpossibleEnvelope, ProtocolError
from device_drivers.interface import (
    DeviceEnvelope,
    DeviceIdentity,
    DeviceParameters,
    Modality,
    ValueRange,
)

#: EPAT protocol 1 has no manufacturer field; say so rather than invent one.
UNREPORTED_MANUFACTURER = "unknown (not reported by EPAT protocol 1)"


def parse_hello(reply: Frame, url: str) -> HelloInfo:
    """The unit's HELLO answer, or a ``ProtocolError`` saying why this is not an EPAT unit."""
    if reply.cmd != Reply.ACK:
        raise ProtocolError(f"the unit at {url} refused HELLO: {reply}")
    try:
        hello = HelloInfo.unpack(reply.payload)
    except ProtocolError as exc:
        raise ProtocolError(
            f"the device at {url} does not answer HELLO as an EPAT unit: {exc}"
        ) from exc
    if hello.protocol != PROTOCOL_VERSION:
        raise ProtocolError(
            f"the unit at {url} speaks EPAT protocol {hello.protocol}; "
            f"this driver speaks protocol {PROTOCOL_VERSION}"
        )
    check_envelope(hello, url)
    return hello


def check_envelope(hello: HelloInfo, url: str) -> None:
    """Refuse an envelope no unit can have (EPAT-OPEN-2): a minimum above its maximum, a
    pressure or frequency range ending at 0, no pulses per load. Nothing could be checked
    against such limits, so the unit is not used at all."""
    problems = []
    for name, low, high, unit in (
        ("pressure", cbar_to_bar(hello.p_min_cbar), cbar_to_bar(hello.p_max_cbar), "bar"),
        ("frequency", dhz_to_hz(hello.f_min_dhz), dhz_to_hz(hello.f_max_dhz), "Hz"),
    ):
        if low > high:
            problems.append(f"{name} minimum {low} {unit} above its maximum {high} {unit}")
        elif high <= 0:
            problems.append(f"{name} maximum {high} {unit}")
    if hello.max_pulses < 1:
        problems.append(f"at most {hello.max_pulses} pulses per load")
    if problems:
        raise ImpossibleEnvelope(
            f"the unit at {url} reports an impossible envelope ({'; '.join(problems)}): "
            "service the unit"
        )


def identity_from_hello(hello: HelloInfo) -> DeviceIdentity:
    return DeviceIdentity(
        modality=Modality.EPAT,
        manufacturer=UNREPORTED_MANUFACTURER,
        model=hello.model,
        serial=hello.serial,
        firmware=hello.firmware,
        protocol_version=hello.protocol,
    )


def envelope_from_hello(hello: HelloInfo) -> DeviceEnvelope:
    return DeviceEnvelope(
        modality=Modality.EPAT,
        frequency_hz=ValueRange(
            dhz_to_hz(hello.f_min_dhz), dhz_to_hz(hello.f_max_dhz), dhz_to_hz(1)
        ),
        pulses=ValueRange(Decimal(1), Decimal(hello.max_pulses), Decimal(1)),
        pressure_bar=ValueRange(
            cbar_to_bar(hello.p_min_cbar), cbar_to_bar(hello.p_max_cbar), cbar_to_bar(1)
        ),
    )


def encode_parameters(params: DeviceParameters, hello: HelloInfo) -> SetParams:
    """SET_PARAMS for ``params``, or ``ParameterRejected`` naming the field and the limits."""
    if params.pressure_bar is None or params.field_mt is not None:
        raise ParameterRejected(
            "an EPAT unit takes a pressure in bar, not a magnetic field",
            field="field_mt",
            value=params.field_mt,
        )
    cbar = bar_to_cbar(params.pressure_bar)
    dhz = hz_to_dhz(params.frequency_hz)
    if not hello.p_min_cbar <= cbar <= hello.p_max_cbar:
        raise ParameterRejected(
            f"pressure {params.pressure_bar} bar is outside the unit's "
            f"{cbar_to_bar(hello.p_min_cbar)}–{cbar_to_bar(hello.p_max_cbar)} bar",
            field="pressure",
            value=params.pressure_bar,
        )
    if not hello.f_min_dhz <= dhz <= hello.f_max_dhz:
        raise ParameterRejected(
            f"frequency {params.frequency_hz} Hz is outside the unit's "
            f"{dhz_to_hz(hello.f_min_dhz)}–{dhz_to_hz(hello.f_max_dhz)} Hz",
            field="frequency",
            value=params.frequency_hz,
        )
    if not 1 <= params.pulses <= hello.max_pulses:
        raise ParameterRejected(
            f"{params.pulses} pulses is outside the unit's 1–{hello.max_pulses} per load",
            field="pulses",
            value=params.pulses,
        )
    return SetParams(cbar, dhz, params.pulses)
