"""Every tamper class is detected with the seq named; an untouched trail raises no alarm.

The database refuses UPDATE and DELETE of the trail, so each attack here first does what an
attacker with file or superuser access would do: drop or disable the triggers (``attacker_sql``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from audit import AuditTrail, CheckpointSigner, RecordStore
from audit.canonical import canonical_json, event_canonical_text
from audit.export import export_trail, jsonl_line
from audit.verify import VerificationReport, verify_file, verify_store
from audit.witness import anchor_from_export, read_witness
from tests.audit.helpers import ADMIN, WORKSTATION, attacker_sql, fill, rows

pytestmark = pytest.mark.req("AUD-VERIFY-1")
UPDATE_ALL = (
    "UPDATE audit_events SET v=%s, ts=%s, actor=%s, role=%s, workstation=%s, action=%s, "
    "subject_type=%s, subject_id=%s, data=%s, prev=%s, hash=%s WHERE seq=%s"
)


@pytest.fixture
def small(store: RecordStore, signer: CheckpointSigner, tmp_path: Path) -> AuditTrail:
    """A trail of 30 events with a signed checkpoint after every 10th (seq 11, 21, 31)."""
    trail = AuditTrail(
        store, signer, WORKSTATION, checkpoint_every=10, witness_path=tmp_path / "witness.json"
    )
    trail.register_signer(created=True)
    fill(trail, 29)
    assert trail.get(31).action == "audit.checkpoint"
    return trail


def _verify(trail: AuditTrail, **kwargs: object) -> VerificationReport:
    keys = {trail.signer.key_id: trail.signer.public}
    return verify_store(trail.store, keys=keys, max_checkpoint_gap=11, **kwargs)  # type: ignore[arg-type]


def _kinds_at(report: VerificationReport, seq: int) -> set[str]:
    return {p.kind for p in report.problems if p.seq == seq}


def _rehash(row: tuple, prev: str, seq: int | None = None) -> tuple:
    """The row made self-consistent again with ``prev`` (what a forger computes)."""
    old_seq, v, ts, actor, role, ws, action, stype, sid, data, _, _ = row
    seq = old_seq if seq is None else seq
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
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (seq, v, ts, actor, role, ws, action, stype, sid, data, prev, digest)


def test_untouched_trail_raises_no_alarm(small: AuditTrail) -> None:
    report = _verify(small)
    assert report.ok and report.problems == () and report.checkpoints == 3


def test_an_edited_field_is_named_by_its_seq(small: AuditTrail) -> None:
    attacker_sql(small.store, [("UPDATE audit_events SET actor = %s WHERE seq = %s", ("th2", 5))])
    report = _verify(small)
    assert report.first_failing_seq == 5
    assert _kinds_at(report, 5) == {"hash_mismatch"}
    assert "seq 5: hash does not match the event's content" in str(report.problems[0])


def test_edited_data_is_named_by_its_seq(small: AuditTrail) -> None:
    (row,) = [r for r in rows(small.store) if r[0] == 8]
    changed = row[9].replace('"pulses":2000', '"pulses":4000')
    assert changed != row[9]
    attacker_sql(small.store, [("UPDATE audit_events SET data = %s WHERE seq = %s", (changed, 8))])
    report = _verify(small)
    assert report.first_failing_seq == 8 and "hash_mismatch" in _kinds_at(report, 8)


def test_a_deleted_event_is_named(small: AuditTrail) -> None:
    attacker_sql(small.store, [("DELETE FROM audit_events WHERE seq = %s", (7,))])
    report = _verify(small)
    assert report.first_failing_seq == 7
    assert _kinds_at(report, 7) == {"missing"}
    assert "event(s) 7 missing: seq 8 follows seq 6" in report.problems[0].message


def test_two_swapped_events_are_named(small: AuditTrail) -> None:
    by_seq = {r[0]: r for r in rows(small.store)}
    attacker_sql(
        small.store,
        [
            (UPDATE_ALL, (*by_seq[6][1:], 5)),
            (UPDATE_ALL, (*by_seq[5][1:], 6)),
        ],
    )
    report = _verify(small)
    assert report.first_failing_seq == 5
    assert {"hash_mismatch", "prev_mismatch"} <= _kinds_at(report, 5)
    assert "hash_mismatch" in _kinds_at(report, 6)


def test_an_inserted_forged_event_is_revealed_by_the_next_link(small: AuditTrail) -> None:
    """Renumber 8.. up by one and insert a self-consistent forged event as seq 8."""
    table = rows(small.store)
    by_seq = {r[0]: r for r in table}
    forged = list(by_seq[8])
    forged[9] = canonical_json({"forged": True, "pulses": 9000})
    forged_row = _rehash(tuple(forged), prev=by_seq[7][11], seq=8)
    statements = [
        ("DELETE FROM audit_events WHERE seq >= %s", (8,)),
        *[
            (
                "INSERT INTO audit_events VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (r[0] + 1, *r[1:]),
            )
            for r in table
            if r[0] >= 8
        ],
        ("INSERT INTO audit_events VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", forged_row),
    ]
    attacker_sql(small.store, statements)
    report = _verify(small)
    assert _kinds_at(report, 8) == set()  # the forgery is consistent in itself …
    assert report.first_failing_seq == 9  # … but the event after it no longer links to it
    assert "prev_mismatch" in _kinds_at(report, 9)
    assert any("prev does not match the hash of seq 8" in p.message for p in report.problems)


def test_tail_truncated_after_a_checkpoint_is_revealed_by_the_witness(small: AuditTrail) -> None:
    witness = read_witness(small.witness_path, str(small.store.url))  # type: ignore[arg-type]
    assert witness is not None and witness.seq == 31
    attacker_sql(small.store, [("DELETE FROM audit_events WHERE seq > %s", (11,))])
    # what remains ends with a valid signed checkpoint: consistent in itself
    assert _verify(small).ok
    report = _verify(small, anchors=[witness])
    assert report.first_failing_seq == 12
    assert _kinds_at(report, 12) == {"truncated"}
    assert "the trail ends at seq 11" in report.problems[0].message


def test_tail_truncation_is_revealed_by_an_earlier_export(
    small: AuditTrail, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier.jsonl"
    export_trail(small, ADMIN, "jsonl", earlier)
    anchor = anchor_from_export(earlier)
    attacker_sql(small.store, [("DELETE FROM audit_events WHERE seq > %s", (21,))])
    report = _verify(small, anchors=[anchor])
    assert report.first_failing_seq == 22 and _kinds_at(report, 22) == {"truncated"}
    assert "earlier export" in report.problems[0].message


def _rebuild_from(small: AuditTrail, seq_from: int, forger: CheckpointSigner | None) -> None:
    """Change event ``seq_from`` and recompute every hash after it; re-sign checkpoints with
    ``forger`` (a key the attacker made) or leave their data as it was."""
    table = rows(small.store)
    statements = []
    prev = next(r for r in table if r[0] == seq_from - 1)[11]
    if forger is not None:
        statements.append(
            (
                "INSERT INTO signing_keys VALUES (%s, %s, %s, %s, %s)",
                (forger.key_id, forger.public.pem, "mallory", "2026-01-01T00:00:00.000000Z", 1),
            )
        )
    for row in table:
        if row[0] < seq_from:
            continue
        row = list(row)
        if row[0] == seq_from:
            row[9] = canonical_json({"pulses": 1})
        if row[6] == "audit.checkpoint" and forger is not None:
            head_seq = row[0] - 1
            row[9] = canonical_json(
                {
                    "head_seq": head_seq,
                    "head_hash": prev,
                    "key_id": forger.key_id,
                    "signature": forger.sign(head_seq, prev),
                }
            )
        new = _rehash(tuple(row), prev)
        statements.append((UPDATE_ALL, (*new[1:], new[0])))
        prev = new[11]
    attacker_sql(small.store, statements)


def test_a_rebuilt_chain_without_the_private_key_fails_at_its_first_checkpoint(
    small: AuditTrail,
) -> None:
    _rebuild_from(small, 5, forger=None)
    report = _verify(small)
    # every link and hash is consistent again; only the signed checkpoints disagree
    assert {p.kind for p in report.problems} == {"checkpoint", "checkpoint_missing"}
    assert {p.seq for p in report.problems if p.kind == "checkpoint"} == {11, 21, 31}
    assert report.first_failing_seq == 11
    assert any("checkpoint names seq 10" in p.message for p in report.problems)


def test_a_chain_rebuilt_and_resigned_with_another_key_fails_for_the_auditors_key(
    small: AuditTrail,
) -> None:
    witness = read_witness(small.witness_path, str(small.store.url))  # type: ignore[arg-type]
    _rebuild_from(small, 5, forger=CheckpointSigner.generate())
    trusting_the_database = verify_store(small.store, max_checkpoint_gap=11)
    assert trusting_the_database.ok  # the database now vouches for the forger's key …
    report = _verify(small)  # … the auditor's own copy of the public key does not
    assert report.first_failing_seq == 11
    assert "checkpoint_key" in _kinds_at(report, 11)
    assert "not a trusted key" in report.problems[0].message
    assert witness is not None  # and the witness outside the database disagrees too
    by_witness = verify_store(small.store, anchors=[witness], max_checkpoint_gap=11)
    assert [p.kind for p in by_witness.problems] == ["anchor_mismatch"]
    assert by_witness.first_failing_seq == 31


def test_a_chain_stripped_of_its_checkpoints_is_reported(small: AuditTrail) -> None:
    table = [r for r in rows(small.store) if r[6] != "audit.checkpoint"]
    statements: list = [("DELETE FROM audit_events WHERE seq >= %s", (1,))]
    prev = "0" * 64
    for seq, row in enumerate(table, 1):
        new = _rehash(row, prev, seq=seq)
        statements.append(
            ("INSERT INTO audit_events VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", new)
        )
        prev = new[11]
    attacker_sql(small.store, statements)
    report = _verify(small)
    assert {p.kind for p in report.problems} == {"checkpoint_missing"}
    assert report.first_failing_seq == 11


@pytest.mark.parametrize("attack", ["edit", "delete", "swap", "insert", "truncate"])
def test_the_same_attacks_on_an_export_file_are_named(
    small: AuditTrail, tmp_path: Path, attack: str
) -> None:
    path = tmp_path / "trail.jsonl"
    export_trail(small, ADMIN, "jsonl", path)
    keys = {small.signer.key_id: small.signer.public}
    assert verify_file(path, keys, max_checkpoint_gap=11).ok
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    anchors = []
    if attack == "edit":
        event = json.loads(lines[4])
        event["data"]["i"] = 99
        lines[4] = json.dumps(event) + "\n"
        expected = 5
    elif attack == "delete":
        del lines[6]
        expected = 7
    elif attack == "swap":
        lines[4], lines[5] = lines[5], lines[4]
        expected = 5
    elif attack == "insert":
        event = json.loads(lines[7])
        event["data"] = {"forged": True}
        body = {k: v for k, v in event.items() if k != "hash"}
        event["hash"] = hashlib.sha256(canonical_json(body).encode()).hexdigest()
        lines.insert(7, json.dumps(event) + "\n")
        expected = 8
    else:
        anchors = [anchor_from_export(path)]
        lines = lines[:11]
        expected = 12
    path.write_text("".join(lines), encoding="utf-8")
    report = verify_file(path, keys, anchors=anchors, max_checkpoint_gap=11)
    assert not report.ok and report.first_failing_seq == expected, report.problems


def test_floats_and_non_canonical_data_in_the_database_are_named(small: AuditTrail) -> None:
    by_seq = {r[0]: r for r in rows(small.store)}
    with_float = _rehash((*by_seq[4][:9], '{"pressure":2.5}', *by_seq[4][10:]), by_seq[3][11])
    spaced = _rehash((*by_seq[6][:9], '{"a": 1}', *by_seq[6][10:]), by_seq[5][11])
    attacker_sql(small.store, [(UPDATE_ALL, (*with_float[1:], 4)), (UPDATE_ALL, (*spaced[1:], 6))])
    report = _verify(small)
    assert "float" in _kinds_at(report, 4) and "not_canonical" in _kinds_at(report, 6)
    assert "floating-point number 2.5" in str(report.problems[0])


def test_jsonl_export_line_re_canonicalises_to_the_stored_hash(small: AuditTrail) -> None:
    for row in rows(small.store):
        event = json.loads(jsonl_line(row))
        body = {k: v for k, v in event.items() if k != "hash"}
        assert hashlib.sha256(canonical_json(body).encode()).hexdigest() == row[11]


def test_a_malformed_event_is_named_and_the_links_around_it_still_checked(
    small: AuditTrail, tmp_path: Path
) -> None:
    path = tmp_path / "trail.jsonl"
    export_trail(small, ADMIN, "jsonl", path)
    lines = path.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[3])
    event["role"] = ["admin"]  # wrong type: not even hashable
    event["ts"] = "yesterday"
    lines[3] = json.dumps(event)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = verify_file(path, {small.signer.key_id: small.signer.public}, max_checkpoint_gap=11)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "malformed")]
