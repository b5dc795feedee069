"""The treatment session as an explicit state machine: the console's safety core.

One ``SessionWorkflow`` per session. The GUI, the ``session run`` command and the tests all drive
this class; none of them adds safety logic of its own. Rules enforced here:

- every transition is looked up in ``states.TRANSITIONS`` and refused otherwise (SES-FLOW-1);
- nothing arms unless every interlock holds: complete, unblocked screening (overrides with a
  reason), an active programme, parameters validated against the *connected* unit's envelope
  and applicator, confirmed by the therapist, read back from the unit equal (SES-ARM-1..5);
- stop, abort (reason required) and emergency stop are distinct; the emergency stop bypasses
  every queue and lock (SES-ESTOP-1);
- a fault, a lost link, a reset or a watchdog trip ends delivery in ``faulted`` with a latched
  alarm (SES-FAULT-1, SES-RESET-1);
- the delivered count recorded is always the unit's own, read after delivery ended by whatever
  path — after a lost link by reconnecting and making the unit unable to fire first — or, when
  it cannot be established, recorded *unconfirmed* with bounds and an alarm (SES-COUNT-1, -2);
- a state-changing command whose answer was lost is followed by reading the unit's state, and
  the workflow follows what the unit reports (SES-CMD-1);
- arm and start re-check the interlocks (programme and sign-in from the record, parameters
  unchanged) together with the command (SES-ARM-6).

Methods may block on the device worker: call them from the CLI thread or the GUI's session
executor, never the GUI thread. State is guarded by one lock; ``emergency_stop`` never takes it
before the stop is on its way to the unit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from audit.errors import StoreError
from console.alarms import AlarmBoard, AlarmPriority
from console.session.count import (
    ArmSnapshot,
    CountVerdict,
    UnitReading,
    judge_segment,
    read_unit,
    take_snapshot,
)
from console.session.device_worker import DeviceWorker, WorkerAlive, WorkerMessage, WorkerStopped
from console.session.interlocks import (
    MIN_OVERRIDE_REASON_CHARS,
    Interlock,
    override_covers,
    override_reason_problem,
    parameters_interlock,
    programme_interlock,
    role_interlock,
    screening_interlocks,
    user_interlock,
    validation_interlocks,
)
from console.session.ports import (
    ClinicalRules,
    Finding,
    PlannedParameters,
    ScreeningOutcome,
    ScreeningVerdict,
    SessionContext,
    SessionGuards,
    SessionRecorder,
    ValidationOutcome,
)
from console.session.states import LIVE_STATES, Action, SessionState, next_state
from device_drivers.errors import (
    CommandRefused,
    DeviceError,
    DeviceFault,
    DeviceRejected,
    ProtocolError,
)
from device_drivers.interface import (
    ApplicatorInfo,
    DeviceEnvelope,
    DeviceEvent,
    DeviceIdentity,
    DeviceParameters,
    DeviceStatus,
    EventKind,
    LinkDown,
    TherapyDevice,
    UnitState,
)

if TYPE_CHECKING:
    from console.session.recovery import RecoveryOutcome

T = TypeVar("T")

WORKER_SILENCE_ALARM_NS = 1_000_000_000
#: The HIGH alarm of a session whose record cannot be written (SES-DB-1).
RECORD_UNAVAILABLE_ALARM = "session.record_unavailable"
#: Status readings while a unit is connected (pushed by EPAT, polled on EMTT), wall seconds.
STATUS_PERIOD_S = 0.05
DEVICE_CALL_TIMEOUT_S = 10.0
#: The worker reads the status itself when the unit's stream has been silent this long (wall s):
#: a unit that reset stops streaming, and a reset must be seen within a second (SES-RESET-1).
STATUS_SILENCE_S = 0.25
#: A unit not heard at all (no status, status reads failing) this long has lost its link (wall s).
LINK_SILENCE_S = 1.0
#: After a lost link: this many attempts to reopen the unit, this far apart (wall seconds).
RECONNECT_ATTEMPTS = 3
RECONNECT_PAUSE_S = 0.3
ADVERSE_EVENTS = frozenset(
    {
        "reddening",
        "petechiae",
        "haematoma",
        "transient_pain",
        "swelling",
        "numbness",
        "syncope",
        "other",
    }
)


class _UnitNotAsLoaded(CommandRefused):
    """The unit no longer holds what was loaded and confirmed; START was not sent."""


def _holds_problem(status: DeviceStatus, loaded: DeviceParameters | None) -> str | None:
    """Why the unit, as ``status`` shows it, may not be started with ``loaded``, or None."""
    if status.state is not UnitState.ARMED:
        return f"the unit is {status.state.value}, not ARMED"
    if loaded is None:
        return "no parameters were loaded"
    held = {
        "pulses": status.target,
        "pressure_bar": status.pressure_set_bar,
        "frequency_hz": status.frequency_set_hz,
    }
    wanted = {
        "pulses": loaded.pulses,
        "pressure_bar": loaded.pressure_bar,
        "frequency_hz": loaded.frequency_hz,
    }
    changed = [k for k, v in held.items() if v is not None and v != wanted[k]]
    if changed:
        return f"the unit's {', '.join(changed)} differ from the confirmed parameters: not starting"
    return None


_STARTED = frozenset({UnitState.DELIVERING, UnitState.COMPLETE})
_STOPPED = frozenset({UnitState.IDLE})


def _count(answered: int | None, followed: DeviceStatus | None) -> int:
    """The count a command answered, or the unit's when its answer was lost."""
    if followed is not None:
        return followed.delivered
    assert answered is not None
    return answered


def _followed(status: DeviceStatus | None) -> dict[str, Any]:
    """Transition data when the command's answer was lost and the unit's state decided."""
    if status is None:
        return {}
    return {
        "reply_lost": True,
        "unit_state": status.state.value,
        "unit_delivered": status.delivered,
    }


_UNANSWERED = "(unanswered)"


def _answer_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each question whose answer differs between two screening records, old and new."""
    old = before.get("answers") or {}
    new = after.get("answers") or {}
    return [
        {"question": key, "from": old.get(key, _UNANSWERED), "to": new.get(key, _UNANSWERED)}
        for key in sorted(set(old) | set(new))
        if old.get(key, _UNANSWERED) != new.get(key, _UNANSWERED)
    ]


def _decision_summary(record: Mapping[str, Any], when: str) -> dict[str, Any]:
    return {
        "time": when,
        "decision": record.get("decision"),
        "rules": list(record.get("rules") or []),
        "answers": dict(record.get("answers") or {}),
    }


class TransitionRefused(Exception):
    """The action is not allowed now; ``reasons`` says every why (shown and audited)."""

    def __init__(self, action: Action, state: SessionState, reasons: list[str]) -> None:
        self.action = action
        self.state = state
        self.reasons = tuple(reasons)
        super().__init__(f"cannot {action.value} in state {state.value}: " + "; ".join(reasons))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _params_record(params: PlannedParameters | DeviceParameters) -> dict[str, Any]:
    record: dict[str, Any] = {
        "frequency_hz": str(params.frequency_hz),
        "pulses": params.pulses,
    }
    if params.pressure_bar is not None:
        record["pressure_bar"] = str(params.pressure_bar)
    if params.field_mt is not None:
        record["field_mt"] = str(params.field_mt)
    return record


class SessionWorkflow:
    """See the module docstring."""

    def __init__(
        self,
        ctx: SessionContext,
        rules: ClinicalRules,
        recorder: SessionRecorder,
        alarms: AlarmBoard,
        *,
        state: SessionState = SessionState.SCREENING,
        guards: SessionGuards | None = None,
    ) -> None:
        self.ctx = ctx
        self._rules = rules
        self._recorder = recorder
        self._guards = guards
        self.alarms = alarms
        self._lock = threading.RLock()
        self.state = state
        self.screening: ScreeningOutcome | None = None
        self.screening_override_reason: str | None = None
        self._first_screening: dict[str, Any] | None = None  # the first decision, kept
        self._screening_corrections: list[dict[str, Any]] = []
        self.plan_params: PlannedParameters | None = None
        self.validation: ValidationOutcome | None = None
        self.validated_against_unit = False
        self.parameter_override_reason: str | None = None
        self._covered: dict[tuple[str, str | None], Finding] = {}  # what the override was for
        self._overrides: list[dict[str, Any]] = []  # every parameter override given, in order
        self._validated_plan: PlannedParameters | None = None
        self._confirmed_plan: PlannedParameters | None = None
        self.confirmed = False
        self.worker: DeviceWorker | None = None
        self.identity: DeviceIdentity | None = None
        self.envelope: DeviceEnvelope | None = None
        self.applicator_before: ApplicatorInfo | None = None
        self.closed_segments: list[int] = []  # delivered counts of finished load segments
        self.segment_target = 0
        self.segment_delivered = 0  # the unit's count for the current load segment
        self.loaded: DeviceParameters | None = None  # what the unit holds for this segment
        self.arm_snapshot: ArmSnapshot | None = None  # the current segment's, taken at arm
        self.count_status: str | None = None  # "confirmed" | "unconfirmed" once delivery ended
        self.delivered_bounds: tuple[int, int] | None = None
        self.last_status: DeviceStatus | None = None
        self._log_from = 0  # newest event-log index known (where reading the log starts)
        self._last_uptime: int | None = None
        self._last_shots: int | None = None  # applicator counter in the last status
        self._command_ns = 0  # when the last device command returned (older statuses are stale)
        self._status_ns = 0  # when the newest status handled was read
        self._reset_seen: str | None = None
        self._resume_with_start = False  # after titration the unit waits ARMED, not PAUSED
        self._estop_pressed = False
        #: When a persisting fault/emergency-stop alarm was raised: only a status read after it
        #: can show the unit out of fault (and resolve the alarm).
        self._latched_ns = 0
        self.end_reason: str | None = None
        self.record_failure: str | None = None  # why the record could not be written (SES-DB-1)
        self.faults: list[dict[str, Any]] = []
        self.titrations: list[dict[str, Any]] = []
        self.listeners: list[Callable[[SessionWorkflow], None]] = []
        self.signature: dict[str, Any] | None = None  # the "performed" signature, once signed

    # ------------------------------------------------------------------ derived values
    @property
    def delivered(self) -> int:
        """Pulses delivered in this session: the unit's counts, summed over load segments."""
        return sum(self.closed_segments) + self.segment_delivered

    @property
    def target(self) -> int:
        return self.plan_params.pulses if self.plan_params else 0

    def interlocks(self, *, fresh: bool = False) -> list[Interlock]:
        """Every arming condition with whether it holds now and why (for display and audit).

        ``fresh`` (at arm and start) re-reads the programme and the therapist's sign-in from
        the record instead of trusting the session's context (SES-ARM-6).
        """
        with self._lock:
            programme = self.ctx.programme
            checks = [role_interlock(self.ctx.therapist_role)]
            if fresh and self._guards is not None:
                programme = self._guards.programme(self.ctx)
                checks.append(user_interlock(self._guards.user_problem(self.ctx)))
            checks += screening_interlocks(self.screening, self.screening_override_reason)
            checks.append(programme_interlock(programme))
            checks += validation_interlocks(
                self.validation,
                self.parameter_override_reason,
                against_unit=self.validated_against_unit,
                confirmed=self.confirmed,
            )
            checks.append(
                parameters_interlock(
                    self.plan_params,
                    self._validated_plan,
                    self._confirmed_plan if self.confirmed else None,
                )
            )
            checks.append(self._unit_interlock())
            return checks

    def _unit_interlock(self) -> Interlock:
        if self.worker is None or self.identity is None:
            return Interlock("UNIT_CONNECTED", False, "no unit connected")
        if self.last_status is not None and self.last_status.state is UnitState.FAULT:
            faults = ", ".join(self.last_status.faults) or "fault"
            return Interlock("UNIT_CONNECTED", False, f"the unit is in FAULT ({faults})")
        return Interlock("UNIT_CONNECTED", True, f"{self.identity.model} {self.identity.serial}")

    # ------------------------------------------------------------------ plumbing
    def _model(self) -> str | None:
        return self.identity.model if self.identity is not None else None

    def _require(self, action: Action) -> SessionState:
        target = next_state(self.state, action)
        if target is None:
            raise TransitionRefused(action, self.state, [f"not allowed in state {self.state}"])
        return target

    def _move(self, action: Action, data: Mapping[str, Any] | None = None) -> None:
        new = self._require(action)
        old = self.state
        payload = {"delivered": self.delivered, **(data or {})}
        self._recorder.transition(self.ctx, old.value, new.value, action.value, payload)
        self.state = new
        self._changed()

    def _refuse(self, action: Action, reasons: list[str]) -> TransitionRefused:
        self._recorder.event(
            self.ctx,
            "session.refused",
            {"action": action.value, "state": self.state.value, "reasons": reasons},
        )
        return TransitionRefused(action, self.state, reasons)

    def _alarm(
        self,
        key: str,
        priority: AlarmPriority,
        message: str,
        *,
        technical: bool = False,
        persists: bool = False,
    ) -> None:
        """Raise an alarm of this session: its events carry the session id (SES-STORY-1);
        ``persists``: shown until ``_unit_conditions_over`` resolves it (ALARM-ACK-1)."""
        self.alarms.raise_alarm(
            key,
            priority,
            message,
            technical=technical,
            session_id=self.ctx.session_id,
            persists=persists,
        )

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener(self)

    def _device(self, command: Callable[[TherapyDevice], T], name: str) -> T:
        """Run ``command`` on the worker; audit it with its result (or its failure)."""
        if self.worker is None:
            raise TransitionRefused(Action.CONNECT, self.state, ["no unit connected"])
        try:
            result = self.worker.call(command, DEVICE_CALL_TIMEOUT_S)
        except DeviceError as exc:
            self._command_ns = time.monotonic_ns()
            self._recorder.event(
                self.ctx,
                f"device.{name}",
                {"ok": False, "error": type(exc).__name__, "message": str(exc)},
            )
            raise
        self._command_ns = time.monotonic_ns()
        data: dict[str, Any] = {"ok": True}
        if isinstance(result, int) and not isinstance(result, bool):
            data["delivered"] = result
        self._recorder.event(self.ctx, f"device.{name}", data)
        return result

    def _command(
        self, command: Callable[[TherapyDevice], T], name: str, took: frozenset[UnitState]
    ) -> tuple[T | None, DeviceStatus | None]:
        """A state-changing command; when its answer is lost, the unit's state decides (SES-CMD-1).

        Returns (result, None) when answered, or (None, status) when the answer was lost but
        the unit reports a state in ``took`` (the command took effect). A refusal (NAK, host
        refusal, latched fault) is raised as it is; a lost answer with the unit not in ``took``
        is raised after the state was read and recorded.
        """
        try:
            return self._device(command, name), None
        except (DeviceRejected, CommandRefused, DeviceFault):
            raise
        except DeviceError as exc:
            status = self._state_after_failure(name, exc)
            if status is None or status.state not in took:
                raise
            return None, status

    def _state_after_failure(self, name: str, exc: DeviceError) -> DeviceStatus | None:
        """Read the unit's state after ``name`` failed without a refusal; audited."""
        data: dict[str, Any] = {"command": name, "error": str(exc)}
        try:
            assert self.worker is not None
            status = self.worker.call(lambda d: d.status(), 2.0)
        except (DeviceError, TimeoutError, AssertionError) as read_exc:
            self._recorder.event(
                self.ctx, "device.state_after_failure", {**data, "read_error": str(read_exc)}
            )
            return None
        self._command_ns = time.monotonic_ns()
        self.last_status = status
        self._recorder.event(
            self.ctx,
            "device.state_after_failure",
            {**data, "unit_state": status.state.value, "delivered": status.delivered},
        )
        return status

    # ------------------------------------------------------------------ screening and plan
    def submit_screening(
        self, answers: Mapping[str, Any], reason: str | None = None
    ) -> ScreeningOutcome:
        """Decide the screening. After a first decision, every changed answer is a correction
        recorded with who, when, the old and the new answer and ``reason`` — required after a
        block or an override-required decision (SES-SCREEN-1); the record keeps the first
        decision and every correction."""
        with self._lock:
            if self.state is not SessionState.SCREENING:
                raise self._refuse(Action.PLAN, ["screening is done before planning"])
            outcome = self._rules.screen(self.ctx, answers)
            previous = self.screening
            correction: dict[str, Any] | None = None
            if previous is not None:
                changes = _answer_changes(previous.record, outcome.record)
                if changes:
                    correction = self._correction(previous, outcome, changes, reason)
            self.screening = outcome
            self.screening_override_reason = None
            self._recorder.event(self.ctx, "screening.decided", dict(outcome.record))
            if self._first_screening is None:
                self._first_screening = _decision_summary(outcome.record, _now())
            if correction is not None:
                self._screening_corrections.append(correction)
                self._recorder.event(self.ctx, "screening.corrected", correction)
            record = {
                **dict(outcome.record),
                "first_decision": self._first_screening,
                "corrections": list(self._screening_corrections),
            }
            self._recorder.update(
                self.ctx,
                {"screening": record, "screening_decision": outcome.verdict.value},
            )
            self._changed()
            return outcome

    def _correction(
        self,
        previous: ScreeningOutcome,
        outcome: ScreeningOutcome,
        changes: list[dict[str, Any]],
        reason: str | None,
    ) -> dict[str, Any]:
        """A correction of screening answers, or an audited refusal when it needs a reason."""
        text = reason.strip() if isinstance(reason, str) else ""
        strict = previous.verdict in (ScreeningVerdict.BLOCK, ScreeningVerdict.OVERRIDE_REQUIRED)
        if strict and override_reason_problem(text) is not None:
            changed = ", ".join(c["question"] for c in changes)
            raise self._refuse(
                Action.PLAN,
                [
                    f"the screening decided {previous.verdict.value}: changing an answer "
                    f"({changed}) is a correction that needs a written reason of at least "
                    f"{MIN_OVERRIDE_REASON_CHARS} characters (who told you what, and why "
                    "the first answer was wrong)"
                ],
            )
        return {
            "time": _now(),
            "by": self.ctx.therapist_id,
            "changes": changes,
            "reason": text or None,
            "from_decision": previous.verdict.value,
            "from_rules": list(previous.record.get("rules") or []),
            "to_decision": outcome.verdict.value,
            "to_rules": list(outcome.record.get("rules") or []),
        }

    def override_screening(self, reason: str) -> None:
        """Record the therapist's reason to proceed despite a relative contraindication."""
        with self._lock:
            if self.screening is None or self.screening.verdict.value != "override_required":
                raise self._refuse(
                    Action.PLAN, ["there is no relative contraindication to override"]
                )
            problem = override_reason_problem(reason)
            if problem:
                raise self._refuse(Action.PLAN, [problem])
            self.screening_override_reason = reason.strip()
            rules = [f.rule for f in self.screening.findings if f.severity == "override_required"]
            self._recorder.event(
                self.ctx,
                "screening.override",
                {"rules": rules, "reason": self.screening_override_reason},
            )
            self._recorder.update(self.ctx, {"screening_override_reason": reason.strip()})
            self._changed()

    def plan(
        self, params: PlannedParameters, *, override_reason: str | None = None
    ) -> ValidationOutcome:
        """Validate a plan (against the unit if one is connected) and record it."""
        with self._lock:
            # Once connected the plan may still change (it is re-validated against the unit);
            # once armed, only titration changes it.
            if self.state not in (
                SessionState.SCREENING,
                SessionState.PLANNED,
                SessionState.CONNECTED,
            ):
                raise self._refuse(Action.PLAN, [f"cannot re-plan in state {self.state}"])
            reasons = [
                i.reason
                for i in screening_interlocks(self.screening, self.screening_override_reason)
                if not i.held
            ]
            if reasons:
                raise self._refuse(Action.PLAN, reasons)
            outcome = self._validate(params, override_reason)
            self.plan_params = params
            self.confirmed = False
            if self.state is not SessionState.CONNECTED:
                self._move(Action.PLAN, {"parameters": _params_record(params)})
            self._recorder.update(self.ctx, {"parameters": _params_record(params)})
            return outcome

    def _validate(
        self, params: PlannedParameters, override_reason: str | None, *, titration: bool = False
    ) -> ValidationOutcome:
        """Validate, record the verdict, and record an override when one is given and needed.

        An override covers exactly the values it was given for, or values between them and the
        protocol's limits (SES-OVR-1); a later validation whose override-requiring findings are
        all covered keeps it without a new reason, anything further out needs a new one.

        The stored validation agrees with the overrides: it carries the override in force (then
        ``accepted``) and every override given in this session (SES-OVR-2). A titration never
        clears the record's parameter override reason: pulses were delivered under it; the
        titration's own reason, when it needs one, is recorded with the titration.
        """
        outcome = self._rules.validate(
            self.ctx, params, self.envelope, self.applicator_before, self._model()
        )
        needing = [f for f in outcome.findings if f.severity == "override_required"]
        data: dict[str, Any] = {
            "parameters": _params_record(params),
            "verdict": outcome.verdict.value,
            "against_unit": self.envelope is not None,
            "findings": [
                {"rule": f.rule, "severity": f.severity, "message": f.message}
                for f in outcome.findings
            ],
        }
        covered = all(override_covers(self._covered, f) for f in needing)
        reason = self.parameter_override_reason if covered else None
        if outcome.verdict.value == "override_required" and override_reason is not None:
            problem = override_reason_problem(override_reason)
            if problem is not None:
                raise self._refuse(Action.PLAN, [problem])
            reason = override_reason.strip()
            self._covered = {(f.rule, f.field): f for f in needing}
            data["override_reason"] = reason
            self._overrides.append(
                {
                    "time": _now(),
                    "reason": reason,
                    "by": self.ctx.therapist_id,
                    "parameters": _params_record(params),
                    "for": [f.message for f in needing],
                    "titration": titration,
                }
            )
            self._recorder.event(self.ctx, "parameters.override", data)
        if outcome.verdict.value != "override_required":
            reason = None
        self.validation = outcome
        self._validated_plan = params
        self.validated_against_unit = self.envelope is not None
        self.parameter_override_reason = reason
        if reason is not None:
            data["override_in_force"] = reason
        self._recorder.event(self.ctx, "parameters.validated", data)
        fields: dict[str, Any] = {"validation": self._validation_record(outcome, reason)}
        if not titration:
            fields["parameter_override_reason"] = reason
        self._recorder.update(self.ctx, fields)
        return outcome

    def _validation_record(self, outcome: ValidationOutcome, reason: str | None) -> dict[str, Any]:
        """The rules' record with the override in force and this session's overrides, so that
        it never says ``"override": null`` beside a recorded override (SES-OVR-2)."""
        record = dict(outcome.record)
        if reason is not None and outcome.verdict.value == "override_required":
            record["override"] = {
                "reason": reason,
                "role": self.ctx.therapist_role,
                "user_id": self.ctx.therapist_id,
            }
            record["accepted"] = True
        record["session_overrides"] = [dict(o) for o in self._overrides]
        return record

    # ------------------------------------------------------------------ the unit
    def check_can_connect(self) -> None:
        """Refuse (audited) unless the session is planned and holds no unit yet (SES-CONN-1)."""
        with self._lock:
            self._require(Action.CONNECT)
            if self.worker is not None:
                raise self._refuse(Action.CONNECT, ["a unit is already connected"])

    def refuse_connect(self, reasons: list[str]) -> TransitionRefused:
        """The refusal (audited) of a unit that cannot be connected, e.g. another console's."""
        with self._lock:
            return self._refuse(Action.CONNECT, reasons)

    def connect(self, worker: DeviceWorker) -> DeviceIdentity:
        """Attach a started worker; read identity, envelope, applicator; re-validate the plan.

        A worker this refuses is shut down, so no second driver ever stays attached to a unit.
        A unit on which another session's count awaits recovery is refused (SES-RECOVER-2).
        """
        with self._lock:
            try:
                self.check_can_connect()
                identity, envelope, applicator, status, events = worker.call(
                    lambda d: (
                        d.identify(),
                        d.envelope(),
                        d.applicator(),
                        d.status(),
                        d.event_log(0),
                    ),
                    DEVICE_CALL_TIMEOUT_S,
                )
                problem = (
                    self._guards.unit_problem(self.ctx, identity.serial)
                    if self._guards is not None
                    else None
                )
                if problem is not None:
                    raise self._refuse(Action.CONNECT, [problem])
                if identity.modality is not self.ctx.modality:
                    raise self._refuse(
                        Action.CONNECT,
                        [
                            f"the protocol is {self.ctx.modality.upper()}, the unit is "
                            f"{identity.model}"
                        ],
                    )
                worker.call(lambda d: d.start_status_stream(STATUS_PERIOD_S), DEVICE_CALL_TIMEOUT_S)
            except BaseException:
                worker.shutdown()
                raise
            worker.poll_status_after_s = STATUS_SILENCE_S
            worker.link_silence_s = LINK_SILENCE_S
            self.worker = worker
            self._unit_conditions_over(link=True, fault=status.state is not UnitState.FAULT)
            self.identity, self.envelope, self.applicator_before = identity, envelope, applicator
            self.last_status = status
            self._track(status)
            self._log_from = events[-1].index or 0 if events else 0
            shots_before = applicator.shots_used if applicator.present else None
            self._move(
                Action.CONNECT,
                {
                    "device_model": identity.model,
                    "device_serial": identity.serial,
                    "firmware": identity.firmware,
                    "applicator_type": applicator.type or None,
                    "applicator_serial": applicator.serial or None,
                    "shots_before": shots_before,
                    # SVC-SESS-1: service commands refuse this link before opening it
                    "unit_link": worker.link,
                },
            )
            self._recorder.update(
                self.ctx,
                {
                    "device_model": identity.model,
                    "device_serial": identity.serial,
                    "applicator_type": applicator.type or None,
                    "applicator_serial": applicator.serial or None,
                    "applicator_shots_before": shots_before,
                },
            )
            if self.plan_params is not None:
                self._validate(self.plan_params, None)
            self.confirmed = False
            self._changed()
            return identity

    def revalidate(self, override_reason: str | None = None) -> ValidationOutcome:
        """Validate the current plan against the connected unit, optionally with an override."""
        with self._lock:
            if self.state is not SessionState.CONNECTED:
                raise self._refuse(Action.ARM, ["validate against the unit while connected"])
            if self.plan_params is None:
                raise self._refuse(Action.ARM, ["no parameters planned"])
            outcome = self._validate(self.plan_params, override_reason)
            self.confirmed = False
            self._changed()
            return outcome

    def confirm_parameters(self) -> None:
        """The therapist has reviewed the validated parameters on screen and confirms them."""
        with self._lock:
            if self.state is not SessionState.CONNECTED or self.validation is None:
                raise self._refuse(Action.ARM, ["connect the unit and validate the plan first"])
            self.confirmed = True
            self._confirmed_plan = self.plan_params
            self._recorder.event(
                self.ctx,
                "parameters.confirmed",
                {"parameters": _params_record(self.plan_params)} if self.plan_params else {},
            )
            self._changed()

    def clear_unit_fault(self) -> None:
        """Clear a fault latched on the unit from an earlier use (connected, not armed)."""
        with self._lock:
            if self.state is not SessionState.CONNECTED:
                raise self._refuse(Action.ARM, ["clear unit faults only while connected"])
            self._device(lambda d: d.clear_fault(), "clear_fault")
            self.last_status = self._device(lambda d: d.status(), "status")
            self._changed()

    def _refuse_unless_interlocks(self, action: Action) -> list[Interlock]:
        """Re-check every interlock now, from the record (SES-ARM-6); refuse if one fails."""
        checks = self.interlocks(fresh=True)
        failed = [i for i in checks if not i.held]
        if failed:
            raise self._refuse(action, [f"{i.name}: {i.reason}" for i in failed])
        return checks

    def arm(self) -> None:
        with self._lock:
            self._require(Action.ARM)
            checks = self._refuse_unless_interlocks(Action.ARM)
            assert self.plan_params is not None
            wanted = self.plan_params.for_device()
            self._load(wanted)
            self._arm_segment()
            self._move(
                Action.ARM,
                {
                    "parameters": _params_record(wanted),
                    "interlocks": [i.name for i in checks],
                    "arm_snapshot": self.arm_snapshot.to_record() if self.arm_snapshot else None,
                },
            )

    def _arm_segment(self) -> None:
        """ARM the loaded segment and record the arm snapshot (SES-COUNT-3).

        Without its snapshot a segment's count could not be told from a later use of the unit,
        so a unit that cannot be read right after ARM is disarmed again and arming fails.
        """
        self._command(lambda d: d.arm(), "arm", frozenset({UnitState.ARMED}))
        log_from = self._log_from
        try:
            snapshot = self._device(
                lambda d: take_snapshot(d, self.segment_target, log_from), "arm_snapshot"
            )
        except DeviceError:
            with contextlib.suppress(DeviceError):
                self._device(lambda d: d.disarm(), "disarm")
            raise
        self.arm_snapshot = snapshot
        self._log_from = snapshot.event_index or self._log_from
        self._recorder.update(self.ctx, {"arm_snapshot": snapshot.to_record()})

    def _load(self, wanted: DeviceParameters) -> None:
        """Load parameters and compare the unit's read-back to what was validated (SES-ARM-5)."""
        held = self._device(lambda d: d.load_parameters(wanted), "params_set")
        if held != wanted:
            raise ProtocolError(f"the unit holds {held}, not the validated {wanted}: not arming")
        self.segment_target = wanted.pulses
        self.segment_delivered = 0
        self.loaded = wanted

    def start(self) -> None:
        """Start delivery: interlocks re-checked, the unit's held settings compared to the
        confirmed ones and START sent in one job on the device worker (SES-ARM-6)."""
        with self._lock:
            self._require(Action.START)
            self._refuse_unless_interlocks(Action.START)
            loaded = self.loaded

            def checked_start(device: TherapyDevice) -> None:
                problem = _holds_problem(device.status(), loaded)
                if problem is not None:
                    raise _UnitNotAsLoaded(problem)
                device.start()

            try:
                _, followed = self._command(checked_start, "start", _STARTED)
            except _UnitNotAsLoaded as exc:
                raise self._refuse(Action.START, [str(exc)]) from None
            self._move(Action.START, _followed(followed))

    def pause(self) -> int:
        with self._lock:
            self._require(Action.PAUSE)
            count, followed = self._command(
                lambda d: d.pause(), "pause", frozenset({UnitState.PAUSED})
            )
            self.segment_delivered = _count(count, followed)
            self._move(Action.PAUSE, _followed(followed))
            return self.delivered

    def resume(self) -> None:
        with self._lock:
            self._require(Action.RESUME)
            if self._resume_with_start:
                _, followed = self._command(lambda d: d.start(), "start", _STARTED)
                self._resume_with_start = False
            else:
                _, followed = self._command(lambda d: d.resume(), "resume", _STARTED)
            self._move(Action.RESUME, _followed(followed))

    def titrate(
        self,
        *,
        pressure_bar: Decimal | None = None,
        field_mt: Decimal | None = None,
        override_reason: str | None = None,
    ) -> ValidationOutcome:
        """Change intensity while paused, inside the validated limits; recorded with its time.

        Units accept new settings only when idle, so the segment is ended (its count kept),
        the remaining pulses are loaded at the new intensity and the unit waits armed; resume
        starts it again. A titration outside the protocol needs its own written reason,
        recorded with the titration; other findings must be covered by the override given
        (SES-OVR-1).
        """
        with self._lock:
            self._require(Action.TITRATE)
            assert self.plan_params is not None
            new_plan = replace(
                self.plan_params,
                pressure_bar=pressure_bar
                if pressure_bar is not None
                else self.plan_params.pressure_bar,
                field_mt=field_mt if field_mt is not None else self.plan_params.field_mt,
            )
            outcome = self._rules.validate(
                self.ctx, new_plan, self.envelope, self.applicator_before, self._model()
            )
            titrated = {
                name
                for name, value in (("pressure_bar", pressure_bar), ("field_mt", field_mt))
                if value is not None
            }
            needing = [f for f in outcome.findings if f.severity == "override_required"]
            own = [f for f in needing if f.field in titrated]
            uncovered = [f for f in needing if not override_covers(self._covered, f)]
            reasons: list[str] = []
            if outcome.verdict.value == "refused":
                reasons = [f.message for f in outcome.findings if f.severity == "refuse"]
            elif needing and (own or uncovered or override_reason is not None):
                problem = override_reason_problem(override_reason)
                if problem:
                    reasons = [f.message for f in own or uncovered] + [
                        f"a titration outside the protocol needs its own reason: {problem}"
                    ]
            if reasons:
                raise self._refuse(Action.TITRATE, reasons)
            remaining = self.target - self.delivered
            if remaining <= 0:
                raise self._refuse(Action.TITRATE, ["no pulses remain to deliver"])
            outcome = self._validate(new_plan, override_reason if needing else None, titration=True)
            count, followed = self._command(lambda d: d.stop(), "stop", frozenset({UnitState.IDLE}))
            segment = _count(count, followed)
            self.closed_segments.append(segment)
            self.segment_delivered = 0
            self.arm_snapshot = None
            self._recorder.update(self.ctx, {"segments": list(self.closed_segments)})
            self._load(new_plan.for_device(pulses=remaining))
            self._arm_segment()
            self._resume_with_start = True
            old = self.plan_params
            self.plan_params = self._confirmed_plan = new_plan
            change = {
                "time": _now(),
                "delivered_before": self.delivered,
                "from": _params_record(old),
                "to": _params_record(new_plan),
            }
            if override_reason and outcome.verdict.value == "override_required":
                change["override_reason"] = override_reason.strip()
                change["override_for"] = [f.message for f in own or uncovered or needing]
            # the reason covering the titrated setting (SES-OVR-2): kept, not erased
            change["override_in_force"] = self.parameter_override_reason
            self.titrations.append(change)
            self._recorder.update(self.ctx, {"titrations": list(self.titrations)})
            self._move(Action.TITRATE, {"titration": change})
            return outcome

    # ------------------------------------------------------------------ ending delivery
    def stop(self) -> int:
        """Planned end before the target (the therapist decides the dose is enough)."""
        with self._lock:
            self._require(Action.STOP)
            if self.state is SessionState.PAUSED and self._resume_with_start:
                # after a titration the unit waits ARMED with the rest loaded: STOP is refused
                count, followed = self._command(lambda d: d.disarm(), "disarm", _STOPPED)
            else:
                count, followed = self._command(lambda d: d.stop(), "stop", _STOPPED)
            self.segment_delivered = _count(count, followed)
            self.end_reason = "stopped by the therapist"
            self._finish(Action.STOP, _followed(followed))
            return self.delivered

    def abort(self, reason: str) -> int:
        with self._lock:
            self._require(Action.ABORT)
            if not reason or not reason.strip():
                raise self._refuse(Action.ABORT, ["an abort needs a reason"])
            if self.worker is not None:
                self._abort_unit()
            self.end_reason = reason.strip()
            self._finish(Action.ABORT, {"reason": self.end_reason})
            return self.delivered

    def _abort_unit(self) -> None:
        """Bring the unit back to IDLE the way its present state allows."""
        unit = self.last_status.state if self.last_status else None
        if unit is UnitState.FAULT or self.state is SessionState.CONNECTED:
            return  # nothing loaded, or latched already: nothing can fire
        unit_paused = self.state is SessionState.PAUSED and not self._resume_with_start
        if self.state is SessionState.DELIVERING or unit_paused:
            count, followed = self._command(lambda d: d.stop(), "stop", _STOPPED)
        else:  # ARMED, or paused after titration (the unit waits armed)
            count, followed = self._command(lambda d: d.disarm(), "disarm", _STOPPED)
        self.segment_delivered = _count(count, followed)

    def emergency_stop(self) -> Future[int] | None:
        """Immediate, latched stop. Sent to the unit before any lock is taken."""
        pressed_ns = time.monotonic_ns()
        self._estop_pressed = True  # no lock: the unit's own ESTOP report may race us for it
        self._latched_ns = pressed_ns  # a status read before this cannot clear the latch
        worker = self.worker
        future = worker.emergency_stop() if worker is not None else None
        if worker is not None:
            self._alarm(
                "session.emergency_stop",
                AlarmPriority.HIGH,
                "EMERGENCY STOP pressed: unit stopped",
                persists=True,  # the unit stays latched in fault until it is seen out of it
            )
        else:  # said as exactly that: no alarm sound for a stop with nothing to stop
            self._alarm(
                "session.emergency_stop",
                AlarmPriority.LOW,
                "Emergency stop pressed: no unit was connected",
            )
        with self._lock:
            self._recorder.event(
                self.ctx,
                "session.emergency_stop_pressed",
                {"state": self.state.value, "unit_connected": worker is not None},
            )
            if future is None:
                return None
            try:
                delivered = future.result(DEVICE_CALL_TIMEOUT_S)
            except (DeviceError, TimeoutError) as exc:
                self._recorder.event(
                    self.ctx, "device.emergency_stop", {"ok": False, "message": str(exc)}
                )
                if next_state(self.state, Action.EMERGENCY_STOP) is not None:
                    self._fault_end(Action.EMERGENCY_STOP, f"emergency stop not confirmed: {exc}")
                return future
            latency_us = (time.monotonic_ns() - pressed_ns) // 1000
            self._recorder.event(
                self.ctx,
                "device.emergency_stop",
                {"ok": True, "delivered": delivered, "latency_us": latency_us},
            )
            if next_state(self.state, Action.EMERGENCY_STOP) is not None:
                self.segment_delivered = delivered if not self._resume_with_start else 0
                self._fault_end(Action.EMERGENCY_STOP, "emergency stop")
            return future

    def _fault_end(self, action: Action, cause: str) -> None:
        self.end_reason = cause
        self.faults.append({"time": _now(), "cause": cause, "delivered": self.delivered})
        self._finish(action, {"cause": cause})

    def _finish(self, action: Action, data: Mapping[str, Any] | None = None) -> None:
        """End delivery: establish the count by the one rule (SES-COUNT-2), then leave.

        The unit is made unable to fire and read — through the session's worker, or after a
        lost link by reopening it — and the count judged on what it reports; a count that
        cannot be established is recorded unconfirmed with its bounds, with an alarm, and the
        session stays open for recovery. Never a stale number recorded as final.
        """
        verdict, reading = self._establish_count()
        closed = sum(self.closed_segments)
        if verdict.count is not None:
            if verdict.count != self.segment_delivered:
                self._recorder.event(
                    self.ctx,
                    "session.count_reconciled",
                    {"reported": self.segment_delivered, "unit": verdict.count},
                )
            self.segment_delivered = verdict.count
            self.count_status = "confirmed"
        else:
            self.count_status = "unconfirmed"
        self.delivered_bounds = (closed + verdict.low, closed + verdict.high)
        evidence: dict[str, Any] = {
            "status": self.count_status,
            "closed_segments": list(self.closed_segments),
            "segment": verdict.evidence,
            "recovery_pending": verdict.count is None,
        }
        shots_after = self._shots_after(reading, evidence)
        if reading is not None:
            self.last_status = reading.status
        confirmed = verdict.count is not None
        self._recorder.update(
            self.ctx,
            {
                "delivered": self.delivered if confirmed else None,
                "count_status": self.count_status,
                "delivered_min": self.delivered_bounds[0],
                "delivered_max": self.delivered_bounds[1],
                "count_evidence": evidence,
                "segments": [*self.closed_segments, self.segment_delivered if confirmed else None],
                "end_reason": self.end_reason,
                "faults": list(self.faults),
                "applicator_shots_after": shots_after,
            },
        )
        if not confirmed:
            low, high = self.delivered_bounds
            self._alarm(
                "session.count_unconfirmed",
                AlarmPriority.HIGH,
                f"Delivered count NOT confirmed: between {low} and {high} pulses "
                f"({verdict.evidence.get('why_unconfirmed')}). Recover the session before the "
                "unit is used again.",
            )
        self._move(
            action,
            {
                **(data or {}),
                "delivered": self.delivered if confirmed else None,
                "count_status": self.count_status,
                "delivered_min": self.delivered_bounds[0],
                "delivered_max": self.delivered_bounds[1],
            },
        )

    def _establish_count(self) -> tuple[CountVerdict, UnitReading | None]:
        """Make the unit unable to fire, read it and judge the current segment's count."""
        snapshot = self.arm_snapshot
        if snapshot is None:  # nothing armed in this segment: nothing could fire
            reading = None
            if self.worker is not None:
                with contextlib.suppress(DeviceError, TimeoutError):
                    reading = self.worker.call(lambda d: read_unit(d, None), 5.0)
            source = "nothing was armed in this segment: the unit could not fire for it"
            verdict = CountVerdict(
                self.segment_delivered,
                self.segment_delivered,
                self.segment_delivered,
                {"source": source, "last_confirmed": self.segment_delivered},
            )
            return verdict, reading
        reading, why = self._read_after_end(snapshot)
        verdict = judge_segment(
            snapshot,
            reading,
            last_confirmed=0 if self._resume_with_start else self.segment_delivered,
            reset_seen=self._reset_seen,
            unreachable=why,
        )
        return verdict, reading

    def _read_after_end(self, snapshot: ArmSnapshot) -> tuple[UnitReading | None, str | None]:
        """The unit made safe and read: through the worker, else by reopening it (takeover)."""
        if self.worker is not None and self.worker.alive:
            try:
                return self.worker.call(lambda d: read_unit(d, snapshot), 5.0), None
            except (DeviceError, TimeoutError) as exc:
                self._recorder.event(
                    self.ctx, "device.read_after_end", {"ok": False, "message": str(exc)}
                )
                self._drop_worker()
        if self._guards is None:
            return None, "the link is lost and this console cannot reopen the unit"
        errors: list[str] = []
        for attempt in range(1, RECONNECT_ATTEMPTS + 1):
            try:
                with self._guards.reopen_unit(self.ctx) as driver:
                    reading = read_unit(driver, snapshot)
            except Exception as exc:  # any failure to reopen is "unreachable", recorded
                errors.append(f"{type(exc).__name__}: {exc}")
                if attempt < RECONNECT_ATTEMPTS:
                    time.sleep(RECONNECT_PAUSE_S)
                continue
            self._recorder.event(
                self.ctx,
                "device.reconnected",
                {
                    "attempt": attempt,
                    "unit_state_found": reading.found.value,
                    "unit_action": reading.action,
                    "unit_state_left": reading.status.state.value,
                    "delivered": reading.status.delivered,
                },
            )
            return reading, None
        self._recorder.event(self.ctx, "device.reconnect_failed", {"attempts": errors})
        return None, f"{RECONNECT_ATTEMPTS} attempts to reopen it failed ({errors[-1]})"

    def _shots_after(self, reading: UnitReading | None, evidence: dict[str, Any]) -> int | None:
        """The applicator's real counter after the session, or None with the reason why it is
        unknown in ``evidence`` (SES-APPL-1): never 0 for an applicator that is not there."""
        before = self.applicator_before
        if before is None or not before.present:
            evidence["applicator_before_unknown"] = "no applicator was fitted when connecting"
        last = self._last_shots
        if last is not None:
            evidence["applicator_last_reading"] = last
            if before is not None and before.present:
                evidence["applicator_delta_last_reading"] = last - before.shots_used
        if reading is None:
            evidence["applicator_after_unknown"] = "the unit could not be read after the end"
            return None
        now = reading.applicator
        if not now.present:
            evidence["applicator_after_unknown"] = (
                "no applicator was fitted when the count was read (removed during the session): "
                "its counter cannot be read now; the last reading is applicator_last_reading"
            )
            return None
        if before is not None and before.present and now.serial != before.serial:
            evidence["applicator_after_unknown"] = (
                f"another applicator ({now.serial}) is fitted than the session's ({before.serial})"
            )
            return None
        return now.shots_used

    # ------------------------------------------------------------------ messages from the unit
    def handle(self, message: WorkerMessage) -> None:
        """Process one message from the device worker (status, event, link loss, alive tick).

        A record write that fails here (the database unavailable or locked) first makes the
        unit safe (``record_failed``, SES-DB-1), then propagates: the caller records the
        session once the store is back (``record_failure.record_when_store_is_back``).
        """
        if isinstance(message, WorkerAlive) or self.record_failure is not None:
            return  # after a record failure the unit was let go: recovery records the end
        try:
            with self._lock:
                if isinstance(message, DeviceStatus):
                    self._on_status(message)
                elif isinstance(message, DeviceEvent):
                    self._on_event(message)
                elif isinstance(message, LinkDown | WorkerStopped):
                    reason = (
                        message.reason if isinstance(message, LinkDown) else "device worker ended"
                    )
                    self._on_link_lost(reason)
        except StoreError as exc:
            self.record_failed(str(exc))
            raise

    # ------------------------------------------------------------------ the record unavailable
    def record_failed(self, reason: str) -> None:
        """SES-DB-1: a record write failed. Let go of the unit now — closing the driver stops
        and disarms a unit it loaded or armed, and the unit keeps its count — and raise the
        HIGH alarm; the session is recorded by recovery once the store is back. Idempotent."""
        first = self.record_failure is None
        self.record_failure = reason
        self.close()
        if not first:
            return
        with contextlib.suppress(StoreError):  # the alarm's own audit cannot be written either
            self._alarm(
                RECORD_UNAVAILABLE_ALARM,
                AlarmPriority.HIGH,
                "The record cannot be written: the unit was stopped; the session will be "
                "recorded when the database is back",
            )
        self._changed()

    def recover_record(self, cause: str) -> RecoveryOutcome:
        """Record this session by recovery (through the guards: as its signed-in therapist);
        returns the ``RecoveryOutcome``. Raises ``RecoveryFailed`` or ``StoreError``."""
        if self._guards is None:
            from console.session.recovery import RecoveryFailed

            raise RecoveryFailed("this console cannot recover sessions: use the patient's page")
        return self._guards.recover(self.ctx, cause)

    def follow_recovery(self, outcome: RecoveryOutcome) -> None:
        """Recovery recorded the session ``interrupted`` (after the record failed): show it."""
        with self._lock:
            self.state = SessionState.INTERRUPTED
            self.count_status = outcome.count_status
            if outcome.delivered_min is not None and outcome.delivered_max is not None:
                self.delivered_bounds = (outcome.delivered_min, outcome.delivered_max)
            if outcome.delivered is not None:
                self.segment_delivered = outcome.delivered - sum(self.closed_segments)
            self.end_reason = f"interrupted: the record was unavailable ({self.record_failure})"
            self._changed()

    def _track(self, status: DeviceStatus) -> None:
        if status.uptime_s is not None:
            self._last_uptime = status.uptime_s
        if status.applicator_present and status.shots_used is not None:
            self._last_shots = status.shots_used

    def _reset_sign(self, status: DeviceStatus) -> str | None:
        """Why ``status`` (fresh, in a live state) shows the unit reset, or None (SES-RESET-1)."""
        if (
            status.uptime_s is not None
            and self._last_uptime is not None
            and status.uptime_s < self._last_uptime
        ):
            return f"its uptime went back from {self._last_uptime} s to {status.uptime_s} s"
        if status.state in (UnitState.IDLE, UnitState.READY):
            return f"it reports {status.state.value} while the session is {self.state.value}"
        return None

    def _on_status(self, status: DeviceStatus) -> None:
        if status.received_ns < self._status_ns:
            return  # read before one already handled (stream and poll can cross): stale
        self._status_ns = status.received_ns
        fresh = status.received_ns >= self._command_ns
        if self.state in LIVE_STATES and fresh:
            sign = self._reset_sign(status)
            if sign is not None:
                self.last_status = status
                self._reset_detected(sign)
                self._changed()
                return
        self._track(status)
        self.last_status = status
        if status.state is not UnitState.FAULT and status.received_ns > self._latched_ns:
            self._unit_conditions_over(link=False)
        if self.state in LIVE_STATES and fresh:
            self.segment_delivered = status.delivered
            if status.state is UnitState.FAULT:
                self._device_fault(", ".join(status.faults) or "fault", status.delivered)
            elif status.state is UnitState.COMPLETE and self.state is SessionState.DELIVERING:
                self._complete(status.delivered)
        self._changed()

    def _reset_detected(self, sign: str) -> None:
        self._reset_seen = f"unit reset seen during delivery: {sign}"
        self._alarm(
            "device.reset",
            AlarmPriority.HIGH,
            f"Unit reset during delivery ({sign}). Delivery stopped; establishing the count.",
        )
        self._fault_end(Action.FAULT, f"unit reset during delivery: {sign}")

    def _on_event(self, event: DeviceEvent) -> None:
        if event.kind is EventKind.FAULT and self.state in LIVE_STATES:
            self._device_fault(event.text, None)
        elif event.kind is EventKind.COMPLETION and self.state is SessionState.DELIVERING:
            self._complete(event.data)

    def _complete(self, delivered: int) -> None:
        self.segment_delivered = delivered
        self.end_reason = "target reached"
        # If DISARM fails the unit stays COMPLETE, which cannot fire; the record is what matters.
        with contextlib.suppress(DeviceError):
            self._device(lambda d: d.disarm(), "disarm")
        self._finish(Action.COMPLETE)

    def _device_fault(self, cause: str, delivered: int | None) -> None:
        if delivered is not None and not self._resume_with_start:
            self.segment_delivered = delivered
        if self._estop_pressed:
            # The unit's report of our own emergency stop won the lock: record it as what it is.
            self._fault_end(Action.EMERGENCY_STOP, "emergency stop")
            return
        self._latched_ns = time.monotonic_ns()
        self._alarm(
            "device.fault",
            AlarmPriority.HIGH,
            f"Unit fault: {cause}. Delivery stopped.",
            persists=True,
        )
        self._fault_end(Action.FAULT, f"device fault: {cause}")

    def _unit_conditions_over(self, *, link: bool, fault: bool = True) -> None:
        """Resolve the persisting alarms whose cause the unit's own report shows is over."""
        keys = (["device.link_lost"] if link else []) + (
            ["device.fault", "session.emergency_stop"] if fault else []
        )
        for key in keys:
            self.alarms.resolve(key)

    def _drop_worker(self) -> None:
        """Let go of a worker whose link is gone; its thread ends without waiting here."""
        worker, self.worker = self.worker, None
        if worker is not None:
            threading.Thread(target=worker.shutdown, name="worker-shutdown", daemon=True).start()

    def _on_link_lost(self, reason: str) -> None:
        if next_state(self.state, Action.FAULT) is None:
            return
        self._alarm(
            "device.link_lost",
            AlarmPriority.HIGH,
            f"Link to the unit lost: {reason}",
            persists=True,
        )
        self._drop_worker()  # the count is read after reconnecting (SES-COUNT-2)
        self._fault_end(Action.FAULT, f"link lost: {reason}")

    def check_worker(self, now_ns: int | None = None) -> bool:
        """Raise the technical alarm if the worker has been silent > 1 s; True if alive."""
        worker = self.worker
        if worker is None:
            return True
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if now_ns - worker.last_alive_ns > WORKER_SILENCE_ALARM_NS:
            self._alarm(
                "worker.silent",
                AlarmPriority.MEDIUM,
                "The device worker has not reported for over a second",
                technical=True,
            )
            return False
        return True

    # ------------------------------------------------------------------ documentation
    def document(
        self,
        *,
        pain_before: int,
        pain_after: int,
        adverse_events: list[str],
        treatment_points: list[dict[str, int]],
        notes: str = "",
    ) -> None:
        with self._lock:
            banner = self.signed_banner()
            if banner is not None or self.state is SessionState.SIGNED:
                raise self._refuse(
                    Action.DOCUMENT,
                    [
                        f"{banner or 'the session is signed'}: the signed documentation is "
                        "final; add what you learnt later as an addendum"
                    ],
                )
            self._require(Action.DOCUMENT)
            if self.count_status == "unconfirmed" and self.state is SessionState.FAULTED:
                raise self._refuse(
                    Action.DOCUMENT,
                    [
                        "the delivered count is unconfirmed: recover the session first "
                        "(the unit is read again and the count established), then document it"
                    ],
                )
            problems = []
            for name, value in (("pain before", pain_before), ("pain after", pain_after)):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
                    problems.append(f"{name} must be a whole number 0–10 (NRS)")
            unknown = sorted(set(adverse_events) - ADVERSE_EVENTS)
            if unknown:
                problems.append(
                    f"unknown adverse events {unknown}; choose from {sorted(ADVERSE_EVENTS)}"
                )
            if problems:
                raise self._refuse(Action.DOCUMENT, problems)
            fields = {
                "pain_before": pain_before,
                "pain_after": pain_after,
                "adverse_events": sorted(set(adverse_events)),
                "treatment_points": treatment_points,
                "notes": notes,
            }
            self._recorder.update(self.ctx, fields)
            self._move(Action.DOCUMENT, fields)

    def sign(
        self, password: str, meaning: str = "performed", user_name: str | None = None
    ) -> Mapping[str, Any]:
        """Sign the documented session (``user_name`` too on the first signing since sign-in,
        21 CFR 11.200). Once signed "performed" the documentation is final (SES-SIGN-1)."""
        with self._lock:
            self._require(Action.SIGN)
            signature = self._recorder.sign(self.ctx, password, meaning, user_name)
            self.signature = dict(signature)
            self._move(Action.SIGN, {"meaning": meaning})
            return signature

    def signing_needs_user_name(self) -> bool:
        """Whether signing now takes the user name too (first signing since sign-in)."""
        return self._recorder.signing_needs_user_name(self.ctx)

    def signed_banner(self) -> str | None:
        """The banner "Signed by … at …; later facts are addenda", once signed "performed"."""
        signature = self.signature
        if signature is None:
            return None
        return (
            f"Signed by {signature.get('signer_name')} at {signature.get('signed_at')} UTC; "
            "later facts are addenda (with a reason, signed on their own)"
        )

    def close(self) -> None:
        """Leave the unit safe and stop the worker (idempotent)."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.shutdown()
