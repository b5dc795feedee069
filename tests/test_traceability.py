"""Every documented requirement has a test, and every test names a documented requirement."""

from __future__ import annotations

import pytest

from tools import traceability


@pytest.mark.req("SES-FLOW-1")
def test_requirements_and_tests_trace_both_ways() -> None:
    documented = traceability.documented_requirements()
    assert documented, "no requirement tables found under docs/requirements/"
    assert traceability.problems(documented, traceability.tested_requirements()) == []
