"""An unconfirmed count is never printed as a number of pulses delivered (SES-COUNT-2)."""

from __future__ import annotations

import pytest

from console.cli.session import _count
from console.session.count import describe_count
from console.session.recovery import RecoveryOutcome


@pytest.mark.req("SES-COUNT-2")
def test_session_recover_printed_none_pulses_delivered_for_an_unconfirmed_count() -> None:
    outcome = RecoveryOutcome("s-1", None, "IDLE", "IDLE", "none", "unconfirmed", 153, 300)
    text = _count(outcome)
    assert "None" not in text
    assert text == "count UNCONFIRMED: between 153 and 300 pulses delivered"


@pytest.mark.req("SES-COUNT-2")
def test_a_confirmed_count_is_said_exactly() -> None:
    outcome = RecoveryOutcome("s-1", 153, "FAULT", "FAULT", "none", "confirmed", 153, 153)
    assert _count(outcome) == "153 pulses delivered"
    assert describe_count(0, "confirmed", 0, 0) == "0 pulses delivered"
    assert describe_count(None, None, None, None).startswith("count UNCONFIRMED")
