"""Movement-programme templates (four pillars, phases, dosage, progression) and assignments."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from protocols import (
    ClinicalDataError,
    Modality,
    Pillar,
    ProgrammeAssignment,
    ProgrammeStatus,
    Severity,
    default_programmes,
    parse_programme,
    parse_programmes,
    programme_finding,
)
from protocols.packaged import read_packaged

SESSION = date(2026, 11, 24)


def shipped(name: str = "knee-load-sharing.toml") -> str:
    return read_packaged("programmes", name)[0]


@pytest.mark.req("PRG-TPL-1")
def test_every_phase_of_every_template_covers_the_four_pillars() -> None:
    templates = list(default_programmes())
    assert {t.id for t in templates} == {"knee-load-sharing", "knee-adolescent-osg"}
    for template in templates:
        assert [p.number for p in template.phases] == list(range(1, len(template.phases) + 1))
        assert len(template.phases) >= 3 and template.version
        for phase in template.phases:
            assert {e.pillar for e in phase.exercises} == set(Pillar)
            assert phase.progression_criteria and phase.min_weeks >= 1
            for exercise in phase.exercises:
                dose = exercise.dosage
                assert dose.sets >= 1 and 1 <= dose.per_week <= 14 and dose.load
                assert any(v is not None for v in (dose.reps, dose.hold_s, dose.duration_min))
                assert exercise.cue and exercise.target


@pytest.mark.req("PRG-TPL-1")
def test_the_knee_programme_uses_the_clinics_targets() -> None:
    template = default_programmes().get("knee-load-sharing")
    targets = " ".join(e.target for p in template.phases for e in p.exercises).lower()
    for word in ["hip stabilisers", "external rotators", "glutes", "hamstrings", "calf",
                 "eccentric", "hip extension", "ankle dorsiflexion", "thoracic", "cadence",
                 "stride", "foot contact", "pelvis", "rising from a chair", "stairs", "landing",
                 "rotation under load"]:  # fmt: skip
        assert word in targets, word
    assert "movement problem" in template.summary


@pytest.mark.req("PRG-TPL-1")
def test_dosage_reads_as_a_therapist_writes_it() -> None:
    phase = default_programmes().get("knee-load-sharing").phase(1)
    by_name = {e.name: e.dosage.describe() for e in phase.exercises}
    assert by_name["Side-lying hip abduction"] == "3 × 12, hold 2 s, body weight, 5×/week"
    assert by_name["Half-kneeling hip flexor stretch"] == "3 × 30 s hold, body weight, 7×/week"
    assert by_name["Awareness walk"] == "10 min, easy pace on level ground, 5×/week"
    assert len(phase.by_pillar(Pillar.MOBILITY)) == 3


@pytest.mark.req("PRG-TPL-1")
@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ('pillar = "gait_training"\nname = "Awareness walk"',
         'pillar = "targeted_strengthening"\nname = "Awareness walk"',
         "phase[0].exercise", "no exercise for: gait training"),
        ('pillar = "mobility"', 'pillar = "stretching"', "phase[0].exercise[5].pillar",
         "unknown pillar"),
        ("number = 2", "number = 3", "phase[1].number", "numbered 1, 2"),
        ("sets = 3\nreps = 12\nhold_s = 2", "sets = 0\nreps = 12\nhold_s = 2",
         "phase[0].exercise[0].sets", "at least 1"),
        ("per_week = 7", "per_week = 21", "phase[0].exercise[5].per_week", "twice a day"),
        ("sets = 1\nduration_min = 10", "sets = 1", "phase[0].exercise[8].reps",
         "at least one of reps"),
        ('version = "2026.1"', 'version = "2026.1"\nowner = "x"', "owner", "unknown field"),
    ],
)  # fmt: skip
def test_a_malformed_template_names_field_and_problem(
    old: str, new: str, field: str, problem: str
) -> None:
    text = shipped()
    assert old in text
    with pytest.raises(ClinicalDataError) as caught:
        parse_programme(text.replace(old, new, 1), "clinic/knee.toml")
    assert (caught.value.source, caught.value.field) == ("clinic/knee.toml", field)
    assert problem in caught.value.problem


@pytest.mark.req("PROT-LIB-3")
def test_a_clinics_template_version_loads_beside_the_shipped_ones() -> None:
    text = shipped().replace('version = "2026.1"', 'version = "2027.2"')
    library = parse_programmes([(text, "clinic/knee.toml")])
    assert library.get("knee-load-sharing").version == "2027.2"
    with pytest.raises(ClinicalDataError, match="two programme templates"):
        parse_programmes([(text, "a.toml"), (text, "b.toml")])


@pytest.mark.req("PRG-ASSIGN-1")
def test_an_assignment_advances_phase_by_phase_and_completes() -> None:
    template = default_programmes().get("knee-load-sharing")
    assignment = ProgrammeAssignment.start(template, date(2026, 10, 1))
    assert (assignment.phase, assignment.status) == (1, ProgrammeStatus.ACTIVE)
    assert assignment.template_version == "2026.1"
    assignment = assignment.advance(template).advance(template)
    assert assignment.phase == 3
    done = assignment.advance(template)
    assert (done.phase, done.status) == (3, ProgrammeStatus.COMPLETED)
    with pytest.raises(ValueError, match="completed programme cannot advance"):
        done.advance(template)
    with pytest.raises(ValueError, match="not knee-adolescent-osg"):
        assignment.advance(default_programmes().get("knee-adolescent-osg"))
    assert assignment.to_record() == {
        "template_id": "knee-load-sharing", "template_version": "2026.1", "phase": 3,
        "status": "active", "start_date": "2026-10-01",
    }  # fmt: skip


@pytest.mark.req("PRG-ASSIGN-1")
def test_an_assignment_rejects_a_phase_below_one() -> None:
    with pytest.raises(ValueError, match="phase"):
        ProgrammeAssignment("knee-load-sharing", "2026.1", 0, ProgrammeStatus.ACTIVE, SESSION)
    with pytest.raises(TypeError):
        ProgrammeAssignment("knee-load-sharing", "2026.1", 1, "active", SESSION)  # type: ignore[arg-type]


@pytest.mark.req("VAL-PROG-1")
def test_the_programme_finding_blocks_without_and_names_with() -> None:
    none = programme_finding(None, modality=Modality.EMTT, session_date=SESSION)
    assert none.severity is Severity.REFUSE and "EMTT session" in none.message
    template = default_programmes().get("knee-adolescent-osg")
    assignment = ProgrammeAssignment.start(template, SESSION)  # starting today counts
    found = programme_finding(assignment, modality=Modality.EPAT, session_date=SESSION)
    assert found.severity is Severity.INFO and "phase 1 of 3 (Load management)" in found.message
    paused = replace(assignment, status=ProgrammeStatus.PAUSED)
    resumed = paused.with_status(ProgrammeStatus.ACTIVE)
    assert programme_finding(paused, modality=Modality.EPAT,
                             session_date=SESSION).severity is Severity.REFUSE  # fmt: skip
    assert programme_finding(resumed, modality=Modality.EPAT,
                             session_date=SESSION).severity is Severity.INFO  # fmt: skip
