"""The record cannot be written mid-session (SES-DB-1): make the unit safe now, record later.

A session whose record write fails (the database unavailable, or locked beyond its busy
timeout) must not go on firing with nothing able to record it. The workflow lets go of the
unit at once — closing its driver stops and disarms a unit it loaded or armed, and the unit
keeps its count — and raises a HIGH alarm (``SessionWorkflow.record_failed``). Then, bounded
and never on the GUI thread, :func:`record_when_store_is_back` records the session as soon as
writes succeed: by recovery (SES-RECOVER-1: the unit is read again and the session recorded
``interrupted`` with the unit's own count), or, if nothing was connected yet, ended "not
performed". One definition for the GUI's session controller and ``session run``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit.errors import StoreError
from console.session.count import describe_count
from console.session.recovery import RecoveryFailed, RecoveryOutcome
from console.session.states import UNFINISHED_STATES, SessionState

if TYPE_CHECKING:
    from console.session.workflow import SessionWorkflow

#: How long the session waits for the database to record its end (wall seconds).
STORE_WAIT_S = 300.0
#: Pause between attempts (each attempt also waits out the store's own busy timeout).
STORE_RETRY_S = 1.0
MAX_REASON_CHARS = 1000


@dataclass(frozen=True, slots=True)
class RecordedLater:
    """What became of a session whose record failed: ``recorded``, and in words."""

    recorded: bool
    message: str
    outcome: RecoveryOutcome | None = None
    store_still_away: bool = False  # gave up waiting for the database


def record_when_store_is_back(
    workflow: SessionWorkflow,
    reason: str,
    *,
    recover: Callable[[], RecoveryOutcome] | None = None,
    wait_s: float = STORE_WAIT_S,
    retry_s: float = STORE_RETRY_S,
    progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> RecordedLater:
    """Leave the unit safe (idempotent), then record the session once the store takes writes.

    ``reason`` is the store's error; ``recover`` records the session by recovery (default: the
    workflow's guards, as the signed-in therapist). Gives up after ``wait_s`` or when ``stop``
    is set: the session then stays open in the record, for ``session recover`` or the patient's
    page. Blocks: run it on the CLI thread or a worker thread, never the GUI thread.
    """
    workflow.record_failed(reason)
    session_id = workflow.ctx.session_id
    cause = f"the record could not be written during the session ({reason})"[:MAX_REASON_CHARS]
    recover = recover or (lambda: workflow.recover_record(cause))
    pause = stop or threading.Event()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if workflow.state in UNFINISHED_STATES:
                outcome = recover()
                workflow.follow_recovery(outcome)
                count = (
                    f"the unit's count of {outcome.delivered} pulses"
                    if outcome.count_status == "confirmed" and outcome.delivered is not None
                    else describe_count(
                        None, "unconfirmed", outcome.delivered_min, outcome.delivered_max
                    )
                )
                return RecordedLater(
                    True,
                    f"the unit was stopped; session {session_id} is recorded interrupted with "
                    f"{count}",
                    outcome,
                )
            if workflow.state in (SessionState.SCREENING, SessionState.PLANNED):
                workflow.abort(f"not performed: {reason}"[:MAX_REASON_CHARS])
            return RecordedLater(True, f"session {session_id} is recorded {workflow.state.value}")
        except RecoveryFailed as exc:
            return RecordedLater(False, f"session {session_id} is still open in the record ({exc})")
        except StoreError as exc:
            if time.monotonic() >= deadline or pause.is_set():
                return RecordedLater(
                    False, f"session {session_id} is still open in the record ({exc})", None, True
                )
            if progress is not None:
                progress(f"the database is still unavailable: {exc}")
            pause.wait(retry_s)
