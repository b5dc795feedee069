"""What the console's screens need from the application layer, in one small interface.

``console/ui/adapters.py`` implements it over ``console/services.py`` and maps its values onto
the screens' display values (``console/ui/views.py``); the screens never touch the record store
or the clinical rules directly. Every method may do I/O: the GUI calls them on its session
thread, never on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PySide6.QtWidgets import QWidget

from console.alarms import AlarmBoard
from console.session.device_worker import DeviceWorker, Outbox
from console.session.workflow import SessionWorkflow
from console.ui.views import (
    PatientRow,
    PatientView,
    ProtocolView,
    QuestionView,
    UserView,
)


class BackendError(Exception):
    """A user-facing failure of the application layer (wrong password, unknown patient …)."""


class ConsoleBackend(Protocol):
    alarms: AlarmBoard

    @property
    def lock_after_s(self) -> float: ...

    def login(self, username: str, password: str) -> UserView: ...

    def logout(self, user: UserView) -> None: ...

    def lock(self, user: UserView) -> None: ...

    def unlock(self, user: UserView, password: str) -> None: ...

    def search_patients(self, user: UserView, text: str) -> Sequence[PatientRow]: ...

    def patient(self, user: UserView, patient_id: str) -> PatientView: ...

    def questionnaire(self) -> Sequence[QuestionView]: ...

    def protocol(self, protocol_id: str) -> ProtocolView: ...

    def begin_session(
        self, user: UserView, patient_id: str, protocol_id: str
    ) -> SessionWorkflow: ...

    def unit_link(self, modality: str) -> str:
        """How the unit of ``modality`` is reached, for display (e.g. its serial URL)."""
        ...

    def start_worker(self, workflow: SessionWorkflow, outbox: Outbox) -> DeviceWorker:
        """A started device worker for the session's unit (connect it with the workflow)."""
        ...

    def recover(self, user: UserView, session_id: str) -> str:
        """Close a session left unfinished (unit stopped, count read); returns what was done."""
        ...

    def role_screen(self, user: UserView) -> QWidget | None:
        """The screen of a role other than the therapist's (admin console), or None.

        Called on the GUI thread (it builds widgets).
        """
        ...
