"""The transition table: what may follow what, and nothing else."""

from __future__ import annotations

import pytest

from console.session.states import (
    ENDED_STATES,
    LIVE_STATES,
    TRANSITIONS,
    Action,
    SessionState,
    allowed_actions,
    next_state,
)

S, A = SessionState, Action


@pytest.mark.req("SES-FLOW-1")
def test_the_happy_path_follows_the_brief() -> None:
    path = [
        (A.PLAN, S.PLANNED),
        (A.CONNECT, S.CONNECTED),
        (A.ARM, S.ARMED),
        (A.START, S.DELIVERING),
        (A.PAUSE, S.PAUSED),
        (A.RESUME, S.DELIVERING),
        (A.COMPLETE, S.COMPLETED),
        (A.DOCUMENT, S.DOCUMENTED),
        (A.SIGN, S.SIGNED),
    ]
    state = S.SCREENING
    for action, expected in path:
        state = next_state(state, action)
        assert state is expected


@pytest.mark.req("SES-FLOW-1")
@pytest.mark.parametrize("state", list(SessionState))
def test_start_only_from_armed(state: SessionState) -> None:
    assert (next_state(state, A.START) is not None) == (state is S.ARMED)


@pytest.mark.req("SES-FLOW-1")
def test_arm_only_from_connected() -> None:
    assert {s for (s, a) in TRANSITIONS if a is A.ARM} == {S.CONNECTED}


@pytest.mark.req("SES-ESTOP-1")
@pytest.mark.parametrize("state", sorted(LIVE_STATES | {S.CONNECTED}))
def test_emergency_stop_allowed_wherever_a_unit_is_connected(state: SessionState) -> None:
    assert next_state(state, A.EMERGENCY_STOP) is S.FAULTED


@pytest.mark.req("SES-FLOW-1")
def test_signed_is_final_and_ended_states_only_lead_to_documentation() -> None:
    """Ended states lead to documentation; a faulted one also to recovery (its count may be
    unconfirmed, SES-RECOVER-1)."""
    assert allowed_actions(S.SIGNED) == frozenset()
    for state in ENDED_STATES - {S.FAULTED}:
        assert allowed_actions(state) == {A.DOCUMENT}
    assert allowed_actions(S.FAULTED) == {A.DOCUMENT, A.RECOVER}


@pytest.mark.req("SES-FLOW-1")
def test_titration_only_while_paused() -> None:
    assert {s for (s, a) in TRANSITIONS if a is A.TITRATE} == {S.PAUSED}
