"""Exports of the whole trail for auditors: JSONL, CSV or FHIR, each with the public key beside it.

``audit/export.py`` does the work (a signed checkpoint first, streamed rows, the file's SHA-256,
an ``audit.exported`` event); this adds the permission check and writes the public key(s) that
verify the checkpoints as a PEM file next to the export, so the auditor gets both at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit.errors import AuditDataError
from audit.export import FORMATS, export_trail
from audit.trail import AuditTrail
from console.admin.review import public_key_pem
from console.auth import AuthService, SignedInUser

SUFFIX = {"jsonl": ".jsonl", "csv": ".csv", "fhir": ".fhir.json"}


class ExportError(ValueError):
    """The export cannot be written where asked; the message says what to change."""


@dataclass(frozen=True, slots=True)
class TrailExport:
    path: Path
    public_key_path: Path
    format: str
    events: int
    last_seq: int
    last_hash: str
    sha256: str


def public_key_path_for(out: Path) -> Path:
    """``trail.jsonl`` → ``trail.jsonl.public-key.pem``."""
    return out.with_name(out.name + ".public-key.pem")


class TrailExports:
    def __init__(self, auth: AuthService, trail: AuditTrail) -> None:
        self.auth = auth
        self.trail = trail

    def export(
        self,
        user: SignedInUser,
        fmt: str,
        out: Path,
        progress: Callable[[int], None] | None = None,
    ) -> TrailExport:
        """Export the trail as ``fmt`` to ``out`` and its public key beside it."""
        self.auth.require(user, "export_audit")
        if fmt not in FORMATS:
            raise ExportError(f"the export format is one of {', '.join(FORMATS)}, not {fmt!r}")
        out = Path(out)
        if out.is_dir():
            raise ExportError(f"{out} is a folder: give a file name to write")
        if not out.parent.is_dir():
            raise ExportError(f"the folder {out.parent} does not exist: choose another place")
        key_path = public_key_pem(self.trail, public_key_path_for(out))
        try:
            result = export_trail(
                self.trail,
                user.actor,
                fmt,
                out,
                progress=progress,
                note={"via": "admin_console", "public_key_file": key_path.name},
            )
        except AuditDataError as exc:
            raise ExportError(str(exc)) from exc
        return TrailExport(
            result.path,
            key_path,
            result.format,
            result.events,
            result.last_seq,
            result.last_hash,
            result.sha256,
        )
