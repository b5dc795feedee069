"""Canonical JSON and the value rules of the audit trail (``shared/audit-format.md``).

Everything that is hashed or signed goes through here, so that the hash of an event written
today is the hash any verifier computes years later. The rules are strict on purpose: no
floating-point numbers anywhere (they do not survive a round trip through every JSON tool), ASCII
keys, integers inside the range every JSON reader keeps exact (±2**53−1, where RFC 8785 and
Python's encoder agree), and nothing that JSON cannot say (dates, decimals, bytes) slips in
converted behind the caller's back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from audit.errors import AuditDataError

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
MAX_SAFE_INT = 2**53 - 1

_canonical_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

#: the JSON encoder's own string quoting (``ensure_ascii=False``), used to assemble events fast
quote = encode_basestring


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


# The C encoder json.dumps uses, made once (json.dumps builds it again on every call); the same
# output as json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).
_c_encoder = (
    c_make_encoder(None, _refuse, encode_basestring, None, ":", ",", True, False, False)
    if c_make_encoder is not None
    else None
)


def canonical_json(value: Any) -> str:
    """Serialise a JSON value exactly as the format's canonical bytes (before UTF-8 encoding)."""
    if _c_encoder is None or isinstance(value, str):
        return _canonical_encoder.encode(value)
    return "".join(_c_encoder(value, 0))


def to_json_value(value: Any, where: str = "data") -> Any:
    """Return a plain-JSON copy of ``value`` or raise ``AuditDataError`` naming the bad part.

    Mappings (any ``Mapping``) become dicts, tuples become lists. Floats, decimals, dates and
    other types are refused with a message saying how to write them instead.
    """
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _check_text(value, where)
        return value
    if value is None or kind is bool:
        return value
    if kind is int:
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise AuditDataError(
                f"{where} is the integer {value}, outside ±(2**53−1); store it as a string"
            )
        return value
    if kind is dict or isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                raise AuditDataError(f"{where} has the key {key!r}; keys must be ASCII strings")
            result[key] = to_json_value(item, f"{where}.{key}")
        return result
    if kind is list or kind is tuple:
        return [to_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, bool | int | str) and not isinstance(value, float):
        # subclasses (an IntEnum, a StrEnum): stored as their plain value
        return to_json_value(str(value) if isinstance(value, str) else int(value), where)
    if isinstance(value, float):
        raise AuditDataError(
            f"{where} is a floating-point number ({value!r}); write it as a decimal string "
            f"(e.g. {str(value)!r}) or as an integer with the unit in the key name "
            "(e.g. pressure_cbar)"
        )
    hint = "a string"
    if hasattr(value, "isoformat"):
        hint = "an ISO string (value.isoformat())"
    elif type(value).__name__ == "Decimal":
        hint = "a decimal string (str(value))"
    raise AuditDataError(f"{where} is a {type(value).__name__} ({value!r}); write it as {hint}")


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AuditDataError(f"{where} is not valid Unicode text ({exc.reason})") from None


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``, e.g. ``2026-11-24T10:15:30.123456Z``."""
    if moment.tzinfo is None:
        raise AuditDataError("a timestamp must be timezone-aware (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def utc_now_ts() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def event_canonical_text(
    *,
    seq: int,
    ts: str,
    actor: str,
    role: str,
    workstation: str,
    action: str,
    subject_type: str,
    subject_id: str,
    data_json: str,
    prev: str,
    v: int = FORMAT_VERSION,
) -> str:
    """The canonical text of an event (without ``hash``), assembled without re-encoding data.

    ``data_json`` must already be canonical (``canonical_json``). Keys appear in sorted order:
    action, actor, data, prev, role, seq, subject{id, type}, ts, v, workstation. A test checks
    this equals ``canonical_json`` of the event object for arbitrary values.
    """
    return (
        f'{{"action":{quote(action)},"actor":{quote(actor)},"data":{data_json},'
        f'"prev":{quote(prev)},"role":{quote(role)},"seq":{seq},'
        f'"subject":{{"id":{quote(subject_id)},"type":{quote(subject_type)}}},'
        f'"ts":{quote(ts)},"v":{v},"workstation":{quote(workstation)}}}'
    )
