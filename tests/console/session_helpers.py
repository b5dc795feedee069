"""Helpers to drive a session the way the CLI does: messages from the worker pumped by hand.

``CLEAN_ANSWERS`` (every screening question answered, nothing to report) is the protocols
tests' own, re-exported here for the session tests.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from console.services import ConsoleServices
from console.session.device_worker import WorkerMessage
from console.session.ports import PlannedParameters
from console.session.workflow import SessionWorkflow
from tests.protocols.builders import CLEAN_ANSWERS

__all__ = ["CLEAN_ANSWERS", "ExclusiveLock", "Pump", "connected_session"]


#: knee-pt-epat at its fastest, shortest in-range setting: 1,500 pulses at 10 Hz.
EPAT_PLAN = PlannedParameters(
    frequency_hz=Decimal("10.0"), pulses=1500, pressure_bar=Decimal("2.50")
)
#: A short EPAT test dose below knee-pt-epat's range (600 pulses): needs the override below.
SHORT_EPAT_PLAN = PlannedParameters(
    frequency_hz=Decimal("10.0"), pulses=600, pressure_bar=Decimal("2.50")
)
#: A short EMTT test dose below knee-tendon-emtt's range (600 pulses at 6 Hz): needs an override.
SHORT_EMTT_PLAN = PlannedParameters(
    frequency_hz=Decimal("6.0"), pulses=600, field_mt=Decimal("30.0")
)
SHORT_DOSE_REASON = "test dose: short session to exercise the unit, not a treatment"


class Pump:
    """Collects worker messages and feeds them to the workflow on the test's thread; closes
    every workflow it started at teardown so no worker outlives its test."""

    def __init__(self) -> None:
        self.messages: queue.Queue[WorkerMessage] = queue.Queue()
        self.workflows: list[SessionWorkflow] = []

    def close(self) -> None:
        for workflow in self.workflows:
            workflow.close()

    def put(self, message: WorkerMessage) -> None:
        self.messages.put(message)

    def until(
        self, workflow: SessionWorkflow, done: Callable[[], bool], timeout_s: float = 30.0
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out in state {workflow.state} ({workflow.end_reason})")
            try:
                workflow.handle(self.messages.get(timeout=min(0.1, remaining)))
            except queue.Empty:
                continue


def connected_session(
    services: ConsoleServices,
    therapist: Any,
    patient_id: str,
    pump: Pump,
    protocol_id: str = "knee-pt-epat",
    plan: PlannedParameters = SHORT_EPAT_PLAN,
    answers: dict[str, Any] | None = None,
    override_reason: str | None = SHORT_DOSE_REASON,
) -> SessionWorkflow:
    """A session screened, planned, connected, validated and confirmed: one step from arming."""
    from tests.console.conftest import SESSION_DATE

    workflow = services.begin_session(therapist, patient_id, protocol_id, SESSION_DATE)
    pump.workflows.append(workflow)
    workflow.submit_screening(answers or CLEAN_ANSWERS)
    workflow.plan(plan)
    workflow.connect(services.start_worker(workflow, pump.put))
    if workflow.validation is not None and workflow.validation.verdict.value == "override_required":
        workflow.revalidate(override_reason)
    workflow.confirm_parameters()
    return workflow


class ExclusiveLock:
    """Another process's writer holding the SQLite database (``BEGIN EXCLUSIVE``)."""

    def __init__(self, db_url: str) -> None:
        self.path = db_url.removeprefix("sqlite:///")
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ExclusiveLock:
        code = (
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({self.path!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "c.execute('ROLLBACK')\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"
        return self

    def release(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(10)

    def __exit__(self, *exc: object) -> None:
        self.release()
