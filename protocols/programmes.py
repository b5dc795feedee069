"""Movement-programme templates: the work every shockwave or EMTT session supports.

The clinic's knee programme has four pillars (clinical reference §6; the clinic's article):
targeted strengthening, mobility, gait training and movement retraining, progressed in phases.
A template lists, per phase, the exercises of every pillar with their dosage and the criteria to
progress. Templates are data (``protocols/data/programmes/*.toml``), checked when loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from types import MappingProxyType

from protocols.datafile import Table, parse_toml
from protocols.errors import ClinicalDataError
from protocols.packaged import read_packaged_folder


class Pillar(StrEnum):
    TARGETED_STRENGTHENING = "targeted_strengthening"
    MOBILITY = "mobility"
    GAIT_TRAINING = "gait_training"
    MOVEMENT_RETRAINING = "movement_retraining"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Dosage:
    """How much of one exercise: at least one of reps, hold or duration; load is free text."""

    sets: int
    per_week: int
    load: str
    reps: int | None = None
    hold_s: int | None = None
    duration_min: int | None = None

    def describe(self) -> str:
        """``3 × 12, hold 2 s, body weight, 5×/week`` — as the therapist writes it."""
        if self.reps is not None:
            amount = f"{self.sets} × {self.reps}"
            if self.hold_s is not None:
                amount += f", hold {self.hold_s} s"
        elif self.hold_s is not None:
            amount = f"{self.sets} × {self.hold_s} s hold"
        else:
            amount = ""
        if self.duration_min is not None:
            minutes = f"{self.duration_min} min"
            if not amount:
                amount = minutes if self.sets == 1 else f"{self.sets} × {minutes}"
            else:
                amount += f", {minutes}"
        return f"{amount}, {self.load}, {self.per_week}×/week"


@dataclass(frozen=True, slots=True)
class Exercise:
    pillar: Pillar
    name: str
    target: str
    dosage: Dosage
    cue: str


@dataclass(frozen=True, slots=True)
class Phase:
    number: int
    name: str
    goal: str
    min_weeks: int
    exercises: tuple[Exercise, ...]
    progression_criteria: tuple[str, ...]

    def by_pillar(self, pillar: Pillar) -> tuple[Exercise, ...]:
        return tuple(e for e in self.exercises if e.pillar is pillar)


@dataclass(frozen=True, slots=True)
class ProgrammeTemplate:
    id: str
    version: str
    title: str
    summary: str
    indications: tuple[str, ...]
    sources: tuple[str, ...]
    phases: tuple[Phase, ...]

    def phase(self, number: int) -> Phase:
        for phase in self.phases:
            if phase.number == number:
                return phase
        raise KeyError(f"programme {self.id} has no phase {number} (1–{len(self.phases)})")


@dataclass(frozen=True, slots=True)
class ProgrammeLibrary:
    templates: Mapping[str, ProgrammeTemplate]

    def __iter__(self) -> Iterator[ProgrammeTemplate]:
        return iter(self.templates[key] for key in sorted(self.templates))

    def __contains__(self, template_id: object) -> bool:
        return template_id in self.templates

    def get(self, template_id: str) -> ProgrammeTemplate:
        try:
            return self.templates[template_id]
        except KeyError:
            known = ", ".join(sorted(self.templates))
            raise KeyError(f"unknown programme template {template_id!r} (known: {known})") from None

    @classmethod
    def of(cls, templates: Iterable[ProgrammeTemplate]) -> ProgrammeLibrary:
        by_id: dict[str, ProgrammeTemplate] = {}
        for template in templates:
            if template.id in by_id:
                raise ClinicalDataError(template.id, "id", "two programme templates have this id")
            by_id[template.id] = template
        return cls(MappingProxyType(by_id))


def parse_programme(text: str, source: str) -> ProgrammeTemplate:
    """One template from TOML text; :class:`ClinicalDataError` names file, field and problem."""
    root = parse_toml(text, source)
    phases = tuple(_phase(table) for table in root.tables("phase"))
    for expected, phase in enumerate(phases, start=1):
        if phase.number != expected:
            root.fail(
                f"phase[{expected - 1}].number",
                f"phases must be numbered 1, 2, … in order; "
                f"got {phase.number} where {expected} belongs",
            )
    template = ProgrammeTemplate(
        id=root.text("id"),
        version=root.text("version"),
        title=root.text("title"),
        summary=root.text("summary"),
        indications=root.strings("indications"),
        sources=root.strings("sources"),
        phases=phases,
    )
    root.done()
    return template


def _phase(table: Table) -> Phase:
    number = table.whole("number", minimum=1)
    exercises = tuple(_exercise(sub) for sub in table.tables("exercise"))
    missing = [p.label for p in Pillar if not any(e.pillar is p for e in exercises)]
    if missing:
        table.fail("exercise", f"phase {number} has no exercise for: {', '.join(missing)}")
    phase = Phase(
        number=number,
        name=table.text("name"),
        goal=table.text("goal"),
        min_weeks=table.whole("min_weeks", minimum=1),
        exercises=exercises,
        progression_criteria=table.strings("progression_criteria"),
    )
    table.done()
    return phase


def _exercise(table: Table) -> Exercise:
    pillar_text = table.text("pillar")
    try:
        pillar = Pillar(pillar_text)
    except ValueError:
        known = ", ".join(p.value for p in Pillar)
        table.fail("pillar", f"unknown pillar {pillar_text!r} (known: {known})")
    dosage = Dosage(
        sets=table.whole("sets", minimum=1),
        per_week=table.whole("per_week", minimum=1),
        load=table.text("load"),
        reps=table.integer("reps", minimum=1, required=False),
        hold_s=table.integer("hold_s", minimum=1, required=False),
        duration_min=table.integer("duration_min", minimum=1, required=False),
    )
    if dosage.per_week > 14:
        table.fail("per_week", f"{dosage.per_week} is more than twice a day")
    if dosage.reps is None and dosage.hold_s is None and dosage.duration_min is None:
        table.fail("reps", "give at least one of reps, hold_s or duration_min")
    exercise = Exercise(
        pillar=pillar,
        name=table.text("name"),
        target=table.text("target"),
        dosage=dosage,
        cue=table.text("cue"),
    )
    table.done()
    return exercise


def parse_programmes(files: Iterable[tuple[str, str]]) -> ProgrammeLibrary:
    return ProgrammeLibrary.of(parse_programme(text, source) for text, source in files)


@cache
def default_programmes() -> ProgrammeLibrary:
    """The shipped programme templates."""
    return parse_programmes(read_packaged_folder("programmes"))
