"""A unit's diagnostics for the service engineer, read through the common device interface.

``collect`` runs on the thread that owns the driver (the unit's worker): identity, firmware and
protocol, envelope, the fitted applicator and its wear against its rated life (a warning from
90 %), status (state, temperature, faults), the self-test with a result per check (only when the
unit is idle, as both ICDs require), link quality (round trips, CRC errors, retries) and the
unit's event log. A step that fails is reported with its reason; the others still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

from device_drivers.errors import DeviceError
from device_drivers.interface import (
    ApplicatorInfo,
    DeviceEnvelope,
    DeviceEvent,
    DeviceIdentity,
    DeviceStatus,
    SelfTestResult,
    TherapyDevice,
    UnitState,
    ValueRange,
)

WEAR_WARNING_PERCENT = Decimal(90)
T = TypeVar("T")


def self_test_checks(modality: str) -> tuple[str, ...]:
    """Every check the unit's self-test runs, in bit order (ICD)."""
    if modality == "epat":
        from device_drivers.epat.constants import SelfTestCheck

        return tuple(check.name or "" for check in SelfTestCheck)
    from device_drivers.emtt.constants import SELF_TEST_CHECKS

    return tuple(SELF_TEST_CHECKS)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    passed: bool


@dataclass(frozen=True, slots=True)
class SelfTestReport:
    ran: bool
    passed: bool
    checks: tuple[CheckResult, ...]
    raw: int | None
    reason: str  # why it did not run, or "" when it ran


@dataclass(frozen=True, slots=True)
class Wear:
    used: int
    rated: int
    percent: Decimal
    warning: bool


@dataclass(frozen=True, slots=True)
class LinkQuality:
    """Link figures in one vocabulary for both families (None: the family has no such count)."""

    exchanges: int
    retries: int
    timeouts: int
    crc_errors_host: int | None
    crc_errors_unit: int | None
    garbled: int
    rtt_median_ms: Decimal | None
    rtt_p99_ms: Decimal | None
    rtt_max_ms: Decimal | None


@dataclass(frozen=True, slots=True)
class UnitDiagnostics:
    identity: DeviceIdentity
    envelope: DeviceEnvelope | None
    applicator: ApplicatorInfo | None
    wear: Wear | None
    status: DeviceStatus | None
    self_test: SelfTestReport
    link: LinkQuality | None
    events: tuple[DeviceEvent, ...]
    coil: str | None
    problems: tuple[str, ...]

    def audit_record(self) -> dict[str, Any]:
        """What the trail keeps of a diagnostics run (no floats: decimals as text)."""
        return {
            "model": self.identity.model,
            "serial": self.identity.serial,
            "firmware": self.identity.firmware,
            "protocol": self.identity.protocol_version,
            "self_test": {
                "ran": self.self_test.ran,
                "passed": self.self_test.passed,
                "failed": [c.name for c in self.self_test.checks if not c.passed],
                "reason": self.self_test.reason,
            },
            "wear_percent": str(self.wear.percent) if self.wear else None,
            "wear_warning": bool(self.wear and self.wear.warning),
            "temperature_c": str(self.status.temperature_c) if self.status else None,
            "state": self.status.state.value if self.status else None,
            "faults": list(self.status.faults) if self.status else [],
            "events": len(self.events),
            "problems": list(self.problems),
        }


def _ms(value: float | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)


def link_quality(device: TherapyDevice, status: DeviceStatus | None) -> LinkQuality | None:
    stats = getattr(device, "link_stats", None)
    if stats is None:
        return None
    unit_crc = status.crc_errors if status is not None else None
    if hasattr(stats, "commands"):  # EPAT frame channel
        return LinkQuality(
            exchanges=stats.commands,
            retries=stats.retries,
            timeouts=stats.timeouts,
            crc_errors_host=stats.crc_errors,
            crc_errors_unit=unit_crc,
            garbled=stats.bad_lengths + stats.partial_frames + stats.unexpected_frames,
            rtt_median_ms=_ms(stats.rtt_median_ms),
            rtt_p99_ms=_ms(stats.rtt_p99_ms),
            rtt_max_ms=_ms(stats.rtt_max_ms),
        )
    return LinkQuality(  # EMTT SCPI wire
        exchanges=stats.exchanges,
        retries=stats.retries,
        timeouts=stats.timeouts,
        crc_errors_host=None,
        crc_errors_unit=None,
        garbled=stats.garbled + stats.resyncs,
        rtt_median_ms=_ms(stats.rtt_median_ms),
        rtt_p99_ms=_ms(stats.rtt_p99_ms),
        rtt_max_ms=_ms(stats.rtt_max_ms),
    )


def wear_of(applicator: ApplicatorInfo | None) -> Wear | None:
    if applicator is None or not applicator.present or applicator.shots_rated <= 0:
        return None
    percent = applicator.wear_percent
    return Wear(
        applicator.shots_used,
        applicator.shots_rated,
        percent,
        percent >= WEAR_WARNING_PERCENT,
    )


def _self_test(device: TherapyDevice, modality: str, status: DeviceStatus | None) -> SelfTestReport:
    names = self_test_checks(modality)
    if status is None:
        return SelfTestReport(False, False, (), None, "the unit's state could not be read")
    if status.state is not UnitState.IDLE:
        return SelfTestReport(
            False,
            False,
            (),
            None,
            f"not run: the unit is {status.state.value}; the self-test runs only when it is IDLE "
            "(disarm or clear the fault first)",
        )
    result: SelfTestResult = device.self_test()
    failed = set(result.failed_checks)
    checks = tuple(CheckResult(name, name not in failed) for name in names)
    return SelfTestReport(True, result.passed, checks, result.raw, "")


def collect(device: TherapyDevice, *, run_self_test: bool = True) -> UnitDiagnostics:
    """Everything the diagnostics screen shows, read from ``device`` (on its owner thread)."""
    problems: list[str] = []

    def attempt(what: str, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except DeviceError as exc:
            problems.append(f"{what}: {exc}")
            return None

    identity = device.identify()
    modality = identity.modality.value
    envelope = attempt("envelope", device.envelope)
    applicator = attempt("applicator", device.applicator)
    status = attempt("status", device.status)
    if run_self_test:
        test = attempt("self-test", lambda: _self_test(device, modality, status))
        if test is None:
            test = SelfTestReport(False, False, (), None, problems[-1])
        elif test.ran:
            status = attempt("status after the self-test", device.status) or status
    else:
        test = SelfTestReport(False, False, (), None, "not asked for")
    events = attempt("event log", lambda: device.event_log(0)) or []
    coil = None
    if modality == "emtt" and hasattr(device, "coil_diagnostics"):
        coil = coil_text(attempt("coil", device.coil_diagnostics))
    return UnitDiagnostics(
        identity=identity,
        envelope=envelope,
        applicator=applicator,
        wear=wear_of(applicator),
        status=status,
        self_test=test,
        link=link_quality(device, status),
        events=tuple(events),
        coil=coil,
        problems=tuple(problems),
    )


def coil_text(value: object) -> str | None:
    """The applicator coil's figures in words (the driver gives a value or the raw answer)."""
    if value is None:
        return None
    inductance = getattr(value, "inductance_uh", None)
    resistance = getattr(value, "resistance_mohm", None)
    if inductance is not None and resistance is not None:
        return f"inductance {inductance} µH, resistance {resistance} mΩ"
    return str(value)


def range_text(value: ValueRange | None, unit: str) -> str:
    if value is None:
        return "—"
    step = f", step {value.step}" if value.step is not None else ""
    return f"{value.minimum}–{value.maximum} {unit}{step}"
