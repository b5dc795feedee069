"""Users of the console: stored with their role and password hash, every change audited.

Hashing, the password policy and the lockout decision belong to the application layer
(``console/auth.py``); this module stores what it decides, in the same transaction as the audit
event that records it.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.canonical import utc_now_ts
from audit.errors import AuditDataError, DuplicateRecord, NotFound
from audit.events import PERSON_ROLES, Actor, Subject, check_word
from audit.records import append_rows
from audit.schema import User
from audit.trail import AuditTrail
from audit.values import UserCredentials, UserRecord


def _record(user: User) -> UserRecord:
    return UserRecord(
        user_id=user.id,
        full_name=user.full_name,
        role=user.role,
        active=user.active,
        locked=user.locked,
        failed_logins=user.failed_logins,
        created_at=user.created_at,
        password_changed_at=user.password_changed_at,
    )


class UserDirectory:
    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    # ------------------------------------------------------------------ reading
    def count(self) -> int:
        with self.trail.store.read() as session:
            return int(session.scalar(select(func.count()).select_from(User)) or 0)

    def list(self) -> list[UserRecord]:
        with self.trail.store.read() as session:
            return [_record(u) for u in session.scalars(select(User).order_by(User.id))]

    def get(self, user_id: str) -> UserRecord:
        with self.trail.store.read() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"there is no user {user_id!r}")
            return _record(user)

    def credentials(self, user_id: str) -> UserCredentials | None:
        with self.trail.store.read() as session:
            user = session.get(User, user_id)
            if user is None:
                return None
            return UserCredentials(
                user_id=user.id,
                full_name=user.full_name,
                role=user.role,
                password_hash=user.password_hash,
                active=user.active,
                locked=user.locked,
                failed_logins=user.failed_logins,
            )

    # ------------------------------------------------------------------ changing
    def add(
        self, actor: Actor, user_id: str, full_name: str, role: str, password_hash: str
    ) -> UserRecord:
        check_word(user_id, "user id")
        if role not in PERSON_ROLES:
            raise AuditDataError(f"role {role!r} is not one of {', '.join(PERSON_ROLES)}")
        if not full_name.strip() or len(full_name) > 200:
            raise AuditDataError("the full name must be 1–200 characters (it shows on signatures)")
        now = utc_now_ts()
        with self.trail.write() as session:
            if session.get(User, user_id) is not None:
                raise DuplicateRecord(f"there already is a user {user_id!r}")
            user = User(
                id=user_id,
                full_name=full_name.strip(),
                role=role,
                password_hash=password_hash,
                active=True,
                failed_logins=0,
                locked=False,
                created_at=now,
                password_changed_at=now,
            )
            session.add(user)
            append_rows(
                self.trail,
                session,
                actor,
                "user.created",
                Subject("user", user_id),
                {"full_name": user.full_name, "role": role},
                [("user", user)],
            )
            return _record(user)

    def set_active(self, actor: Actor, user_id: str, active: bool) -> UserRecord:
        with self.trail.write() as session:
            user = self._load(session, user_id)
            if not active:
                _refuse_if_last_admin(session, user, "disabled")
            user.active = active
            append_rows(
                self.trail,
                session,
                actor,
                "user.enabled" if active else "user.disabled",
                Subject("user", user_id),
                {},
                [("user", user)],
            )
            return _record(user)

    def set_password_hash(self, actor: Actor, user_id: str, password_hash: str) -> UserRecord:
        """A new password (by the user or an admin); also clears a lockout."""
        with self.trail.write() as session:
            user = self._load(session, user_id)
            was_locked = user.locked
            user.password_hash = password_hash
            user.password_changed_at = utc_now_ts()
            user.failed_logins = 0
            user.locked = False
            append_rows(
                self.trail,
                session,
                actor,
                "user.password_changed",
                Subject("user", user_id),
                {"by": actor.user_id, "unlocked": was_locked},
                [("user", user)],
            )
            return _record(user)

    def set_role(self, actor: Actor, user_id: str, role: str) -> UserRecord:
        """Give a user another role (who may do so is decided in ``console/``); audited with
        the old and the new role."""
        if role not in PERSON_ROLES:
            raise AuditDataError(f"role {role!r} is not one of {', '.join(PERSON_ROLES)}")
        with self.trail.write() as session:
            user = self._load(session, user_id)
            if user.role == role:
                raise AuditDataError(f"{user_id} already has the role {role}; nothing to change")
            if role != "admin":
                _refuse_if_last_admin(session, user, "given another role")
            old = user.role
            user.role = role
            append_rows(
                self.trail,
                session,
                actor,
                "user.role_changed",
                Subject("user", user_id),
                {"from": old, "to": role},
                [("user", user)],
            )
            return _record(user)

    def replace_hash(self, actor: Actor, user_id: str, password_hash: str) -> None:
        """Store a stronger hash of the same password (after a successful sign-in)."""
        with self.trail.write() as session:
            user = self._load(session, user_id)
            user.password_hash = password_hash
            append_rows(
                self.trail,
                session,
                actor,
                "user.password_rehashed",
                Subject("user", user_id),
                {},
                [("user", user)],
            )

    def unlock(self, actor: Actor, user_id: str) -> UserRecord:
        with self.trail.write() as session:
            user = self._load(session, user_id)
            user.locked = False
            user.failed_logins = 0
            append_rows(
                self.trail,
                session,
                actor,
                "user.unlocked",
                Subject("user", user_id),
                {},
                [("user", user)],
            )
            return _record(user)

    def record_login(self, actor: Actor) -> None:
        with self.trail.write() as session:
            user = self._load(session, actor.user_id)
            user.failed_logins = 0
            append_rows(
                self.trail,
                session,
                actor,
                "user.login",
                Subject("user", actor.user_id),
                {},
                [("user", user)],
            )

    def reset_failures(self, actor: Actor, purpose: str) -> int:
        """A successful re-authentication (signature, unlock) ends a run of failed attempts:
        the count goes back to 0, audited with what it was. Returns the count cleared (0: no
        change, nothing written)."""
        with self.trail.write() as session:
            user = self._load(session, actor.user_id)
            cleared = user.failed_logins
            if not cleared:
                return 0
            user.failed_logins = 0
            append_rows(
                self.trail,
                session,
                actor,
                "user.failures_reset",
                Subject("user", actor.user_id),
                {"purpose": purpose, "cleared": cleared},
                [("user", user)],
            )
            return cleared

    def record_login_failure(
        self, workstation: str, attempted: str, reason: str, lock_after: int
    ) -> tuple[int, bool]:
        """Count a failed login; lock the account at ``lock_after`` consecutive failures.

        Returns (consecutive failures, locked now). An unknown name is audited by a short hash
        only: what was typed into the name field may have been a password."""
        system = Actor.system(workstation)
        with self.trail.write() as session:
            user = session.get(User, attempted) if attempted else None
            if user is None:
                digest = hashlib.sha256(attempted.encode("utf-8")).hexdigest()[:16]
                self.trail.append_in(
                    session,
                    system,
                    "user.login_failed",
                    Subject("user", "unknown"),
                    {"reason": "unknown_user", "attempted_name_sha256_16": digest},
                )
                return 0, False
            user.failed_logins += 1
            failures = user.failed_logins
            append_rows(
                self.trail,
                session,
                system,
                "user.login_failed",
                Subject("user", user.id),
                {"reason": reason, "consecutive_failures": failures},
                [("user", user)],
            )
            locked_now = failures >= lock_after and not user.locked
            if locked_now:
                user.locked = True
                append_rows(
                    self.trail,
                    session,
                    system,
                    "user.locked",
                    Subject("user", user.id),
                    {"consecutive_failures": failures, "threshold": lock_after},
                    [("user", user)],
                )
            return failures, locked_now

    @staticmethod
    def _load(session: Session, user_id: str) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"there is no user {user_id!r}")
        return user


def _refuse_if_last_admin(session: Session, user: User, change: str) -> None:
    """Inside the (serialised) write transaction, so two admins acting at once on two consoles
    cannot both remove "the other" admin: at least one active, unlocked admin must remain."""
    if user.role != "admin" or not user.active:
        return
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.role == "admin", User.active.is_(True), User.locked.is_(False), User.id != user.id
        )
    )
    if not others:
        raise AuditDataError(
            f"{user.id} is the last active admin and cannot be {change}: add or unlock another "
            "admin first (the clinic would otherwise have nobody to manage users)"
        )
