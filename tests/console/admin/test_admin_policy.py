"""The policy in force, and changing it from a file: validated by the clinical parsers, audited,
kept in the data folder, in force for the next session (whose record carries the version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.admin.context import AdminServices
from console.admin.policy import PolicyError, load_active_policy
from console.auth import PermissionDenied, SignedInUser
from console.services import ConsoleServices
from protocols.packaged import read_packaged

PACKAGED_PROTOCOL = read_packaged("protocols", "knee-pt-epat.toml")[0]
PACKAGED_RULES = read_packaged("contraindications.toml")[0]


def _protocol_file(folder: Path, version: str, pulses_max: int = 2400) -> Path:
    text = PACKAGED_PROTOCOL.replace('version = "2026.1"', f'version = "{version}"').replace(
        "max = 2500", f"max = {pulses_max}"
    )
    assert text != PACKAGED_PROTOCOL
    path = folder / "knee-pt-epat.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.req("ADM-POLICY-1")
def test_a_new_protocol_version_is_audited_and_used_by_the_next_session(
    services: ConsoleServices,
    admin: SignedInUser,
    therapist: SignedInUser,
    patient_id: str,
    admin_services: AdminServices,
    tmp_path: Path,
) -> None:
    policy = admin_services.policy
    view = policy.view(admin)
    pt = next(p for p in view.protocols if p.id == "knee-pt-epat")
    assert (pt.version, pt.source, view.ruleset_version) == ("2026.1", "packaged default", "2026.1")
    assert len(view.protocols) == 7 and view.rules and view.questions > 10
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    change, active = policy.change(admin, "protocol", _protocol_file(incoming, "2026.2"))
    assert (change.item_id, change.version, change.previous_version) == (
        "knee-pt-epat",
        "2026.2",
        "2026.1",
    )
    event = services.trail.get(change.audit_seq)
    assert (event.action, event.actor) == ("policy.changed", "admin")
    assert event.data["version"] == "2026.2" and event.data["sha256"] == change.sha256
    assert active.library.get("knee-pt-epat").parameter("pulses").maximum == 2400
    kept = load_active_policy(tmp_path / "policy")  # what a restarted console loads
    assert kept.library.get("knee-pt-epat").version == "2026.2"
    assert services.rules.library.get("knee-pt-epat").version == "2026.2"  # in force now
    workflow = services.begin_session(therapist, patient_id, "knee-pt-epat")
    assert services.sessions.load(workflow.ctx.session_id).protocol_version == "2026.2"
    workflow.close()
    view = policy.view(admin)
    assert next(p for p in view.protocols if p.id == "knee-pt-epat").source == "clinic file"
    assert [h["version"] for h in policy.history(admin)] == ["2026.2"]


@pytest.mark.req("ADM-POLICY-2")
def test_bad_or_reused_policy_files_are_refused_and_nothing_changes(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices, tmp_path: Path
) -> None:
    policy = admin_services.policy
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    broken = incoming / "knee-pt-epat.toml"
    broken.write_text(PACKAGED_PROTOCOL.replace("max = 3.5", 'max = "high"'), encoding="utf-8")
    head = services.trail.head()
    with pytest.raises(PolicyError, match=r"knee-pt-epat\.toml: .*pressure_bar"):
        policy.change(admin, "protocol", broken)
    with pytest.raises(PolicyError, match="already in force"):
        policy.change(admin, "protocol", _protocol_file(incoming, "2026.1"))
    rules = incoming / "rules.toml"
    rules.write_text(
        PACKAGED_RULES.replace('version = "2026.1"', 'version = "2026.9"').replace(
            '"knee-osg-epat"', '"knee-nonexistent"', 1
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="knee-nonexistent"):
        policy.change(admin, "ruleset", rules)
    with pytest.raises(PolicyError, match="no file"):
        policy.change(admin, "ruleset", incoming / "missing.toml")
    assert services.trail.head() == head  # nothing recorded
    assert not (tmp_path / "policy" / "protocols").exists()
    policy.change(admin, "protocol", _protocol_file(incoming, "2026.3"))
    policy.change(admin, "protocol", _protocol_file(incoming, "2026.4"))
    with pytest.raises(PolicyError, match="installed before with other content"):
        policy.change(admin, "protocol", _protocol_file(incoming, "2026.3", pulses_max=2300))
    assert services.rules.library.get("knee-pt-epat").version == "2026.4"


@pytest.mark.req("ADM-POLICY-1")
def test_a_new_rule_set_version(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices, tmp_path: Path
) -> None:
    rules = tmp_path / "contraindications.toml"
    rules.write_text(
        PACKAGED_RULES.replace('version = "2026.1"', 'version = "2026.5"'), encoding="utf-8"
    )
    change, active = admin_services.policy.change(admin, "ruleset", rules)
    assert (change.previous_version, active.ruleset.version) == ("2026.1", "2026.5")
    assert services.rules.ruleset.version == "2026.5"
    assert admin_services.policy.view(admin).ruleset_source == "clinic file"


@pytest.mark.req("ADM-ROLE-1")
def test_only_admins_see_and_change_policy(
    services: ConsoleServices, therapist: SignedInUser, admin_services: AdminServices
) -> None:
    with pytest.raises(PermissionDenied):
        admin_services.policy.view(therapist)
    denied = services.trail.get(services.trail.head().seq)
    assert denied.action == "access.denied" and denied.data["action"] == "manage_policy"


@pytest.mark.req("ADM-POLICY-1")
def test_the_kept_policy_is_the_one_in_force_when_the_admin_layer_opens(
    services: ConsoleServices, admin: SignedInUser, tmp_path: Path
) -> None:
    folder = tmp_path / "kept-policy"
    (folder / "protocols").mkdir(parents=True)
    _protocol_file(folder / "protocols", "2026.7")
    assert services.rules.library.get("knee-pt-epat").version == "2026.1"
    AdminServices.from_console(services, folder)
    assert services.rules.library.get("knee-pt-epat").version == "2026.7"
    (folder / "protocols" / "knee-pt-epat.toml").write_text("id = 'knee-pt-epat'\n")
    broken = AdminServices.from_console(services, folder)  # opens; the page says what is wrong
    assert services.rules.library.get("knee-pt-epat").version == "2026.7"
    with pytest.raises(PolicyError, match=r"knee-pt-epat\.toml"):
        broken.policy.view(admin)
