"""Who may do what: the role × action table the application layer checks before every operation.

Policy in one place, as data. Therapists treat (and review each other's sessions); admins manage
users, policy and the audit trail but do no clinical work; service engineers run diagnostics and
the raw device console and never see patient data beyond pseudonymous ids. Every action the
console offers is listed; an action not listed is a programming error, not a silent "no".
"""

from __future__ import annotations

from types import MappingProxyType

ROLES = ("therapist", "admin", "service")
T, A, S = "therapist", "admin", "service"

#: action → (roles allowed, what it is)
_TABLE: dict[str, tuple[frozenset[str], str]] = {
    "login": (frozenset({T, A, S}), "sign in to the console"),
    "lock_screen": (frozenset({T, A, S}), "lock and unlock one's own screen"),
    "change_own_password": (frozenset({T, A, S}), "change one's own password"),
    "view_patient": (frozenset({T}), "open a patient's record (audited read)"),
    "create_patient": (frozenset({T}), "register a patient (pseudonym, birth date)"),
    "edit_patient": (frozenset({T}), "correct a patient's data, with a reason"),
    "assign_programme": (frozenset({T}), "assign, progress or end a movement programme"),
    "screen": (frozenset({T}), "answer the contraindication screening, record overrides"),
    "plan_session": (frozenset({T}), "plan and validate a session's parameters"),
    "deliver": (frozenset({T}), "connect, arm, start, pause, titrate and stop delivery"),
    "acknowledge_alarm": (frozenset({T, S}), "acknowledge a latched alarm"),
    "document_session": (frozenset({T}), "document pain, points, adverse events, notes"),
    "sign_session": (frozenset({T}), "sign a session record as performed"),
    "review_session": (frozenset({T}), "co-sign another therapist's session as reviewed"),
    "amend_session": (frozenset({T}), "amend a signed session record, with a reason"),
    "view_audit": (frozenset({A}), "review the audit trail"),
    "export_audit": (frozenset({A}), "export the audit trail (JSONL, CSV, FHIR)"),
    "verify_audit": (frozenset({A, S}), "run verification of the audit trail"),
    "manage_users": (frozenset({A}), "add, disable, unlock users and reset passwords"),
    "manage_policy": (frozenset({A}), "review and change the clinic's protocol/screening policy"),
    "device_diagnostics": (frozenset({S}), "run self-tests, read device logs and counters"),
    "raw_device_command": (frozenset({S}), "send raw commands on the service console"),
}

ACTIONS: tuple[str, ...] = tuple(_TABLE)
PERMISSIONS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {action: roles for action, (roles, _) in _TABLE.items()}
)
DESCRIPTIONS: MappingProxyType[str, str] = MappingProxyType(
    {action: text for action, (_, text) in _TABLE.items()}
)


class UnknownAction(KeyError):
    """A permission was asked for an action the table does not list (a programming error)."""


def allowed(role: str, action: str) -> bool:
    try:
        return role in PERMISSIONS[action]
    except KeyError:
        raise UnknownAction(f"{action!r} is not an action of the role table") from None


def roles_for(action: str) -> frozenset[str]:
    if action not in PERMISSIONS:
        raise UnknownAction(f"{action!r} is not an action of the role table")
    return PERMISSIONS[action]
