"""The session story on screen and its PDF (Qt's own writer), the range PDF and the trail export,
driven from the admin console's screens over a session treated through the simulator."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from console.auth import SignedInUser
from console.services import ConsoleServices
from console.ui.admin.console import AdminConsole
from tests.console.admin.conftest import TreatedSession
from tests.console.ui.admin.pdftext import pdf_text, squeeze

pytestmark = [pytest.mark.gui]
WAIT_MS = 20_000


@pytest.fixture
def console(qtbot: Any, services: ConsoleServices, admin: SignedInUser, tmp_path: Path):
    widget = AdminConsole(services, admin, policy_folder=tmp_path / "policy")
    qtbot.addWidget(widget)
    widget.resize(1366, 860)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.mark.req("ADM-PDF-1")
@pytest.mark.req("ADM-STORY-1")
def test_the_session_story_and_its_pdf_carry_the_figures_signatures_and_anchor(
    qtbot: Any,
    console: AdminConsole,
    services: ConsoleServices,
    treated: TreatedSession,
    tmp_path: Path,
) -> None:
    console.show_tab("Session story")
    page = console.story_page
    out = tmp_path / "session.pdf"
    page.ask_path = lambda _parent, _title, suggested: out
    page.pseudonym_edit.setText("KNEE-0001")
    qtbot.mouseClick(page.find_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.results.rowCount() == 1, timeout=WAIT_MS)
    page.results.selectRow(0)
    qtbot.waitUntil(lambda: page.story is not None, timeout=WAIT_MS)
    shown = page.view.toPlainText()
    for figure in ("150 of 150", "7 → 3", "reddening", "Theo Therapist", "performed"):
        assert figure in shown, figure
    qtbot.mouseClick(page.print_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.last_pdf is not None, timeout=WAIT_MS)
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    text = squeeze(pdf_text(out))
    exported = services.trail.get(services.trail.head().seq)
    assert exported.action == "report.exported" and exported.subject_id == treated.session_id
    assert exported.data["file_sha256"] == hashlib.sha256(data).hexdigest()
    anchor = services.trail.get(exported.data["anchor_seq"])
    assert anchor.action == "audit.checkpoint" and anchor.hash == exported.data["anchor_hash"]
    for figure in (
        treated.session_id,
        "KNEE-0001",
        "150of150",
        "7→3",
        "reddening",
        "2.00bar",
        "TheoTherapist(thera)",
        "performed",
        anchor.hash,
    ):
        assert squeeze(figure) in text, figure


@pytest.mark.req("ADM-PDF-1")
@pytest.mark.req("ADM-EXPORT-1")
def test_the_range_pdf_and_the_trail_export_from_the_exports_screen(
    qtbot: Any,
    console: AdminConsole,
    services: ConsoleServices,
    treated: TreatedSession,
    tmp_path: Path,
) -> None:
    console.show_tab("Exports and reports")
    page = console.exports_page
    record = services.sessions.load(treated.session_id)
    day = record.session_date.isoformat()
    pdf = tmp_path / "range.pdf"
    page.ask_path = lambda _parent, _title, _suggested: pdf
    page.from_edit.setText(day)
    page.to_edit.setText(day)
    qtbot.mouseClick(page.range_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.last_pdf is not None, timeout=WAIT_MS)
    text = squeeze(pdf_text(pdf))
    for figure in (treated.session_id, "KNEE-0001", "EPAT150", "7→3", "reddening", day):
        assert squeeze(figure) in text, figure
    trail_file = tmp_path / "trail.jsonl"
    page.ask_path = lambda _parent, _title, _suggested: trail_file
    qtbot.mouseClick(page.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.last_export is not None, timeout=WAIT_MS)
    assert trail_file.is_file() and Path(f"{trail_file}.public-key.pem").is_file()
    assert "events" in page.export_result.text()
