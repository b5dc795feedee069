"""Appending: seq/prev/hash exactly as the format says, checkpoints, keys, corrections."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from audit import (
    Actor,
    AuditDataError,
    AuditError,
    AuditTrail,
    CheckpointSigner,
    RecordStore,
    SigningKeyError,
    Subject,
    load_or_create_signer,
)
from audit.canonical import GENESIS_HASH
from audit.export import jsonl_line
from audit.keys import checkpoint_message, key_id_of
from audit.verify import verify_store
from audit.witness import read_witness
from tests.audit.helpers import SESSION, THERAPIST, WORKSTATION, fill, rows


@pytest.mark.req("AUD-CHAIN-1")
def test_append_verify_round_trip(trail: AuditTrail, store: RecordStore) -> None:
    events = fill(trail, 30)
    assert [e.seq for e in events] == list(range(2, 32))  # seq 1 is key.created
    report = verify_store(store)
    assert report.ok, report.problems
    assert report.events == 31 and report.last_seq == 31 and report.last_hash == events[-1].hash
    assert report.first_failing_seq is None


@pytest.mark.req("AUD-CHAIN-1")
def test_every_event_links_to_the_one_before_and_hashes_its_canonical_bytes(
    trail: AuditTrail, store: RecordStore
) -> None:
    fill(trail, 5)
    previous = GENESIS_HASH
    for seq, row in enumerate(rows(store), 1):
        event = json.loads(jsonl_line(row))
        assert event["seq"] == seq and event["v"] == 1 and event["prev"] == previous
        body = {k: v for k, v in event.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode()).hexdigest() == event["hash"]
        assert event["ts"].endswith("Z") and len(event["ts"]) == 27
        previous = event["hash"]


@pytest.mark.req("AUD-CHAIN-1")
def test_the_returned_event_is_the_stored_one_and_frozen(
    trail: AuditTrail, store: RecordStore
) -> None:
    event = trail.append(THERAPIST, "screening.decided", SESSION, {"decision": "allow", "n": 3})
    assert trail.get(event.seq) == event
    assert event.computed_hash() == event.hash
    assert event.data == {"decision": "allow", "n": 3}
    event.data["decision"] = "block"  # a copy: the event is unchanged
    assert event.data["decision"] == "allow"
    with pytest.raises(AttributeError):
        event.actor = "mallory"  # type: ignore[misc]


@pytest.mark.req("AUD-FLOAT-1")
def test_floats_never_enter_the_trail(trail: AuditTrail, store: RecordStore) -> None:
    before = len(rows(store))
    with pytest.raises(AuditDataError, match="floating-point number"):
        trail.append(THERAPIST, "device.params_set", SESSION, {"pressure_bar": 2.5})
    assert len(rows(store)) == before


@pytest.mark.req("AUD-CHAIN-1")
@pytest.mark.parametrize(
    ("actor", "action", "message"),
    [
        (THERAPIST, "Session Started", "dotted lowercase name"),
        (THERAPIST, "audit.checkpoint", "appended by checkpoint()"),
    ],
)
def test_malformed_events_are_refused(
    trail: AuditTrail, actor: Actor, action: str, message: str
) -> None:
    with pytest.raises(AuditDataError, match=message):
        trail.append(actor, action, SESSION, {})


def test_actor_and_subject_are_checked() -> None:
    with pytest.raises(AuditDataError, match="role 'nurse'"):
        Actor("x", "nurse", WORKSTATION)
    with pytest.raises(AuditDataError, match="only the actor 'system'"):
        Actor("th1", "system", WORKSTATION)
    with pytest.raises(AuditDataError, match="subject type"):
        Subject("Session!", "1")


@pytest.mark.req("AUD-CKPT-1")
def test_a_checkpoint_follows_every_thousandth_event(
    trail: AuditTrail, store: RecordStore, signer: CheckpointSigner
) -> None:
    fill(trail, 1000)
    checkpoint = trail.get(1001)
    assert trail.get(1000).action == "device.params_set"
    assert checkpoint.action == "audit.checkpoint" and checkpoint.actor == "system"
    data = checkpoint.data
    assert data["head_seq"] == 1000 and data["head_hash"] == trail.get(1000).hash
    assert data["key_id"] == signer.key_id
    signer.public.key.verify(
        bytes.fromhex(data["signature"]), checkpoint_message(1000, data["head_hash"])
    )
    report = verify_store(store, keys={signer.key_id: signer.public})
    assert report.ok and report.checkpoints == 1


@pytest.mark.req("AUD-CKPT-1")
def test_checkpoint_on_demand_signs_the_head_and_is_idempotent(
    trail: AuditTrail, signer: CheckpointSigner, tmp_path: Path
) -> None:
    fill(trail, 3)
    head = trail.head()
    assert head is not None
    first = trail.checkpoint()
    assert first.seq == head.seq + 1
    assert first.data["head_seq"] == head.seq and first.data["head_hash"] == head.hash
    assert trail.checkpoint() == first  # nothing new to sign
    witness = read_witness(tmp_path / "witness.json", str(trail.store.url))
    assert witness is not None and (witness.seq, witness.hash) == (first.seq, first.hash)


@pytest.mark.req("AUD-CKPT-1")
def test_checkpointing_an_empty_trail_is_refused(store: RecordStore) -> None:
    trail = AuditTrail(store, CheckpointSigner.generate(), WORKSTATION)
    with pytest.raises(AuditError, match="nothing to checkpoint"):
        trail.checkpoint()


@pytest.mark.req("AUD-CKPT-1")
def test_key_file_created_once_owner_only_with_the_formats_key_id(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-signing-key.pem"
    signer, created = load_or_create_signer(path)
    assert created and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_signer(path)
    assert not created_again and again.key_id == signer.key_id
    raw = signer.public.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signer.key_id == hashlib.sha256(raw).hexdigest()[:16] == key_id_of(signer.public.key)
    assert signer.public.pem.startswith("-----BEGIN PUBLIC KEY-----")
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match=r"can be read by others \(mode 0644\); run `chmod"):
        load_or_create_signer(path)


@pytest.mark.req("AUD-CKPT-1")
def test_key_creation_is_audited_once_and_the_public_key_kept(
    store: RecordStore, signer: CheckpointSigner
) -> None:
    trail = AuditTrail(store, signer, WORKSTATION)
    event = trail.register_signer(created=True)
    assert event is not None and event.action == "key.created"
    assert event.data["key_id"] == signer.key_id
    assert event.data["public_key_pem"] == signer.public.pem
    assert trail.register_signer(created=False) is None
    with store.connection() as conn:
        stored = conn.exec_driver_sql("SELECT key_id, public_key_pem FROM signing_keys").all()
    assert [tuple(r) for r in stored] == [(signer.key_id, signer.public.pem)]


@pytest.mark.req("AUD-CORR-1")
def test_a_correction_is_a_new_event_naming_the_corrected_one_with_a_reason(
    trail: AuditTrail, store: RecordStore
) -> None:
    wrong = trail.append(THERAPIST, "session.updated", SESSION, {"fields": {"pain_after": 7}})
    fix = trail.correct(THERAPIST, wrong.seq, "typed 7 instead of 1", {"fields": {"pain_after": 1}})
    assert fix.seq == wrong.seq + 1 and fix.action == "record.corrected"
    assert fix.subject == wrong.subject
    assert fix.data == {
        "corrects": {"seq": wrong.seq, "hash": wrong.hash},
        "reason": "typed 7 instead of 1",
        "fields": {"pain_after": 1},
    }
    assert trail.get(wrong.seq) == wrong  # the original stays as it was
    with pytest.raises(AuditDataError, match="reason of at least 10"):
        trail.correct(THERAPIST, wrong.seq, "oops")
    with pytest.raises(AuditError, match="no audit event with seq 999"):
        trail.correct(THERAPIST, 999, "a long enough reason")
    assert verify_store(store).ok


@pytest.mark.req("AUD-QUERY-1")
def test_queries_page_through_events_in_order(trail: AuditTrail) -> None:
    fill(trail, 12)
    first = trail.events(limit=5)
    second = trail.events(after_seq=first[-1].seq, limit=5)
    assert [e.seq for e in first + second] == list(range(1, 11))


@pytest.mark.req("AUD-CHAIN-2")
def test_a_second_write_inside_a_write_is_refused_not_deadlocked(trail: AuditTrail) -> None:
    from audit import StoreError

    with trail.write() as session:
        trail.append_in(session, THERAPIST, "session.updated", SESSION, {"a": 1})
        with pytest.raises(StoreError, match="already open in this thread"):
            trail.append(THERAPIST, "session.updated", SESSION, {"b": 2})
    assert trail.events(limit=10)[-1].data == {"a": 1}
