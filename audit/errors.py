"""The audit package's exceptions: one family, each message says what is wrong and what to do."""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error raised by ``audit/``."""


class StoreError(AuditError):
    """The database cannot be opened or used (dead URL, corrupt file, missing schema)."""


class SchemaNotCurrent(StoreError):
    """The database exists but its schema is missing or older than this version of the code."""


class AuditDataError(AuditError, ValueError):
    """A value cannot enter the record or the trail as given (a float, an unknown role …)."""


class NotFound(AuditError, LookupError):
    """The record asked for does not exist."""


class RecordLocked(AuditError):
    """The record is signed; change it only through an amendment with a reason."""


class DuplicateRecord(AuditError):
    """A record with that id already exists."""


class SigningKeyError(AuditError):
    """The checkpoint signing key cannot be created, read or trusted."""
