"""What the console's screens need from the application layer, in one small interface.

``console/ui/adapters.py`` implements it over ``console/services.py``; keeping the screens on
this interface means they never touch the record store or the clinical rules directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from console.alarms import AlarmBoard
from console.session.workflow import SessionWorkflow
from console.ui.views import (
    PatientRow,
    PatientView,
    ProtocolView,
    QuestionView,
    UserView,
)
from device_drivers.interface import TherapyDevice


class BackendError(Exception):
    """A user-facing failure of the application layer (wrong password, unknown patient …)."""


@dataclass(frozen=True, slots=True)
class UnitLink:
    """How to reach the unit for a modality: a description for the screen and an opener."""

    description: str
    open_driver: Callable[[], TherapyDevice]


@dataclass(frozen=True, slots=True)
class UnfinishedSession:
    """A session the console found unfinished after it stopped (it must be documented)."""

    patient_id: str
    pseudonym: str
    protocol_id: str
    state: str
    open: Callable[[], SessionWorkflow]


class ConsoleBackend(Protocol):
    alarms: AlarmBoard
    lock_after_s: float

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

    def unit_link(self, modality: str) -> UnitLink: ...

    def unfinished_sessions(self, user: UserView) -> Sequence[UnfinishedSession]: ...
