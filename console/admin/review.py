"""The admin's audit review: filtered pages of the trail, one event in its chain, verification.

Every operation starts with ``AuthService.require`` (a refusal is audited by the auth service).
Reading the trail is itself recorded: each new filter the admin applies appends one
``audit.queried`` event (not one per page: scrolling is not a new question). A verification run
appends ``audit.verified`` with the same fields as ``therapy-console audit verify``, and the
"last verification" shown is read back from those events, so it needs no storage of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit.events import CHECKPOINT_ACTION, Subject
from audit.keys import PublicKey
from audit.records import verify_records
from audit.store import describe
from audit.trail import AuditTrail
from audit.verify import VerificationReport, trusted_keys_from_store, verify_store
from audit.witness import read_witness
from console.admin.audit_query import (
    DEFAULT_PAGE,
    AuditFilter,
    AuditPage,
    AuditQueries,
    ChainLink,
    Cursor,
)
from console.auth import AuthService, SignedInUser

TRAIL = Subject("trail", "audit")
VERIFIED_ACTION = "audit.verified"
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class VerificationStatus:
    """The last verification run recorded in the trail (by the console or the command line)."""

    seq: int
    ts: str
    actor: str
    ok: bool
    events: int | None
    last_seq: int | None
    problems: int | None
    first_failing_seq: int | None


@dataclass(frozen=True, slots=True)
class VerificationOutcome:
    """What the admin sees after "verify now": the report and its audit event's seq."""

    ok: bool
    events: int
    checkpoints: int
    last_seq: int
    last_hash: str
    first_failing_seq: int | None
    problems: tuple[str, ...]
    elapsed_s: float
    summary: str
    audit_seq: int


class AuditReview:
    def __init__(self, auth: AuthService, trail: AuditTrail) -> None:
        self.auth = auth
        self.trail = trail
        self.queries = AuditQueries(trail.store)

    # ------------------------------------------------------------------ the table
    def filter_choices(self, user: SignedInUser) -> tuple[list[str], list[str], list[str]]:
        """(actions, user ids, device serials) to offer in the filter fields."""
        self.auth.require(user, "view_audit")
        users = ["system", *(u.user_id for u in self.auth.users.list())]
        return self.queries.actions(), users, self.queries.device_serials()

    def page(
        self,
        user: SignedInUser,
        flt: AuditFilter,
        after: Cursor | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> AuditPage:
        """A page of the trail; the first page of a filter is recorded as ``audit.queried``."""
        self.auth.require(user, "view_audit")
        page = self.queries.page(flt, after, limit)
        if after is None:
            self.trail.append(
                user.actor,
                "audit.queried",
                TRAIL,
                {"filter": flt.describe(), "first_page_rows": len(page.rows)},
            )
        return page

    def chain_link(self, user: SignedInUser, seq: int) -> ChainLink | None:
        """The event with its neighbours and the signed checkpoint that covers it."""
        self.auth.require(user, "view_audit")
        keys = self._trusted_keys()

        def signature_ok(checkpoint: object) -> bool:
            data = json.loads(getattr(checkpoint, "data_json", "{}"))
            key = keys.get(str(data.get("key_id")))
            return (
                key is not None
                and data.get("head_seq") == getattr(checkpoint, "seq", 0) - 1
                and key.verifies(int(data["head_seq"]), str(data["head_hash"]), data["signature"])
            )

        return self.queries.chain_link(seq, signature_ok)

    def event_json(self, user: SignedInUser, seq: int) -> str | None:
        """The event exactly as exported (JSON, keys sorted, indented for reading)."""
        self.auth.require(user, "view_audit")
        event = self.queries.event(seq)
        return None if event is None else json.dumps(event.to_dict(), indent=2, sort_keys=True)

    # ------------------------------------------------------------------ verification
    def last_verification(self, user: SignedInUser) -> VerificationStatus | None:
        self.auth.require(user, "view_audit")
        page = self.queries.page(AuditFilter(action=VERIFIED_ACTION), None, 1)
        if not page.rows:
            return None
        event = self.queries.event(page.rows[0].seq)
        assert event is not None
        data = event.data
        return VerificationStatus(
            seq=event.seq,
            ts=event.ts,
            actor=event.actor,
            ok=bool(data.get("ok")),
            events=data.get("events"),
            last_seq=data.get("last_seq"),
            problems=data.get("problems"),
            first_failing_seq=data.get("first_failing_seq"),
        )

    def verify_now(
        self, user: SignedInUser, progress: Progress | None = None
    ) -> VerificationOutcome:
        """Verify the whole trail (every event, link and signed checkpoint, and the witness
        anchor) and the record against it (``audit/records.py``), then record the run. Long:
        call it from a worker thread."""
        self.auth.require(user, "verify_audit")
        keys = self._trusted_keys()
        anchors = []
        if self.trail.witness_path is not None:
            witness = read_witness(self.trail.witness_path, describe(self.trail.store.url))
            if witness is not None:
                anchors.append(witness)
        report: VerificationReport = verify_store(
            self.trail.store, keys=keys, anchors=anchors, progress=progress
        )
        record = verify_records(self.trail.store)
        ok = report.ok and record.ok
        # the trail's first failing seq, else the first record problem's (0: a row no event made)
        first = (
            report.first_failing_seq
            if not report.ok
            else min((p.seq for p in record.problems), default=None)
        )
        event = self.trail.append(
            user.actor,
            VERIFIED_ACTION,
            TRAIL,
            {
                "ok": ok,
                "events": report.events,
                "last_seq": report.last_seq,
                "problems": len(report.problems) + len(record.problems),
                "first_failing_seq": first,
                "trusted_keys": list(report.trusted_keys),
                "auditor_keys": False,
                "record_ok": record.ok,
                "record_rows": record.records,
                "record_problems": len(record.problems),
                "via": "admin_console",
            },
        )
        return VerificationOutcome(
            ok=ok,
            events=report.events,
            checkpoints=report.checkpoints,
            last_seq=report.last_seq,
            last_hash=report.last_hash,
            first_failing_seq=first,
            problems=tuple(str(p) for p in (*report.problems, *record.problems)),
            elapsed_s=report.elapsed_s + record.replay_s + record.compare_s,
            summary=f"{report.summary()}\n{record.summary()}",
            audit_seq=event.seq,
        )

    def _trusted_keys(self) -> dict[str, PublicKey]:
        """The keys registered in the database plus this installation's own (as the CLI)."""
        keys, _problems = trusted_keys_from_store(self.trail.store)
        keys[self.trail.signer.key_id] = self.trail.signer.public
        return keys


def is_checkpoint(action: str) -> bool:
    return action == CHECKPOINT_ACTION


def public_key_pem(trail: AuditTrail, out: Path) -> Path:
    """Write this installation's and every registered public key (PEM) for auditors."""
    keys, _ = trusted_keys_from_store(trail.store)
    keys[trail.signer.key_id] = trail.signer.public
    out.write_text("".join(keys[k].pem for k in sorted(keys)), encoding="ascii")
    return out
