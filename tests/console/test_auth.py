"""Sign-in, lockout, the role table (in full) and electronic signatures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from audit import AuditTrail, CheckpointSigner, open_store
from audit.migrate import upgrade
from audit.patients import PatientRegistry
from audit.sessions import SessionBook
from audit.users import UserDirectory
from console import roles
from console.auth import (
    LOCK_AFTER_FAILURES,
    AccountDisabled,
    AccountLocked,
    AuthService,
    LoginFailed,
    PasswordRejected,
    PermissionDenied,
    SignatureFailed,
    SignedInUser,
    meets_owasp_minimum,
    production_hasher,
)

WS = "ws-auth"
ADMIN_PW = "correct horse battery"
THERAPIST_PW = "knee-therapy-2026"
#: a deliberately light argon2id so the many sign-ins here stay fast; production parameters are
#: asserted in test_production_hasher_is_argon2id_at_or_above_owasp
FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=Type.ID)


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[AuthService]:
    url = f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    upgrade(url)
    store = open_store(url)
    trail = AuditTrail(store, CheckpointSigner.generate(), WS)
    trail.register_signer(created=True)
    service = AuthService(UserDirectory(trail), workstation=WS, hasher=FAST)
    service.add_user(None, "admin1", "Ada Admin", "admin", ADMIN_PW)
    admin = service.login("admin1", ADMIN_PW)
    service.add_user(admin, "th1", "Theo Therapist", "therapist", THERAPIST_PW)
    service.add_user(admin, "th2", "Tara Therapist", "therapist", THERAPIST_PW)
    service.add_user(admin, "svc1", "Sam Service", "service", THERAPIST_PW)
    yield service
    store.dispose()


def _actions(auth: AuthService) -> list[str]:
    return [e.action for e in auth.trail.events(limit=10_000)]


@pytest.mark.req("AUD-USER-1")
def test_production_hasher_is_argon2id_at_or_above_owasp() -> None:
    hasher = production_hasher()
    assert hasher.type is Type.ID
    assert hasher.memory_cost >= 19456 and hasher.time_cost >= 2 and hasher.parallelism >= 1
    assert meets_owasp_minimum(hasher)
    assert hasher.hash("a long enough password").startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert not meets_owasp_minimum(FAST)
    assert not meets_owasp_minimum(PasswordHasher(time_cost=3, memory_cost=65536, type=Type.I))


@pytest.mark.req("AUD-USER-1")
@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-pw-11", "at least 12 characters"),
        (" padded password ", "start or end with spaces"),
        ("aaaaaaaaaaaaaaab", "at least 4 different characters"),
        ("my-th1-password", "must not contain the user name"),
        ("x" * 300, "at most 256"),
    ],
)
def test_password_policy_says_what_is_wrong(auth: AuthService, password: str, why: str) -> None:
    admin = auth.login("admin1", ADMIN_PW)
    with pytest.raises(PasswordRejected, match=why):
        auth.set_password(admin, "th1", password)


@pytest.mark.req("AUD-USER-1")
def test_passwords_are_stored_only_as_argon2id_hashes(auth: AuthService) -> None:
    creds = auth.users.credentials("th1")
    assert creds is not None and creds.password_hash.startswith("$argon2id$")
    assert THERAPIST_PW not in creds.password_hash


@pytest.mark.req("AUD-WHAT-1")
def test_login_logout_and_screen_lock_are_audited(auth: AuthService) -> None:
    user = auth.login("th1", THERAPIST_PW)
    assert user == SignedInUser("th1", "Theo Therapist", "therapist", WS)
    auth.lock_screen(user)
    auth.unlock_screen(user, THERAPIST_PW)
    auth.logout(user)
    assert _actions(auth)[-4:] == [
        "user.login",
        "user.screen_locked",
        "user.screen_unlocked",
        "user.logout",
    ]


@pytest.mark.req("AUD-USER-2")
def test_five_failures_lock_the_account_audited_until_an_admin_unlocks(
    auth: AuthService,
) -> None:
    for attempt in range(1, LOCK_AFTER_FAILURES):
        with pytest.raises(LoginFailed, match=r"Check both .* after 5 failed attempts"):
            auth.login("th1", "wrong password!")
        assert auth.users.get("th1").failed_logins == attempt
    with pytest.raises(AccountLocked, match="Ask an admin to unlock it"):
        auth.login("th1", "wrong password!")
    assert auth.users.get("th1").locked
    with pytest.raises(AccountLocked):
        auth.login("th1", THERAPIST_PW)  # even the right password
    events = auth.trail.events(limit=10_000)
    failed = [e for e in events if e.action == "user.login_failed"]
    assert [e.data["consecutive_failures"] for e in failed] == [1, 2, 3, 4, 5]
    (locked,) = [e for e in events if e.action == "user.locked"]
    assert locked.subject.id == "th1" and locked.data["threshold"] == 5
    assert events[-1].action == "user.login_refused" and events[-1].data["reason"] == "locked"
    admin = auth.login("admin1", ADMIN_PW)
    auth.unlock(admin, "th1")
    assert auth.login("th1", THERAPIST_PW).user_id == "th1"
    assert "user.unlocked" in _actions(auth)


@pytest.mark.req("AUD-USER-2")
def test_failures_must_be_consecutive_and_a_new_password_unlocks(auth: AuthService) -> None:
    for _ in range(4):
        with pytest.raises(LoginFailed):
            auth.login("th1", "nope nope nope")
    auth.login("th1", THERAPIST_PW)
    assert auth.users.get("th1").failed_logins == 0
    for _ in range(5):
        with pytest.raises((LoginFailed, AccountLocked)):
            auth.login("th1", "nope nope nope")
    admin = auth.login("admin1", ADMIN_PW)
    auth.set_password(admin, "th1", "a brand new passphrase")
    assert auth.login("th1", "a brand new passphrase").role == "therapist"


@pytest.mark.req("AUD-USER-2")
def test_unknown_names_fail_the_same_way_and_are_not_stored_in_clear(auth: AuthService) -> None:
    with pytest.raises(LoginFailed) as info:
        auth.login("my-secret-password-typed-as-name", "whatever")
    assert "Wrong user name or password" in str(info.value)
    event = auth.trail.events(limit=10_000)[-1]
    assert event.action == "user.login_failed" and event.subject.id == "unknown"
    assert "my-secret-password" not in event.data_json


@pytest.mark.req("AUD-USER-2")
def test_a_disabled_account_cannot_sign_in_or_act(auth: AuthService) -> None:
    admin = auth.login("admin1", ADMIN_PW)
    therapist = auth.login("th1", THERAPIST_PW)
    auth.set_active(admin, "th1", False)
    with pytest.raises(AccountDisabled, match="disabled"):
        auth.login("th1", THERAPIST_PW)
    with pytest.raises(AccountDisabled):
        auth.require(therapist, "view_patient")  # a session open before is stopped too
    with pytest.raises(PasswordRejected, match="cannot disable their own"):
        auth.set_active(admin, "admin1", False)


#: the role table as the clinic's policy states it; the code's table must match it exactly
EXPECTED = {
    "login": "TAS",
    "lock_screen": "TAS",
    "change_own_password": "TAS",
    "view_patient": "T",
    "create_patient": "T",
    "edit_patient": "T",
    "assign_programme": "T",
    "screen": "T",
    "plan_session": "T",
    "deliver": "T",
    "acknowledge_alarm": "TS",
    "document_session": "T",
    "sign_session": "T",
    "review_session": "T",
    "amend_session": "T",
    "view_audit": "A",
    "export_audit": "A",
    "verify_audit": "AS",
    "manage_users": "A",
    "manage_policy": "A",
    "device_diagnostics": "S",
    "raw_device_command": "S",
}
ROLE_LETTER = {"therapist": "T", "admin": "A", "service": "S"}


@pytest.mark.req("AUD-ROLE-1")
def test_the_role_table_lists_every_action_the_policy_names() -> None:
    assert set(roles.ACTIONS) == set(EXPECTED)
    clinical = {a for a, r in EXPECTED.items() if r == "T"}
    assert not any(roles.allowed("admin", a) for a in clinical)  # admins do no clinical work
    assert not any(roles.allowed("service", a) for a in clinical)  # service sees no patients


@pytest.mark.req("AUD-ROLE-1")
@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("role", ["therapist", "admin", "service"])
def test_every_role_and_action(auth: AuthService, role: str, action: str) -> None:
    user_id = {"therapist": "th1", "admin": "admin1", "service": "svc1"}[role]
    password = ADMIN_PW if role == "admin" else THERAPIST_PW
    user = auth.login(user_id, password)
    expected = ROLE_LETTER[role] in EXPECTED[action]
    assert roles.allowed(role, action) is expected
    if expected:
        auth.require(user, action)
        assert _actions(auth)[-1] == "user.login"
    else:
        with pytest.raises(PermissionDenied) as info:
            auth.require(user, action)
        assert f"a {role} may not" in str(info.value) and "ask someone" in str(info.value)
        denied = auth.trail.events(limit=10_000)[-1]
        assert denied.action == "access.denied"
        assert denied.data == {"action": action, "role": role, "reason": "role"}


@pytest.mark.req("AUD-ROLE-1")
def test_an_action_missing_from_the_table_is_a_programming_error(auth: AuthService) -> None:
    user = auth.login("th1", THERAPIST_PW)
    with pytest.raises(roles.UnknownAction):
        auth.require(user, "launch_rockets")


@pytest.mark.req("AUD-ROLE-1")
def test_only_admins_manage_users_and_the_first_admin_bootstraps_once(auth: AuthService) -> None:
    therapist = auth.login("th1", THERAPIST_PW)
    with pytest.raises(PermissionDenied):
        auth.add_user(therapist, "th9", "New", "therapist", "another passphrase")
    with pytest.raises(Exception, match="already has users"):
        auth.add_user(None, "admin2", "Second", "admin", "another passphrase")
    first = auth.trail.events(limit=10)[1]
    assert first.action == "user.created" and first.actor == "system"


@pytest.mark.req("AUD-SIGN-1")
def test_signing_needs_the_password_again_and_the_right_role(auth: AuthService) -> None:
    trail = auth.trail
    patient = PatientRegistry(trail).create(
        auth.login("th1", THERAPIST_PW).actor, "KN-0100", date(1975, 1, 1)
    )
    book = SessionBook(trail)
    therapist = auth.login("th1", THERAPIST_PW)
    session = book.create(
        therapist.actor,
        patient_id=patient.patient_id,
        protocol_id="knee-pt-epat",
        protocol_version="1",
        modality="epat",
        session_date=date(2026, 1, 8),
    )
    book.transition(therapist.actor, session.session_id, "screening", "documented", "document")
    with pytest.raises(SignatureFailed, match="did not match"):
        auth.sign_session(book, therapist, "not my password", session.session_id, user_name="th1")
    assert auth.users.get("th1").failed_logins == 1
    events = trail.events(limit=10_000)
    assert [e.data["reason"] for e in events if e.action == "user.login_failed"][-1] == (
        "wrong_password_on_signature"
    )
    admin = auth.login("admin1", ADMIN_PW)
    with pytest.raises(PermissionDenied):
        auth.sign_session(book, admin, ADMIN_PW, session.session_id, user_name="admin1")
    signature = auth.sign_session(
        book, therapist, THERAPIST_PW, session.session_id, user_name="th1"
    )
    assert signature.signer_name == "Theo Therapist" and signature.meaning == "performed"
    reviewer = auth.login("th2", THERAPIST_PW)
    review = auth.sign_session(
        book, reviewer, THERAPIST_PW, session.session_id, "reviewed", user_name="th2"
    )
    assert review.signer_id == "th2"
    assert all(c.valid for c in book.verify_signatures(session.session_id))


@pytest.mark.req("AUD-USER-1")
def test_a_weaker_old_hash_is_upgraded_at_sign_in(auth: AuthService) -> None:
    creds = auth.users.credentials("th1")
    assert creds is not None
    stronger = AuthService(
        auth.users,
        workstation=WS,
        hasher=PasswordHasher(time_cost=2, memory_cost=128, parallelism=1, type=Type.ID),
    )
    stronger.login("th1", THERAPIST_PW)
    new = auth.users.credentials("th1")
    assert new is not None and new.password_hash != creds.password_hash
    assert "m=128,t=2" in new.password_hash
    assert _actions(auth)[-1] == "user.password_rehashed"
