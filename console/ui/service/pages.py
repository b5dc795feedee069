"""The service console's pages: diagnostics, raw console, communication log and replay, rooms.

Each page shows what ``console.service`` returns and forwards the engineer's intent; every call
runs on a worker thread (device calls on the unit's own worker, behind that).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.auth import SignedInUser
from console.service.commlog_view import CommLogFile, CommLogView
from console.service.context import ConnectionCheck, ServiceServices, ServiceUnit
from console.service.diagnostics import UnitDiagnostics, range_text
from console.service.raw import RawExchange
from console.service.replay import ReplayResult
from console.service.rooms import MODALITIES, PortInfo, RoomSettings, UnitLink
from console.ui import theme
from console.ui.admin.tasks import BackgroundTasks
from console.ui.executor import GuiDispatcher
from console.ui.widgets import Notice, button, button_row, label, panel

MONO = QFont("DejaVu Sans Mono", 9)


def table(columns: tuple[str, ...], name: str) -> QTableWidget:
    widget = QTableWidget(0, len(columns))
    widget.setObjectName(name)
    widget.setHorizontalHeaderLabels(list(columns))
    widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    widget.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    widget.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    widget.verticalHeader().hide()
    widget.horizontalHeader().setStretchLastSection(True)
    return widget


def fill(
    widget: QTableWidget, rows: list[tuple[str, ...]], colours: list[str | None] | None = None
) -> None:
    widget.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            item = QTableWidgetItem(value)
            item.setToolTip(value)
            if colours and colours[r]:
                item.setForeground(QColor(colours[r]))
            widget.setItem(r, c, item)
    widget.resizeColumnsToContents()


# ---------------------------------------------------------------------------- diagnostics
class DiagnosticsPage(QWidget):
    def __init__(
        self, tasks: BackgroundTasks, user: SignedInUser, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.user = user
        self.unit: ServiceUnit | None = None
        self.report: UnitDiagnostics | None = None
        self.notice = Notice()
        self.notice.setObjectName("diagnosticsNotice")
        self.self_test_box = QCheckBox("run the self-test (the unit must be idle)")
        self.self_test_box.setChecked(True)
        self.run_button = button("&Run diagnostics", role="primary", name="runDiagnostics")
        self.identity = label("Connect a unit, then run its diagnostics.", wrap=True)
        self.identity.setObjectName("diagIdentity")
        self.identity.setTextFormat(Qt.TextFormat.RichText)
        self.wear_bar = QProgressBar()
        self.wear_bar.setObjectName("wearBar")
        self.wear_bar.setRange(0, 1000)
        self.wear_bar.setValue(0)
        self.wear_label = label("", wrap=True)
        self.wear_label.setObjectName("wearLabel")
        self.checks = label("", wrap=True)
        self.checks.setObjectName("selfTestChecks")
        self.checks.setTextFormat(Qt.TextFormat.RichText)
        self.link = table(("figure", "value"), "linkTable")
        self.events = table(("index", "uptime (s)", "event"), "eventLogTable")
        top, top_layout = panel()
        top_layout.addWidget(label("Unit", "section"))
        top_layout.addWidget(self.identity)
        top_layout.addWidget(button_row(self.self_test_box, self.run_button))
        wear, wear_layout = panel()
        wear_layout.addWidget(label("Applicator wear", "section"))
        wear_layout.addWidget(self.wear_bar)
        wear_layout.addWidget(self.wear_label)
        wear_layout.addWidget(label("Self-test", "section"))
        wear_layout.addWidget(self.checks)
        lower = QSplitter(Qt.Orientation.Horizontal)
        link_box, link_layout = panel()
        link_layout.addWidget(label("Link quality", "section"))
        link_layout.addWidget(self.link)
        events_box, events_layout = panel()
        events_layout.addWidget(label("The unit's event log", "section"))
        events_layout.addWidget(self.events)
        lower.addWidget(link_box)
        lower.addWidget(events_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        row = QSplitter(Qt.Orientation.Horizontal)
        row.addWidget(top)
        row.addWidget(wear)
        layout.addWidget(row)
        layout.addWidget(lower, 1)
        self.run_button.clicked.connect(self.run)
        self.set_unit(None)

    def set_unit(self, unit: ServiceUnit | None) -> None:
        self.unit = unit
        self.run_button.setEnabled(unit is not None)

    def run(self) -> None:
        unit = self.unit
        if unit is None:
            return
        run_test = self.self_test_box.isChecked()
        self.run_button.setEnabled(False)
        self.tasks.submit(
            lambda: unit.diagnostics(self.user, run_self_test=run_test),
            self.show_report,
            self._error,
        )

    def show_report(self, report: UnitDiagnostics) -> None:
        self.report = report
        self.run_button.setEnabled(self.unit is not None)
        i, e, s = report.identity, report.envelope, report.status
        envelope = "—"
        if e is not None:
            first = (
                range_text(e.pressure_bar, "bar")
                if e.pressure_bar
                else range_text(e.field_mt, "mT")
            )
            frequency = range_text(e.frequency_hz, "Hz")
            envelope = f"{first}; {frequency}; up to {e.pulses.maximum} pulses per load"
        state = "—"
        if s is not None:
            faults = ", ".join(s.faults) or "none"
            state = f"{s.state.value}, {s.temperature_c} °C, faults: {faults}"
        self.identity.setText(
            f"<b>{i.model}</b> serial <b>{i.serial}</b> — firmware {i.firmware}, protocol "
            f"{i.protocol_version}<br>Envelope: {envelope}<br>Now: {state}"
            + (f"<br>Coil: {report.coil}" if report.coil else "")
        )
        wear, applicator = report.wear, report.applicator
        if applicator is None or not applicator.present:
            self.wear_bar.setValue(0)
            self.wear_bar.setFormat("no applicator fitted")
            self.wear_label.setText("")
        elif wear is not None:
            self.wear_bar.setValue(min(1000, int(wear.percent * 10)))
            self.wear_bar.setFormat(f"{wear.percent} % of rated life")
            colour = theme.DANGER if wear.warning else theme.PRIMARY
            self.wear_bar.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")
            warning = (
                "  WARNING: 90 % or more of its rated life — plan the replacement."
                if wear.warning
                else ""
            )
            self.wear_label.setText(
                f"{applicator.type} serial {applicator.serial}: {wear.used:,} of {wear.rated:,} "
                f"shots used.{warning}"
            )
        test = report.self_test
        if test.ran:
            lines = [
                f"<span style='color:{theme.OK if c.passed else theme.DANGER}'>"
                f"{'✔' if c.passed else '✘'} {c.name.replace('_', ' ').lower()}</span>"
                for c in test.checks
            ]
            verdict = "passed" if test.passed else f"FAILED (code {test.raw:#06x})"
            self.checks.setText(f"<b>Self-test {verdict}</b><br>" + "<br>".join(lines))
        else:
            self.checks.setText(test.reason)
        link = report.link
        if link is not None:
            fill(
                self.link,
                [
                    ("exchanges", str(link.exchanges)),
                    ("round trip, median", f"{link.rtt_median_ms} ms"),
                    ("round trip, 99th percentile", f"{link.rtt_p99_ms} ms"),
                    ("round trip, max", f"{link.rtt_max_ms} ms"),
                    ("retries", str(link.retries)),
                    ("timeouts", str(link.timeouts)),
                    (
                        "CRC errors seen by the console",
                        "—" if link.crc_errors_host is None else str(link.crc_errors_host),
                    ),
                    (
                        "CRC errors counted by the unit",
                        "—" if link.crc_errors_unit is None else str(link.crc_errors_unit),
                    ),
                    ("garbled / dropped", str(link.garbled)),
                ],
            )
        fill(
            self.events,
            [
                (
                    str(ev.index),
                    "—" if ev.uptime_ms is None else f"{ev.uptime_ms / 1000:.3f}",
                    ev.text,
                )
                for ev in report.events
            ],
            [theme.DANGER if ev.kind.value == "fault" else None for ev in report.events],
        )
        if report.problems:
            self.notice.show_lines("Some readings failed", list(report.problems), "warning")
        else:
            self.notice.clear()

    def _error(self, exc: BaseException) -> None:
        self.run_button.setEnabled(self.unit is not None)
        self.notice.show_lines("Diagnostics", [str(exc) or type(exc).__name__], "refuse")


# ---------------------------------------------------------------------------- raw console
class RawConsolePage(QWidget):
    def __init__(
        self, tasks: BackgroundTasks, user: SignedInUser, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.user = user
        self.unit: ServiceUnit | None = None
        self.exchanges: list[RawExchange] = []
        self.transcript = QPlainTextEdit()
        self.transcript.setObjectName("rawTranscript")
        self.transcript.setReadOnly(True)
        self.transcript.setFont(MONO)
        self.input = QLineEdit()
        self.input.setObjectName("rawInput")
        self.input.setFont(MONO)
        self.send_button = button("&Send", role="primary", name="rawSend")
        self.hint = label("", "muted")
        self.hint.setObjectName("rawHint")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(
            label(
                "Every raw command is recorded in the audit trail with its reply. The unit refuses "
                "them while it is armed, delivering or paused (nothing is sent).",
                "muted",
            )
        )
        layout.addWidget(self.transcript, 1)
        row = QWidget()
        grid = QGridLayout(row)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.input, 0, 0)
        grid.addWidget(self.send_button, 0, 1)
        layout.addWidget(row)
        layout.addWidget(self.hint)
        self.send_button.clicked.connect(self.send)
        self.input.returnPressed.connect(self.send)
        self.set_unit(None)

    def set_unit(self, unit: ServiceUnit | None) -> None:
        self.unit = unit
        self.send_button.setEnabled(unit is not None)
        self.input.setEnabled(unit is not None)
        if unit is None:
            self.hint.setText("Connect a unit first.")
        elif unit.unit.modality == "epat":
            self.hint.setText(
                "EPAT: a command name or code and a hex payload, e.g. GET_STATUS, 0x41 00 00"
            )
        else:
            self.hint.setText("EMTT: one SCPI line, e.g. SYST:ERR? or *IDN?")

    def send(self) -> None:
        unit, text = self.unit, self.input.text()
        if unit is None or not text.strip():
            return
        self.input.clear()
        self.tasks.submit(
            lambda: unit.raw(self.user, text),
            self._show,
            lambda exc: self.transcript.appendPlainText(f"> {text}\n  not sent: {exc}"),
        )

    def _show(self, exchange: RawExchange) -> None:
        self.exchanges.append(exchange)
        prefix = {
            "reply": "",
            "refused": "REFUSED: ",
            "rejected": "the unit refused: ",
            "failed": "FAILED: ",
        }
        reply = prefix.get(exchange.outcome, "") + exchange.reply
        self.transcript.appendPlainText(f"> {exchange.command}\n  " + reply.replace("\n", "\n  "))


# ---------------------------------------------------------------------------- comm log
AskFile = Callable[[QWidget], Path | None]


def ask_commlog(parent: QWidget) -> Path | None:
    name, _ = QFileDialog.getOpenFileName(parent, "A communication log", "", "JSON lines (*.jsonl)")
    return Path(name) if name else None


class CommLogPage(QWidget):
    def __init__(
        self,
        services: ServiceServices,
        tasks: BackgroundTasks,
        user: SignedInUser,
        parent: QWidget | None = None,
        *,
        ask_file: AskFile = ask_commlog,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.tasks = tasks
        self.user = user
        self.ask_file = ask_file
        self.dispatch = GuiDispatcher(self)
        self.files: list[CommLogFile] = []
        self.view: CommLogView | None = None
        self.replay_result: ReplayResult | None = None
        self.notice = Notice()
        self.notice.setObjectName("commlogNotice")
        self.file_table = table(("session", "unit", "size", "written (UTC)"), "commlogFiles")
        self.open_button = button("Open other file…", name="openCommlog")
        self.refresh_button = button("Refresh", name="refreshCommlogs")
        self.rows = table(("t (ms)", "dir", "kind", "decoded"), "commlogRows")
        self.rows.setFont(MONO)
        self.speed = QDoubleSpinBox()
        self.speed.setObjectName("replaySpeed")
        self.speed.setRange(1.0, 50.0)
        self.speed.setValue(10.0)
        self.speed.setSuffix(" × real time")
        self.replay_button = button("&Replay against the simulator", role="primary", name="replay")
        self.replay_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("replayProgress")
        self.replay_table = table(
            ("t (ms)", "command", "recorded reply", "simulator's reply", ""), "replayRows"
        )
        self.replay_table.setFont(MONO)
        self.summary = label("", wrap=True)
        self.summary.setObjectName("replaySummary")
        left, left_layout = panel()
        left_layout.addWidget(label("Session logs", "section"))
        left_layout.addWidget(self.file_table, 1)
        left_layout.addWidget(button_row(self.refresh_button, self.open_button))
        right = QSplitter(Qt.Orientation.Vertical)
        decoded, decoded_layout = panel()
        decoded_layout.addWidget(label("Decoded traffic", "section"))
        decoded_layout.addWidget(self.rows, 1)
        replay, replay_layout = panel()
        replay_layout.addWidget(label("Replay: recorded replies beside the simulator's", "section"))
        replay_layout.addWidget(button_row(self.speed, self.replay_button))
        replay_layout.addWidget(self.progress)
        replay_layout.addWidget(self.summary)
        replay_layout.addWidget(self.replay_table, 1)
        right.addWidget(decoded)
        right.addWidget(replay)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(split, 1)
        self.refresh_button.clicked.connect(self.load)
        self.open_button.clicked.connect(self._open_other)
        self.file_table.cellDoubleClicked.connect(lambda row, _c: self._open_row(row))
        self.file_table.itemSelectionChanged.connect(self._selected)
        self.replay_button.clicked.connect(self.replay)

    def load(self) -> None:
        self.tasks.submit(lambda: self.services.commlogs(self.user), self._show_files, self._error)

    def _show_files(self, files: list[CommLogFile]) -> None:
        self.files = files
        fill(
            self.file_table,
            [(f.session_id, f.modality.upper(), f"{f.size_bytes:,} B", f.modified) for f in files],
        )

    def _selected(self) -> None:
        rows = {i.row() for i in self.file_table.selectedIndexes()}
        if len(rows) == 1:
            self._open_row(rows.pop())

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self.files):
            self.open(self.files[row].path)

    def _open_other(self) -> None:
        path = self.ask_file(self)
        if path is not None:
            self.open(path)

    def open(self, path: Path) -> None:
        self.tasks.submit(
            lambda: self.services.read_commlog(self.user, path), self.show_view, self._error
        )

    def show_view(self, view: CommLogView) -> None:
        self.view = view
        colours = {
            "command": None,
            "reply": theme.PRIMARY_DARK,
            "unsolicited": theme.MUTED,
            "garbage": theme.DANGER,
        }
        fill(
            self.rows,
            [
                (r.t_ms, "→ unit" if r.direction == "tx" else "← unit", r.kind, r.text)
                for r in view.rows
            ],
            [colours.get(r.kind) for r in view.rows],
        )
        self.replay_button.setEnabled(True)
        self.summary.setText(
            f"{view.path.name}: {view.modality.upper()}, {view.records:,} records over "
            f"{view.duration_ms / 1000:.1f} s"
        )

    def replay(self) -> None:
        view = self.view
        if view is None:
            return
        speed = self.speed.value()
        self.replay_button.setEnabled(False)
        self.progress.setRange(0, 0)

        def progress(done: int, total: int) -> None:
            self.dispatch.post(
                lambda: (self.progress.setRange(0, total), self.progress.setValue(done))
            )

        self.tasks.submit(
            lambda: self.services.replay(self.user, view.path, speed, progress),
            self.show_replay,
            self._error,
        )

    def show_replay(self, result: ReplayResult) -> None:
        self.replay_result = result
        self.replay_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        fill(
            self.replay_table,
            [
                (
                    str(r.t_ms),
                    r.command,
                    r.recorded,
                    r.replayed,
                    ("same" if r.same else "DIFFERS") + (f" ({r.note})" if r.note else ""),
                )
                for r in result.rows
            ],
            [None if r.same else theme.DANGER for r in result.rows],
        )
        for column, width in enumerate((60, 250, 360, 360)):
            self.replay_table.setColumnWidth(column, width)
        first = result.first_difference
        self.summary.setText(
            f"{len(result.rows)} commands replayed at {result.speed:g}× "
            f"in {result.elapsed_s:.1f} s: "
            + (
                "every reply as recorded."
                if first is None
                else f"{result.differences} differ; the first at {first.t_ms} ms: {first.command}"
            )
        )

    def _error(self, exc: BaseException) -> None:
        self.replay_button.setEnabled(self.view is not None)
        self.progress.setRange(0, 1)
        self.notice.show_lines("Communication log", [str(exc) or type(exc).__name__], "refuse")


# ---------------------------------------------------------------------------- rooms
class RoomsPage(QWidget):
    def __init__(
        self,
        services: ServiceServices,
        tasks: BackgroundTasks,
        user: SignedInUser,
        on_settings: Callable[[RoomSettings], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.tasks = tasks
        self.user = user
        self.on_settings = on_settings
        self.settings = RoomSettings(())
        self.last_check: ConnectionCheck | None = None
        self.notice = Notice()
        self.notice.setObjectName("roomsNotice")
        self.units = table(("room", "unit", "modality", "link"), "roomsTable")
        self.room_edit = QLineEdit()
        self.room_edit.setObjectName("roomName")
        self.room_edit.setPlaceholderText("room, e.g. Room 2")
        self.unit_edit = QLineEdit()
        self.unit_edit.setObjectName("unitName")
        self.unit_edit.setPlaceholderText("unit, e.g. EPAT")
        self.modality_box = QComboBox()
        self.modality_box.setObjectName("unitModality")
        self.modality_box.addItems(list(MODALITIES))
        self.link_box = QComboBox()
        self.link_box.setObjectName("unitLink")
        self.link_box.setEditable(True)
        self.link_box.setMinimumWidth(320)
        line = self.link_box.lineEdit()
        assert line is not None
        line.setPlaceholderText("/dev/ttyUSB0, socket://HOST:PORT or TCPIP0::HOST::5025::SOCKET")
        self.save_button = button("Save unit", role="primary", name="saveUnit")
        self.remove_button = button("Remove", name="removeUnit")
        self.check_button = button("&Check connection", name="checkConnection")
        self.discover_button = button("Discover ports", name="discoverPorts")
        self.check_result = label("", wrap=True)
        self.check_result.setObjectName("checkResult")
        self.ports = label("", "muted")
        self.ports.setObjectName("portsFound")
        form, form_layout = panel()
        form_layout.addWidget(label("A unit's link", "section"))
        grid = QGridLayout()
        for column, widget in enumerate(
            (self.room_edit, self.unit_edit, self.modality_box, self.link_box)
        ):
            grid.addWidget(widget, 0, column)
        grid.setColumnStretch(3, 1)
        form_layout.addLayout(grid)
        form_layout.addWidget(
            button_row(
                self.discover_button, self.check_button, self.remove_button, self.save_button
            )
        )
        form_layout.addWidget(self.check_result)
        form_layout.addWidget(self.ports)
        form_layout.addWidget(
            label(
                "Discovery lists this computer's serial ports and the VISA resources named here; "
                "it never searches the network.",
                "muted",
            )
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(self.units, 1)
        layout.addWidget(form)
        self.units.itemSelectionChanged.connect(self._selected)
        self.save_button.clicked.connect(self.save)
        self.remove_button.clicked.connect(self.remove)
        self.check_button.clicked.connect(self.check)
        self.discover_button.clicked.connect(self.discover)

    def load(self) -> None:
        self.tasks.submit(lambda: self.services.rooms(self.user), self.show_settings, self._error)
        self.discover()

    def show_settings(self, settings: RoomSettings) -> None:
        self.settings = settings
        fill(self.units, [(u.room, u.name, u.modality.upper(), u.link) for u in settings.units])
        self.on_settings(settings)

    def _selected(self) -> None:
        rows = {i.row() for i in self.units.selectedIndexes()}
        if len(rows) != 1:
            return
        unit = self.settings.units[rows.pop()]
        self.room_edit.setText(unit.room)
        self.unit_edit.setText(unit.name)
        self.modality_box.setCurrentText(unit.modality)
        self.link_box.setEditText(unit.link)

    def form_unit(self) -> UnitLink:
        return UnitLink(
            self.room_edit.text().strip(),
            self.unit_edit.text().strip(),
            self.modality_box.currentText(),
            self.link_box.currentText().strip(),
        )

    def save(self) -> None:
        unit = self.form_unit()
        self.tasks.submit(
            lambda: self.services.save_unit(self.user, unit), self._saved, self._error
        )

    def remove(self) -> None:
        unit = self.form_unit()
        self.tasks.submit(
            lambda: self.services.remove_unit(self.user, unit.room, unit.name),
            self._saved,
            self._error,
        )

    def _saved(self, settings: RoomSettings) -> None:
        self.notice.show_lines("Room settings saved", ["recorded in the audit trail"], "ok")
        self.show_settings(settings)

    def check(self) -> None:
        unit = self.form_unit()
        self.check_result.setText(f"Checking {unit.link} …")
        self.tasks.submit(
            lambda: self.services.check_connection(self.user, unit), self._checked, self._error
        )

    def _checked(self, result: ConnectionCheck) -> None:
        self.last_check = result
        colour = theme.OK if result.ok else theme.DANGER
        verdict = "connected" if result.ok else "NO CONNECTION"
        self.check_result.setText(
            f"<span style='color:{colour}; font-weight:bold'>{verdict}</span> "
            f"({result.elapsed_ms} ms): {result.message}"
        )

    def discover(self) -> None:
        self.tasks.submit(lambda: self.services.discover(self.user), self._discovered, self._error)

    def _discovered(self, ports: list[PortInfo]) -> None:
        text = self.link_box.currentText()
        self.link_box.clear()
        self.link_box.addItems([p.name for p in ports])
        self.link_box.setEditText(text)
        self.ports.setText(
            "Found: "
            + (
                "; ".join(
                    f"{p.name} ({p.kind}{', ' + p.description if p.description else ''})"
                    for p in ports
                )
                or "none"
            )
        )

    def _error(self, exc: BaseException) -> None:
        self.notice.show_lines("Rooms", [str(exc) or type(exc).__name__], "refuse")
