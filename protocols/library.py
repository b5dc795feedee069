"""The protocol library: indication protocols as versioned data, checked when loaded.

A protocol is what the clinic has decided is safe and useful for one indication on one
modality: the parameter ranges the therapist titrates within, the defaults, the course, and the
text the therapist reads. The shipped defaults are ``protocols/data/protocols/*.toml``; a clinic's
new policy goes through :func:`parse_protocol` with exactly the same checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from types import MappingProxyType

from protocols.datafile import Table, parse_toml
from protocols.errors import ClinicalDataError
from protocols.modality import UNITS, Modality, parse_modality, with_unit
from protocols.packaged import read_packaged_folder


@dataclass(frozen=True, slots=True)
class ParameterRange:
    """The protocol's range and default for one setting (inclusive, in the field's unit)."""

    field: str
    minimum: Decimal
    maximum: Decimal
    default: Decimal

    @property
    def unit(self) -> str:
        return UNITS[self.field]

    def contains(self, value: Decimal | int) -> bool:
        return self.minimum <= value <= self.maximum

    def describe(self) -> str:
        return f"{self.minimum}–{with_unit(self.field, self.maximum)}"


@dataclass(frozen=True, slots=True)
class Course:
    """How many sessions, how far apart.

    ``sessions`` is the most the course has (more needs an override); ``min_sessions`` is the
    least it plans (e.g. 3 of "3–4 sessions"). Sessions closer than ``min_interval_days`` need an
    override; a gap above ``max_interval_days`` or beyond ``span_days`` from the first session is
    only noted (the patient is late, that is not a hazard).
    """

    sessions: int
    min_sessions: int
    min_interval_days: int
    max_interval_days: int | None
    span_days: int | None
    description: str


@dataclass(frozen=True, slots=True)
class TreatmentProtocol:
    id: str
    version: str
    modality: Modality
    indication: str
    title: str
    parameters: tuple[ParameterRange, ...]
    course: Course
    therapist_text: str
    sources: tuple[str, ...]

    def parameter(self, field: str) -> ParameterRange:
        for parameter in self.parameters:
            if parameter.field == field:
                return parameter
        raise KeyError(f"protocol {self.id} has no setting {field!r}")

    @property
    def defaults(self) -> Mapping[str, Decimal]:
        """Default setting per field (pulses as a whole Decimal)."""
        return MappingProxyType({p.field: p.default for p in self.parameters})


@dataclass(frozen=True, slots=True)
class ProtocolLibrary:
    """Protocols by id. Iteration yields them in id order."""

    protocols: Mapping[str, TreatmentProtocol]

    def __iter__(self) -> Iterator[TreatmentProtocol]:
        return iter(self.protocols[key] for key in sorted(self.protocols))

    def __len__(self) -> int:
        return len(self.protocols)

    def __contains__(self, protocol_id: object) -> bool:
        return protocol_id in self.protocols

    def get(self, protocol_id: str) -> TreatmentProtocol:
        try:
            return self.protocols[protocol_id]
        except KeyError:
            known = ", ".join(sorted(self.protocols))
            raise KeyError(f"unknown protocol {protocol_id!r} (known: {known})") from None

    @property
    def versions(self) -> Mapping[str, str]:
        return MappingProxyType({p.id: p.version for p in self})

    @classmethod
    def of(cls, protocols: Iterable[TreatmentProtocol]) -> ProtocolLibrary:
        by_id: dict[str, TreatmentProtocol] = {}
        for protocol in protocols:
            if protocol.id in by_id:
                raise ClinicalDataError(protocol.id, "id", "two protocols have this id")
            by_id[protocol.id] = protocol
        return cls(MappingProxyType(by_id))


def parse_protocol(text: str, source: str) -> TreatmentProtocol:
    """One protocol from TOML text; :class:`ClinicalDataError` names file, field and problem."""
    root = parse_toml(text, source)
    protocol_id = root.text("id")
    version = root.text("version")
    modality_text = root.text("modality")
    modality = parse_modality(modality_text)
    if modality is None:
        root.fail("modality", f"unknown modality {modality_text!r} (known: epat, emtt)")
    if source.endswith(".toml") and not source.rsplit("/", 1)[-1].startswith(f"{protocol_id}."):
        root.fail("id", f"{protocol_id!r} does not match the file name")
    parameters = _parameters(root.table("parameters"), modality)
    course = _course(root.table("course"))
    protocol = TreatmentProtocol(
        id=protocol_id,
        version=version,
        modality=modality,
        indication=root.text("indication"),
        title=root.text("title"),
        parameters=parameters,
        course=course,
        therapist_text=root.text("therapist_text"),
        sources=root.strings("sources"),
    )
    root.done()
    return protocol


def _parameters(table: Table, modality: Modality) -> tuple[ParameterRange, ...]:
    for key in table:
        if key not in modality.fields:
            wrong = "a setting of the other modality" if key in UNITS else "not a setting"
            table.fail(key, f"{wrong} ({modality.value} has {', '.join(modality.fields)})")
    return tuple(_parameter(table, field) for field in modality.fields)


def _parameter(parent: Table, field: str) -> ParameterRange:
    table = parent.table(field)
    values: dict[str, Decimal] = {}
    for key in ("min", "max", "default"):
        number = table.decimal(key)
        assert number is not None
        if number <= 0:
            table.fail(key, f"must be above zero, got {number}")
        if field == "pulses" and number != number.to_integral_value():
            table.fail(key, f"a pulse count must be a whole number, got {number}")
        values[key] = number
    table.done()
    if values["min"] > values["max"]:
        table.fail("min", f"min {values['min']} is greater than max {values['max']}")
    if not values["min"] <= values["default"] <= values["max"]:
        table.fail(
            "default",
            f"default {values['default']} is outside the range {values['min']}–{values['max']}",
        )
    return ParameterRange(field, values["min"], values["max"], values["default"])


def _course(table: Table) -> Course:
    sessions = table.whole("sessions", minimum=1)
    min_sessions = table.integer("min_sessions", minimum=1, required=False) or sessions
    if min_sessions > sessions:
        table.fail("min_sessions", f"{min_sessions} is more than sessions ({sessions})")
    min_interval = table.whole("min_interval_days", minimum=1)
    max_interval = table.integer("max_interval_days", minimum=1, required=False)
    if max_interval is not None and max_interval < min_interval:
        table.fail(
            "max_interval_days",
            f"{max_interval} is less than min_interval_days ({min_interval})",
        )
    span = table.integer("span_days", minimum=1, required=False)
    if span is not None and span < min_interval * (sessions - 1):
        table.fail(
            "span_days",
            f"{span} days cannot hold {sessions} sessions {min_interval} days apart",
        )
    course = Course(
        sessions=sessions,
        min_sessions=min_sessions,
        min_interval_days=min_interval,
        max_interval_days=max_interval,
        span_days=span,
        description=table.text("description"),
    )
    table.done()
    return course


def parse_library(files: Iterable[tuple[str, str]]) -> ProtocolLibrary:
    """A library from (text, source name) pairs, e.g. a clinic's reviewed policy folder."""
    return ProtocolLibrary.of(parse_protocol(text, source) for text, source in files)


@cache
def default_library() -> ProtocolLibrary:
    """The shipped default protocols (clinical reference §2)."""
    return parse_library(read_packaged_folder("protocols"))
