"""User management for admins: add, disable/enable, reset password, unlock, change role.

Each call is checked (``manage_users``) and audited by the layers below. Two guards keep the
clinic manageable: the last active admin can be neither disabled nor given another role (checked
inside the record store's write transaction, so two admins acting at once cannot both succeed),
and an admin does not change their own role or disable themselves (another admin must).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from audit.errors import AuditDataError, DuplicateRecord, NotFound
from audit.events import PERSON_ROLES
from audit.values import UserRecord
from console.auth import (
    AccountDisabled,
    AccountLocked,
    AuthError,
    AuthService,
    PermissionDenied,
    SignedInUser,
)

T = TypeVar("T")


class UserAdminError(ValueError):
    """The change is not possible; the message says why and what to do."""


class UserAdmin:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth
        self.users = auth.users

    def list(self, by: SignedInUser) -> list[UserRecord]:
        self.auth.require(by, "manage_users")
        return self.users.list()

    def add(
        self, by: SignedInUser, user_id: str, full_name: str, role: str, password: str
    ) -> UserRecord:
        if role not in PERSON_ROLES:
            raise UserAdminError(f"the role is one of {', '.join(PERSON_ROLES)}, not {role!r}")
        return self._run(lambda: self.auth.add_user(by, user_id.strip(), full_name, role, password))

    def set_active(self, by: SignedInUser, user_id: str, active: bool) -> UserRecord:
        return self._run(lambda: self.auth.set_active(by, user_id, active))

    def reset_password(self, by: SignedInUser, user_id: str, new_password: str) -> UserRecord:
        """A new password set by an admin (also clears a lockout)."""
        return self._run(lambda: self.auth.set_password(by, user_id, new_password))

    def unlock(self, by: SignedInUser, user_id: str) -> UserRecord:
        return self._run(lambda: self.auth.unlock(by, user_id))

    def change_role(self, by: SignedInUser, user_id: str, role: str) -> UserRecord:
        """Give ``user_id`` another role. (Until the role table has ``change_role`` this is
        checked as ``manage_users``.)"""
        self.auth.require(by, "manage_users")
        if role not in PERSON_ROLES:
            raise UserAdminError(f"the role is one of {', '.join(PERSON_ROLES)}, not {role!r}")
        if user_id == by.user_id:
            raise UserAdminError("an admin cannot change their own role: ask another admin")
        return self._run(lambda: self.users.set_role(by.actor, user_id, role))

    @staticmethod
    def _run(call: Callable[[], T]) -> T:
        """Refusals of the change itself become ``UserAdminError``; refusals of the admin (no
        permission, account locked or disabled) pass through as they are."""
        try:
            return call()
        except (AuditDataError, DuplicateRecord, NotFound) as exc:
            raise UserAdminError(str(exc)) from exc
        except (PermissionDenied, AccountLocked, AccountDisabled):
            raise
        except AuthError as exc:
            raise UserAdminError(str(exc)) from exc
