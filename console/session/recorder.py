"""The workflow's ``SessionRecorder`` port over the record store's ``SessionBook``.

Each call is one durable transaction that changes the session record and appends its audit
event together, so the record and the trail can never disagree about what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from audit.events import Actor
from audit.sessions import SessionBook
from console.session.ports import SessionContext
from console.session.states import ENDED_STATES, SessionState

#: Re-authenticates the signer (user name on the first signing of a sign-in, password) and
#: signs the session; returns the signature. (session_id, password, meaning, user_name)
Signer = Callable[[str, str, str, str | None], Mapping[str, Any]]


class BookRecorder:
    """Records one therapist's session through ``book`` as ``actor``."""

    def __init__(
        self,
        book: SessionBook,
        actor: Actor,
        signer: Signer,
        needs_user_name: Callable[[], bool] | None = None,
    ) -> None:
        self._book = book
        self._actor = actor
        self._signer = signer
        self._needs_user_name = needs_user_name

    def transition(
        self, ctx: SessionContext, old: str, new: str, action: str, data: Mapping[str, Any]
    ) -> None:
        self._book.transition(self._actor, ctx.session_id, old, new, action, data)
        if SessionState(new) in ENDED_STATES:
            # audit-format: a signed checkpoint after every completed or aborted session.
            self._book.trail.checkpoint()

    def event(self, ctx: SessionContext, action: str, data: Mapping[str, Any]) -> None:
        self._book.record_event(self._actor, ctx.session_id, action, data)

    def update(self, ctx: SessionContext, fields: Mapping[str, Any]) -> None:
        self._book.update(self._actor, ctx.session_id, fields)

    def sign(
        self, ctx: SessionContext, password: str, meaning: str, user_name: str | None = None
    ) -> Mapping[str, Any]:
        return self._signer(ctx.session_id, password, meaning, user_name)

    def signing_needs_user_name(self, ctx: SessionContext) -> bool:
        """Whether the next signature is the first since sign-in (21 CFR 11.200)."""
        return True if self._needs_user_name is None else self._needs_user_name()
