"""Application logs: structlog JSON lines in a rotating file in the user's log folder.

Each line carries the bound context (``session_id``, ``user_id``, ``device_id``; bind them with
``bind_context``) so an incident can be followed across threads. The logs are for engineers, not
the clinical record: they must never hold patient identifying data. The ``redact_identifying``
processor removes any key that names such data (birth date, names, address, contact details …)
at any depth, for structlog and standard-library records alike, and says which keys it removed.
The only patient identifier allowed is the pseudonymous id (``patient_id``).
"""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import structlog

from console import paths

LOG_FILE_NAME = "therapy-console.log"
MAX_BYTES = 5_000_000
BACKUP_COUNT = 10
#: keys that name patient identifying data (compared lower-case, also as suffixes like
#: ``patient_birth_date``); the pseudonymous ``patient_id`` is not among them
IDENTIFYING_KEYS = frozenset(
    {
        "birth_date",
        "birthdate",
        "date_of_birth",
        "dob",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "patient_name",
        "address",
        "street",
        "postcode",
        "zip_code",
        "city",
        "phone",
        "telephone",
        "email",
        "ssn",
        "social_security_number",
        "national_id",
        "insurance_number",
        "mrn",
        "medical_record_number",
        "password",
        "password_hash",
    }
)
#: also refused as the last part of a longer key (``patient_birth_date``, ``contact_email``);
#: a bare ``name`` is not, so ``file_name`` or ``device_name`` stay
_SUFFIXES = tuple(
    "_" + key
    for key in IDENTIFYING_KEYS
    if "_" in key or key in ("dob", "ssn", "mrn", "email", "phone", "address", "birthdate")
)
_HANDLER_MARK = "_therapy_console_handler"


def _identifying(key: str) -> bool:
    lowered = key.lower()
    return lowered in IDENTIFYING_KEYS or lowered.endswith(_SUFFIXES)


def _scrub(value: Any, removed: set[str]) -> Any:
    if isinstance(value, Mapping):
        kept = {}
        for key, item in value.items():
            if isinstance(key, str) and _identifying(key):
                removed.add(key)
            else:
                kept[key] = _scrub(item, removed)
        return kept
    if isinstance(value, list | tuple):
        return [_scrub(item, removed) for item in value]
    return value


def redact_identifying(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop patient identifying keys anywhere in the event."""
    removed: set[str] = set()
    for key in list(event_dict):
        if key in ("event", "level", "timestamp", "logger"):
            continue
        if _identifying(key):
            removed.add(key)
            del event_dict[key]
        else:
            event_dict[key] = _scrub(event_dict[key], removed)
    if removed:
        event_dict["redacted_keys"] = sorted(removed)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_identifying,
    ]


def configure_logging(
    folder: Path | None = None,
    *,
    level: int | str = logging.INFO,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> Path:
    """Send structlog and standard-library logging to ``folder/therapy-console.log`` (JSON
    lines, rotated at ``max_bytes``). Returns the log file path. Calling it again replaces the
    previous handler (no duplicate lines)."""
    folder = Path(folder) if folder is not None else paths.log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_FILE_NAME
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_identifying,  # again: stdlib records enter through foreign_pre_chain
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
            ],
        )
    )
    root = logging.getLogger()
    shutdown_logging()
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return path


def shutdown_logging() -> None:
    """Remove and close the console's log handler (tests, shutdown)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()


def bind_context(
    *,
    session_id: str | None = None,
    user_id: str | None = None,
    device_id: str | None = None,
    patient_id: str | None = None,
) -> None:
    """Bind ids to every log line of this thread/context from now on (None leaves a key)."""
    values = {
        "session_id": session_id,
        "user_id": user_id,
        "device_id": device_id,
        "patient_id": patient_id,
    }
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def unbind_context(*keys: str) -> None:
    structlog.contextvars.unbind_contextvars(*keys)


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()


def get_logger(name: str | None = None) -> Any:
    """A structlog logger over the standard library's: silent (INFO) until ``configure_logging``
    has run, then JSON lines in the log file."""
    return structlog.wrap_logger(logging.getLogger(name))
