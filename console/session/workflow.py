"""The treatment session as an explicit state machine: the console's safety core.

One ``SessionWorkflow`` per session. The GUI, the ``session run`` command and the tests all drive
this class; none of them adds safety logic of its own. Rules enforced here:

- every transition is looked up in ``states.TRANSITIONS`` and refused otherwise (SES-FLOW-1);
- nothing arms unless every interlock holds: complete, unblocked screening (overrides with a
  reason), an active programme, parameters validated against the *connected* unit's envelope
  and applicator, confirmed by the therapist, read back from the unit equal (SES-ARM-1..5);
- stop, abort (reason required) and emergency stop are distinct; the emergency stop bypasses
  every queue and lock (SES-ESTOP-1);
- a fault, a lost link or a watchdog trip ends delivery in ``faulted`` with the unit's last
  reported count and a latched alarm (SES-FAULT-1);
- the delivered count recorded is always the unit's own (per load segment, summed) (SES-COUNT-1).

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
from typing import Any, TypeVar

from console.alarms import AlarmBoard, AlarmPriority
from console.session.device_worker import DeviceWorker, WorkerAlive, WorkerMessage, WorkerStopped
from console.session.interlocks import (
    Interlock,
    override_reason_problem,
    programme_interlock,
    role_interlock,
    screening_interlocks,
    validation_interlocks,
)
from console.session.ports import (
    ClinicalRules,
    PlannedParameters,
    ScreeningOutcome,
    SessionContext,
    SessionRecorder,
    ValidationOutcome,
)
from console.session.states import Action, SessionState, next_state
from device_drivers.errors import DeviceError, ProtocolError
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

T = TypeVar("T")

WORKER_SILENCE_ALARM_NS = 1_000_000_000
#: Status readings while a unit is connected (pushed by EPAT, polled on EMTT), wall seconds.
STATUS_PERIOD_S = 0.05
DEVICE_CALL_TIMEOUT_S = 10.0
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
    ) -> None:
        self.ctx = ctx
        self._rules = rules
        self._recorder = recorder
        self.alarms = alarms
        self._lock = threading.RLock()
        self.state = state
        self.screening: ScreeningOutcome | None = None
        self.screening_override_reason: str | None = None
        self.plan_params: PlannedParameters | None = None
        self.validation: ValidationOutcome | None = None
        self.validated_against_unit = False
        self.parameter_override_reason: str | None = None
        self._overridden: set[tuple[str, str | None]] = set()  # findings the override covers
        self.confirmed = False
        self.worker: DeviceWorker | None = None
        self.identity: DeviceIdentity | None = None
        self.envelope: DeviceEnvelope | None = None
        self.applicator_before: ApplicatorInfo | None = None
        self.closed_segments: list[int] = []  # delivered counts of finished load segments
        self.segment_target = 0
        self.segment_delivered = 0  # the unit's count for the current load segment
        self.last_status: DeviceStatus | None = None
        self._resume_with_start = False  # after titration the unit waits ARMED, not PAUSED
        self._estop_pressed = False
        self.end_reason: str | None = None
        self.faults: list[dict[str, Any]] = []
        self.titrations: list[dict[str, Any]] = []
        self.listeners: list[Callable[[SessionWorkflow], None]] = []

    # ------------------------------------------------------------------ derived values
    @property
    def delivered(self) -> int:
        """Pulses delivered in this session: the unit's counts, summed over load segments."""
        return sum(self.closed_segments) + self.segment_delivered

    @property
    def target(self) -> int:
        return self.plan_params.pulses if self.plan_params else 0

    def interlocks(self) -> list[Interlock]:
        """Every arming condition with whether it holds now and why (for display and audit)."""
        with self._lock:
            checks = [role_interlock(self.ctx.therapist_role)]
            checks += screening_interlocks(self.screening, self.screening_override_reason)
            checks.append(programme_interlock(self.ctx.programme))
            checks += validation_interlocks(
                self.validation,
                self.parameter_override_reason,
                against_unit=self.validated_against_unit,
                confirmed=self.confirmed,
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
            self._recorder.event(
                self.ctx,
                f"device.{name}",
                {"ok": False, "error": type(exc).__name__, "message": str(exc)},
            )
            raise
        data: dict[str, Any] = {"ok": True}
        if isinstance(result, int) and not isinstance(result, bool):
            data["delivered"] = result
        self._recorder.event(self.ctx, f"device.{name}", data)
        return result

    # ------------------------------------------------------------------ screening and plan
    def submit_screening(self, answers: Mapping[str, Any]) -> ScreeningOutcome:
        with self._lock:
            if self.state is not SessionState.SCREENING:
                raise self._refuse(Action.PLAN, ["screening is done before planning"])
            outcome = self._rules.screen(self.ctx, answers)
            self.screening = outcome
            self.screening_override_reason = None
            self._recorder.event(self.ctx, "screening.decided", dict(outcome.record))
            self._recorder.update(
                self.ctx,
                {"screening": dict(outcome.record), "screening_decision": outcome.verdict.value},
            )
            self._changed()
            return outcome

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
        self, params: PlannedParameters, override_reason: str | None
    ) -> ValidationOutcome:
        """Validate, record the verdict, and record an override when one is given and needed.

        An override covers the findings it was given for; a later validation (titration) whose
        override-requiring findings are all already covered keeps it without a new reason.
        """
        outcome = self._rules.validate(
            self.ctx, params, self.envelope, self.applicator_before, self._model()
        )
        needing = {(f.rule, f.field) for f in outcome.findings if f.severity == "override_required"}
        data: dict[str, Any] = {
            "parameters": _params_record(params),
            "verdict": outcome.verdict.value,
            "against_unit": self.envelope is not None,
            "findings": [
                {"rule": f.rule, "severity": f.severity, "message": f.message}
                for f in outcome.findings
            ],
        }
        reason = self.parameter_override_reason if needing <= self._overridden else None
        if outcome.verdict.value == "override_required" and override_reason is not None:
            problem = override_reason_problem(override_reason)
            if problem is not None:
                raise self._refuse(Action.PLAN, [problem])
            reason = override_reason.strip()
            self._overridden = needing
            data["override_reason"] = reason
            self._recorder.event(self.ctx, "parameters.override", data)
        if outcome.verdict.value != "override_required":
            reason = None
        self.validation = outcome
        self.validated_against_unit = self.envelope is not None
        self.parameter_override_reason = reason
        self._recorder.event(self.ctx, "parameters.validated", data)
        self._recorder.update(
            self.ctx,
            {"validation": dict(outcome.record), "parameter_override_reason": reason},
        )
        return outcome

    # ------------------------------------------------------------------ the unit
    def check_can_connect(self) -> None:
        """Refuse (audited) unless the session is planned and holds no unit yet (SES-CONN-1)."""
        with self._lock:
            self._require(Action.CONNECT)
            if self.worker is not None:
                raise self._refuse(Action.CONNECT, ["a unit is already connected"])

    def connect(self, worker: DeviceWorker) -> DeviceIdentity:
        """Attach a started worker; read identity, envelope, applicator; re-validate the plan.

        A worker this refuses is shut down, so no second driver ever stays attached to a unit.
        """
        with self._lock:
            try:
                self.check_can_connect()
                identity, envelope, applicator, status = worker.call(
                    lambda d: (d.identify(), d.envelope(), d.applicator(), d.status()),
                    DEVICE_CALL_TIMEOUT_S,
                )
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
            self.worker = worker
            self.identity, self.envelope, self.applicator_before = identity, envelope, applicator
            self.last_status = status
            self._move(
                Action.CONNECT,
                {
                    "device_model": identity.model,
                    "device_serial": identity.serial,
                    "firmware": identity.firmware,
                    "applicator_type": applicator.type,
                    "applicator_serial": applicator.serial,
                    "shots_before": applicator.shots_used,
                },
            )
            self._recorder.update(
                self.ctx,
                {
                    "device_model": identity.model,
                    "device_serial": identity.serial,
                    "applicator_type": applicator.type,
                    "applicator_serial": applicator.serial,
                    "applicator_shots_before": applicator.shots_used,
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

    def arm(self) -> None:
        with self._lock:
            self._require(Action.ARM)
            failed = [i for i in self.interlocks() if not i.held]
            if failed:
                raise self._refuse(Action.ARM, [f"{i.name}: {i.reason}" for i in failed])
            assert self.plan_params is not None
            wanted = self.plan_params.for_device()
            self._load(wanted)
            self._device(lambda d: d.arm(), "arm")
            self._move(
                Action.ARM,
                {
                    "parameters": _params_record(wanted),
                    "interlocks": [i.name for i in self.interlocks()],
                },
            )

    def _load(self, wanted: DeviceParameters) -> None:
        """Load parameters and compare the unit's read-back to what was validated (SES-ARM-5)."""
        held = self._device(lambda d: d.load_parameters(wanted), "params_set")
        if held != wanted:
            raise ProtocolError(f"the unit holds {held}, not the validated {wanted}: not arming")
        self.segment_target = wanted.pulses
        self.segment_delivered = 0

    def start(self) -> None:
        with self._lock:
            self._require(Action.START)
            self._device(lambda d: d.start(), "start")
            self._move(Action.START)

    def pause(self) -> int:
        with self._lock:
            self._require(Action.PAUSE)
            self.segment_delivered = self._device(lambda d: d.pause(), "pause")
            self._move(Action.PAUSE)
            return self.delivered

    def resume(self) -> None:
        with self._lock:
            self._require(Action.RESUME)
            if self._resume_with_start:
                self._device(lambda d: d.start(), "start")
                self._resume_with_start = False
            else:
                self._device(lambda d: d.resume(), "resume")
            self._move(Action.RESUME)

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
        starts it again.
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
            needing = {
                (f.rule, f.field) for f in outcome.findings if f.severity == "override_required"
            }
            reasons: list[str] = []
            if outcome.verdict.value == "refused":
                reasons = [f.message for f in outcome.findings if f.severity == "refuse"]
            elif outcome.verdict.value == "override_required" and (
                override_reason is not None or not needing <= self._overridden
            ):
                problem = override_reason_problem(override_reason)
                if problem:
                    reasons = [
                        f.message for f in outcome.findings if f.severity == "override_required"
                    ] + [problem]
            if reasons:
                raise self._refuse(Action.TITRATE, reasons)
            outcome = self._validate(new_plan, override_reason)
            remaining = self.target - self.delivered
            if remaining <= 0:
                raise self._refuse(Action.TITRATE, ["no pulses remain to deliver"])
            segment = self._device(lambda d: d.stop(), "stop")
            self.closed_segments.append(segment)
            self.segment_delivered = 0
            self._recorder.update(self.ctx, {"segments": list(self.closed_segments)})
            self._load(new_plan.for_device(pulses=remaining))
            self._device(lambda d: d.arm(), "arm")
            self._resume_with_start = True
            old = self.plan_params
            self.plan_params = new_plan
            change = {
                "time": _now(),
                "delivered_before": self.delivered,
                "from": _params_record(old),
                "to": _params_record(new_plan),
            }
            if override_reason and outcome.verdict.value == "override_required":
                change["override_reason"] = override_reason.strip()
            self.titrations.append(change)
            self._recorder.update(self.ctx, {"titrations": list(self.titrations)})
            self._move(Action.TITRATE, {"titration": change})
            return outcome

    # ------------------------------------------------------------------ ending delivery
    def stop(self) -> int:
        """Planned end before the target (the therapist decides the dose is enough)."""
        with self._lock:
            self._require(Action.STOP)
            self.segment_delivered = self._device(lambda d: d.stop(), "stop")
            self.end_reason = "stopped by the therapist"
            self._finish(Action.STOP)
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
            self.segment_delivered = self._device(lambda d: d.stop(), "stop")
        else:  # ARMED, or paused after titration (the unit waits armed)
            self.segment_delivered = self._device(lambda d: d.disarm(), "disarm")

    def emergency_stop(self) -> Future[int] | None:
        """Immediate, latched stop. Sent to the unit before any lock is taken."""
        pressed_ns = time.monotonic_ns()
        self._estop_pressed = True  # no lock: the unit's own ESTOP report may race us for it
        worker = self.worker
        future = worker.emergency_stop() if worker is not None else None
        self.alarms.raise_alarm(
            "session.emergency_stop", AlarmPriority.HIGH, "EMERGENCY STOP pressed: unit stopped"
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
        """End delivery: take the unit's own final count, the applicator after, then leave.

        The unit keeps its count after STOP, DISARM, completion and faults, so the count read
        back here is authoritative (SES-COUNT-1); a difference from what the messages said is
        recorded, never hidden.
        """
        shots_after = None
        if self.worker is not None:
            try:
                final, applicator = self.worker.call(lambda d: (d.status(), d.applicator()), 2.0)
            except (DeviceError, TimeoutError):
                final, applicator = None, None
            if final is not None:
                if final.delivered != self.segment_delivered:
                    self._recorder.event(
                        self.ctx,
                        "session.count_reconciled",
                        {"reported": self.segment_delivered, "unit": final.delivered},
                    )
                self.segment_delivered = final.delivered
                self.last_status = final
            if applicator is not None:
                shots_after = applicator.shots_used
        self._recorder.update(
            self.ctx,
            {
                "delivered": self.delivered,
                "segments": [*self.closed_segments, self.segment_delivered],
                "end_reason": self.end_reason,
                "faults": list(self.faults),
                "applicator_shots_after": shots_after,
            },
        )
        self._move(action, {**(data or {}), "delivered": self.delivered})

    # ------------------------------------------------------------------ messages from the unit
    def handle(self, message: WorkerMessage) -> None:
        """Process one message from the device worker (status, event, link loss, alive tick)."""
        if isinstance(message, WorkerAlive):
            return
        with self._lock:
            if isinstance(message, DeviceStatus):
                self._on_status(message)
            elif isinstance(message, DeviceEvent):
                self._on_event(message)
            elif isinstance(message, LinkDown | WorkerStopped):
                reason = message.reason if isinstance(message, LinkDown) else "device worker ended"
                self._on_link_lost(reason)

    def _on_status(self, status: DeviceStatus) -> None:
        self.last_status = status
        if self.state in (SessionState.DELIVERING, SessionState.PAUSED, SessionState.ARMED):
            if not (self._resume_with_start and status.state is UnitState.IDLE):
                self.segment_delivered = status.delivered
            if status.state is UnitState.FAULT:
                self._device_fault(", ".join(status.faults) or "fault", status.delivered)
            elif status.state is UnitState.COMPLETE and self.state is SessionState.DELIVERING:
                self._complete(status.delivered)
        self._changed()

    def _on_event(self, event: DeviceEvent) -> None:
        if event.kind is EventKind.FAULT and self.state in (
            SessionState.ARMED,
            SessionState.DELIVERING,
            SessionState.PAUSED,
        ):
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
        if delivered is None and self.worker is not None:
            try:
                delivered = self.worker.call(lambda d: d.status(), 2.0).delivered
            except (DeviceError, TimeoutError):
                delivered = None
        if delivered is not None and not self._resume_with_start:
            self.segment_delivered = delivered
        if self._estop_pressed:
            # The unit's report of our own emergency stop won the lock: record it as what it is.
            self._fault_end(Action.EMERGENCY_STOP, "emergency stop")
            return
        self.alarms.raise_alarm(
            "device.fault", AlarmPriority.HIGH, f"Unit fault: {cause}. Delivery stopped."
        )
        self._fault_end(Action.FAULT, f"device fault: {cause}")

    def _on_link_lost(self, reason: str) -> None:
        if next_state(self.state, Action.FAULT) is None:
            return
        self.alarms.raise_alarm(
            "device.link_lost", AlarmPriority.HIGH, f"Link to the unit lost: {reason}"
        )
        worker, self.worker = self.worker, None  # the record keeps the last reported count
        if worker is not None:  # end its thread without waiting here (it closes a dead link)
            threading.Thread(target=worker.shutdown, name="worker-shutdown", daemon=True).start()
        self._fault_end(Action.FAULT, f"link lost: {reason}")

    def check_worker(self, now_ns: int | None = None) -> bool:
        """Raise the technical alarm if the worker has been silent > 1 s; True if alive."""
        worker = self.worker
        if worker is None:
            return True
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if now_ns - worker.last_alive_ns > WORKER_SILENCE_ALARM_NS:
            self.alarms.raise_alarm(
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
            self._require(Action.DOCUMENT)
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

    def sign(self, password: str, meaning: str = "performed") -> Mapping[str, Any]:
        with self._lock:
            self._require(Action.SIGN)
            signature = self._recorder.sign(self.ctx, password, meaning)
            self._move(Action.SIGN, {"meaning": meaning})
            return signature

    def close(self) -> None:
        """Leave the unit safe and stop the worker (idempotent)."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.shutdown()
