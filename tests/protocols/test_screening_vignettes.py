"""Every shared vignette is a test of the screening library (the CLI is tested separately)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols import parse_case
from tests.protocols.builders import VIGNETTES

CASES = sorted(VIGNETTES.glob("*.json"))


def test_the_shared_vignettes_are_present() -> None:
    assert len(CASES) >= 12


@pytest.mark.req("SCR-VIGNETTE-1")
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_vignette_is_decided_as_expected(path: Path) -> None:
    case = parse_case(json.loads(path.read_text(encoding="utf-8")))
    decision = case.screen()
    assert decision.decision.value == case.expected_decision
    assert sorted(decision.rules) == sorted(case.expected_rules or ())
    assert [f.rule for f in decision.findings] == list(decision.rules)
