"""The clinic's policy in force (protocol library and contraindication rules) and its changes.

The packaged defaults (``protocols/data``) are the policy until the clinic replaces part of it.
A change is a new version from a file: a protocol TOML (adds a protocol or replaces the one with
its id) or a rule-set TOML (replaces the rule set). The file goes through the same parsers as
the packaged data (``protocols.parse_protocol`` / ``parse_ruleset``), so a bad file is refused
with its file, field and problem before it can screen anyone; the rule set is also checked
against the protocols it names. An accepted change is kept in the data folder (``policy/``, plus
a copy under ``policy/history/``), audited as ``policy.changed`` with the version and the
file's SHA-256, and in force for the next session; each session records the versions it used
(``protocol_version`` on the session, ``ruleset_version`` in its screening).

Until the record store has a table of policy versions, the ``policy.changed`` events *are* that
history: a version that was used before with other content is refused (one version, one text).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from audit.events import Subject
from audit.trail import AuditTrail
from console.auth import AuthService, SignedInUser
from console.session.clinical import ProtocolRules
from protocols import (
    ClinicalDataError,
    ProgrammeLibrary,
    ProtocolLibrary,
    RuleSet,
    TreatmentProtocol,
    default_library,
    default_ruleset,
    parse_protocol,
    parse_ruleset,
)

RULESET_FILE = "contraindications.toml"
PROTOCOLS_DIR = "protocols"
HISTORY_DIR = "history"
MAX_POLICY_FILE_BYTES = 1_000_000


class PolicyError(ValueError):
    """A policy file was refused; the message names the file, field and problem."""


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    library: ProtocolLibrary
    ruleset: RuleSet
    #: protocol id → "packaged default" or the clinic file it came from
    protocol_sources: tuple[tuple[str, str], ...]
    ruleset_source: str

    def rules(self, programmes: ProgrammeLibrary | None = None) -> ProtocolRules:
        """The clinical rules the session workflow uses, over this policy."""
        return ProtocolRules(self.library, self.ruleset, programmes)


@dataclass(frozen=True, slots=True)
class ProtocolRow:
    id: str
    version: str
    modality: str
    title: str
    ranges: str
    course: str
    source: str


@dataclass(frozen=True, slots=True)
class RuleRow:
    id: str
    finding: str
    severity: str  # "EPAT: block, EMTT: override required"
    sources: str


@dataclass(frozen=True, slots=True)
class PolicyView:
    ruleset_version: str
    ruleset_title: str
    ruleset_source: str
    questions: int
    protocols: tuple[ProtocolRow, ...]
    rules: tuple[RuleRow, ...]


@dataclass(frozen=True, slots=True)
class PolicyChange:
    kind: str  # "protocol" or "ruleset"
    item_id: str
    version: str
    previous_version: str | None
    sha256: str
    audit_seq: int


def load_active_policy(folder: Path) -> ActivePolicy:
    """The policy in force: the packaged defaults with the clinic's files (if any) over them.

    Raises ``PolicyError`` when a kept file no longer parses (someone edited it by hand):
    the console must not silently fall back to another policy."""
    folder = Path(folder)
    protocols = dict(default_library().protocols)
    sources = dict.fromkeys(protocols, "packaged default")
    protocol_dir = folder / PROTOCOLS_DIR
    if protocol_dir.is_dir():
        for path in sorted(protocol_dir.glob("*.toml")):
            protocol = _parse_protocol_file(path)
            protocols[protocol.id] = protocol
            sources[protocol.id] = str(path)
    library = ProtocolLibrary.of(protocols.values())
    ruleset_path = folder / RULESET_FILE
    if ruleset_path.is_file():
        ruleset = _parse_ruleset_file(ruleset_path, library)
        ruleset_source = str(ruleset_path)
    else:
        ruleset = default_ruleset()
        ruleset_source = "packaged default"
    return ActivePolicy(library, ruleset, tuple(sorted(sources.items())), ruleset_source)


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_POLICY_FILE_BYTES:
            raise PolicyError(f"{path}: the file is larger than 1 MB; is it the right file?")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read it as UTF-8 text ({exc})") from None


def _parse_protocol_file(path: Path) -> TreatmentProtocol:
    try:
        return parse_protocol(_read(path), str(path))
    except ClinicalDataError as exc:
        raise PolicyError(str(exc)) from exc


def _parse_ruleset_file(path: Path, library: ProtocolLibrary) -> RuleSet:
    try:
        return parse_ruleset(_read(path), str(path), known_protocols=library.protocols)
    except ClinicalDataError as exc:
        raise PolicyError(str(exc)) from exc


def _severity_text(rule: object) -> str:
    severity = getattr(rule, "severity", {})
    return ", ".join(
        f"{modality.value.upper()}: {level.value.replace('_', ' ')}"
        for modality, level in sorted(severity.items(), key=lambda kv: kv[0].value)
    )


def policy_view(policy: ActivePolicy) -> PolicyView:
    sources = dict(policy.protocol_sources)
    protocols = tuple(
        ProtocolRow(
            id=p.id,
            version=p.version,
            modality=p.modality.value.upper(),
            title=p.title,
            ranges="; ".join(
                f"{r.field} {r.describe()} (default {r.default})" for r in p.parameters
            ),
            course=p.course.description,
            source="packaged default" if sources.get(p.id) == "packaged default" else "clinic file",
        )
        for p in policy.library
    )
    rules = tuple(
        RuleRow(r.id, r.finding, _severity_text(r), "; ".join(r.sources))
        for r in policy.ruleset.rules
    )
    return PolicyView(
        ruleset_version=policy.ruleset.version,
        ruleset_title=policy.ruleset.title,
        ruleset_source="packaged default"
        if policy.ruleset_source == "packaged default"
        else "clinic file",
        questions=len(policy.ruleset.questionnaire.questions),
        protocols=protocols,
        rules=rules,
    )


class PolicyAdmin:
    """View and change the policy in ``folder`` (the data folder's ``policy/``)."""

    def __init__(
        self,
        auth: AuthService,
        trail: AuditTrail,
        folder: Path,
        on_changed: Callable[[ActivePolicy], None] | None = None,
    ) -> None:
        self.auth = auth
        self.trail = trail
        self.folder = Path(folder)
        self.on_changed = on_changed

    def active(self) -> ActivePolicy:
        return load_active_policy(self.folder)

    def view(self, user: SignedInUser) -> PolicyView:
        self.auth.require(user, "manage_policy")
        return policy_view(self.active())

    def change(
        self, user: SignedInUser, kind: str, path: Path
    ) -> tuple[PolicyChange, ActivePolicy]:
        """Make the file at ``path`` the new version of a protocol or of the rule set."""
        self.auth.require(user, "manage_policy")
        path = Path(path)
        if kind not in ("protocol", "ruleset"):
            raise PolicyError(f"a policy file is a 'protocol' or a 'ruleset', not {kind!r}")
        if not path.is_file():
            raise PolicyError(f"there is no file {path}")
        content = _read(path)
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        current = self.active()
        if kind == "protocol":
            protocol = _parse_protocol_file(path)
            item_id, version = protocol.id, protocol.version
            previous = current.library.protocols.get(protocol.id)
            previous_version = previous.version if previous is not None else None
            target = self.folder / PROTOCOLS_DIR / f"{protocol.id}.toml"
        else:
            ruleset = _parse_ruleset_file(path, current.library)
            item_id, version = "contraindications", ruleset.version
            previous_version = current.ruleset.version
            target = self.folder / RULESET_FILE
        if version == previous_version:
            raise PolicyError(
                f"{path}: version {version} of {item_id} is already in force; give the new "
                "policy a new version (a version names one text, for ever)"
            )
        self._refuse_reused_version(kind, item_id, version, digest, path)
        change = self._install(
            user, kind, item_id, version, previous_version, digest, content, target
        )
        policy = self.active()
        if self.on_changed is not None:
            self.on_changed(policy)
        return change, policy

    def history(self, user: SignedInUser, limit: int = 100) -> list[dict[str, object]]:
        """Earlier ``policy.changed`` events, newest first."""
        self.auth.require(user, "manage_policy")
        with self.trail.store.connection() as conn:
            rows = conn.execute(
                text(
                    "SELECT seq, ts, actor, data FROM audit_events WHERE action = 'policy.changed' "
                    "ORDER BY ts DESC, seq DESC LIMIT :n"
                ),
                {"n": limit},
            ).all()
        return [{"seq": r[0], "ts": r[1], "actor": r[2], **json.loads(r[3])} for r in rows]

    def _refuse_reused_version(
        self, kind: str, item_id: str, version: str, digest: str, path: Path
    ) -> None:
        with self.trail.store.connection() as conn:
            rows = conn.execute(
                text("SELECT data FROM audit_events WHERE action = 'policy.changed'")
            ).all()
        for (data,) in rows:
            earlier = json.loads(data)
            if (earlier.get("kind"), earlier.get("id"), earlier.get("version")) == (
                kind,
                item_id,
                version,
            ) and earlier.get("sha256") != digest:
                raise PolicyError(
                    f"{path}: version {version} of {item_id} was installed before with other "
                    "content; give this text a new version"
                )

    def _install(
        self,
        user: SignedInUser,
        kind: str,
        item_id: str,
        version: str,
        previous_version: str | None,
        digest: str,
        content: str,
        target: Path,
    ) -> PolicyChange:
        """Write beside the target, audit, then move into place (an unaudited policy is never
        in force; a crash between leaves only a stray temporary file)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        history = self.folder / HISTORY_DIR
        history.mkdir(parents=True, exist_ok=True)
        (history / f"{item_id}-{version}-{digest[:12]}.toml").write_text(content, encoding="utf-8")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.new")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            event = self.trail.append(
                user.actor,
                "policy.changed",
                Subject("policy", item_id),
                {
                    "kind": kind,
                    "id": item_id,
                    "version": version,
                    "previous_version": previous_version,
                    "sha256": digest,
                    "file_name": target.name,
                },
            )
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        return PolicyChange(kind, item_id, version, previous_version, digest, event.seq)
