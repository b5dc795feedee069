"""``therapy-console session run|recover``: a whole treatment session without the GUI.

For tests and service checks: the same ``SessionWorkflow`` the GUI drives, on a unit named by
its link (a simulator in practice). The user's password is read from the first line of standard
input: it signs the user in and, when the session is documented (``--pain-before`` and
``--pain-after``), signs the record. Progress goes to standard error, the final record as JSON
to standard output. Running the command with the parameters it prints is the therapist's
confirmation of them.

Before a new session, any session of the patient that a console left unfinished is recovered:
the unit is reconnected, made safe, its count read and the session recorded as interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from console.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError
from console.jsonable import to_jsonable

_DECIMAL_FIELDS = ("pressure_bar", "field_mt", "frequency_hz")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "session",
        help="run or recover a treatment session headless (tests, service checks)",
        description=__doc__.split("\n\n")[0],
    )
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)

    run = jobs.add_parser(
        "run",
        help="run one full session on a unit; password on stdin",
        description=(
            "Run one full session: screening, plan, connect, arm, start, deliver, then "
            "document and sign when --pain-before/--pain-after are given. The user's password "
            "is the first line of standard input."
        ),
    )
    _common(run)
    run.add_argument("--patient", required=True, help="patient id (pt-…) or pseudonym")
    run.add_argument("--protocol", required=True, help="protocol id, e.g. knee-pt-epat")
    run.add_argument(
        "--screening",
        required=True,
        type=Path,
        help="JSON file: the screening answers, or a case with a 'screening' object",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a planned value from the protocol default (pressure_bar, field_mt, "
        "frequency_hz, pulses); repeatable",
    )
    run.add_argument(
        "--screening-override", help="written reason to proceed despite a relative contraindication"
    )
    run.add_argument(
        "--override-reason", help="written reason for parameters outside the protocol or course"
    )
    run.add_argument("--date", type=date.fromisoformat, help="session date (default today)")
    run.add_argument("--pain-before", type=int, help="pain NRS 0-10 before treatment")
    run.add_argument("--pain-after", type=int, help="pain NRS 0-10 after treatment")
    run.add_argument(
        "--adverse-event", action="append", default=[], help="adverse event seen; repeatable"
    )
    run.add_argument("--notes", default="", help="free notes for the record")
    run.set_defaults(handler=_run)

    recover = jobs.add_parser(
        "recover",
        help="recover sessions a console left unfinished; password on stdin",
        description=(
            "Reconnect to the unit of every session a console left unfinished, make sure it is "
            "stopped, read its count and record the session as interrupted."
        ),
    )
    _common(recover)
    recover.set_defaults(handler=_recover)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database URL or SQLite path (default: the data folder's)")
    parser.add_argument("--user", required=True, help="the therapist's user id")
    unit = parser.add_mutually_exclusive_group(required=True)
    unit.add_argument("--epat", metavar="URL", help="EPAT unit link (device, pty or socket://)")
    unit.add_argument("--emtt", metavar="RESOURCE", help="EMTT unit VISA resource")
    parser.add_argument("--visa-backend", default="@py", help="pyvisa backend (default @py)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="speed factor of a simulated unit (default 1)"
    )


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _open(args: argparse.Namespace):  # -> tuple[ConsoleServices, SignedInUser]
    from audit.errors import AuditError
    from console.app_logging import configure_logging
    from console.auth import AuthError
    from console.services import ConsoleConfig, ConsoleServices

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError(
            "give the user's password as the first line of standard input", EXIT_USAGE
        )
    configure_logging()
    config = ConsoleConfig.from_environment(
        args.db,
        epat_url=args.epat,
        emtt_resource=args.emtt,
        visa_backend=args.visa_backend,
        device_speed=args.speed,
    )
    try:
        services = ConsoleServices.open(config)
    except AuditError as exc:
        raise CommandError(str(exc)) from exc
    try:
        user = services.login(args.user, password)
    except AuthError as exc:
        services.close()
        raise CommandError(str(exc)) from exc
    return services, user, password


def _recover(args: argparse.Namespace) -> int:
    from console.session.recovery import RecoveryFailed

    services, user, _ = _open(args)
    try:
        pending = services.unfinished_sessions(user)
        if not pending:
            _progress("no unfinished sessions")
        failed = False
        for record in pending:
            try:
                outcome = services.recover(user, record.session_id)
            except RecoveryFailed as exc:
                _progress(f"{record.session_id}: NOT recovered: {exc}")
                failed = True
                continue
            _progress(
                f"{record.session_id}: unit found {outcome.unit_state_found}, "
                f"{outcome.action_taken}, left {outcome.unit_state_left}; "
                f"{outcome.delivered} pulses delivered; recorded as interrupted"
            )
            print(json.dumps(to_jsonable(services.sessions.load(record.session_id))))
        return EXIT_FAILURE if failed else EXIT_OK
    finally:
        services.logout(user)
        services.close()


def _run(args: argparse.Namespace) -> int:
    services, user, password = _open(args)
    try:
        return _run_session(args, services, user, password)
    finally:
        services.logout(user)
        services.close()


def _run_session(args: argparse.Namespace, services: Any, user: Any, password: str) -> int:
    from console.session.recovery import RecoveryFailed
    from console.session.states import ENDED_STATES, UNFINISHED_STATES
    from console.session.workflow import TransitionRefused
    from device_drivers.errors import DeviceError

    answers = _answers(args.screening)
    patient_id = _patient_id(services, user, args.patient)
    unfinished = {state.value for state in UNFINISHED_STATES}
    for record in services.sessions.for_patient(patient_id):
        if record.state in unfinished:
            _progress(f"recovering unfinished session {record.session_id} ({record.state})")
            try:
                outcome = services.recover(user, record.session_id)
            except RecoveryFailed as exc:
                raise CommandError(str(exc)) from exc
            _progress(f"  recorded as interrupted with {outcome.delivered} pulses delivered")
    workflow = services.begin_session(user, patient_id, args.protocol, args.date)
    _progress(f"session {workflow.ctx.session_id}: {args.protocol} for {patient_id}")
    pump = _Pump()
    try:
        screening = workflow.submit_screening(answers)
        _progress(f"screening: {screening.verdict.value}")
        for finding in screening.findings:
            _progress(f"  {finding.rule} [{finding.severity}] {finding.message}")
        if screening.verdict.value == "override_required" and args.screening_override:
            workflow.override_screening(args.screening_override)
        plan = _plan(services, workflow, args.set)
        outcome = workflow.plan(plan)
        _progress(f"plan: {_describe(plan)}")
        worker = services.start_worker(workflow, pump.put)
        identity = workflow.connect(worker)
        _progress(f"connected: {identity.model} serial {identity.serial}")
        outcome = workflow.validation
        assert outcome is not None
        for finding in outcome.findings:
            _progress(f"  {finding.rule} [{finding.severity}] {finding.message}")
        if outcome.verdict.value == "override_required" and args.override_reason:
            workflow.revalidate(args.override_reason)
        workflow.confirm_parameters()
        workflow.arm()
        _progress("armed")
        workflow.start()
        _progress("delivering")
        _deliver(workflow, pump)
    except TransitionRefused as exc:
        _progress("refused: " + "; ".join(exc.reasons))
        _end_refused(workflow)
        print(json.dumps(to_jsonable(services.sessions.load(workflow.ctx.session_id))))
        return EXIT_FAILURE
    except DeviceError as exc:
        _progress(f"unit error: {exc}")
        if workflow.state.value in {"connected", "armed", "delivering", "paused"}:
            workflow.emergency_stop()
        raise CommandError(f"the session ended on a unit error: {exc}") from exc
    except KeyboardInterrupt:
        _progress("interrupted: emergency stop")
        workflow.emergency_stop()
        raise
    finally:
        workflow.close()
    _progress(f"ended {workflow.state.value}: {workflow.delivered} of {workflow.target} pulses")
    if (
        workflow.state in ENDED_STATES
        and args.pain_before is not None
        and args.pain_after is not None
    ):
        workflow.document(
            pain_before=args.pain_before,
            pain_after=args.pain_after,
            adverse_events=list(args.adverse_event),
            treatment_points=[],
            notes=args.notes,
        )
        workflow.sign(password, user_name=user.user_id)  # both just given: 21 CFR 11.200
        _progress("documented and signed")
    else:
        _progress("not documented: give --pain-before and --pain-after to document and sign")
    print(json.dumps(to_jsonable(services.sessions.load(workflow.ctx.session_id))))
    return (
        EXIT_OK if workflow.state.value in ("completed", "documented", "signed") else EXIT_FAILURE
    )


class _Pump:
    def __init__(self) -> None:
        import queue

        self.messages: queue.Queue[Any] = queue.Queue()

    def put(self, message: Any) -> None:
        self.messages.put(message)


def _deliver(workflow: Any, pump: _Pump) -> None:
    """Feed the worker's messages to the workflow until delivery ends; print progress."""
    import queue

    from console.session.states import ENDED_STATES

    last_shown = -1
    while workflow.state not in ENDED_STATES:
        with contextlib.suppress(queue.Empty):
            workflow.handle(pump.messages.get(timeout=0.25))
        workflow.check_worker()
        tenth = workflow.delivered * 10 // max(1, workflow.target)
        if tenth != last_shown:
            last_shown = tenth
            _progress(f"delivered {workflow.delivered} of {workflow.target}")


def _end_refused(workflow: Any) -> None:
    """A refused session is aborted with the refusal as its reason, never left open."""
    from console.session.states import Action, next_state

    if next_state(workflow.state, Action.ABORT) is not None:
        workflow.abort("refused before delivery; see the session's refusal events")


def _answers(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read the screening file {path}: {exc}", EXIT_USAGE) from exc
    if isinstance(document, dict) and isinstance(document.get("screening"), dict):
        document = document["screening"]
    if not isinstance(document, dict):
        raise CommandError(f"{path}: the screening must be a JSON object of answers", EXIT_USAGE)
    return document


def _patient_id(services: Any, user: Any, given: str) -> str:
    if services.patients.exists(given):
        return given
    matches = [p for p in services.search_patients(user, given) if p.pseudonym == given]
    if len(matches) != 1:
        raise CommandError(f"no patient with id or pseudonym {given!r}", EXIT_USAGE)
    return matches[0].patient_id


def _plan(services: Any, workflow: Any, settings: list[str]) -> Any:
    import dataclasses

    plan = services.rules.defaults(workflow.ctx)
    changes: dict[str, Any] = {}
    for item in settings:
        name, _, text = item.partition("=")
        name = name.strip()
        try:
            if name in _DECIMAL_FIELDS:
                changes[name] = Decimal(text.strip())
            elif name == "pulses":
                changes[name] = int(text.strip())
            else:
                raise CommandError(
                    f"--set {item!r}: unknown field (use pressure_bar, field_mt, frequency_hz, "
                    "pulses)",
                    EXIT_USAGE,
                )
        except (InvalidOperation, ValueError) as exc:
            raise CommandError(f"--set {item!r}: not a number", EXIT_USAGE) from exc
    try:
        return dataclasses.replace(plan, **changes)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--set: {exc}", EXIT_USAGE) from exc


def _describe(plan: Any) -> str:
    intensity = (
        f"{plan.pressure_bar} bar" if plan.pressure_bar is not None else f"{plan.field_mt} mT"
    )
    return f"{intensity}, {plan.frequency_hz} Hz, {plan.pulses} pulses"
