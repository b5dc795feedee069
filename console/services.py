"""The console's application layer: one facade the GUI, ``session run`` and the tests share.

It opens the clinic's record (store, trail with this installation's key, users, patients,
programmes, sessions), the clinical rules and the configured units, and offers the operations a
user performs — each checked against the role table first and audited by the layers below.
Nothing here imports Qt; nothing here decides safety that the workflow does not also enforce.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import text

from audit.canonical import utc_now_ts
from audit.errors import AuditError, NotFound
from audit.events import Subject
from audit.keys import load_or_create_signer
from audit.patients import PatientRegistry
from audit.programmes import ProgrammeBook
from audit.sessions import SessionBook, content_hash
from audit.store import SQLITE_BUSY_TIMEOUT_S, RecordStore, open_store
from audit.trail import AuditTrail
from audit.users import UserDirectory
from audit.values import PatientRecord, ProgrammeRecord, SessionRecord
from console.alarms import Alarm, AlarmBoard
from console.auth import AuthService, PermissionDenied, SignedInUser
from console.devices import open_device
from console.session.clinical import ProtocolRules
from console.session.device_worker import DeviceWorker, Outbox
from console.session.ports import SessionContext
from console.session.recorder import BookRecorder
from console.session.recovery import (
    RecoveryFailed,
    RecoveryOutcome,
    needs_recovery,
    recover_session,
)
from console.session.states import LIVE_STATES, UNFINISHED_STATES
from console.session.workflow import SessionWorkflow
from device_drivers.commlog import CommLog
from device_drivers.errors import DeviceError, LinkTimeout, UnitInTreatment
from device_drivers.interface import Modality, TherapyDevice
from protocols import (
    ProgrammeAssignment,
    ProgrammeStatus,
    ProgrammeTemplate,
    Questionnaire,
    TreatmentProtocol,
)

#: Session states of a session the console left open (it must be recovered first).
_UNFINISHED = frozenset(s.value for s in UNFINISHED_STATES)
#: How long connecting waits for the unit to open (the driver's own timeouts are far shorter:
#: this only bounds a driver that hangs).
UNIT_OPEN_TIMEOUT_S = 10.0
#: Session states whose date counts for the course rules (pulses may have been delivered).
_COURSE_STATES = frozenset({"completed", "stopped", "aborted", "faulted", "interrupted"})


class PatientHasUnfinishedSession(Exception):
    """A session of this patient must be recovered before anything else is done for them."""

    def __init__(self, record: SessionRecord) -> None:
        self.record = record
        super().__init__(
            f"session {record.session_id} of this patient was left {record.state} when the "
            "console stopped: recover it first (the unit is checked and the pulses counted)"
        )


#: What an addendum to a signed session may add to: the facts documented after delivery.
ADDENDUM_FIELDS = frozenset(
    {"pain_before", "pain_after", "adverse_events", "treatment_points", "notes"}
)
MIN_ADDENDUM_REASON_CHARS = 20


class AddendumRefused(ValueError):
    """An addendum that cannot be recorded as given; the message says what to change."""


class NotTheTreatingTherapist(PermissionDenied):
    """Only the therapist who began a session may drive its unit."""

    def __init__(self, role: str) -> None:
        Exception.__init__(self, "only the therapist who began the session may drive its unit")
        self.role = role
        self.action = "deliver"


@dataclass(frozen=True)
class ConsoleConfig:
    """Where the record and the units are; the demo and the tests fill it explicitly."""

    db_url: str
    signing_key_path: Path
    workstation: str
    witness_path: Path | None = None
    epat_url: str | None = None
    emtt_resource: str | None = None
    visa_backend: str = "@py"
    device_speed: float = 1.0  # a simulator's speed factor; 1 for real units
    lock_after_s: float = 300.0
    commlog_dir: Path | None = None
    policy_dir: Path | None = None  # the clinic's installed protocol/screening policy files
    rooms_path: Path | None = None  # the treatment rooms' unit links (service console)
    create_schema: bool = False
    #: SQLite: how long a write waits for another writer's lock before it fails (tests shorten it)
    db_busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S

    @classmethod
    def from_environment(cls, db: str | None = None, **overrides: Any) -> ConsoleConfig:
        from console import paths

        values: dict[str, Any] = {
            "db_url": paths.resolve_db_url(db),
            "signing_key_path": paths.signing_key_path(),
            "workstation": paths.workstation_id(),
            "witness_path": paths.witness_path(),
            "commlog_dir": paths.data_dir() / "commlogs",
            "policy_dir": paths.data_dir() / "policy",
            "rooms_path": paths.data_dir() / "rooms.json",
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class PatientOverview:
    """What the patient page shows: the patient, the active programme beside the history."""

    patient: PatientRecord
    programme: ProgrammeRecord | None
    template: ProgrammeTemplate | None
    sessions: tuple[SessionRecord, ...]
    unfinished: tuple[SessionRecord, ...] = field(default=())


class ConsoleServices:
    """See the module docstring. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(
        self,
        config: ConsoleConfig,
        store: RecordStore,
        trail: AuditTrail,
        auth: AuthService,
        rules: ProtocolRules | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.trail = trail
        self.auth = auth
        self.users = auth.users
        self.patients = PatientRegistry(trail)
        self.programmes = ProgrammeBook(trail)
        self.sessions = SessionBook(trail)
        self.rules = rules or ProtocolRules()
        self.alarms = AlarmBoard(self._audit_alarm)
        self.current_user: SignedInUser | None = None

    @classmethod
    def open(cls, config: ConsoleConfig, **auth_options: Any) -> ConsoleServices:
        """Open the record (migrating a new database when ``create_schema``) and the key."""
        if config.create_schema:
            from audit.migrate import upgrade

            upgrade(config.db_url)
        store = open_store(config.db_url, busy_timeout_s=config.db_busy_timeout_s)
        try:
            signer, created = load_or_create_signer(config.signing_key_path)
            trail = AuditTrail(store, signer, config.workstation, witness_path=config.witness_path)
            trail.register_signer(created)
        except (AuditError, ValueError):
            store.dispose()
            raise
        auth = AuthService(UserDirectory(trail), workstation=config.workstation, **auth_options)
        try:
            rules = _policy_in_force(config.policy_dir)
        except Exception:
            store.dispose()
            raise
        return cls(config, store, trail, auth, rules)

    def close(self) -> None:
        self.store.dispose()

    # ------------------------------------------------------------------ users
    @property
    def lock_after_s(self) -> float:
        return self.config.lock_after_s

    def login(self, user_id: str, password: str) -> SignedInUser:
        user = self.auth.login(user_id, password)
        self.current_user = user
        return user

    def logout(self, user: SignedInUser) -> None:
        self.auth.logout(user)
        if self.current_user == user:
            self.current_user = None

    def lock(self, user: SignedInUser) -> None:
        self.auth.lock_screen(user)

    def unlock(self, user: SignedInUser, password: str) -> None:
        self.auth.unlock_screen(user, password)

    def _audit_alarm(self, what: str, alarm: Alarm) -> None:
        """Alarms raised and resolved (by the system), acknowledged and audio paused (by a
        user) go to the trail, with the session they arose in (an acknowledgement carries the
        session of the alarm)."""
        user = self.current_user
        by = alarm.paused_by if what == "audio_paused" else alarm.acknowledged_by
        if what in ("acknowledged", "audio_paused") and user is not None and user.user_id == by:
            actor = user.actor
        else:
            actor = self.trail.system
        data: dict[str, Any] = {
            "priority": alarm.priority.name.lower(),
            "message": alarm.message,
            "technical": alarm.technical,
            "persists": alarm.persists,
        }
        if alarm.session_id is not None:
            data["session_id"] = alarm.session_id  # the session it belongs to (SES-STORY-1)
        self.trail.append(actor, f"alarm.{what}", Subject("alarm", alarm.key), data)

    # ------------------------------------------------------------------ patients
    def search_patients(self, user: SignedInUser, text: str = "") -> list[PatientRecord]:
        self.auth.require(user, "view_patient")
        return self.patients.find(text.strip())

    def create_patient(self, user: SignedInUser, pseudonym: str, birth_date: date) -> PatientRecord:
        self.auth.require(user, "create_patient")
        return self.patients.create(user.actor, pseudonym, birth_date)

    def assign_programme(
        self, user: SignedInUser, patient_id: str, template_id: str, start_date: date
    ) -> ProgrammeRecord:
        self.auth.require(user, "assign_programme")
        template = self.rules.programmes.get(template_id)
        return self.programmes.assign(
            user.actor, patient_id, template.id, template.version, start_date
        )

    def patient_overview(self, user: SignedInUser, patient_id: str) -> PatientOverview:
        """The patient page (an audited read of the record)."""
        self.auth.require(user, "view_patient")
        patient = self.patients.view(user.actor, patient_id)
        programme = self.programmes.active_for(patient_id)
        template = None
        if programme is not None:
            try:
                template = self.rules.programmes.get(programme.template_id)
            except KeyError:
                template = None
        sessions = sorted(
            self.sessions.for_patient(patient_id),
            key=lambda s: (s.session_date, s.created_at),
            reverse=True,
        )
        unfinished = tuple(s for s in sessions if s.state in _UNFINISHED)
        return PatientOverview(patient, programme, template, tuple(sessions), unfinished)

    # ------------------------------------------------------------------ clinical data
    def questionnaire(self) -> Questionnaire:
        return self.rules.ruleset.questionnaire

    def protocol(self, protocol_id: str) -> TreatmentProtocol:
        return self.rules.library.get(protocol_id)

    def protocols(self) -> list[TreatmentProtocol]:
        return sorted(self.rules.library.protocols.values(), key=lambda p: p.id)

    # ------------------------------------------------------------------ sessions
    def unfinished_sessions(self, user: SignedInUser) -> list[SessionRecord]:
        """Sessions to recover: left unfinished, or ended with their count unconfirmed."""
        self.auth.require(user, "deliver")
        found = {r.session_id: r for r in self.sessions.unfinished()}
        found.update({r.session_id: r for r in self.sessions.count_pending()})
        return [r for r in found.values() if needs_recovery(r)]

    def recover(
        self, user: SignedInUser, session_id: str, *, cause: str | None = None
    ) -> RecoveryOutcome:
        """Close a session left unfinished or with its count unconfirmed (SES-RECOVER-1);
        ``cause``: what interrupted it, when known (e.g. the record unavailable, SES-DB-1)."""
        self.auth.require(user, "deliver")
        record = self.sessions.load(session_id)
        modality = Modality(record.modality)
        return recover_session(
            record,
            self.unit_opener(modality, session_id, takeover=True),
            self.sessions,
            user.actor,
            speed=self.config.device_speed,
            cause=cause,
        )

    def begin_session(
        self,
        user: SignedInUser,
        patient_id: str,
        protocol_id: str,
        session_date: date | None = None,
    ) -> SessionWorkflow:
        """Create the session record and its workflow, in state ``screening``."""
        self.auth.require(user, "screen")
        pending = [s for s in self.sessions.for_patient(patient_id) if s.state in _UNFINISHED]
        if pending:
            raise PatientHasUnfinishedSession(pending[0])
        protocol = self.rules.library.get(protocol_id)
        patient = self.patients.view(user.actor, patient_id)
        on = session_date or date.today()
        programme_record = self.programmes.active_for(patient_id)
        programme = _assignment(programme_record)
        history = tuple(
            s.session_date
            for s in self.sessions.for_patient(patient_id)
            if s.protocol_id == protocol_id and s.state in _COURSE_STATES | {"documented", "signed"}
        )
        record = self.sessions.create(
            user.actor,
            patient_id=patient_id,
            protocol_id=protocol.id,
            protocol_version=protocol.version,
            modality=protocol.modality.value,
            session_date=on,
            programme_id=programme_record.programme_id if programme_record else None,
            programme_phase=programme_record.current_phase if programme_record else None,
        )
        ctx = SessionContext(
            session_id=record.session_id,
            patient_id=patient_id,
            patient_birth_date=patient.birth_date,
            therapist_id=user.user_id,
            therapist_role=user.role,
            modality=Modality(protocol.modality.value),
            protocol_id=protocol.id,
            protocol_version=protocol.version,
            session_date=on,
            programme=programme,
            course_history=history,
        )
        recorder = BookRecorder(
            self.sessions,
            user.actor,
            self._signer(user),
            lambda: self.auth.signing_needs_user_name(user),
        )
        return SessionWorkflow(ctx, self.rules, recorder, self.alarms, guards=_Guards(self))

    def _signer(self, user: SignedInUser) -> Callable[[str, str, str, str | None], dict[str, Any]]:
        def sign(
            session_id: str, password: str, meaning: str, user_name: str | None
        ) -> dict[str, Any]:
            signature = self.auth.sign_session(
                self.sessions, user, password, session_id, meaning, user_name
            )
            return {
                "signer_id": signature.signer_id,
                "signer_name": signature.signer_name,
                "signed_at": signature.signed_at,
                "meaning": signature.meaning,
                "content_hash": signature.content_hash,
            }

        return sign

    def add_addendum(
        self,
        user: SignedInUser,
        session_id: str,
        fields: Mapping[str, Any],
        reason: str,
        password: str,
        user_name: str | None = None,
    ) -> SessionRecord:
        """A later fact about a signed session (SES-SIGN-1): an amendment with its reason
        (``SessionBook.amend``, naming the "performed" signature it follows), then signed on
        its own by the one who adds it (password, and user name on the first signing since
        sign-in). The signed original stays readable: the amendment records every old value."""
        self.auth.require(user, "sign_session")
        text = reason.strip() if isinstance(reason, str) else ""
        problems = []
        if len(text) < MIN_ADDENDUM_REASON_CHARS:
            problems.append(
                f"an addendum needs a reason of at least {MIN_ADDENDUM_REASON_CHARS} characters "
                "(what was learnt later, and from whom)"
            )
        unknown = sorted(set(fields) - ADDENDUM_FIELDS)
        if unknown:
            problems.append(
                f"an addendum may add to {', '.join(sorted(ADDENDUM_FIELDS))}; not {unknown}"
            )
        if not fields:
            problems.append("an addendum must change at least one documented fact")
        record = self.sessions.load(session_id)
        performed = [s for s in record.signatures if s.meaning == "performed"]
        if not performed:
            problems.append("the session is not signed yet: change its documentation, then sign it")
        if problems:
            raise AddendumRefused("; ".join(problems))
        self.auth.check_signature_components(self.sessions, user, password, session_id, user_name)
        amended = self.sessions.amend(
            user.actor, session_id, dict(fields), text, performed[0].audit_seq
        )
        creds = self.users.credentials(user.user_id)
        self.sessions.record_event(
            user.actor,
            session_id,
            "session.addendum_signed",
            {
                "signer_id": user.user_id,
                "signer_name": creds.full_name if creds is not None else user.full_name,
                "signed_at": utc_now_ts(),
                "meaning": "addendum",
                "amendment_seq": _last_amendment_seq(self.trail, session_id),
                "content_hash": content_hash(amended),
            },
        )
        self.auth.signed(user)
        return self.sessions.load(session_id)

    # ------------------------------------------------------------------ units
    def unit_link(self, modality: Modality) -> str:
        """The configured link of the unit of ``modality`` (for display)."""
        link = self.config.epat_url if modality is Modality.EPAT else self.config.emtt_resource
        if not link:
            raise NotFound(
                f"no {modality.value.upper()} unit is configured for this console: set its "
                "link in the room settings"
            )
        return link

    def unit_opener(
        self, modality: Modality, session_id: str | None = None, *, takeover: bool = False
    ) -> Callable[[], TherapyDevice]:
        """A callable that opens the unit (run it on the device worker's thread).

        ``takeover`` opens a unit even mid-treatment: only for the treating console's own
        reconnection after a lost link, and recovery — both make the unit safe at once.
        """
        link = self.unit_link(modality)
        config = self.config

        def open_unit() -> TherapyDevice:
            commlog = None
            if config.commlog_dir is not None and session_id is not None:
                config.commlog_dir.mkdir(parents=True, exist_ok=True)
                commlog = CommLog(config.commlog_dir / f"{session_id}-{modality.value}.jsonl")
            return open_device(
                epat_url=link if modality is Modality.EPAT else None,
                emtt_resource=link if modality is Modality.EMTT else None,
                visa_backend=config.visa_backend,
                speed=config.device_speed,
                commlog=commlog,
                takeover=takeover,
            )

        return open_unit

    def start_worker(self, workflow: SessionWorkflow, outbox: Outbox) -> DeviceWorker:
        """Start the device worker for ``workflow``'s unit; connect it with ``workflow.connect``."""
        self.auth.require(self._user_of(workflow), "deliver")
        # Refuse before opening anything: a unit serves one host at a time, so a second
        # connection would cut the session's own link while a stray driver kept heartbeating.
        workflow.check_can_connect()
        opener = self.unit_opener(workflow.ctx.modality, workflow.ctx.session_id)
        worker = DeviceWorker(
            opener,
            outbox,
            name=f"unit-{workflow.ctx.modality.value}",
            link=self.unit_link(workflow.ctx.modality),
        )
        try:
            # Fail fast with the driver's own one-line error (unreachable, garbled, in use).
            worker.start().result(UNIT_OPEN_TIMEOUT_S)
        except UnitInTreatment as exc:
            worker.shutdown()
            raise workflow.refuse_connect([str(exc)]) from None
        except DeviceError:
            worker.shutdown()
            raise
        except TimeoutError:
            worker.shutdown()
            raise LinkTimeout(
                f"the unit at {self.unit_link(workflow.ctx.modality)} did not open within "
                f"{UNIT_OPEN_TIMEOUT_S:.0f} s: check that it is on and connected"
            ) from None
        return worker

    def _user_of(self, workflow: SessionWorkflow) -> SignedInUser:
        user = self.current_user
        if user is None or user.user_id != workflow.ctx.therapist_id:
            raise NotTheTreatingTherapist(user.role if user else "nobody")
        return user


class _Guards:
    """The workflow's ``SessionGuards`` over this console's record and sign-in state."""

    def __init__(self, services: ConsoleServices) -> None:
        self._services = services

    def programme(self, ctx: SessionContext) -> ProgrammeAssignment | None:
        return _assignment(self._services.programmes.active_for(ctx.patient_id))

    def user_problem(self, ctx: SessionContext) -> str | None:
        user = self._services.current_user
        if user is None or user.user_id != ctx.therapist_id:
            return f"the treating therapist {ctx.therapist_id} is no longer signed in"
        creds = self._services.users.credentials(user.user_id)
        if creds is None or creds.locked or not creds.active or creds.role != user.role:
            return f"the account {user.user_id} is locked, disabled or changed: sign in again"
        return None

    def unit_problem(self, ctx: SessionContext, device_serial: str) -> str | None:
        """Why no new session may use the unit (SES-RECOVER-2): another session's count on it
        is unconfirmed, or another session was left armed, delivering or paused on it (its
        count not yet established: the unit may have fired for it)."""
        others = [
            r
            for r in self._services.sessions.count_pending(device_serial)
            if r.session_id != ctx.session_id
        ]
        if others:
            return (
                f"unit {device_serial}: the delivered count of session {others[0].session_id} "
                "is unconfirmed; recover that session first (therapy-console session recover)"
            )
        live = {state.value for state in LIVE_STATES}
        left = [
            r
            for r in self._services.sessions.unfinished()
            if r.device_serial == device_serial
            and r.state in live
            and r.session_id != ctx.session_id
        ]
        if left:
            return (
                f"unit {device_serial}: session {left[0].session_id} is recorded {left[0].state} "
                "on it (in treatment on another console, or left open by a console that "
                "stopped: then recover it first with therapy-console session recover)"
            )
        return None

    def reopen_unit(self, ctx: SessionContext) -> TherapyDevice:
        return self._services.unit_opener(ctx.modality, ctx.session_id, takeover=True)()

    def recover(self, ctx: SessionContext, cause: str) -> RecoveryOutcome:
        user = self._services.current_user
        if user is None or user.user_id != ctx.therapist_id:
            raise RecoveryFailed(
                f"the treating therapist {ctx.therapist_id} is no longer signed in: recover "
                f"session {ctx.session_id} from the patient's page"
            )
        return self._services.recover(user, ctx.session_id, cause=cause)


def _last_amendment_seq(trail: AuditTrail, session_id: str) -> int | None:
    """The seq of the session's newest amendment event (the one an addendum signature covers)."""
    with trail.store.connection() as conn:
        value = conn.execute(
            text(
                "SELECT max(seq) FROM audit_events WHERE action = 'session.amended' "
                "AND subject_type = 'session' AND subject_id = :s"
            ),
            {"s": session_id},
        ).scalar()
    return int(value) if value is not None else None


def _policy_in_force(policy_dir: Path | None) -> ProtocolRules:
    """The clinic's installed policy over the packaged defaults (``PolicyError`` if a kept file
    no longer parses: the console never falls back silently to another policy)."""
    if policy_dir is None:
        return ProtocolRules()
    from console.admin.policy import load_active_policy

    return load_active_policy(policy_dir).rules()


def _assignment(record: ProgrammeRecord | None) -> ProgrammeAssignment | None:
    if record is None:
        return None
    return ProgrammeAssignment(
        template_id=record.template_id,
        template_version=record.template_version,
        phase=record.current_phase,
        status=ProgrammeStatus(record.status),
        start_date=record.start_date,
    )


__all__: Sequence[str] = (
    "AddendumRefused",
    "ConsoleConfig",
    "ConsoleServices",
    "PatientHasUnfinishedSession",
    "PatientOverview",
)
