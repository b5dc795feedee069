"""Exports of the trail: JSONL (the format's own), CSV, and a FHIR R4B Bundle.

Every export first signs the head of the trail (a checkpoint), so the file ends with a signed
event an auditor can check with the public key alone, and is itself audited (``audit.exported``,
after the file is written, with the file's SHA-256). Events are streamed from the database in
batches, never loaded all at once (except for the FHIR Bundle, which is one JSON document).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.canonical import event_canonical_text
from audit.errors import AuditDataError
from audit.events import Actor, Subject
from audit.schema import AUDIT_COLUMNS
from audit.trail import AuditTrail

FORMATS = ("jsonl", "csv", "fhir")
BATCH = 10_000


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    format: str
    events: int
    last_seq: int
    last_hash: str
    sha256: str


def iter_rows(trail: AuditTrail, upto_seq: int) -> Iterator[tuple[Any, ...]]:
    """Rows of ``audit_events`` with seq ≤ ``upto_seq`` in seq order, streamed."""
    mark = "?" if trail.store.dialect == "sqlite" else "%s"
    sql = (
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events WHERE seq > {mark} "
        f"AND seq <= {mark} ORDER BY seq LIMIT {BATCH}"
    )
    after = 0
    while True:
        with trail.store.connection() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, (after, upto_seq))
                rows = cursor.fetchall()
            finally:
                cursor.close()
        if not rows:
            return
        yield from (tuple(r) for r in rows)
        after = rows[-1][0]


def jsonl_line(row: tuple[Any, ...]) -> str:
    """One event as a JSON line: its canonical text with ``hash`` added (data exactly as
    stored, so the export hashes exactly as the database does)."""
    seq, v, ts, actor, role, ws, action, stype, sid, data, prev, digest = row
    text = event_canonical_text(
        seq=seq,
        ts=ts,
        actor=actor,
        role=role,
        workstation=ws,
        action=action,
        subject_type=stype,
        subject_id=sid,
        data_json=data,
        prev=prev,
        v=v,
    )
    return f'{text[:-1]},"hash":"{digest}"}}\n'


def export_trail(
    trail: AuditTrail,
    actor: Actor,
    fmt: str,
    out: Path,
    *,
    progress: Callable[[int], None] | None = None,
    note: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Checkpoint, write the whole trail to ``out`` in ``fmt``, then audit the export
    (``note``: extra details for the ``audit.exported`` event, e.g. who ran the CLI)."""
    if fmt not in FORMATS:
        raise AuditDataError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise AuditDataError(f"{out} is a folder; give a file name to write")
    head = trail.checkpoint()
    digest = hashlib.sha256()
    count = 0
    tmp = out.with_name(f".{out.name}.partial")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = _HashingWriter(handle, digest)
        if fmt == "jsonl":
            for row in iter_rows(trail, head.seq):
                writer.write(jsonl_line(row))
                count += 1
                if progress is not None and count % BATCH == 0:
                    progress(count)
        elif fmt == "csv":
            table = csv.writer(writer, lineterminator="\n")
            table.writerow(AUDIT_COLUMNS)
            for row in iter_rows(trail, head.seq):
                table.writerow(row)
                count += 1
                if progress is not None and count % BATCH == 0:
                    progress(count)
        else:
            from audit.fhir_export import fhir_bundle_json

            text, count = fhir_bundle_json(trail, head.seq)
            writer.write(text)
    tmp.replace(out)
    result = ExportResult(out, fmt, count, head.seq, head.hash, digest.hexdigest())
    trail.append(
        actor,
        "audit.exported",
        Subject("trail", "audit"),
        {
            "format": fmt,
            "events": count,
            "last_seq": head.seq,
            "last_hash": head.hash,
            "file_name": out.name,
            "file_sha256": result.sha256,
            **dict(note or {}),
        },
    )
    return result


class _HashingWriter(io.TextIOBase):
    """Writes text to a file and feeds its UTF-8 bytes to a hash (the file's SHA-256)."""

    def __init__(self, handle: Any, digest: Any) -> None:
        self._handle = handle
        self._digest = digest

    def write(self, text: str) -> int:
        self._digest.update(text.encode("utf-8"))
        return self._handle.write(text)
