"""Sign-in, lockout, role checks and electronic signatures: the application layer's security.

- Passwords: at least 12 characters, hashed with argon2id (argon2-cffi) at parameters at or
  above the OWASP minimum (the default is the RFC 9106 "low memory" profile: 64 MiB, t=3, p=4).
- Lockout: 5 failed sign-ins in a row lock the account until an admin unlocks it or sets a new
  password; every failure and the lock are audited. Re-authentication (unlocking the screen,
  signing) counts towards the same limit.
- Roles: ``require(user, action)`` checks the role table (``console/roles.py``) and that the
  account is still active and unlocked; a refusal is audited and raised as ``PermissionDenied``.
- Electronic signature (21 CFR 11.200): the first signing after sign-in needs the user name
  and the password; later ones in the same continuous session (no sign-out, no screen lock in
  between) the password. The signature records name, time and meaning and covers the record's
  content hash. Failed signing attempts count towards the lockout, are audited (also on the
  session) and raise ``SignatureFailed`` whose message says what to do; a successful signature
  or unlock resets the count (SES-SIGN-2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import structlog
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from audit.events import Actor, Subject
from audit.sessions import SessionBook
from audit.users import UserDirectory
from audit.values import SignatureRecord, UserCredentials, UserRecord
from console import roles

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256
LOCK_AFTER_FAILURES = 5
#: OWASP Password Storage Cheat Sheet, argon2id: any of these (memory KiB, iterations) with p=1
OWASP_ARGON2ID_MINIMUM = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))

#: through the standard library: silent until the application configures logging
log = structlog.wrap_logger(logging.getLogger("console.auth"))


def production_hasher() -> PasswordHasher:
    """argon2id, 64 MiB, 3 iterations, 4 lanes (RFC 9106 low-memory profile)."""
    return PasswordHasher(
        time_cost=3, memory_cost=65536, parallelism=4, hash_len=32, salt_len=16, type=Type.ID
    )


def meets_owasp_minimum(hasher: PasswordHasher) -> bool:
    return hasher.type is Type.ID and any(
        hasher.memory_cost >= memory and hasher.time_cost >= iterations
        for memory, iterations in OWASP_ARGON2ID_MINIMUM
    )


class AuthError(Exception):
    """A sign-in or permission failure; the message says what happened and what to do."""


class LoginFailed(AuthError):
    pass


class AccountLocked(AuthError):
    pass


class AccountDisabled(AuthError):
    pass


class PasswordRejected(AuthError):
    pass


class SignatureFailed(AuthError):
    """A signing attempt failed; the message says what happened and what to do next."""

    def __init__(self, message: str, failures: int | None = None) -> None:
        super().__init__(message)
        self.failures = failures


class PermissionDenied(AuthError):
    def __init__(self, role: str, action: str) -> None:
        self.role = role
        self.action = action
        allowed = ", ".join(sorted(roles.roles_for(action)))
        super().__init__(
            f"a {role} may not {roles.DESCRIPTIONS[action]} (allowed: {allowed}); ask someone "
            "with that role"
        )


WRONG_CREDENTIALS = (
    "Wrong user name or password. Check both (and Caps Lock) and try again; after "
    f"{LOCK_AFTER_FAILURES} failed attempts in a row the account is locked until an admin "
    "unlocks it."
)
LOCKED = (
    "This account is locked after too many failed attempts. Ask an admin to unlock it or set "
    "a new password (therapy-console user passwd)."
)
DISABLED = "This account is disabled. Ask an admin if it should be enabled again."


@dataclass(frozen=True, slots=True)
class SignedInUser:
    user_id: str
    full_name: str
    role: str
    workstation: str

    @property
    def actor(self) -> Actor:
        return Actor(self.user_id, self.role, self.workstation)


class AuthService:
    def __init__(
        self,
        users: UserDirectory,
        *,
        workstation: str,
        hasher: PasswordHasher | None = None,
        lock_after: int = LOCK_AFTER_FAILURES,
    ) -> None:
        self.users = users
        self.trail = users.trail
        self.workstation = workstation
        self.hasher = hasher or production_hasher()
        self.lock_after = lock_after
        self._dummy_hash: str | None = None
        #: users who have signed since they signed in on this console (21 CFR 11.200): their
        #: next signatures in the same continuous session need only the password
        self._signed_in_session: set[str] = set()

    # ------------------------------------------------------------------ passwords
    @staticmethod
    def password_problem(password: str, user_id: str | None = None) -> str | None:
        """Why a new password is not acceptable, or None."""
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
            return f"the password must have at least {MIN_PASSWORD_CHARS} characters"
        if len(password) > MAX_PASSWORD_CHARS:
            return f"the password must have at most {MAX_PASSWORD_CHARS} characters"
        if password.strip() != password:
            return "the password must not start or end with spaces"
        if len(set(password)) < 4:
            return "the password must use at least 4 different characters"
        if user_id and user_id.lower() in password.lower():
            return "the password must not contain the user name"
        return None

    def hash_new_password(self, password: str, user_id: str | None = None) -> str:
        problem = self.password_problem(password, user_id)
        if problem:
            raise PasswordRejected(problem)
        return self.hasher.hash(password)

    def _password_matches(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # ------------------------------------------------------------------ sign-in
    def login(self, user_id: str, password: str) -> SignedInUser:
        creds = self.users.credentials(user_id) if user_id else None
        if creds is None:
            self._burn_time(password)
            self.users.record_login_failure(
                self.workstation, user_id or "", "unknown_user", self.lock_after
            )
            log.warning("login_failed", reason="unknown_user")
            raise LoginFailed(WRONG_CREDENTIALS)
        self._refuse_if_unusable(creds, "login")
        if not self._password_matches(creds.password_hash, password):
            self._fail(creds.user_id, "wrong_password")
        user = SignedInUser(creds.user_id, creds.full_name, creds.role, self.workstation)
        self._signed_in_session.discard(user.user_id)  # a new session: name and password again
        self.users.record_login(user.actor)
        if self.hasher.check_needs_rehash(creds.password_hash):
            self.users.replace_hash(user.actor, user.user_id, self.hasher.hash(password))
        log.info("login", user_id=user.user_id, role=user.role)
        return user

    def reauthenticate(self, user: SignedInUser, password: str, purpose: str) -> None:
        """Check the signed-in user's password again (unlock, signature); failures count
        towards the lockout like sign-in failures."""
        creds = self.users.credentials(user.user_id)
        if creds is None:
            raise LoginFailed(WRONG_CREDENTIALS)
        self._refuse_if_unusable(creds, purpose)
        if not self._password_matches(creds.password_hash, password):
            self._fail(user.user_id, f"wrong_password_on_{purpose}")

    def logout(self, user: SignedInUser) -> None:
        self._signed_in_session.discard(user.user_id)
        self.trail.append(user.actor, "user.logout", Subject("user", user.user_id))
        log.info("logout", user_id=user.user_id)

    def lock_screen(self, user: SignedInUser) -> None:
        # a locked screen ends the continuous session (the stricter reading of 11.200)
        self._signed_in_session.discard(user.user_id)
        self.trail.append(user.actor, "user.screen_locked", Subject("user", user.user_id))

    def unlock_screen(self, user: SignedInUser, password: str) -> None:
        self.reauthenticate(user, password, "unlock")
        self.trail.append(user.actor, "user.screen_unlocked", Subject("user", user.user_id))
        self.users.reset_failures(user.actor, "unlock")

    def _refuse_if_unusable(self, creds: UserCredentials, purpose: str) -> None:
        if creds.locked or not creds.active:
            reason = "locked" if creds.locked else "disabled"
            self.trail.append(
                Actor.system(self.workstation),
                "user.login_refused",
                Subject("user", creds.user_id),
                {"reason": reason, "purpose": purpose},
            )
            log.warning("login_refused", user_id=creds.user_id, reason=reason)
            raise AccountLocked(LOCKED) if creds.locked else AccountDisabled(DISABLED)

    def _fail(self, user_id: str, reason: str) -> None:
        failures, locked_now = self.users.record_login_failure(
            self.workstation, user_id, reason, self.lock_after
        )
        log.warning("login_failed", user_id=user_id, reason=reason, failures=failures)
        if locked_now:
            log.warning("account_locked", user_id=user_id, failures=failures)
            raise AccountLocked(LOCKED)
        raise LoginFailed(WRONG_CREDENTIALS)

    def _burn_time(self, password: str) -> None:
        """Spend a hash verification on an unknown name too (no user-name oracle by timing)."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not a password of anyone here")
        self._password_matches(self._dummy_hash, password or "-")

    # ------------------------------------------------------------------ permissions
    def require(self, user: SignedInUser, action: str) -> None:
        """Allow ``action`` for ``user`` or raise ``PermissionDenied`` (audited)."""
        roles.roles_for(action)  # unknown action: a programming error, raised before anything
        creds = self.users.credentials(user.user_id)
        if creds is None or creds.locked or not creds.active or creds.role != user.role:
            state = (
                "unknown"
                if creds is None
                else "locked"
                if creds.locked
                else "disabled"
                if not creds.active
                else "role_changed"
            )
            self._deny(user, action, state)
            if creds is not None and creds.locked:
                raise AccountLocked(LOCKED)
            raise AccountDisabled(
                "This account can no longer do that (disabled or changed); sign in again."
            )
        if not roles.allowed(user.role, action):
            self._deny(user, action, "role")
            raise PermissionDenied(user.role, action)

    def _deny(self, user: SignedInUser, action: str, reason: str) -> None:
        self.trail.append(
            user.actor,
            "access.denied",
            Subject("user", user.user_id),
            {"action": action, "role": user.role, "reason": reason},
        )
        log.warning("access_denied", user_id=user.user_id, action=action, reason=reason)

    # ------------------------------------------------------------------ users (admins)
    def add_user(
        self,
        by: SignedInUser | None,
        user_id: str,
        full_name: str,
        role: str,
        password: str,
    ) -> UserRecord:
        """Add a user. ``by`` None is allowed only to bootstrap the first admin of an empty
        database (the event is then recorded as ``system``)."""
        if by is None:
            if self.users.count() > 0:
                raise AuthError("the database already has users: an admin must add new ones")
            if role != "admin":
                raise AuthError("the first user of a new database must be an admin")
            actor = Actor.system(self.workstation)
        else:
            self.require(by, "manage_users")
            actor = by.actor
        password_hash = self.hash_new_password(password, user_id)
        return self.users.add(actor, user_id, full_name, role, password_hash)

    def set_password(self, by: SignedInUser, user_id: str, new_password: str) -> UserRecord:
        self.require(by, "manage_users")
        return self.users.set_password_hash(
            by.actor, user_id, self.hash_new_password(new_password, user_id)
        )

    def change_own_password(self, user: SignedInUser, old: str, new: str) -> UserRecord:
        self.require(user, "change_own_password")
        self.reauthenticate(user, old, "password_change")
        return self.users.set_password_hash(
            user.actor, user.user_id, self.hash_new_password(new, user.user_id)
        )

    def set_active(self, by: SignedInUser, user_id: str, active: bool) -> UserRecord:
        self.require(by, "manage_users")
        if not active and user_id == by.user_id:
            raise PasswordRejected("an admin cannot disable their own account")
        return self.users.set_active(by.actor, user_id, active)

    def unlock(self, by: SignedInUser, user_id: str) -> UserRecord:
        self.require(by, "manage_users")
        return self.users.unlock(by.actor, user_id)

    # ------------------------------------------------------------------ e-signature
    def signing_needs_user_name(self, user: SignedInUser) -> bool:
        """Whether ``user``'s next signature is the first of this continuous session (then it
        takes the user name and the password; later ones the password only)."""
        return user.user_id not in self._signed_in_session

    def sign_session(
        self,
        sessions: SessionBook,
        user: SignedInUser,
        password: str,
        session_id: str,
        meaning: str = "performed",
        user_name: str | None = None,
    ) -> SignatureRecord:
        """Sign a session record: role check, the signature's components checked (21 CFR
        11.200), then the signature (name, time, meaning, content hash) stored and audited."""
        self.require(user, "sign_session" if meaning == "performed" else "review_session")
        self.check_signature_components(sessions, user, password, session_id, user_name)
        creds = self.users.credentials(user.user_id)
        assert creds is not None
        signature = sessions.sign(user.actor, creds.full_name, session_id, meaning)
        self.signed(user)
        log.info("session_signed", user_id=user.user_id, session_id=session_id, meaning=meaning)
        return signature

    def check_signature_components(
        self,
        sessions: SessionBook,
        user: SignedInUser,
        password: str,
        session_id: str,
        user_name: str | None,
    ) -> None:
        """The user name (first signing of the session) and the password, or
        ``SignatureFailed`` / ``AccountLocked``; a failed attempt is counted and audited on the
        user and on the session."""
        first = self.signing_needs_user_name(user)
        if first and not (user_name or "").strip():
            raise SignatureFailed(
                "This is your first signature since you signed in (or unlocked the screen): "
                "enter your user name and your password, then sign again."
            )
        try:
            name = (user_name or "").strip()
            if (first or name) and name != user.user_id:
                self._fail(user.user_id, "wrong_user_name_on_signature")
            self.reauthenticate(user, password, "signature")
        except (LoginFailed, AccountLocked) as exc:
            creds = self.users.credentials(user.user_id)
            failures = creds.failed_logins if creds is not None else None
            sessions.record_event(
                user.actor,
                session_id,
                "session.signature_failed",
                {"consecutive_failures": failures, "locked": isinstance(exc, AccountLocked)},
            )
            if isinstance(exc, AccountLocked):
                raise
            advice = _signature_advice(first, failures, self.lock_after)
            raise SignatureFailed(advice, failures) from None

    def signed(self, user: SignedInUser) -> None:
        """A signature succeeded: later ones in this session take the password only, and the
        run of failed attempts ends."""
        self._signed_in_session.add(user.user_id)
        self.users.reset_failures(user.actor, "signature")


def _signature_advice(first: bool, failures: int | None, lock_after: int) -> str:
    what = "user name or password" if first else "password"
    left = "" if failures is None else f" ({failures} of {lock_after} attempts failed in a row)"
    return (
        f"Not signed: the {what} did not match{left}. Re-enter your {what} and sign again; "
        f"after {lock_after} failed attempts in a row the account is locked until an admin "
        "unlocks it. Nothing was signed."
    )
