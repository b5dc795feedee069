"""``therapy-console audit``: verify, export and anchor the audit trail.

    therapy-console audit verify [--db URL] [--public-key PEM]... [--anchor EARLIER.jsonl]...
    therapy-console audit verify --file EXPORT.jsonl --public-key PEM
    therapy-console audit export --format jsonl|csv|fhir|records --out PATH [--db URL]
    therapy-console audit public-key --out PEM [--all]

``verify`` checks every event, link and signed checkpoint, then replays the trail's record
projection and compares it with every record table (users, patients, programmes and phases,
sessions, signatures); it prints every problem with its seq (and type, id and field for the
record) and exits 0 only when both the trail and the record verify. ``export --format records``
writes the store's record rows (audit-format.md, "Record projection"). Without
``--public-key`` it trusts the keys registered in the database and this installation's own
key; an auditor passes their own copy of the public key(s), which is what exposes a chain
rebuilt and re-signed with another key. The
checkpoints this console signed are also compared with its witness file, and ``--anchor``
compares with an earlier export: both reveal a truncated tail. Verification runs and exports are
audited; with ``--as USER`` they are attributed to that user (role checked), otherwise to
``system`` with the operating-system account that ran the command.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from console.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError, whole
from console.cli.db import Records, add_db_argument, add_sign_in_arguments, open_records, sign_in


def _actor_and_note(records: Records, args: argparse.Namespace, action: str) -> tuple[Any, dict]:
    from audit.events import Actor

    if args.as_user:
        user = sign_in(records, args.as_user, args.password_stdin, action)
        return user.actor, {"via": "cli"}
    return Actor.system(records.trail.workstation), {"via": "cli", "os_user": getpass.getuser()}


def _load_keys(files: list[Path]) -> dict[str, Any]:
    from audit.errors import SigningKeyError
    from audit.keys import load_public_keys

    keys: dict[str, Any] = {}
    for path in files:
        try:
            for key in load_public_keys(path):
                keys[key.key_id] = key
        except SigningKeyError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from exc
    return keys


def _anchors(files: list[Path]) -> list[Any]:
    from audit.errors import AuditDataError
    from audit.witness import anchor_from_export

    try:
        return [anchor_from_export(path) for path in files]
    except AuditDataError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc


def _print_report(report: Any) -> None:
    for problem in report.problems:
        print(f"seq {problem.seq}: {problem.message} [{problem.kind}]")
    print(report.summary())
    if report.ok:
        print(f"last hash {report.last_hash}; trusted keys: {', '.join(report.trusted_keys)}")


def _verify(args: argparse.Namespace) -> int:
    from audit.verify import trusted_keys_from_store, verify_file, verify_store
    from audit.witness import read_witness

    auditor_keys = _load_keys(args.public_key or [])
    anchors = _anchors(args.anchor or [])
    if args.file is not None:
        if not auditor_keys:
            raise CommandError(
                "verifying an export file needs the trusted --public-key PEM", EXIT_USAGE
            )
        if not args.file.is_file():
            raise CommandError(f"there is no file {args.file}", EXIT_USAGE)
        report = verify_file(args.file, auditor_keys, anchors=anchors)
        _print_report(report)
        return EXIT_OK if report.ok else EXIT_FAILURE

    from audit.store import describe

    records = open_records(args.db)
    try:
        actor, note = _actor_and_note(records, args, "verify_audit")
        if auditor_keys:
            keys = auditor_keys
        else:
            keys, _ = trusted_keys_from_store(records.store)
            keys[records.trail.signer.key_id] = records.trail.signer.public
        witness = read_witness(
            records.trail.witness_path or Path("/nonexistent"), describe(records.store.url)
        )
        if witness is not None:
            anchors.append(witness)
        report = verify_store(records.store, keys=keys, anchors=anchors, workers=args.workers)
        _print_report(report)
        from audit.events import Subject
        from audit.records import verify_records

        record = verify_records(records.store)
        for problem in record.problems:
            print(f"{problem} [{problem.kind}]")
        print(record.summary())

        records.trail.append(
            actor,
            "audit.verified",
            Subject("trail", "audit"),
            {
                "ok": report.ok,
                "events": report.events,
                "last_seq": report.last_seq,
                "problems": len(report.problems),
                "first_failing_seq": report.first_failing_seq,
                "trusted_keys": list(report.trusted_keys),
                "auditor_keys": bool(auditor_keys),
                "record_ok": record.ok,
                "record_rows": record.records,
                "record_problems": len(record.problems),
                **note,
            },
        )
        return EXIT_OK if report.ok and record.ok else EXIT_FAILURE
    finally:
        records.close()


def _export(args: argparse.Namespace) -> int:
    from audit.errors import AuditError
    from audit.export import export_trail

    if args.out.exists() and args.out.is_dir():
        raise CommandError(f"{args.out} is a folder; give a file name", EXIT_USAGE)
    if not args.out.parent.is_dir():
        raise CommandError(f"the folder {args.out.parent} does not exist", EXIT_USAGE)
    records = open_records(args.db)
    if args.format == "records":
        return _export_records(records, args)
    try:
        actor, note = _actor_and_note(records, args, "export_audit")
        result = export_trail(records.trail, actor, args.format, args.out, note=note)
    except AuditError as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from exc
    finally:
        records.close()
    print(
        f"exported {result.events} events (seq 1..{result.last_seq}, ending with a signed "
        f"checkpoint) to {result.path} as {result.format}; sha256 {result.sha256}"
    )
    return EXIT_OK


def _export_records(records: Records, args: argparse.Namespace) -> int:
    """The store's record rows, one ``{"type", "id", "fields"}`` per line; audited."""
    from audit.events import Subject
    from audit.records import export_records

    try:
        actor, note = _actor_and_note(records, args, "export_audit")
        result = export_records(records.store, args.out)
        records.trail.append(
            actor,
            "audit.exported",
            Subject("trail", "audit"),
            {
                "format": "records",
                "records": result.records,
                "last_seq": result.last_seq,
                "file_name": result.path.name,
                "file_sha256": result.sha256,
                **note,
            },
        )
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}", EXIT_FAILURE) from exc
    finally:
        records.close()
    print(
        f"exported {result.records} record rows (the trail's record up to seq "
        f"{result.last_seq}) to {result.path}; sha256 {result.sha256}"
    )
    return EXIT_OK


def _public_key(args: argparse.Namespace) -> int:
    from audit.verify import trusted_keys_from_store

    records = open_records(args.db)
    try:
        if args.all:
            keys, problems = trusted_keys_from_store(records.store)
            for problem in problems:
                print(f"warning: {problem}", file=sys.stderr)
            chosen = [keys[key_id] for key_id in sorted(keys)]
        else:
            chosen = [records.trail.signer.public]
    finally:
        records.close()
    try:
        args.out.write_text("".join(key.pem for key in chosen), encoding="ascii")
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}", EXIT_FAILURE) from exc
    key_ids = ", ".join(key.key_id for key in chosen)
    print(f"wrote {len(chosen)} public key(s) ({key_ids}) to {args.out}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="verify and export the tamper-evident audit trail, export the public key",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    commands = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    verify = commands.add_parser(
        "verify", help="check the whole trail; exit 0 only when it verifies"
    )
    add_db_argument(verify)
    verify.add_argument(
        "--public-key",
        type=Path,
        action="append",
        metavar="PEM",
        help="trust only these public keys (an auditor's own copy); repeatable",
    )
    verify.add_argument(
        "--anchor",
        type=Path,
        action="append",
        metavar="EXPORT",
        help="an earlier JSONL export whose last event the trail must still contain",
    )
    verify.add_argument(
        "--file", type=Path, metavar="JSONL", help="verify this export file, not the database"
    )
    verify.add_argument(
        "--workers", type=whole(1, 256), default=None, help="processes to use (default: automatic)"
    )
    add_sign_in_arguments(verify, required=False)
    verify.set_defaults(handler=_verify)

    export = commands.add_parser(
        "export", help="export the trail (JSONL, CSV or FHIR R4B) or the record rows (records)"
    )
    export.add_argument("--format", required=True, choices=("jsonl", "csv", "fhir", "records"))
    export.add_argument("--out", required=True, type=Path, metavar="PATH")
    add_db_argument(export)
    add_sign_in_arguments(export, required=False)
    export.set_defaults(handler=_export)

    public = commands.add_parser(
        "public-key", help="write this installation's checkpoint public key (PEM) for auditors"
    )
    public.add_argument("--out", required=True, type=Path, metavar="PEM")
    public.add_argument(
        "--all", action="store_true", help="every key registered in the database, not only ours"
    )
    add_db_argument(public)
    public.set_defaults(handler=_public_key)
