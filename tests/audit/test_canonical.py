"""Canonical JSON and the value rules: what is hashed is what any verifier recomputes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.canonical import (
    MAX_SAFE_INT,
    canonical_json,
    event_canonical_text,
    format_ts,
    to_json_value,
    utc_now_ts,
)
from audit.errors import AuditDataError

pytestmark = pytest.mark.req("AUD-CHAIN-1")

ascii_keys = st.text(alphabet=st.characters(max_codepoint=127), max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ascii_keys, inner, max_size=4),
    max_leaves=20,
)


def _reference(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@given(json_values)
def test_canonical_json_is_the_formats_serialisation(value: object) -> None:
    assert canonical_json(value) == _reference(value)
    assert to_json_value(value) == value


@given(
    seq=st.integers(min_value=1, max_value=MAX_SAFE_INT),
    texts=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10),
        min_size=6,
        max_size=6,
    ),
    data=st.dictionaries(ascii_keys, json_values, max_size=4),
)
def test_assembled_event_text_equals_canonical_json_of_the_event(
    seq: int, texts: list[str], data: dict
) -> None:
    actor, role, workstation, action, subject_type, subject_id = texts
    event = {
        "v": 1,
        "seq": seq,
        "ts": "2026-11-24T10:15:30.123456Z",
        "actor": actor,
        "role": role,
        "workstation": workstation,
        "action": action,
        "subject": {"type": subject_type, "id": subject_id},
        "data": data,
        "prev": "0" * 64,
    }
    assembled = event_canonical_text(
        seq=seq,
        ts=event["ts"],
        actor=actor,
        role=role,
        workstation=workstation,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        data_json=canonical_json(data),
        prev="0" * 64,
    )
    assert assembled == _reference(event)


@pytest.mark.req("AUD-FLOAT-1")
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"pressure": 2.5},
            "data.pressure is a floating-point number (2.5); write it as a decimal string",
        ),
        ({"a": [1, {"b": 1.0}]}, "data.a[1].b is a floating-point number"),
        (
            {"p": Decimal("2.5")},
            "data.p is a Decimal (Decimal('2.5')); write it as a decimal string (str(value))",
        ),
        ({"d": date(2026, 1, 2)}, "write it as an ISO string (value.isoformat())"),
        ({"x": b"bytes"}, "data.x is a bytes"),
        ({"x": {1, 2}}, "data.x is a set"),
        ({"big": 2**53}, "outside ±(2**53−1)"),
        ({"schlüssel": 1}, "keys must be ASCII strings"),
        ({1: "x"}, "keys must be ASCII strings"),
        ({"s": "\udc80"}, "not valid Unicode text"),
    ],
)
def test_values_json_cannot_hold_exactly_are_refused_with_a_fix(
    value: object, message: str
) -> None:
    with pytest.raises(AuditDataError) as info:
        to_json_value(value)
    assert message in str(info.value)


def test_mappings_and_tuples_become_plain_json() -> None:
    from types import MappingProxyType

    value = MappingProxyType({"a": (1, 2), "b": MappingProxyType({"c": True})})
    assert to_json_value(value) == {"a": [1, 2], "b": {"c": True}}


def test_timestamps_are_rfc3339_utc_with_microseconds_and_z() -> None:
    moment = datetime(2026, 11, 24, 11, 15, 30, 0, tzinfo=timezone(timedelta(hours=1)))
    assert format_ts(moment) == "2026-11-24T10:15:30.000000Z"
    now = utc_now_ts()
    assert len(now) == 27 and now.endswith("Z") and now[10] == "T" and now[19] == "."
    assert abs(datetime.fromisoformat(now[:-1]).replace(tzinfo=UTC) - datetime.now(UTC)) < (
        timedelta(seconds=5)
    )
    with pytest.raises(AuditDataError, match="timezone-aware"):
        format_ts(datetime(2026, 1, 1))
