"""Anchors outside the database: what reveals a truncated or rebuilt trail.

Someone who can drop the triggers can delete the tail of the trail, or rebuild all of it; what
remains is internally consistent. It is caught by comparing with something kept elsewhere:

- the *witness file* in this installation's data folder, where every checkpoint this console
  signs is also recorded (seq and hash of the checkpoint, outside the database);
- an earlier export (JSONL) an auditor kept.

An ``Anchor`` says "the trail must contain seq N with hash H". Witness files only ever move
forward and are replaced atomically, so a crash never leaves one half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from audit.errors import AuditDataError


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    source: str


def read_witness(path: Path, database: str) -> Anchor | None:
    """The latest checkpoint this installation signed on ``database`` (None if none yet)."""
    entry = _read_all(path).get(database)
    if not isinstance(entry, dict):
        return None
    seq, digest = entry.get("seq"), entry.get("hash")
    if type(seq) is not int or not isinstance(digest, str):
        return None
    return Anchor(seq, digest, f"the witness file {path}")


def record_witness(path: Path, database: str, seq: int, digest: str) -> None:
    """Remember checkpoint ``seq``/``digest`` for ``database`` (never moves backwards)."""
    entries = _read_all(path)
    old = entries.get(database)
    if isinstance(old, dict) and type(old.get("seq")) is int and old["seq"] >= seq:
        return
    entries[database] = {"seq": seq, "hash": digest}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(entries, handle, sort_keys=True, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_all(path: Path) -> dict[str, object]:
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    return {}


def anchor_from_export(path: Path) -> Anchor:
    """The last event of an earlier JSONL export: the trail must still contain it unchanged."""
    last = None
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    last = line
    except OSError as exc:
        raise AuditDataError(f"cannot read the earlier export {path}: {exc}") from None
    if last is None:
        raise AuditDataError(f"the earlier export {path} holds no events")
    try:
        event = json.loads(last)
        seq, digest = event["seq"], event["hash"]
    except (ValueError, KeyError, TypeError):
        raise AuditDataError(f"the last line of {path} is not an audit event") from None
    if type(seq) is not int or not isinstance(digest, str):
        raise AuditDataError(f"the last line of {path} is not an audit event")
    return Anchor(seq, digest, f"the earlier export {path}")
