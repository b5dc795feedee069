"""``therapy-console db check``: can this console use that database? For a service engineer.

    therapy-console db check [--db URL]

Reports, one line each, and exits 0 only when every line is well:

- reach: the database answers (a dead server or a wrong URL gets a clear line, not a trace);
- schema: its schema revision against this program's (older: run ``db upgrade``; newer: this
  program is too old for it);
- guard: the audit trail's append-only triggers are in place (the database refuses UPDATE and
  DELETE of audit rows);
- rights: the connected role can read and append audit events (PostgreSQL), or this OS user can
  write the file (SQLite); a role that could also UPDATE or DELETE audit rows is named (the
  triggers still refuse, but the consoles should use the least-privilege role);
- trail: the audit trail verifies (every hash, link and signed checkpoint; keys registered in the
  database; an auditor uses ``therapy-console audit verify --public-key``).

It only reads: nothing is written to the database, not even an audit event.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import migrate
from audit.errors import AuditError
from audit.store import RecordStore, describe, normalise_url, open_store

AUDIT_TABLE = "audit_events"


@dataclass(frozen=True, slots=True)
class CheckLine:
    name: str
    ok: bool
    text: str

    def render(self) -> str:
        return f"{self.name:<7}{'ok' if self.ok else 'FAILED':<8}{self.text}"


@dataclass(frozen=True, slots=True)
class DbCheckReport:
    database: str
    lines: tuple[CheckLine, ...]

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.lines)

    def render(self) -> str:
        rows = [f"{'db':<15}{self.database}", *(line.render() for line in self.lines)]
        failed = [line.name for line in self.lines if not line.ok]
        rows.append(
            "db check: all well"
            if not failed
            else f"db check: {len(failed)} problem(s): {', '.join(failed)}"
        )
        return "\n".join(rows)


def check_database(url_or_path: str) -> DbCheckReport:
    """Run every check against the database; never raises for a database problem."""
    try:
        shown = describe(normalise_url(url_or_path))
    except AuditError as exc:
        return DbCheckReport(url_or_path, (CheckLine("reach", False, str(exc)),))
    started = time.perf_counter()
    try:
        store = open_store(url_or_path, check_schema=False)
    except AuditError as exc:
        return DbCheckReport(shown, (CheckLine("reach", False, str(exc)),))
    lines: list[CheckLine] = []
    try:
        lines.append(_reach(store, started))
        lines.append(_schema(store))
        if _has_table(store, AUDIT_TABLE):
            lines += [_guard(store), _rights(store), _trail(store)]
        else:
            lines.append(CheckLine("trail", False, "no audit trail: the schema is missing"))
    except AuditError as exc:  # e.g. the server went away half-way
        lines.append(CheckLine("error", False, str(exc)))
    finally:
        store.dispose()
    return DbCheckReport(shown, tuple(lines))


def _reach(store: RecordStore, started: float) -> CheckLine:
    with store.connection() as conn:
        if store.is_postgres:
            version = conn.exec_driver_sql("SHOW server_version").scalar_one()
            role = conn.exec_driver_sql("SELECT current_user").scalar_one()
            what = f"PostgreSQL {version}, connected as {role}"
        else:
            version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
            what = f"SQLite {version} file {store.url.database}"
    return CheckLine("reach", True, f"{what} ({(time.perf_counter() - started) * 1000:.0f} ms)")


def _schema(store: RecordStore) -> CheckLine:
    current, head = migrate.current_revision(store), migrate.head_revision()
    if current == head:
        return CheckLine("schema", True, f"{current} (this program's latest: {head})")
    if current is None:
        return CheckLine(
            "schema",
            False,
            f"none: the database is empty (this program's: {head}); create it with "
            "`therapy-console db upgrade` (a clinic server: docs/clinic-server.md)",
        )
    from console.firstrun import known_revisions

    if current in known_revisions():
        return CheckLine(
            "schema",
            False,
            f"{current} is older than this program's {head}: back it up and run "
            "`therapy-console db upgrade` with the same --db (on a server: the owner role)",
        )
    return CheckLine(
        "schema",
        False,
        f"{current} is newer than this program knows (latest {head}): install the newer "
        "therapy-console on this console",
    )


def _has_table(store: RecordStore, table: str) -> bool:
    with store.connection() as conn:
        if store.is_postgres:
            return bool(conn.exec_driver_sql("SELECT to_regclass(%s)", (table,)).scalar_one())
        return bool(
            conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).scalar_one()
        )


def _guard(store: RecordStore) -> CheckLine:
    with store.connection() as conn:
        if store.is_postgres:
            rows = conn.exec_driver_sql(
                "SELECT t.tgtype FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                "WHERE t.tgrelid = %s::regclass AND t.tgenabled <> 'D' AND NOT t.tgisinternal "
                "AND p.proname = 'refuse_append_only_change'",
                (AUDIT_TABLE,),
            ).all()
            # tgtype bits: 8 DELETE, 16 UPDATE, 32 TRUNCATE (pg_trigger.h)
            verbs = {v for (t,) in rows for bit, v in ((16, "UPDATE"), (8, "DELETE")) if t & bit}
        else:
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                (AUDIT_TABLE,),
            ).all()
            verbs = {
                verb
                for (text,) in sql
                for verb in ("UPDATE", "DELETE")
                if f"BEFORE {verb} ON {AUDIT_TABLE}" in (text or "") and "RAISE(ABORT" in text
            }
    missing = sorted({"UPDATE", "DELETE"} - verbs)
    if missing:
        return CheckLine(
            "guard",
            False,
            f"{AUDIT_TABLE} does not refuse {' and '.join(missing)}: the append-only trigger is "
            "missing or disabled; the trail is not protected (call the service engineer)",
        )
    return CheckLine("guard", True, f"{AUDIT_TABLE} refuses UPDATE and DELETE (triggers present)")


def _rights(store: RecordStore) -> CheckLine:
    if not store.is_postgres:
        path = Path(store.url.database or "")
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        user = _os_user()
        if writable:
            return CheckLine("rights", True, f"{user} can write the file and its folder")
        return CheckLine(
            "rights",
            False,
            f"{user} cannot write {path} or its folder: the console could not record anything",
        )
    with store.connection() as conn:
        granted = {
            verb: bool(
                conn.exec_driver_sql(
                    "SELECT has_table_privilege(current_user, %s, %s)", (AUDIT_TABLE, verb)
                ).scalar_one()
            )
            for verb in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
        }
    if not (granted["SELECT"] and granted["INSERT"]):
        lacking = [v for v in ("SELECT", "INSERT") if not granted[v]]
        return CheckLine(
            "rights",
            False,
            f"this role lacks {' and '.join(lacking)} on {AUDIT_TABLE}: run the clinic server's "
            "grants script (docs/clinic-server.md)",
        )
    extra = [v for v in ("UPDATE", "DELETE", "TRUNCATE") if granted[v]]
    if extra:
        return CheckLine(
            "rights",
            True,
            f"can read and append audit events; this role may also {', '.join(extra)} them "
            "(the triggers refuse; consoles should use the least-privilege console role)",
        )
    return CheckLine("rights", True, "can read and append audit events; cannot update or delete")


def _trail(store: RecordStore) -> CheckLine:
    from audit.records import verify_records
    from audit.verify import verify_store

    report = verify_store(store)
    record = verify_records(store)
    text = (
        f"{report.events:,} events, {report.checkpoints} signed checkpoints, last seq "
        f"{report.last_seq}: {'VERIFIED' if report.ok else 'FAILED'}; record of "
        f"{record.records:,} rows: {'VERIFIED' if record.ok else 'FAILED'}"
    )
    count = len(report.problems) + len(record.problems)
    if count:
        first = str(report.problems[0] if report.problems else record.problems[0])
        text += (
            f" — {count} problem(s), first at {first}; "
            "`therapy-console audit verify` lists them all"
        )
    return CheckLine("trail", report.ok and record.ok, text)


def _os_user() -> str:
    import getpass

    try:
        return f"the OS user {getpass.getuser()}"
    except (KeyError, OSError):
        return "this OS user"


# --------------------------------------------------------------------------- the command
def run_check_command(args: argparse.Namespace) -> int:
    """Handler of ``therapy-console db check``: print the report; 0 only when all is well."""
    from console import paths

    report = check_database(paths.resolve_db_url(args.db))
    print(report.render())
    return 0 if report.ok else 1


def add_check_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``check`` to the ``db`` command's sub-parsers (called from ``console/cli/db.py``)."""
    parser = commands.add_parser(
        "check",
        help="can a console use the database: reach, schema, guard, rights, trail (exit 1 if not)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL or SQLite file path (default: $THERAPY_CONSOLE_DB, else the SQLite "
        "file in the user's data folder)",
    )
    parser.set_defaults(handler=run_check_command)
    return parser
