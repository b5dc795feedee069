"""A clinic-like trail for the admin console's benchmarks, written in bulk.

Unlike ``audit_common.populate`` (one therapist, one protocol) this spreads the work over
several therapists, both modalities, four units, two years and the record fields the admin
screens filter and chart on (device serial, pain scores, adverse events), so every filter of
the audit table meets a realistic share of the trail. The rows are exactly those the console
writes (canonical JSON, hash chain, a signed checkpoint after every session and at least every
1,000 events), inserted with ``executemany`` in large transactions: appending a million events
one durable commit at a time would measure the disk, not the query.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from audit.canonical import GENESIS_HASH, canonical_json, event_canonical_text, format_ts
from audit.keys import CheckpointSigner
from audit.schema import AUDIT_COLUMNS
from audit.store import RecordStore

START = datetime(2025, 1, 6, 7, 30, tzinfo=UTC)
SPAN = timedelta(days=728)
WORKSTATIONS = ("room-1", "room-2", "room-3")
THERAPISTS = tuple(f"th{i:02d}" for i in range(1, 9))
ADMINS = ("admin1", "admin2")
SERVICE = ("svc1",)
#: (protocol id, modality, units of that modality)
PROTOCOLS = (
    ("knee-pt-epat", "epat"),
    ("knee-pfp-epat", "epat"),
    ("knee-oa-epat", "epat"),
    ("knee-pes-epat", "epat"),
    ("knee-osg-epat", "epat"),
    ("knee-oa-emtt", "emtt"),
    ("knee-tendon-emtt", "emtt"),
)
UNITS = {"epat": ("RPW200-00001", "RPW200-00002"), "emtt": ("E100-24-0117", "E100-24-0118")}
ADVERSE = ("reddening", "petechiae", "haematoma", "transient_pain", "swelling")


@dataclass(frozen=True)
class TrailFacts:
    """What the benchmark needs to pick realistic filters."""

    events: int
    sessions: int
    patients: tuple[str, ...]
    session_ids: tuple[str, ...]
    first_ts: str
    last_ts: str


def populate_admin_trail(
    store: RecordStore,
    signer: CheckpointSigner,
    n_events: int,
    *,
    patients: int = 2500,
    seed: int = 7,
) -> TrailFacts:
    """Fill an empty, migrated store with about ``n_events`` events (a little more: the last
    session is finished)."""
    rng = random.Random(seed)
    mark = "?" if store.dialect == "sqlite" else "%s"
    now = format_ts(START)
    patient_ids = tuple(f"pt-{i:06d}" for i in range(patients))
    raw = store.engine.raw_connection()
    cur = raw.cursor()

    def begin() -> None:
        if store.dialect == "sqlite":
            cur.execute("BEGIN")

    try:
        begin()
        users = [(t, f"Therapist {t}", "therapist") for t in THERAPISTS]
        users += [(a, f"Admin {a}", "admin") for a in ADMINS]
        users += [(s, f"Service {s}", "service") for s in SERVICE]
        cur.executemany(
            "INSERT INTO users (id, full_name, role, password_hash, active, failed_logins, "
            f"locked, created_at, password_changed_at) VALUES ({', '.join([mark] * 9)})",
            [(u, n, r, "x", True, 0, False, now, now) for u, n, r in users],
        )
        cur.executemany(
            "INSERT INTO patients (id, pseudonym, birth_date, created_at, created_by) "
            f"VALUES ({', '.join([mark] * 5)})",
            [
                (
                    p,
                    f"KN-{i:06d}",
                    datetime(1950 + i % 55, 1 + i % 12, 1 + i % 28).date(),
                    now,
                    "th01",
                )
                for i, p in enumerate(patient_ids)
            ],
        )
        raw.commit()

        insert = (
            f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(AUDIT_COLUMNS))})"
        )
        session_cols = (
            "id, patient_id, protocol_id, protocol_version, modality, therapist_id, "
            "session_date, state, device_model, device_serial, delivered, pain_before, "
            "pain_after, adverse_events, titrations, segments, interruptions, faults, "
            "treatment_points, notes, created_at, updated_at"
        )
        session_insert = (
            f"INSERT INTO treatment_sessions ({session_cols}) VALUES ({', '.join([mark] * 22)})"
        )
        rows: list[tuple[object, ...]] = []
        sessions: list[tuple[object, ...]] = []
        session_ids: list[str] = []
        state = {"seq": 0, "prev": GENESIS_HASH}
        step = SPAN / max(n_events, 1)

        def add(
            actor: str, role: str, ws: str, action: str, stype: str, sid: str, data: dict
        ) -> None:
            seq = state["seq"] + 1
            ts = format_ts(START + step * seq)
            data_json = canonical_json(data)
            text = event_canonical_text(
                seq=seq,
                ts=ts,
                actor=actor,
                role=role,
                workstation=ws,
                action=action,
                subject_type=stype,
                subject_id=sid,
                data_json=data_json,
                prev=str(state["prev"]),
            )
            digest = hashlib.sha256(text.encode()).hexdigest()
            rows.append(
                (seq, 1, ts, actor, role, ws, action, stype, sid, data_json, state["prev"], digest)
            )
            state["seq"], state["prev"] = seq, digest
            if seq % 1000 == 0:
                checkpoint(ws)

        def checkpoint(ws: str) -> None:
            seq, head = int(state["seq"]), str(state["prev"])
            data = {
                "head_seq": seq,
                "head_hash": head,
                "key_id": signer.key_id,
                "signature": signer.sign(seq, head),
            }
            add("system", "system", ws, "audit.checkpoint", "trail", "audit", data)

        def flush() -> None:
            begin()
            if sessions:
                cur.executemany(session_insert, sessions)
            cur.executemany(insert, rows)
            raw.commit()
            rows.clear()
            sessions.clear()

        # the installation's key, registered as the console does
        add(
            "system",
            "system",
            "room-1",
            "key.created",
            "signing_key",
            signer.key_id,
            {
                "key_id": signer.key_id,
                "algorithm": "Ed25519",
                "public_key_pem": signer.public.pem,
                "workstation": "room-1",
            },
        )
        begin()
        cur.executemany(insert, rows)
        cur.execute(
            "INSERT INTO signing_keys (key_id, public_key_pem, workstation, created_at, audit_seq)"
            f" VALUES ({', '.join([mark] * 5)})",
            (signer.key_id, signer.public.pem, "room-1", now, 1),
        )
        raw.commit()
        rows.clear()

        number = 0
        while state["seq"] < n_events:
            number += 1
            ws = rng.choice(WORKSTATIONS)
            therapist = rng.choice(THERAPISTS)
            patient = rng.choice(patient_ids)
            protocol, modality = rng.choice(PROTOCOLS)
            serial = rng.choice(UNITS[modality])
            sid = f"se-{number:07d}"
            session_ids.append(sid)
            day = (START + step * (state["seq"] + 1)).date()
            pain_before = rng.randint(3, 9)
            pain_after = max(0, pain_before - rng.randint(0, 4))
            adverse = sorted(set(rng.sample(ADVERSE, rng.choice((0, 0, 0, 0, 0, 0, 1, 1, 2)))))
            pulses = 2000 if modality == "epat" else 4000
            sessions.append(
                (
                    sid,
                    patient,
                    protocol,
                    "2026.1",
                    modality,
                    therapist,
                    day,
                    "signed",
                    "RPW-200" if modality == "epat" else "EMT-100",
                    serial,
                    pulses,
                    pain_before,
                    pain_after,
                    json.dumps(adverse),
                    "[]",
                    "[]",
                    "[]",
                    "[]",
                    "[]",
                    "",
                    now,
                    now,
                )
            )
            t = (therapist, "therapist", ws)
            s = ("session", sid)
            add(*t, "user.login", "user", therapist, {})
            add(*t, "patient.viewed", "patient", patient, {})
            add(
                *t,
                "session.created",
                *s,
                {
                    "patient_id": patient,
                    "protocol_id": protocol,
                    "protocol_version": "2026.1",
                    "modality": modality,
                    "session_date": day.isoformat(),
                    "state": "screening",
                },
            )
            add(
                *t,
                "screening.decided",
                *s,
                {"decision": "allow", "ruleset_version": "2026.1", "findings": []},
            )
            add(*t, "session.updated", *s, {"fields": {"screening_decision": "allow"}})
            add(*t, "parameters.validated", *s, {"decision": "allow", "plan": {"pulses": pulses}})
            for old, new in (("screening", "planned"), ("planned", "connected")):
                add(
                    *t,
                    "session.transition",
                    *s,
                    {"from": old, "to": new, "action": new, "details": {}},
                )
            add(*t, "device.identify", *s, {"ok": True, "serial": serial})
            add(*t, "device.applicator", *s, {"ok": True})
            add(*t, "parameters.confirmed", *s, {"parameters": {"pulses": pulses}})
            add(*t, "device.load_parameters", *s, {"ok": True})
            add(*t, "device.arm", *s, {"ok": True})
            add(
                *t,
                "session.transition",
                *s,
                {"from": "connected", "to": "armed", "action": "arm", "details": {}},
            )
            add(*t, "device.start", *s, {"ok": True})
            add(
                *t,
                "session.transition",
                *s,
                {"from": "armed", "to": "delivering", "action": "start", "details": {}},
            )
            for _ in range(rng.randint(0, 3)):
                add(*t, "device.pause", *s, {"ok": True, "delivered": rng.randint(1, pulses)})
                add(*t, "device.resume", *s, {"ok": True})
            add(*t, "device.stop", *s, {"ok": True, "delivered": pulses})
            add(
                *t,
                "session.transition",
                *s,
                {
                    "from": "delivering",
                    "to": "completed",
                    "action": "complete",
                    "details": {"delivered": pulses},
                },
            )
            add(
                *t,
                "session.updated",
                *s,
                {
                    "fields": {
                        "pain_before": pain_before,
                        "pain_after": pain_after,
                        "adverse_events": adverse,
                    }
                },
            )
            add(
                *t,
                "session.transition",
                *s,
                {"from": "completed", "to": "documented", "action": "document", "details": {}},
            )
            add(*t, "session.signed", *s, {"signer_id": therapist, "meaning": "performed"})
            for _ in range(rng.randint(4, 14)):
                add(
                    *t,
                    "session.status",
                    *s,
                    {"delivered": rng.randint(0, pulses), "temperature_c": "31.5"},
                )
            add(*t, "user.logout", "user", therapist, {})
            if rng.random() < 0.01:
                add(
                    "svc1",
                    "service",
                    ws,
                    "device.raw_command",
                    "device",
                    serial,
                    {"command": "GET_STATUS", "ok": True},
                )
            if rng.random() < 0.005:
                add(
                    "admin1",
                    "admin",
                    ws,
                    "audit.verified",
                    "trail",
                    "audit",
                    {"ok": True, "events": state["seq"]},
                )
            checkpoint(ws)
            if len(rows) >= 50_000:
                flush()
        flush()
        cur.execute("SELECT min(ts), max(ts) FROM audit_events")
        first_ts, last_ts = cur.fetchone()
        raw.commit()
    finally:
        cur.close()
        raw.close()
    return TrailFacts(int(state["seq"]), number, patient_ids, tuple(session_ids), first_ts, last_ts)
