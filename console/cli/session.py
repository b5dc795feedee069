"""``therapy-console session run|recover``: a whole treatment session without the GUI.

For tests and service checks: the same ``SessionWorkflow`` the GUI drives, on a unit named by
its link (a simulator in practice). The user's password is read from the first line of standard
input: it signs the user in and, when the session is documented (``--pain-before`` and
``--pain-after``), signs the record. Progress goes to standard error, the final record as JSON
to standard output (also when the run was refused or failed after the session was created).
Running the command with the parameters it prints is the therapist's confirmation of them.

Before a new session, any session of the patient that a console left unfinished is recovered:
the unit is reconnected, made safe, its count read and the session recorded as interrupted.

Every input is checked before the record is touched (CLI-IN-1, CLI-IN-2). A session that is
refused or fails is never left open (CLI-RUN-1): it is ended "aborted" with the reason ("not
performed: …"), or, with the unit live, stopped and recorded with the unit's count. When the
database fails mid-session the unit is left stopped and the end is recorded once the database
takes writes again (CLI-DB-1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from console.cli import (
    EXIT_AUTH,
    EXIT_DATABASE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNIT,
    EXIT_UNIT_BUSY,
    EXIT_UNIT_LINK,
    EXIT_USAGE,
    SPEED,
    CommandError,
    whole,
)
from console.cli._errors import internal_error
from console.jsonable import to_jsonable

_DECIMAL_FIELDS = ("pressure_bar", "field_mt", "frequency_hz")
#: Input bounds (CLI-IN-1): a screening is a few hundred bytes; texts are what a person writes.
MAX_SCREENING_BYTES = 64 * 1024
MAX_NOTES_CHARS = 4000
MAX_REASON_CHARS = 1000
MAX_ID_CHARS = 128
MAX_ADVERSE_EVENTS = 20
MAX_PULSES = 1_000_000
MAX_SETTING = Decimal(1000)
#: How long opening the unit may take (the link, and the unit's hello) before it is given up.
OPEN_TIMEOUT_S = 15.0


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
            "is the first line of standard input. Every input is checked before anything is "
            "recorded; a refused or failed run leaves no open session (it is ended 'aborted' "
            "with the reason)."
        ),
    )
    _common(run)
    run.add_argument("--patient", required=True, help="patient id (pt-…) or pseudonym")
    run.add_argument("--protocol", required=True, help="protocol id, e.g. knee-pt-epat")
    run.add_argument(
        "--screening",
        required=True,
        type=Path,
        help="JSON file (at most 64 KiB): the screening answers, or a case with a 'screening' "
        "object; unknown answer keys are refused",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a planned value from the protocol default: pressure_bar (EPAT), field_mt "
        "(EMTT), frequency_hz (numbers above 0, at most 1000, two decimals), pulses (1 to "
        "1,000,000); repeatable",
    )
    run.add_argument(
        "--screening-override",
        help="written reason to proceed despite a relative contraindication (at most 1000 "
        "characters)",
    )
    run.add_argument(
        "--override-reason",
        help="written reason for parameters outside the protocol or course (at most 1000 "
        "characters)",
    )
    run.add_argument("--date", type=_date, help="session date, YYYY-MM-DD (default today)")
    run.add_argument("--pain-before", type=whole(0, 10), help="pain NRS 0-10 before treatment")
    run.add_argument("--pain-after", type=whole(0, 10), help="pain NRS 0-10 after treatment")
    run.add_argument(
        "--adverse-event",
        action="append",
        default=[],
        help="adverse event seen; repeatable (at most 20)",
    )
    run.add_argument(
        "--notes", default="", help="free notes for the record (at most 4000 characters)"
    )
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


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: give YYYY-MM-DD") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database URL or SQLite path (default: the data folder's)")
    parser.add_argument("--user", required=True, help="the therapist's user id")
    unit = parser.add_mutually_exclusive_group(required=True)
    unit.add_argument("--epat", metavar="URL", help="EPAT unit link (device, pty or socket://)")
    unit.add_argument("--emtt", metavar="RESOURCE", help="EMTT unit VISA resource")
    parser.add_argument("--visa-backend", default="@py", help="pyvisa backend (default @py)")
    parser.add_argument(
        "--speed", type=SPEED, default=1.0, help="speed factor of a simulated unit (default 1)"
    )


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class _Inputs:
    """What the command line and the screening file ask for, checked before anything opens."""

    answers: dict[str, Any]
    changes: dict[str, Decimal | int]


def _checked_inputs(args: argparse.Namespace) -> _Inputs:
    """Bounds and syntax of every input (CLI-IN-1); nothing is opened or recorded yet."""
    for option, text, limit in (
        ("--notes", args.notes, MAX_NOTES_CHARS),
        ("--screening-override", args.screening_override, MAX_REASON_CHARS),
        ("--override-reason", args.override_reason, MAX_REASON_CHARS),
        ("--patient", args.patient, MAX_ID_CHARS),
        ("--protocol", args.protocol, MAX_ID_CHARS),
    ):
        if text is not None and len(text) > limit:
            raise CommandError(
                f"{option} is {len(text):,} characters; at most {limit:,} are kept: shorten it",
                EXIT_USAGE,
            )
    if len(args.adverse_event) > MAX_ADVERSE_EVENTS:
        raise CommandError(
            f"--adverse-event given {len(args.adverse_event)} times; at most {MAX_ADVERSE_EVENTS}",
            EXIT_USAGE,
        )
    from console.session.workflow import ADVERSE_EVENTS

    unknown = sorted(set(args.adverse_event) - ADVERSE_EVENTS)
    if unknown:
        raise CommandError(
            f"--adverse-event {', '.join(unknown)}: not an adverse event the record knows; use "
            f"{', '.join(sorted(ADVERSE_EVENTS))}",
            EXIT_USAGE,
        )
    return _Inputs(_answers(args.screening), _settings(args.set))


def _open(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """Open the record and sign the user in: (services, user, password)."""
    from audit.errors import StoreError
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
    except StoreError as exc:
        raise CommandError(f"{exc}; nothing was done", EXIT_DATABASE) from exc
    try:
        user = services.login(args.user, password)
    except AuthError as exc:
        services.close()
        raise CommandError(str(exc), EXIT_AUTH) from exc
    except StoreError as exc:
        services.close()
        raise CommandError(f"{exc}; nothing was done: try again later", EXIT_DATABASE) from exc
    return services, user, password


def _sign_out(services: Any, user: Any) -> None:
    """Sign out and close; a store still unavailable here must not hide the real outcome."""
    from audit.errors import AuditError

    try:
        services.logout(user)
    except AuditError as exc:
        _progress(f"could not record the sign-out: {exc}")
    finally:
        services.close()


def _recover(args: argparse.Namespace) -> int:
    from console.session.recovery import RecoveryFailed

    services, user, _ = _open(args)
    try:
        pending = services.unfinished_sessions(user)
        if not pending:
            _progress("no unfinished sessions")
        failed = []
        for record in pending:
            try:
                outcome = services.recover(user, record.session_id)
            except RecoveryFailed as exc:
                _progress(f"{record.session_id}: NOT recovered: {exc}")
                failed.append(record.session_id)
                continue
            _progress(
                f"{record.session_id}: unit found {outcome.unit_state_found}, "
                f"{outcome.action_taken}, left {outcome.unit_state_left}; "
                f"{_count(outcome)}; recorded as interrupted"
            )
            print(json.dumps(to_jsonable(services.sessions.load(record.session_id))))
        if failed:
            raise CommandError(
                f"{len(failed)} session(s) not recovered ({', '.join(failed)}): see the lines "
                "above, fix the link to the unit and run this again",
                EXIT_UNIT_LINK,
            )
        return EXIT_OK
    finally:
        _sign_out(services, user)


def _run(args: argparse.Namespace) -> int:
    inputs = _checked_inputs(args)
    services, user, password = _open(args)
    try:
        return _run_session(args, services, user, password, inputs)
    finally:
        _sign_out(services, user)


def _protocol(services: Any, args: argparse.Namespace, inputs: _Inputs) -> Any:
    """The protocol, checked against the unit option and the ``--set`` fields (CLI-IN-2)."""
    try:
        protocol = services.protocol(args.protocol)
    except KeyError as exc:
        known = ", ".join(p.id for p in services.protocols())
        raise CommandError(
            f"there is no protocol {args.protocol!r}: use one of {known}", EXIT_USAGE
        ) from exc
    modality = protocol.modality.value
    given = "epat" if args.epat else "emtt"
    if modality != given:
        raise CommandError(
            f"{protocol.id} is an {modality.upper()} protocol: name its unit with --{modality}, "
            f"not --{given}",
            EXIT_USAGE,
        )
    fields = protocol.modality.fields
    wrong = sorted(set(inputs.changes) - set(fields))
    if wrong:
        raise CommandError(
            f"--set {', '.join(wrong)}: not a setting of the {modality.upper()} protocol "
            f"{protocol.id}; its settings are {', '.join(fields)}",
            EXIT_USAGE,
        )
    unknown = sorted(set(inputs.answers) - set(services.questionnaire().keys))
    if unknown:
        raise CommandError(
            f"{args.screening}: unknown screening answer(s) {', '.join(unknown)}; remove them "
            "(`therapy-console screen --help` lists the questions)",
            EXIT_USAGE,
        )
    return protocol


def _run_session(
    args: argparse.Namespace, services: Any, user: Any, password: str, inputs: _Inputs
) -> int:
    from audit.errors import StoreError
    from console.services import PatientHasUnfinishedSession
    from console.session.recovery import RecoveryFailed
    from console.session.states import UNFINISHED_STATES
    from console.session.workflow import TransitionRefused

    protocol = _protocol(services, args, inputs)
    patient_id = _patient_id(services, user, args.patient)
    unfinished = {state.value for state in UNFINISHED_STATES}
    for record in services.sessions.for_patient(patient_id):
        if record.state in unfinished:
            _progress(f"recovering unfinished session {record.session_id} ({record.state})")
            try:
                outcome = services.recover(user, record.session_id)
            except RecoveryFailed as exc:
                raise CommandError(str(exc), EXIT_UNIT_LINK) from exc
            _progress(f"  recorded as interrupted: {_count(outcome)}")
    try:
        workflow = services.begin_session(user, patient_id, protocol.id, args.date)
    except PatientHasUnfinishedSession as exc:
        raise CommandError(str(exc), EXIT_REFUSED) from exc
    _progress(f"session {workflow.ctx.session_id}: {protocol.id} for {patient_id}")
    phase = ["screening"]
    try:
        _deliver_session(args, services, workflow, inputs, phase)
    except BaseException as exc:
        raise _ended_unperformed(services, user, workflow, exc, phase[0], args) from exc
    finally:
        workflow.close()
    if workflow.count_status == "unconfirmed":
        _progress(f"ended {workflow.state.value}: {_count(workflow)} (target {workflow.target})")
    else:
        _progress(f"ended {workflow.state.value}: {workflow.delivered} of {workflow.target} pulses")
    try:
        return _document(args, services, workflow, password, user)
    except (TransitionRefused, StoreError) as exc:
        what = "; ".join(exc.reasons) if isinstance(exc, TransitionRefused) else str(exc)
        raise CommandError(
            f"the session {workflow.ctx.session_id} is recorded {workflow.state.value} with "
            f"{workflow.delivered} pulses but not documented ({what}): document it on the console",
            EXIT_REFUSED if isinstance(exc, TransitionRefused) else EXIT_DATABASE,
        ) from exc


def _deliver_session(
    args: argparse.Namespace, services: Any, workflow: Any, inputs: _Inputs, phase: list[str]
) -> None:
    """Screening to the end of delivery; ``phase[0]`` says how far it got (for errors)."""
    import dataclasses

    pump = _Pump()
    screening = workflow.submit_screening(inputs.answers)
    _progress(f"screening: {screening.verdict.value}")
    for finding in screening.findings:
        _progress(f"  {finding.rule} [{finding.severity}] {finding.message}")
    if screening.verdict.value == "override_required" and args.screening_override:
        workflow.override_screening(args.screening_override)
    phase[0] = "plan"
    plan = dataclasses.replace(services.rules.defaults(workflow.ctx), **inputs.changes)
    workflow.plan(plan)
    _progress(f"plan: {_describe(plan)}")
    phase[0] = "open"
    worker = services.start_worker(workflow, pump.put)
    try:  # a no-op on the worker: it runs once the link is open, or fails with the open's error
        worker.call(lambda _unit: None, OPEN_TIMEOUT_S)
    except BaseException:
        worker.shutdown()
        raise
    phase[0] = "connect"
    identity = workflow.connect(worker)
    phase[0] = "treat"
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


def _ended_unperformed(
    services: Any,
    user: Any,
    workflow: Any,
    exc: BaseException,
    phase: str,
    args: argparse.Namespace,
) -> BaseException:
    """End a session an error interrupted (never left open: CLI-RUN-1); the error to raise."""
    from audit.errors import StoreError
    from console.session.workflow import TransitionRefused
    from device_drivers.errors import (
        DeviceError,
        ImpossibleEnvelope,
        LinkLost,
        LinkTimeout,
        UnitInTreatment,
    )

    link = args.epat or args.emtt
    if isinstance(exc, KeyboardInterrupt):
        _progress("interrupted: emergency stop")
        what, code = "interrupted", EXIT_INTERRUPTED
    elif isinstance(exc, CommandError):
        what, code = str(exc), exc.exit_code
    elif isinstance(exc, TransitionRefused):
        # Refused while opening the unit: it is in another console's treatment (or blocked
        # by a session whose count is not yet established).
        busy = phase == "open"
        what, code = "refused: " + "; ".join(exc.reasons), EXIT_UNIT_BUSY if busy else EXIT_REFUSED
    elif isinstance(exc, StoreError):
        what, code = f"the database failed during the session: {exc}", EXIT_DATABASE
    elif isinstance(exc, UnitInTreatment):
        what, code = f"the unit at {link} refused: {exc}", EXIT_UNIT_BUSY
    elif isinstance(exc, ImpossibleEnvelope):  # refused on opening (EPAT) or at connect (EMTT)
        what, code = f"the unit reports values the console cannot use: {exc}", EXIT_UNIT
    elif isinstance(exc, DeviceError | TimeoutError) and (
        phase == "open" or (phase == "connect" and isinstance(exc, LinkLost | LinkTimeout))
    ):
        what, code = f"cannot reach the unit at {link}: {exc or 'no answer'}", EXIT_UNIT_LINK
    elif isinstance(exc, DeviceError | ValueError) and phase == "connect":
        what = (
            f"the unit at {link} reports values the console cannot use ({exc}): have the unit "
            "checked by service"
        )
        code = EXIT_UNIT
    elif isinstance(exc, DeviceError | TimeoutError):
        what, code = f"the session ended on a unit error: {exc or 'no answer'}", EXIT_UNIT
    else:
        internal = internal_error(exc)
        what, code = str(internal), internal.exit_code
    urgent = isinstance(exc, KeyboardInterrupt | DeviceError | TimeoutError)
    ended = _end_session(workflow, what, isinstance(exc, StoreError), urgent)
    _print_record(services, workflow.ctx.session_id)
    if isinstance(exc, KeyboardInterrupt):
        return exc
    return CommandError(f"{what}; {ended}", code)


def _end_session(workflow: Any, reason: str, store_failed: bool, urgent: bool) -> str:
    """Make the unit safe and record the session's end; what was recorded, for the message.

    A live unit is emergency-stopped after Ctrl-C or a unit error, else stopped or disarmed by
    an abort (an emergency stop if that fails)."""
    from audit.errors import StoreError
    from console.session.states import LIVE_STATES, Action, next_state
    from console.session.workflow import TransitionRefused
    from device_drivers.errors import DeviceError

    session_id = workflow.ctx.session_id
    if not store_failed:
        try:
            if workflow.state in LIVE_STATES and urgent:
                workflow.emergency_stop()
            elif workflow.state in LIVE_STATES:
                try:
                    workflow.abort(f"not completed: {reason}"[:MAX_REASON_CHARS])
                except (TransitionRefused, DeviceError, TimeoutError):
                    workflow.emergency_stop()
            elif next_state(workflow.state, Action.ABORT) is not None:
                workflow.abort(f"not performed: {reason}"[:MAX_REASON_CHARS])
            return (
                f"session {session_id} is recorded {workflow.state.value} with "
                f"{workflow.delivered} pulses delivered"
            )
        except StoreError as exc:
            _progress(f"the database failed while ending the session: {exc}")
    return _end_after_store_failure(workflow, reason)


def _end_after_store_failure(workflow: Any, reason: str) -> str:
    """The record could not be written (CLI-DB-1, SES-DB-1): leave the unit safe now, and
    record the session's end once the database takes writes again (bounded by
    ``STORE_WAIT_S``); the session layer's one definition, with progress on standard error."""
    from console.session.record_failure import STORE_WAIT_S, record_when_store_is_back

    session_id = workflow.ctx.session_id
    workflow.record_failed(reason)  # the driver leaves the unit stopped and disarmed
    _progress(
        f"the unit is left stopped; waiting up to {STORE_WAIT_S:.0f} s for the database to "
        f"record the end of session {session_id}"
    )
    result = record_when_store_is_back(
        workflow, reason, wait_s=STORE_WAIT_S, progress=lambda text: _progress(f"  {text}")
    )
    if not result.store_still_away:
        return result.message
    return f"{result.message}: run `therapy-console session recover` when it is available"


def _count(outcome: Any) -> str:
    """A recovery outcome's or an ended workflow's count, exact or unconfirmed with bounds."""
    from console.session.count import describe_count

    if hasattr(outcome, "delivered_bounds"):
        low, high = outcome.delivered_bounds or (None, None)
        delivered = None if outcome.count_status == "unconfirmed" else outcome.delivered
    else:
        low, high, delivered = outcome.delivered_min, outcome.delivered_max, outcome.delivered
    return describe_count(delivered, outcome.count_status, low, high)


def _print_record(services: Any, session_id: str) -> None:
    """The session's record as JSON on standard output (unless the database cannot say)."""
    from audit.errors import AuditError

    try:
        print(json.dumps(to_jsonable(services.sessions.load(session_id))))
    except AuditError as exc:
        _progress(f"cannot read the record of session {session_id}: {exc}")


def _document(
    args: argparse.Namespace, services: Any, workflow: Any, password: str, user: Any
) -> int:
    from console.session.states import ENDED_STATES

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
    _print_record(services, workflow.ctx.session_id)
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


def _answers(path: Path) -> dict[str, Any]:
    """The screening answers: a file of at most 64 KiB (refused before parsing), a JSON object."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SCREENING_BYTES + 1)
    except OSError as exc:
        raise CommandError(
            f"cannot read the screening file {path}: {exc.strerror or exc}", EXIT_USAGE
        ) from exc
    if len(data) > MAX_SCREENING_BYTES:
        raise CommandError(
            f"the screening file {path} is over {MAX_SCREENING_BYTES // 1024} KiB: a screening "
            "is a small JSON object of answers; give the right file",
            EXIT_USAGE,
        )
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CommandError(
            f"the screening file {path} is not UTF-8 JSON ({exc}): fix it", EXIT_USAGE
        ) from exc
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


def _settings(settings: list[str]) -> dict[str, Decimal | int]:
    """``--set FIELD=VALUE`` items as plan changes: known fields, finite, in sane bounds."""
    changes: dict[str, Decimal | int] = {}
    for item in settings:
        name, equals, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not equals or name not in (*_DECIMAL_FIELDS, "pulses"):
            raise CommandError(
                f"--set {item[:40]!r}: give FIELD=VALUE with FIELD one of "
                f"{', '.join((*_DECIMAL_FIELDS, 'pulses'))}",
                EXIT_USAGE,
            )
        if name == "pulses":
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PULSES:
                raise CommandError(
                    f"--set pulses={text[:40]}: give a whole number of pulses from 1 to "
                    f"{MAX_PULSES:,}",
                    EXIT_USAGE,
                )
            changes[name] = int(text)
            continue
        try:
            value = Decimal(text) if len(text) <= 16 else None
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite() or not 0 < value <= MAX_SETTING:
            raise CommandError(
                f"--set {name}={text[:40]}: give a number above 0 and at most {MAX_SETTING}",
                EXIT_USAGE,
            )
        if value.as_tuple().exponent < -2:  # type: ignore[operator]
            raise CommandError(
                f"--set {name}={text}: at most two decimal places (the units' resolution)",
                EXIT_USAGE,
            )
        changes[name] = value
    return changes


def _describe(plan: Any) -> str:
    intensity = (
        f"{plan.pressure_bar} bar" if plan.pressure_bar is not None else f"{plan.field_mt} mT"
    )
    return f"{intensity}, {plan.frequency_hz} Hz, {plan.pulses} pulses"
