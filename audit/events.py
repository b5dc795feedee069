"""The values of the audit trail: who acted, about what, and the appended event itself."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from audit.canonical import FORMAT_VERSION, event_canonical_text
from audit.errors import AuditDataError

#: roles a person can hold, plus ``system`` for events the console makes on its own
PERSON_ROLES = ("therapist", "admin", "service")
EVENT_ROLES = (*PERSON_ROLES, "system")
SYSTEM_ACTOR = "system"
CHECKPOINT_ACTION = "audit.checkpoint"

_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, in which role, at which console installation (stamped on every event)."""

    user_id: str
    role: str
    workstation: str

    def __post_init__(self) -> None:
        check_word(self.user_id, "actor")
        check_word(self.workstation, "workstation")
        if self.role not in EVENT_ROLES:
            raise AuditDataError(f"role {self.role!r} is not one of {', '.join(EVENT_ROLES)}")
        if (self.role == "system") != (self.user_id == SYSTEM_ACTOR):
            raise AuditDataError("only the actor 'system' has the role 'system' and vice versa")

    @classmethod
    def system(cls, workstation: str) -> Actor:
        return cls(SYSTEM_ACTOR, "system", workstation)


@dataclass(frozen=True, slots=True)
class Subject:
    """What an event is about: ``patient``, ``session``, ``programme``, ``user``, ``device`` …"""

    type: str
    id: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z_]{0,31}", self.type):
            raise AuditDataError(f"subject type {self.type!r} must be a lowercase word")
        if not isinstance(self.id, str) or not self.id or len(self.id) > 128:
            raise AuditDataError("subject id must be a non-empty string of at most 128 chars")


def check_word(value: object, what: str) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise AuditDataError(
            f"{what} {value!r} must be 1–128 letters, digits or . _ : @ - (starting with a "
            "letter or digit)"
        )
    return value


def check_action(action: object) -> str:
    if not isinstance(action, str) or not _ACTION.fullmatch(action) or len(action) > 64:
        raise AuditDataError(
            f"action {action!r} must be a dotted lowercase name such as 'session.started'"
        )
    return action


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One appended event, exactly as hashed. ``data_json`` is the canonical text of ``data``."""

    seq: int
    ts: str
    actor: str
    role: str
    workstation: str
    action: str
    subject_type: str
    subject_id: str
    data_json: str
    prev: str
    hash: str
    v: int = FORMAT_VERSION

    @property
    def data(self) -> dict[str, Any]:
        """A fresh copy of the event's data (mutating it changes nothing)."""
        return json.loads(self.data_json)

    @property
    def subject(self) -> Subject:
        return Subject(self.subject_type, self.subject_id)

    def canonical_text(self) -> str:
        return event_canonical_text(
            seq=self.seq,
            ts=self.ts,
            actor=self.actor,
            role=self.role,
            workstation=self.workstation,
            action=self.action,
            subject_type=self.subject_type,
            subject_id=self.subject_id,
            data_json=self.data_json,
            prev=self.prev,
            v=self.v,
        )

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical_text().encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The event object of the format (with ``hash``), as exported."""
        return {
            "v": self.v,
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "role": self.role,
            "workstation": self.workstation,
            "action": self.action,
            "subject": {"type": self.subject_type, "id": self.subject_id},
            "data": self.data,
            "prev": self.prev,
            "hash": self.hash,
        }

    def as_row(self) -> tuple[Any, ...]:
        """(seq, v, ts, actor, role, workstation, action, subject_type, subject_id, data, prev,
        hash): the column order of ``audit_events`` used by the verifier and exports."""
        return (
            self.seq,
            self.v,
            self.ts,
            self.actor,
            self.role,
            self.workstation,
            self.action,
            self.subject_type,
            self.subject_id,
            self.data_json,
            self.prev,
            self.hash,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> AuditEvent:
        seq, v, ts, actor, role, workstation, action, stype, sid, data, prev, digest = row
        return cls(
            seq=int(seq),
            ts=ts,
            actor=actor,
            role=role,
            workstation=workstation,
            action=action,
            subject_type=stype,
            subject_id=sid,
            data_json=data,
            prev=prev,
            hash=digest,
            v=int(v),
        )
