"""User management from the admin console: each change audited, the last admin kept."""

from __future__ import annotations

import threading

import pytest

from audit import Actor
from audit.errors import AuditDataError
from console.admin.context import AdminServices
from console.admin.users_admin import UserAdminError
from console.auth import AuthError, LoginFailed, PermissionDenied, SignedInUser
from console.services import ConsoleServices
from tests.console.conftest import PASSWORD

NEW_PASSWORD = "another long passphrase"


def _last(services: ConsoleServices):  # -> AuditEvent
    return services.trail.get(services.trail.head().seq)


@pytest.mark.req("ADM-USER-1")
def test_add_disable_enable_reset_unlock_and_change_role_are_each_audited(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices
) -> None:
    users = admin_services.users
    users.add(admin, "nina", "Nina Nurse", "therapist", PASSWORD)
    assert (_last(services).action, _last(services).subject_id) == ("user.created", "nina")
    users.set_active(admin, "nina", False)
    assert _last(services).action == "user.disabled"
    with pytest.raises(AuthError, match="disabled"):
        services.auth.login("nina", PASSWORD)
    users.set_active(admin, "nina", True)
    assert _last(services).action == "user.enabled"
    for _ in range(5):
        with pytest.raises(AuthError):  # wrong passwords until the lockout
            services.auth.login("nina", "wrong password!!")
    assert any(u.user_id == "nina" and u.locked for u in users.list(admin))
    users.unlock(admin, "nina")
    assert _last(services).action == "user.unlocked"
    users.reset_password(admin, "nina", NEW_PASSWORD)
    assert _last(services).action == "user.password_changed"
    with pytest.raises(LoginFailed):
        services.auth.login("nina", PASSWORD)
    assert services.auth.login("nina", NEW_PASSWORD).role == "therapist"
    users.change_role(admin, "nina", "service")
    changed = _last(services)
    assert changed.action == "user.role_changed" and changed.actor == "admin"
    data = changed.data
    assert data.pop("record")["fields"]["role"] == "service"  # the row as changed
    assert data == {"from": "therapist", "to": "service"}
    assert services.auth.login("nina", NEW_PASSWORD).role == "service"


@pytest.mark.req("ADM-USER-2")
def test_the_last_admin_can_be_neither_disabled_nor_demoted(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices
) -> None:
    users = admin_services.users
    head = services.trail.head()
    with pytest.raises(UserAdminError, match="their own role"):
        users.change_role(admin, "admin", "therapist")
    with pytest.raises(UserAdminError, match="own account"):
        users.set_active(admin, "admin", False)
    # beneath the console's own-account rule the record store itself keeps the last admin
    system = Actor.system("ws-test")
    with pytest.raises(AuditDataError, match="last active admin"):
        services.users.set_active(system, "admin", False)
    with pytest.raises(AuditDataError, match="last active admin"):
        services.users.set_role(system, "admin", "service")
    assert services.trail.head() == head  # refused: nothing recorded, nothing changed
    users.add(admin, "adam", "Adam Second", "admin", PASSWORD)
    for _ in range(5):
        with pytest.raises(AuthError):
            services.auth.login("adam", "wrong password!!")
    with pytest.raises(AuditDataError, match="last active admin"):
        services.users.set_role(system, "admin", "service")  # a locked admin does not count
    users.unlock(admin, "adam")
    services.users.set_role(system, "admin", "service")
    assert [u.role for u in services.users.list() if u.user_id == "admin"] == ["service"]


@pytest.mark.req("ADM-USER-2")
def test_two_admins_removing_each_other_at_once_leave_one_admin(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices
) -> None:
    """Both see two admins before acting; the check inside the write transaction lets only
    one of the two changes through."""
    users = admin_services.users
    users.add(admin, "adam", "Adam Second", "admin", PASSWORD)
    second = services.login("adam", PASSWORD)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def remove(by: SignedInUser, other: str) -> None:
        start.wait()
        try:
            users.change_role(by, other, "therapist")
            outcomes.append("changed")
        except (UserAdminError, AuthError) as exc:
            outcomes.append(type(exc).__name__)

    threads = [
        threading.Thread(target=remove, args=(admin, "adam")),
        threading.Thread(target=remove, args=(second, "admin")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert outcomes.count("changed") == 1, outcomes
    remaining = [
        u.user_id for u in services.users.list() if u.role == "admin" and u.active and not u.locked
    ]
    assert len(remaining) == 1


@pytest.mark.req("ADM-USER-1")
def test_bad_user_changes_say_what_is_wrong(
    admin: SignedInUser, admin_services: AdminServices
) -> None:
    users = admin_services.users
    with pytest.raises(UserAdminError, match="role is one of"):
        users.add(admin, "x1", "X", "superuser", PASSWORD)
    with pytest.raises(UserAdminError, match="at least 12"):
        users.add(admin, "x1", "X One", "therapist", "short")
    with pytest.raises(UserAdminError, match="already is a user"):
        users.add(admin, "thera", "Again", "therapist", PASSWORD)
    with pytest.raises(UserAdminError, match="no user"):
        users.set_active(admin, "ghost", False)
    with pytest.raises(UserAdminError, match="already has the role"):
        users.change_role(admin, "thera", "therapist")


@pytest.mark.req("ADM-ROLE-1")
def test_a_therapist_cannot_manage_users_and_the_attempt_is_audited(
    services: ConsoleServices, therapist: SignedInUser, admin_services: AdminServices
) -> None:
    with pytest.raises(PermissionDenied):
        admin_services.users.add(therapist, "eve", "Eve", "admin", PASSWORD)
    denied = _last(services)
    assert (denied.action, denied.actor, denied.data["action"]) == (
        "access.denied",
        "thera",
        "manage_users",
    )
    with pytest.raises(PermissionDenied):
        admin_services.users.change_role(therapist, "thera", "admin")
