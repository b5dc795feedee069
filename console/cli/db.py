"""``therapy-console db``: create or migrate the database; and the helpers every record
command shares (opening the record store with this installation's key, signing in an admin).

    therapy-console db upgrade [--db URL]     create the database or bring it to this version
    therapy-console db current [--db URL]     show the schema version and the latest one

``--db`` takes a URL (``sqlite:///PATH``, ``postgresql+psycopg://USER@HOST:PORT/DB``) or a plain
path to a SQLite file; without it ``THERAPY_CONSOLE_DB`` is used, else the SQLite file in the
user's data folder.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from console.cli import EXIT_AUTH, EXIT_DATABASE, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError

if TYPE_CHECKING:
    from audit.store import RecordStore
    from audit.trail import AuditTrail
    from audit.users import UserDirectory
    from console.auth import AuthService, SignedInUser


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL or SQLite file path (default: $THERAPY_CONSOLE_DB, else the SQLite "
        "file in the user's data folder)",
    )


def add_sign_in_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        required=required,
        help="the user running the command (an admin); the password is asked for",
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read passwords from standard input, one per line, instead of prompting: first "
        "the --as user's, then the new one (for scripts)",
    )


@dataclass(frozen=True)
class Records:
    """The open record store with this installation's trail, users and sign-in service."""

    url: str
    store: RecordStore
    trail: AuditTrail
    users: UserDirectory
    auth: AuthService

    def close(self) -> None:
        self.store.dispose()


def open_records(db: str | None) -> Records:
    """Open the database and this installation's checkpoint key (created on first run)."""
    from audit.errors import AuditError
    from audit.keys import load_or_create_signer
    from audit.store import open_store
    from audit.trail import AuditTrail
    from audit.users import UserDirectory
    from console import paths
    from console.app_logging import configure_logging
    from console.auth import AuthService

    configure_logging()
    url = paths.resolve_db_url(db)
    try:
        store = open_store(url)
    except AuditError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from exc
    try:
        signer, created = load_or_create_signer(paths.signing_key_path())
        workstation = paths.workstation_id()
        trail = AuditTrail(store, signer, workstation, witness_path=paths.witness_path())
        trail.register_signer(created)
    except (AuditError, ValueError) as exc:
        store.dispose()
        raise CommandError(str(exc), EXIT_FAILURE) from exc
    users = UserDirectory(trail)
    return Records(url, store, trail, users, AuthService(users, workstation=workstation))


def read_secret(prompt: str, from_stdin: bool, *, confirm: bool = False) -> str:
    """A password from stdin (one line) or typed at a prompt (twice when ``confirm``)."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CommandError(
                f"expected a non-empty line on standard input for: {prompt.rstrip(': ')}",
                EXIT_USAGE,
            )
        return line
    try:
        secret = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat it: ") != secret:
            raise CommandError("the two passwords differ; nothing was changed", EXIT_USAGE)
    except EOFError:
        raise CommandError(
            "no password given (use --password-stdin in scripts)", EXIT_USAGE
        ) from None
    return secret


def sign_in(records: Records, user_id: str, from_stdin: bool, action: str) -> SignedInUser:
    """Sign ``user_id`` in (password from stdin or a prompt) and check ``action``."""
    from console.auth import AuthError

    password = read_secret(f"Password for {user_id}: ", from_stdin)
    try:
        user = records.auth.login(user_id, password)
        records.auth.require(user, action)
    except AuthError as exc:
        raise CommandError(str(exc), EXIT_AUTH) from exc
    return user


def _upgrade(args: argparse.Namespace) -> int:
    from audit.errors import AuditError
    from audit.migrate import head_revision, upgrade
    from audit.store import describe, normalise_url
    from console import paths

    url = paths.resolve_db_url(args.db)
    try:
        revision = upgrade(url, **_migration_signer())
        shown = describe(normalise_url(url))
    except AuditError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from exc
    print(f"{shown}: schema {revision} (latest {head_revision()})")
    return EXIT_OK


def _migration_signer() -> dict[str, Any]:
    """This console's key, when it has one, for a migration that appends audit events (0004
    signs a checkpoint after them); without it the next checkpoint signs them."""
    from audit.keys import load_or_create_signer
    from console import paths

    key = paths.signing_key_path()
    if not key.exists():
        return {}
    return {"signer": load_or_create_signer(key)[0], "workstation": paths.workstation_id()}


def _current(args: argparse.Namespace) -> int:
    from audit.errors import AuditError
    from audit.migrate import current_revision, head_revision
    from audit.store import describe, open_store
    from console import paths

    try:
        store = open_store(paths.resolve_db_url(args.db), check_schema=False)
    except AuditError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from exc
    try:
        current = current_revision(store)
    finally:
        store.dispose()
    head = head_revision()
    state = "up to date" if current == head else "run `therapy-console db upgrade`"
    print(f"{describe(store.url)}: schema {current or 'none'} (latest {head}): {state}")
    return EXIT_OK if current == head else EXIT_FAILURE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="create or migrate the clinic's database (SQLite file or PostgreSQL)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    commands = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = commands.add_parser(
        "upgrade", help="create the database or migrate it to this version's schema"
    )
    add_db_argument(up)
    up.set_defaults(handler=_upgrade)
    current = commands.add_parser("current", help="show the schema version (exit 1 if old)")
    add_db_argument(current)
    current.set_defaults(handler=_current)
    from console.dbcheck import add_check_parser

    add_check_parser(commands)
