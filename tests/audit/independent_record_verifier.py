"""An independent verifier of the record projection, written from ``shared/audit-format.md``
("Record projection") alone.

It imports nothing from the console, only the standard library, as an auditor would. It checks
the record against the trail; that the trail itself verifies (hashes, links, signed
checkpoints) is ``independent_verifier.py``'s job, run first. Usage:

    python independent_record_verifier.py TRAIL.jsonl RECORDS.jsonl [UPTO_SEQ]

``UPTO_SEQ``: replay only the events up to that seq (a records export states the record as of
a seq; a trail exported later holds more events). Exit 0 when the record verifies; every
problem is printed as ``seq N: TYPE ID [field F]: why`` (seq 0: no event of the trail set the row).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

SIGNATURE_KEYS = {"signer", "meaning", "signed_at", "record_type", "record_id", "content_hash"}
Problem = tuple[int, str, str, str | None, str]  # seq, type, id, field, why


class _Float(Exception):
    pass


def _no_float(text: str) -> float:
    raise _Float(text)


def _load(line: str) -> Any:
    return json.loads(line, parse_float=_no_float, parse_constant=_no_float)


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _changed(old: dict, new: dict) -> str:
    return ",".join(sorted(k for k in set(old) | set(new) if old.get(k, ...) != new.get(k, ...)))


def replay(trail_lines: list[str], upto: int | None = None) -> tuple[dict, list[Problem]]:
    """Replay every ``data.record`` in seq order: {(type, id): (fields, seq)} and problems."""
    problems: list[Problem] = []
    events = []
    for number, line in enumerate(trail_lines, 1):
        if not line.strip():
            continue
        try:
            event = _load(line)
        except _Float as found:
            problems.append((0, "?", "?", None, f"trail line {number}: float {found}"))
            continue
        if upto is None or event["seq"] <= upto:
            events.append(event)
    events.sort(key=lambda e: e["seq"])
    current: dict[tuple[str, str], tuple[dict, int]] = {}
    performed: dict[tuple[str, str], set[int]] = {}
    for event in events:
        seq, data = event["seq"], event["data"]
        if not isinstance(data, dict) or "record" not in data:
            continue
        record = data["record"]
        if (
            not isinstance(record, dict)
            or set(record) != {"type", "id", "fields"}
            or not isinstance(record["fields"], dict)
        ):
            problems.append((seq, "?", "?", None, "data.record is not {type, id, fields}"))
            continue
        key = (record["type"], record["id"])
        fields = record["fields"]
        before = current.get(key)
        if key in performed and before is not None and before[0] != fields:
            reason = data.get("reason")
            if data.get("amends") not in performed[key] or not (
                isinstance(reason, str) and reason.strip()
            ):
                problems.append(
                    (
                        seq,
                        *key,
                        _changed(before[0], fields),
                        "changed after a 'performed' signature without an amendment "
                        "(amends = the signature's seq, and a reason)",
                    )
                )
        current[key] = (fields, seq)
        if record["type"] != "signature":
            continue
        missing = SIGNATURE_KEYS - set(fields)
        if missing:
            problems.append((seq, *key, None, f"signature lacks {sorted(missing)}"))
            continue
        target = (fields["record_type"], fields["record_id"])
        if target not in current:
            problems.append((seq, *key, "record_id", "signs a record the trail never recorded"))
            continue
        expected = hashlib.sha256(canonical_bytes(current[target][0])).hexdigest()
        if fields["content_hash"] != expected:
            problems.append(
                (seq, *key, "content_hash", "is not the hash of the signed record's fields")
            )
        if fields["meaning"] == "performed":
            performed.setdefault(target, set()).add(seq)
    return current, problems


def verify(
    trail_lines: list[str], record_lines: list[str], upto: int | None = None
) -> list[Problem]:
    """All problems; an empty list means the record verifies against the trail."""
    current, problems = replay(trail_lines, upto)
    previous: tuple[str, str] | None = None
    for number, line in enumerate(record_lines, 1):
        if not line.strip():
            continue
        try:
            row = _load(line)
        except (_Float, ValueError) as exc:
            problems.append((0, "?", "?", None, f"records line {number}: {exc}"))
            continue
        if not isinstance(row, dict) or set(row) != {"type", "id", "fields"}:
            problems.append((0, "?", "?", None, f"records line {number}: not {{type, id, fields}}"))
            continue
        key = (row["type"], row["id"])
        if previous is not None and key <= previous:
            problems.append((0, *key, None, f"records line {number}: not sorted by type then id"))
        previous = key
        if key not in current:
            problems.append((0, *key, None, "in the store, but no event of the trail set it"))
            continue
        fields, seq = current.pop(key)
        for name in sorted(set(fields) | set(row["fields"])):
            stored, replayed = row["fields"].get(name, ...), fields.get(name, ...)
            if stored != replayed or type(stored) is not type(replayed):
                problems.append((seq, *key, name, f"store {stored!r}, trail {replayed!r}"))
    for key, (_fields, seq) in sorted(current.items()):
        problems.append((seq, *key, None, "in the trail, but missing from the store"))
    return problems


def verify_files(trail: Path, records: Path, upto: int | None = None) -> list[Problem]:
    return verify(
        trail.read_text(encoding="utf-8").splitlines(),
        records.read_text(encoding="utf-8").splitlines(),
        upto,
    )


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or (len(argv) == 3 and not argv[2].isdigit()):
        print(
            "usage: independent_record_verifier.py TRAIL.jsonl RECORDS.jsonl [UPTO_SEQ]",
            file=sys.stderr,
        )
        return 2
    upto = int(argv[2]) if len(argv) == 3 else None
    problems = verify_files(Path(argv[0]), Path(argv[1]), upto)
    for seq, kind, rid, field, why in problems:
        where = f"{kind} {rid}" + (f" field {field}" if field else "")
        print(f"seq {seq}: {where}: {why}")
    print("VERIFIED" if not problems else f"FAILED ({len(problems)} problems)")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
