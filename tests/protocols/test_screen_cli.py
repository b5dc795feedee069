"""``therapy-console screen``: the real command line over every vignette and bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from tests.protocols.builders import CLEAN_ANSWERS, VIGNETTES

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(VIGNETTES.glob("*.json"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", "screen", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


def case(**changes: object) -> dict:
    document = {
        "id": "T1",
        "modality": "epat",
        "protocol": "knee-pt-epat",
        "session_date": "2026-11-24",
        "patient": {"birth_date": "1980-01-01"},
        "screening": dict(CLEAN_ANSWERS),
    }
    document.update(changes)
    return document


def write(tmp_path: Path, content: object, name: str = "case.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


@pytest.mark.req("SCR-VIGNETTE-1", "SCR-CLI-1")
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_cli_decides_every_vignette(path: Path) -> None:
    expected = json.loads(path.read_text(encoding="utf-8"))["expect"]
    done = cli(str(path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["decision"] == expected["decision"]
    assert sorted(f["rule"] for f in out["findings"]) == sorted(expected["rules"])
    assert sorted(out["rules"]) == sorted(expected["rules"])
    for finding in out["findings"]:
        assert set(finding) >= {"rule", "severity", "message", "eligible_from"}
    assert out["case_id"] == path.stem and out["ruleset_version"]
    assert cli("--expect", str(path)).returncode == 0


@pytest.mark.req("SCR-CLI-1")
def test_the_steroid_finding_carries_the_first_eligible_date(tmp_path: Path) -> None:
    screening = {**CLEAN_ANSWERS, "corticosteroid_injection_date": "2026-11-04"}
    out = json.loads(cli(str(write(tmp_path, case(screening=screening)))).stdout)
    assert out["findings"] == [
        {
            "rule": "CI-STEROID",
            "severity": "block",
            "message": out["findings"][0]["message"],
            "eligible_from": "2026-12-16",
        }
    ]


@pytest.mark.req("SCR-CLI-1")
def test_missing_answers_are_a_decision_not_an_error(tmp_path: Path, capsys) -> None:
    screening = {k: v for k, v in CLEAN_ANSWERS.items() if k != "fever"}
    assert main(["screen", str(write(tmp_path, case(screening=screening)))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "incomplete" and out["findings"] == []
    assert out["unanswered"] == [{"key": "fever", "problem": "not answered"}]


@pytest.mark.req("SCR-CLI-1")
def test_a_case_without_a_screening_block_is_incomplete(tmp_path: Path, capsys) -> None:
    document = case()
    del document["screening"]
    assert main(["screen", str(write(tmp_path, document))]) == 0
    assert len(json.loads(capsys.readouterr().out)["unanswered"]) == 17


@pytest.mark.req("SCR-CLI-1", "SCR-CASE-1")
@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json at all", "not valid JSON"),
        ("[1, 2]", "a case is a JSON object, not an array"),
        ('"text"', "a case is a JSON object"),
        (case(modality="eswt"), '\'modality\' must be "epat" or "emtt"'),
        ({k: v for k, v in case().items() if k != "modality"}, "'modality'"),
        (case(protocol="knee-xx-epat"), "'protocol' must be one of"),
        ({k: v for k, v in case().items() if k != "protocol"}, "'protocol'"),
        (case(modality="emtt", protocol="knee-osg-epat"), "make them agree"),
        (case(session_date="24.11.2026"), "'session_date' must be a date"),
        ({k: v for k, v in case().items() if k != "session_date"}, "'session_date'"),
        (case(patient={}), "'patient.birth_date' must be a date"),
        (case(patient="1980-01-01"), "'patient' must be an object"),
        (case(patient={"birth_date": "2027-01-01"}), "after 'session_date'"),
        (case(screening=[1]), "'screening' must be an object"),
        (case(expect={"decision": 3}), "'expect.decision'"),
        ('{"modality": "epat", "modality": "emtt"}', "'modality' appears twice"),
    ],
)
def test_a_file_that_is_not_a_case_exits_2_with_one_clear_line(
    tmp_path: Path, capsys, content: object, words: str
) -> None:
    assert main(["screen", str(write(tmp_path, content))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("therapy-console: error: ")
    assert words in lines[0]


@pytest.mark.req("SCR-CLI-1")
def test_a_missing_file_exits_2_through_the_real_program(tmp_path: Path) -> None:
    done = cli(str(tmp_path / "nowhere.json"))
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot read case file" in done.stderr


@pytest.mark.req("SCR-CLI-1")
def test_not_json_exits_2_through_the_real_program(tmp_path: Path) -> None:
    done = cli(str(write(tmp_path, "{oops")))
    assert done.returncode == 2 and "not valid JSON" in done.stderr


@pytest.mark.req("SCR-CLI-1")
def test_expect_reports_a_mismatch_with_exit_1(tmp_path: Path, capsys) -> None:
    wrong = case(expect={"decision": "block", "rules": ["CI-PREG"]})
    assert main(["screen", "--expect", str(write(tmp_path, wrong))]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["decision"] == "allow"
    assert "decision allow, expected block" in captured.err


@pytest.mark.req("SCR-CLI-1", "PROT-LIB-3")
def test_rules_option_screens_with_a_clinics_rule_file(tmp_path: Path, capsys) -> None:
    from protocols.packaged import read_packaged

    text = read_packaged("contraindications.toml")[0].replace(
        'version = "2026.1"', 'version = "clinic-7"'
    )
    rules = write(tmp_path, text, "rules.toml")
    assert main(["screen", "--rules", str(rules), str(write(tmp_path, case()))]) == 0
    assert json.loads(capsys.readouterr().out)["ruleset_version"] == "clinic-7"
    broken = write(tmp_path, text.replace('kind = "bool"', 'kind = "yes"', 1), "bad.toml")
    assert main(["screen", "--rules", str(broken), str(write(tmp_path, case()))]) == 2
    assert "question[0].kind" in capsys.readouterr().err
