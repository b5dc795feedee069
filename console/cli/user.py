"""``therapy-console user``: manage the console's users (admins only).

    therapy-console user add USER --full-name "NAME" --role therapist|admin|service --as ADMIN
    therapy-console user list --as ADMIN
    therapy-console user disable|enable|unlock USER --as ADMIN
    therapy-console user passwd USER --as ADMIN        (also unlocks; a user may pass --as USER
                                                       to change their own, giving the old one)

Every command is run by an admin (``--as``, password prompted, or read from standard input with
``--password-stdin``: first the admin's password, then the new user's). The one exception starts
a new database: when it has no users yet, ``user add --role admin`` without ``--as`` creates the
first admin.
"""

from __future__ import annotations

import argparse
from typing import Any

from console.cli import EXIT_AUTH, EXIT_DATABASE, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError
from console.cli.db import (
    Records,
    add_db_argument,
    add_sign_in_arguments,
    open_records,
    read_secret,
    sign_in,
)

ROLE_CHOICES = ("therapist", "admin", "service")


def _run(args: argparse.Namespace, work: Any) -> int:
    from audit.errors import AuditDataError, AuditError, DuplicateRecord, NotFound, StoreError
    from console.auth import AuthError, PasswordRejected

    records = open_records(args.db)
    try:
        return int(work(records))
    except PasswordRejected as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except AuthError as exc:
        raise CommandError(str(exc), EXIT_AUTH) from exc
    except (AuditDataError, DuplicateRecord, NotFound) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except StoreError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from exc
    except AuditError as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from exc
    finally:
        records.close()


def _add(args: argparse.Namespace) -> int:
    def work(records: Records) -> int:
        by = None
        if args.as_user:
            by = sign_in(records, args.as_user, args.password_stdin, "manage_users")
        elif records.users.count() > 0:
            raise CommandError(
                "the database has users: run this as an admin with --as ADMIN", EXIT_USAGE
            )
        elif args.role != "admin":
            raise CommandError("the first user of a new database must be an admin", EXIT_USAGE)
        password = read_secret(
            f"New password for {args.user_id}: ", args.password_stdin, confirm=True
        )
        problem = records.auth.password_problem(password, args.user_id)
        if problem:
            raise CommandError(problem, EXIT_USAGE)
        user = records.auth.add_user(by, args.user_id, args.full_name, args.role, password)
        print(f"added {user.role} {user.user_id} ({user.full_name})")
        return EXIT_OK

    return _run(args, work)


def _list(args: argparse.Namespace) -> int:
    def work(records: Records) -> int:
        sign_in(records, args.as_user, args.password_stdin, "manage_users")
        print(f"{'user':<20} {'role':<10} {'state':<10} {'failed':>6}  name")
        for user in records.users.list():
            state = "locked" if user.locked else "active" if user.active else "disabled"
            print(
                f"{user.user_id:<20} {user.role:<10} {state:<10} {user.failed_logins:>6}  "
                f"{user.full_name}"
            )
        return EXIT_OK

    return _run(args, work)


def _set_active(active: bool) -> Any:
    def handler(args: argparse.Namespace) -> int:
        def work(records: Records) -> int:
            admin = sign_in(records, args.as_user, args.password_stdin, "manage_users")
            user = records.auth.set_active(admin, args.user_id, active)
            print(f"{user.user_id} is now {'enabled' if user.active else 'disabled'}")
            return EXIT_OK

        return _run(args, work)

    return handler


def _unlock(args: argparse.Namespace) -> int:
    def work(records: Records) -> int:
        admin = sign_in(records, args.as_user, args.password_stdin, "manage_users")
        user = records.auth.unlock(admin, args.user_id)
        print(f"{user.user_id} is unlocked")
        return EXIT_OK

    return _run(args, work)


def _passwd(args: argparse.Namespace) -> int:
    def work(records: Records) -> int:
        from console.auth import SignedInUser

        own = args.as_user == args.user_id
        old = read_secret(f"Password for {args.as_user}: ", args.password_stdin)
        signed_in: SignedInUser = records.auth.login(args.as_user, old)
        new = read_secret(f"New password for {args.user_id}: ", args.password_stdin, confirm=True)
        problem = records.auth.password_problem(new, args.user_id)
        if problem:
            raise CommandError(problem, EXIT_USAGE)
        if own and signed_in.role != "admin":
            records.auth.change_own_password(signed_in, old, new)
        else:
            records.auth.set_password(signed_in, args.user_id, new)
        print(f"the password of {args.user_id} is changed (and the account unlocked)")
        return EXIT_OK

    return _run(args, work)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "user",
        help="add, list, disable, unlock users and set passwords (admins)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    commands = parser.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="add a user (the first admin of an empty database too)")
    add.add_argument("user_id", metavar="USER", help="login name (letters, digits, . _ -)")
    add.add_argument("--full-name", required=True, help="full name, shown on signatures")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES)
    add_sign_in_arguments(add, required=False)
    add_db_argument(add)
    add.set_defaults(handler=_add)

    listing = commands.add_parser("list", help="list users with role and state")
    add_sign_in_arguments(listing, required=True)
    add_db_argument(listing)
    listing.set_defaults(handler=_list)

    for name, handler, text in (
        ("disable", _set_active(False), "disable a user (they can no longer sign in)"),
        ("enable", _set_active(True), "enable a disabled user again"),
        ("unlock", _unlock, "unlock a user locked after failed sign-ins"),
        ("passwd", _passwd, "set a user's password (also unlocks the account)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("user_id", metavar="USER")
        add_sign_in_arguments(sub, required=True)
        add_db_argument(sub)
        sub.set_defaults(handler=handler)
