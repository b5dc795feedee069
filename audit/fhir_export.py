"""The trail and the record as a FHIR R4B Bundle (type ``collection``), built and validated with
``fhir.resources``: an ``AuditEvent`` per audit event (its seq, prev, hash and canonical data
kept as entity details, so the chain can be re-verified from the Bundle), a ``Procedure`` per
treatment session and a ``CarePlan`` per movement programme.

Patients are referenced by their pseudonymous identifier only; no Patient resource (with a
birth date) is exported.
"""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.procedure import Procedure

from audit.canonical import canonical_json, to_json_value, utc_now_ts
from audit.programmes import ProgrammeBook
from audit.sessions import SessionBook, session_content
from audit.trail import AuditTrail
from audit.values import ProgrammeRecord, SessionRecord

NS = "urn:therapy-console"
_CREATE = ("created", "assigned", "signed", "registered")
_READ = ("viewed", "exported", "queried", "verified", "reviewed")
_UPDATE = ("updated", "changed", "amended", "corrected", "transition", "phase_changed", "ended")
_FAILED = ("user.login_failed", "access.denied")
_PROCEDURE_STATUS = {
    "screening": "preparation",
    "planned": "preparation",
    "connected": "in-progress",
    "armed": "in-progress",
    "delivering": "in-progress",
    "paused": "on-hold",
    "completed": "completed",
    "documented": "completed",
    "signed": "completed",
    "stopped": "stopped",
    "aborted": "stopped",
    "faulted": "stopped",
    "interrupted": "stopped",
}
_CAREPLAN_STATUS = {"active": "active", "completed": "completed", "stopped": "revoked"}


def _ident(kind: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": f"{NS}:{kind}", "value": value}}


def _crud(action: str) -> str:
    verb = action.rsplit(".", 1)[-1]
    if verb in _CREATE:
        return "C"
    if verb in _READ:
        return "R"
    if verb in _UPDATE:
        return "U"
    return "E"


def fhir_id(value: str) -> str:
    """FHIR ids allow letters, digits, '-' and '.' (1–64)."""
    return "".join(c if c.isalnum() or c in "-." else "-" for c in value)[:64]


def audit_event_resource(row: tuple[Any, ...]) -> AuditEvent:
    seq, v, ts, actor, role, ws, action, stype, sid, data, prev, digest = row
    return AuditEvent.model_validate(
        {
            "resourceType": "AuditEvent",
            "id": f"audit-{seq}",
            "type": {"system": f"{NS}:audit-category", "code": action.split(".", 1)[0]},
            "subtype": [{"system": f"{NS}:audit-action", "code": action}],
            "action": _crud(action),
            "recorded": ts,
            "outcome": "4" if action in _FAILED else "0",
            "agent": [
                {
                    "who": _ident("user", actor),
                    "requestor": actor != "system",
                    "role": [{"coding": [{"system": f"{NS}:role", "code": role}]}],
                }
            ],
            "source": {"site": ws, "observer": _ident("workstation", ws)},
            "entity": [
                {
                    "what": _ident(stype, sid),
                    "type": {"system": f"{NS}:subject-type", "code": stype},
                    "detail": [
                        {"type": "format", "valueString": f"therapy-audit-v{v}"},
                        {"type": "seq", "valueString": str(seq)},
                        {"type": "prev", "valueString": prev},
                        {"type": "hash", "valueString": digest},
                        {"type": "data", "valueString": data},
                    ],
                }
            ],
        }
    )


def procedure_resource(record: SessionRecord) -> Procedure:
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": fhir_id(record.session_id),
        "identifier": [{"system": f"{NS}:session", "value": record.session_id}],
        "status": _PROCEDURE_STATUS[record.state],
        "code": {
            "coding": [
                {
                    "system": f"{NS}:protocol",
                    "code": record.protocol_id,
                    "version": record.protocol_version,
                }
            ],
            "text": f"{record.modality.upper()} treatment, protocol {record.protocol_id}",
        },
        "subject": _ident("patient", record.patient_id),
        "performedDateTime": record.session_date.isoformat(),
        "performer": [{"actor": _ident("user", record.therapist_id)}],
        "extension": [
            {
                "url": f"{NS}:session-record",
                "valueString": canonical_json(to_json_value(session_content(record))),
            }
        ],
    }
    if record.programme_id:
        resource["basedOn"] = [{"reference": f"CarePlan/{fhir_id(record.programme_id)}"}]
    if record.device_serial:
        resource["focalDevice"] = [
            {
                "manipulated": {
                    **_ident("device-serial", record.device_serial),
                    "display": record.device_model or "therapy unit",
                }
            }
        ]
    if record.adverse_events:
        resource["complication"] = [
            {"coding": [{"system": f"{NS}:adverse-event", "code": code}]}
            for code in record.adverse_events
        ]
    if record.notes:
        resource["note"] = [{"text": record.notes}]
    if record.delivered is not None:
        resource["outcome"] = {
            "text": f"{record.delivered} pulses delivered; end: {record.end_reason or '—'}"
        }
    return Procedure.model_validate(resource)


def careplan_resource(record: ProgrammeRecord) -> CarePlan:
    period: dict[str, str] = {"start": record.start_date.isoformat()}
    if record.end_date is not None:
        period["end"] = record.end_date.isoformat()
    return CarePlan.model_validate(
        {
            "resourceType": "CarePlan",
            "id": fhir_id(record.programme_id),
            "identifier": [{"system": f"{NS}:programme", "value": record.programme_id}],
            "instantiatesUri": [
                f"{NS}:programme-template:{record.template_id}:{record.template_version}"
            ],
            "status": _CAREPLAN_STATUS[record.status],
            "intent": "plan",
            "title": record.template_id,
            "description": f"Movement programme, phase {record.current_phase}",
            "subject": _ident("patient", record.patient_id),
            "period": period,
        }
    )


def fhir_bundle(trail: AuditTrail, upto_seq: int) -> Bundle:
    from audit.export import iter_rows

    entries: list[dict[str, Any]] = []
    for programme in ProgrammeBook(trail).all():
        entries.append({"resource": careplan_resource(programme)})
    for record in SessionBook(trail).all():
        entries.append({"resource": procedure_resource(record)})
    for row in iter_rows(trail, upto_seq):
        entries.append({"resource": audit_event_resource(row)})
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": utc_now_ts(),
            "identifier": {"system": f"{NS}:audit-export", "value": f"upto-seq-{upto_seq}"},
            "entry": entries,
        }
    )


def fhir_bundle_json(trail: AuditTrail, upto_seq: int) -> tuple[str, int]:
    """The Bundle as JSON text, and how many AuditEvents it holds."""
    bundle = fhir_bundle(trail, upto_seq)
    count = sum(1 for e in bundle.entry or [] if e.resource.get_resource_type() == "AuditEvent")
    return json.dumps(json.loads(bundle.model_dump_json()), indent=1, ensure_ascii=False), count
