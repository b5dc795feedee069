"""``ConsoleBackend`` over the application services: the one place that maps their values.

The services speak in record-store and clinical-rule values (``PatientRecord``,
``TreatmentProtocol``, ``ProgrammeTemplate`` …); the screens show plain display values. Errors a
user can act on (wrong password, no permission, unknown patient, an unfinished session) become
``BackendError`` with the services' own message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from PySide6.QtWidgets import QWidget

from audit.errors import AuditError
from audit.values import PatientRecord, SessionRecord
from console.alarms import AlarmBoard
from console.auth import AuthError, SignedInUser
from console.services import ConsoleServices, PatientHasUnfinishedSession, PatientOverview
from console.session.device_worker import DeviceWorker, Outbox
from console.session.recovery import RecoveryFailed
from console.session.workflow import SessionWorkflow
from console.ui.ports import BackendError
from console.ui.views import (
    ExerciseView,
    FieldRangeView,
    HistoryRow,
    PatientRow,
    PatientView,
    PillarView,
    ProgrammeView,
    ProtocolChoice,
    ProtocolView,
    QuestionView,
    UnfinishedView,
    UserView,
)
from device_drivers.interface import Modality
from protocols import Pillar, ProgrammeTemplate, TreatmentProtocol
from protocols.modality import LABELS

P = ParamSpec("P")
R = TypeVar("R")

#: Errors the user can act on; anything else is a fault and reaches the screen as such.
_USER_ERRORS = (AuthError, AuditError, PatientHasUnfinishedSession, RecoveryFailed, KeyError)
#: How many patients the list shows (a search narrows it).
PATIENT_LIST_LIMIT = 50

_NONE_LABELS = {"choice_or_none": "none", "date_or_none": "none at this site"}


def _user_errors(method: Callable[P, R]) -> Callable[P, R]:
    @wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise BackendError(str(message)) from exc

    return wrapper


def _pulses_text(record: SessionRecord) -> str:
    target = (record.parameters or {}).get("pulses")
    delivered = record.delivered
    if delivered is None and record.count_status == "unconfirmed":
        return f"unconfirmed: {record.delivered_min:,}–{record.delivered_max:,}"
    if delivered is None:
        return "—"
    return f"{delivered:,} / {int(target):,}" if target is not None else f"{delivered:,}"


def _pain_text(record: SessionRecord) -> str:
    if record.pain_before is None and record.pain_after is None:
        return "—"
    before = "?" if record.pain_before is None else str(record.pain_before)
    after = "?" if record.pain_after is None else str(record.pain_after)
    return f"{before} → {after}"


def _outcome_text(record: SessionRecord) -> str:
    """``signed by Tess Therapist — target reached``; an unsigned session says its state."""
    text = f"signed by {record.signatures[-1].signer_name}" if record.signatures else record.state
    if record.end_reason:
        text += f" — {record.end_reason}"
    return text


def _one_line(text: str) -> str:
    """Data-file prose wraps at fixed columns; the screen wraps it itself."""
    return " ".join(text.split())


def history_row(record: SessionRecord) -> HistoryRow:
    return HistoryRow(
        session_date=record.session_date.isoformat(),
        protocol=record.protocol_id,
        pulses=_pulses_text(record),
        pain=_pain_text(record),
        outcome=_outcome_text(record),
    )


def programme_view(template: ProgrammeTemplate, phase_number: int, status: str) -> ProgrammeView:
    phase = template.phase(phase_number)
    pillars = tuple(
        PillarView(
            pillar.label.capitalize(),
            tuple(
                ExerciseView(exercise.name, exercise.dosage.describe())
                for exercise in phase.by_pillar(pillar)
            ),
        )
        for pillar in Pillar
    )
    note = "" if status == "active" else f"status: {status}"
    return ProgrammeView(
        title=template.title,
        phase=_one_line(
            f"Phase {phase.number} of {len(template.phases)}: {phase.name} — {phase.goal}"
        ),
        pillars=pillars,
        note=note,
    )


def protocol_view(protocol: TreatmentProtocol) -> ProtocolView:
    fields = tuple(
        FieldRangeView(
            name=p.field,
            label=LABELS[p.field].capitalize(),
            unit=p.unit,
            minimum=p.minimum,
            maximum=p.maximum,
            default=p.default,
        )
        for p in protocol.parameters
    )
    return ProtocolView(
        protocol_id=protocol.id,
        title=protocol.title,
        modality=protocol.modality.value,
        course=protocol.course.description,
        fields=fields,
    )


class ServicesBackend:
    """The console's screens over one ``ConsoleServices``; see the module docstring."""

    def __init__(self, services: ConsoleServices) -> None:
        self.services = services
        self.alarms: AlarmBoard = services.alarms
        self._signed_in: dict[str, SignedInUser] = {}

    @property
    def lock_after_s(self) -> float:
        return self.services.lock_after_s

    def _user(self, user: UserView) -> SignedInUser:
        try:
            return self._signed_in[user.user_id]
        except KeyError:
            raise BackendError("you are not signed in on this console: sign in again") from None

    # ------------------------------------------------------------------ users
    @_user_errors
    def login(self, username: str, password: str) -> UserView:
        signed_in = self.services.login(username, password)
        self._signed_in[signed_in.user_id] = signed_in
        return UserView(signed_in.user_id, signed_in.full_name, signed_in.role)

    @_user_errors
    def logout(self, user: UserView) -> None:
        self.services.logout(self._user(user))
        self._signed_in.pop(user.user_id, None)

    @_user_errors
    def lock(self, user: UserView) -> None:
        self.services.lock(self._user(user))

    @_user_errors
    def unlock(self, user: UserView, password: str) -> None:
        self.services.unlock(self._user(user), password)

    # ------------------------------------------------------------------ patients
    @_user_errors
    def search_patients(self, user: UserView, text: str) -> list[PatientRow]:
        patients = self.services.search_patients(self._user(user), text)
        return [self._patient_row(p) for p in patients[:PATIENT_LIST_LIMIT]]

    def _patient_row(self, patient: PatientRecord) -> PatientRow:
        programme = self.services.programmes.active_for(patient.patient_id)
        if programme is None:
            programme_text = "no active programme"
        else:
            try:
                template = self.services.rules.programmes.get(programme.template_id)
                programme_text = (
                    f"{template.title} — phase {programme.current_phase} of {len(template.phases)}"
                )
            except KeyError:
                programme_text = f"{programme.template_id} — phase {programme.current_phase}"
        sessions = self.services.sessions.for_patient(patient.patient_id)
        last = "—"
        if sessions:
            newest = max(sessions, key=lambda s: (s.session_date, s.created_at))
            last = f"{newest.session_date.isoformat()} {newest.protocol_id} ({newest.state})"
        return PatientRow(
            patient_id=patient.patient_id,
            pseudonym=patient.pseudonym,
            birth_year=patient.birth_date.year,
            programme=programme_text,
            last_session=last,
        )

    @_user_errors
    def patient(self, user: UserView, patient_id: str) -> PatientView:
        overview: PatientOverview = self.services.patient_overview(self._user(user), patient_id)
        programme = None
        if overview.programme is not None and overview.template is not None:
            programme = programme_view(
                overview.template, overview.programme.current_phase, overview.programme.status
            )
        protocols = tuple(
            ProtocolChoice(p.id, p.title, p.modality.value) for p in self.services.protocols()
        )
        unfinished = tuple(
            UnfinishedView(
                s.session_id,
                f"{s.session_date.isoformat()} {s.protocol_id}, left {s.state}",
            )
            for s in overview.unfinished
        )
        return PatientView(
            patient=self._patient_row(overview.patient),
            programme=programme,
            history=tuple(history_row(s) for s in overview.sessions),
            protocols=protocols,
            unfinished=unfinished,
        )

    # ------------------------------------------------------------------ clinical data
    def questionnaire(self) -> list[QuestionView]:
        return [
            QuestionView(
                key=q.key,
                text=q.text,
                kind=q.kind.value,
                choices=tuple(q.choices),
                none_label=_NONE_LABELS.get(q.kind.value, "none"),
            )
            for q in self.services.questionnaire().questions
        ]

    @_user_errors
    def protocol(self, protocol_id: str) -> ProtocolView:
        return protocol_view(self.services.protocol(protocol_id))

    # ------------------------------------------------------------------ sessions and units
    @_user_errors
    def begin_session(self, user: UserView, patient_id: str, protocol_id: str) -> SessionWorkflow:
        return self.services.begin_session(self._user(user), patient_id, protocol_id)

    @_user_errors
    def unit_link(self, modality: str) -> str:
        return self.services.unit_link(Modality(modality))

    @_user_errors
    def start_worker(self, workflow: SessionWorkflow, outbox: Outbox) -> DeviceWorker:
        return self.services.start_worker(workflow, outbox)

    @_user_errors
    def role_screen(self, user: UserView) -> QWidget | None:
        """The admin's and the service engineer's own consoles (therapists: None)."""
        config = self.services.config
        if user.role == "admin":
            from console.ui.admin.console import AdminConsole

            return AdminConsole(self.services, self._user(user), policy_folder=config.policy_dir)
        if user.role == "service":
            from console.ui.service.console import ServiceConsole

            return ServiceConsole(self.services, self._user(user), rooms_path=config.rooms_path)
        return None

    @_user_errors
    def recover(self, user: UserView, session_id: str) -> str:
        outcome = self.services.recover(self._user(user), session_id)
        count = (
            f"{outcome.delivered:,} pulses delivered"
            if outcome.delivered is not None
            else f"the count UNCONFIRMED (between {outcome.delivered_min:,} and "
            f"{outcome.delivered_max:,} pulses)"
        )
        return (
            f"Session recorded as interrupted with {count}; "
            f"the unit was {outcome.unit_state_found}, action: {outcome.action_taken}, "
            f"now {outcome.unit_state_left}."
        )
