"""The admin console's screens offscreen over a real record: the audit table (pages fetched on a
worker thread), event details, verification with progress, users, policy, charts, and role
separation."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor

from audit.events import Subject
from console.admin.context import AdminServices
from console.auth import PermissionDenied, SignedInUser
from console.services import ConsoleServices
from console.ui.admin.charts import EPAT_COLOUR
from console.ui.admin.console import AdminConsole
from protocols.packaged import read_packaged
from tests.console.conftest import PASSWORD

pytestmark = [pytest.mark.gui]
WAIT_MS = 15_000


@pytest.fixture
def console(qtbot: Any, services: ConsoleServices, admin: SignedInUser, tmp_path: Path):
    widget = AdminConsole(services, admin, policy_folder=tmp_path / "policy")
    qtbot.addWidget(widget)
    widget.resize(1366, 860)
    widget.show()
    yield widget
    widget.shutdown()


def _fill(services: ConsoleServices, n: int) -> None:
    """Events by the system and by the therapist about four units."""
    for i in range(n):
        services.trail.append(
            services.trail.system if i % 3 else _actor("thera", "therapist"),
            "device.diagnostics" if i % 2 else "alarm.raised",
            Subject("device", f"RPW200-{i % 4:05d}"),
            {"i": i},
        )


def _actor(user_id: str, role: str):  # -> Actor
    from audit.events import Actor

    return Actor(user_id, role, "ws-test")


@pytest.mark.req("ADM-AUDIT-3")
@pytest.mark.req("ADM-AUDIT-2")
def test_the_audit_table_pages_on_a_worker_thread_and_shows_an_event_in_its_chain(
    qtbot: Any, services: ConsoleServices, admin: SignedInUser, tmp_path: Path
) -> None:
    _fill(services, 450)
    admin_services = AdminServices.from_console(services, tmp_path / "policy")
    threads: list[str] = []
    real_page = admin_services.review.page

    def spy_page(*args: Any, **kwargs: Any):  # the real call, noting the thread it runs on
        threads.append(threading.current_thread().name)
        return real_page(*args, **kwargs)

    admin_services.review.page = spy_page  # type: ignore[method-assign]
    widget = AdminConsole(admin_services, admin)
    qtbot.addWidget(widget)
    widget.show()
    page = widget.audit_page
    model = page.model
    qtbot.waitUntil(lambda: model.pages_loaded >= 1, timeout=WAIT_MS)
    assert model.rowCount() == 200 and not model.exhausted
    total = services.trail.head().seq
    while model.canFetchMore():
        model.fetchMore()  # what the view does as the admin scrolls to the end
        qtbot.waitUntil(lambda: not model.loading, timeout=WAIT_MS)
    assert model.exhausted and model.rowCount() >= total - 1
    seqs = [model.row_at(r).seq for r in range(model.rowCount())]  # type: ignore[union-attr]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    assert threads and all(name.startswith("audit-pages") for name in threads)
    assert threading.current_thread().name not in threads

    page.user_box.setEditText("thera")
    page.action_box.setEditText("alarm.*")
    qtbot.mouseClick(page.apply_button, _left())
    qtbot.waitUntil(lambda: model.pages_loaded >= 1 and not model.loading, timeout=WAIT_MS)
    rows = [model.row_at(r) for r in range(model.rowCount())]
    assert rows and all(r.actor == "thera" and r.action.startswith("alarm.") for r in rows)
    assert "events shown" in page.status_label.text()

    page.table.selectRow(0)
    qtbot.waitUntil(lambda: page.details.toPlainText() != "", timeout=WAIT_MS)
    assert f'"seq": {rows[0].seq}' in page.details.toPlainText()
    assert "links hold" in page.chain_label.text()
    chain = page.chain_label.text()
    assert "signature valid" in chain or "no signed checkpoint" in chain

    page.start_edit.setText("next tuesday")
    qtbot.mouseClick(page.apply_button, _left())
    assert "not a date" in " ".join(page.notice.lines)


def _left():  # -> Qt.MouseButton
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


@pytest.mark.req("ADM-VERIFY-1")
def test_verify_now_shows_progress_and_the_result_and_updates_the_last_verification(
    qtbot: Any, console: AdminConsole, services: ConsoleServices
) -> None:
    page = console.audit_page
    qtbot.waitUntil(lambda: "not been verified" in page.verified_label.text(), timeout=WAIT_MS)
    qtbot.mouseClick(page.verify_button, _left())
    qtbot.waitUntil(lambda: page.last_outcome is not None, timeout=WAIT_MS)
    assert page.last_outcome is not None and page.last_outcome.ok
    assert "VERIFIED" in page.result_label.text()
    assert page.progress.value() == page.progress.maximum()
    qtbot.waitUntil(lambda: "Last verification" in page.verified_label.text(), timeout=WAIT_MS)
    assert "verified" in page.verified_label.text() and "admin" in page.verified_label.text()
    assert services.trail.get(page.last_outcome.audit_seq).action == "audit.verified"


@pytest.mark.req("ADM-USER-1")
def test_users_are_added_and_changed_from_the_screen(
    qtbot: Any, console: AdminConsole, services: ConsoleServices
) -> None:
    console.show_tab("Users")
    page = console.users_page
    qtbot.waitUntil(lambda: len(page.users) == 3, timeout=WAIT_MS)
    page.new_id.setText("nina")
    page.new_name.setText("Nina Nurse")
    page.new_role.setCurrentText("therapist")
    page.new_password.setText(PASSWORD)
    page.new_repeat.setText(PASSWORD + "x")
    qtbot.mouseClick(page.add_button, _left())
    assert "differ" in " ".join(page.notice.lines)
    page.new_repeat.setText(PASSWORD)
    qtbot.mouseClick(page.add_button, _left())
    qtbot.waitUntil(lambda: len(page.users) == 4, timeout=WAIT_MS)
    page.select("nina")
    page.role_box.setCurrentText("service")
    qtbot.mouseClick(page.role_button, _left())
    qtbot.waitUntil(
        lambda: any(u.user_id == "nina" and u.role == "service" for u in page.users),
        timeout=WAIT_MS,
    )
    recent = services.trail.events(after_seq=services.trail.head().seq - 6, limit=10)
    assert any(e.action == "user.role_changed" and e.subject_id == "nina" for e in recent)
    page.select("admin")
    qtbot.mouseClick(page.disable_button, _left())
    qtbot.waitUntil(lambda: "own account" in " ".join(page.notice.lines), timeout=WAIT_MS)


@pytest.mark.req("ADM-POLICY-1")
def test_a_new_policy_version_is_installed_from_the_screen(
    qtbot: Any, console: AdminConsole, services: ConsoleServices, tmp_path: Path
) -> None:
    console.show_tab("Policy")
    page = console.policy_page
    qtbot.waitUntil(lambda: page.view is not None, timeout=WAIT_MS)
    assert page.protocols.rowCount() == 7 and page.rules.rowCount() > 10
    text = read_packaged("protocols", "knee-oa-emtt.toml")[0]
    new = tmp_path / "knee-oa-emtt.toml"
    new.write_text(text.replace('version = "2026.1"', 'version = "2027.1"'), encoding="utf-8")
    page.path_edit.setText(str(new))
    qtbot.mouseClick(page.install_button, _left())
    qtbot.waitUntil(lambda: "in force" in page.notice.heading.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "2027.1" in page.history.text(), timeout=WAIT_MS)
    versions = {
        page.protocols.item(r, 0).text(): page.protocols.item(r, 1).text()
        for r in range(page.protocols.rowCount())
    }
    assert versions["knee-oa-emtt"] == "2027.1"
    assert services.rules.library.get("knee-oa-emtt").version == "2027.1"


@pytest.mark.req("ADM-CHART-1")
def test_charts_draw_the_figures(
    qtbot: Any,
    console: AdminConsole,
    services: ConsoleServices,
    patient_id: str,
) -> None:
    therapist = services.login("thera", PASSWORD)
    monday = date(2026, 6, 1)
    for i, (modality, protocol, pulses) in enumerate(
        [
            ("epat", "knee-pt-epat", 2000),
            ("epat", "knee-pt-epat", 1800),
            ("emtt", "knee-oa-emtt", 4000),
        ]
    ):
        record = services.sessions.create(
            therapist.actor, patient_id=patient_id, protocol_id=protocol,
            protocol_version="2026.1", modality=modality, session_date=monday + timedelta(days=i),
        )  # fmt: skip
        services.sessions.update(
            therapist.actor,
            record.session_id,
            {"delivered": pulses, "pain_before": 6, "pain_after": 2, "adverse_events": []},
        )
    console.show_tab("Charts")
    page = console.charts_page
    page.from_edit.setText("2026-05-25")
    page.to_edit.setText("2026-06-14")
    qtbot.mouseClick(page.refresh_button, _left())
    qtbot.waitUntil(lambda: page.data is not None and page.data.sessions == 3, timeout=WAIT_MS)
    assert [w.total for w in page.weekly.weeks] == [0, 3, 0]
    image = page.weekly.grab().toImage()
    colours = {
        image.pixelColor(x, y).name()
        for x in range(0, image.width(), 3)
        for y in range(0, image.height(), 3)
    }
    assert QColor(EPAT_COLOUR).name() in colours  # the bars are drawn
    assert "3 treatment sessions" in page.caption.text()


@pytest.mark.req("ADM-ROLE-1")
def test_a_therapist_or_service_engineer_cannot_open_the_admin_console(
    qtbot: Any, services: ConsoleServices, tmp_path: Path
) -> None:
    for user_id in ("thera", "svc"):
        user = services.login(user_id, PASSWORD)
        with pytest.raises(PermissionDenied):
            AdminConsole(services, user, policy_folder=tmp_path / "policy")
        denied = services.trail.get(services.trail.head().seq)
        assert (denied.action, denied.actor, denied.data["action"]) == (
            "access.denied",
            user_id,
            "view_audit",
        )
