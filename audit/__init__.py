"""The clinical record store and its tamper-evident audit trail. No Qt, no device I/O.

Public entry points (everything returned is a frozen value; no ORM object leaves ``audit/``):

- ``open_store(url)`` / ``migrate.upgrade(url)``: the database (SQLite file or PostgreSQL);
- ``AuditTrail``: append events, checkpoints, corrections, queries;
- ``verify_store`` / ``verify_file``: check a trail, every problem with its seq;
- ``export``: JSONL, CSV and FHIR R4B exports;
- repositories for users, patients, programmes and treatment sessions (with signatures).
"""

from __future__ import annotations

from audit.errors import (
    AuditDataError,
    AuditError,
    DuplicateRecord,
    NotFound,
    RecordLocked,
    SchemaNotCurrent,
    SigningKeyError,
    StoreError,
)
from audit.events import Actor, AuditEvent, Subject
from audit.export import ExportResult, export_trail
from audit.keys import CheckpointSigner, PublicKey, load_or_create_signer, load_public_keys
from audit.store import RecordStore, open_store
from audit.trail import AuditTrail, TrailHead
from audit.verify import Problem, VerificationReport, verify_file, verify_store

__all__ = [
    "Actor",
    "AuditDataError",
    "AuditError",
    "AuditEvent",
    "AuditTrail",
    "CheckpointSigner",
    "DuplicateRecord",
    "ExportResult",
    "NotFound",
    "Problem",
    "PublicKey",
    "RecordLocked",
    "RecordStore",
    "SchemaNotCurrent",
    "SigningKeyError",
    "StoreError",
    "Subject",
    "TrailHead",
    "VerificationReport",
    "export_trail",
    "load_or_create_signer",
    "load_public_keys",
    "open_store",
    "verify_file",
    "verify_store",
]
