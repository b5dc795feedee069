"""The service engineer's console: connect a unit, run its diagnostics, use the raw console,
read and replay communication logs, configure the rooms' links.

``ServiceConsole(services, user)`` is the one widget the main window shows for the service role
(``services``: the console's ``ConsoleServices``, or ready-made ``ServiceServices``). Building it
is a permission check (``device_diagnostics``, audited when refused). While a unit is connected,
the red EMERGENCY STOP button here and the Esc key (from anywhere in the application) stop it at
once on the unit's own emergency-stop thread, never behind a queued command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication, QComboBox, QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

from console.auth import SignedInUser
from console.service.context import ServiceServices, ServiceUnit
from console.service.rooms import RoomSettings, UnitLink
from console.ui.admin.tasks import BackgroundTasks
from console.ui.estop import EmergencyKeyFilter, EmergencyStopButton
from console.ui.service.pages import CommLogPage, DiagnosticsPage, RawConsolePage, RoomsPage
from console.ui.widgets import Notice, button, label

TAB_NAMES = ("Diagnostics", "Raw console", "Communication log", "Rooms and connections")


class ServiceConsole(QWidget):
    def __init__(
        self,
        services: Any,
        user: SignedInUser,
        parent: QWidget | None = None,
        *,
        rooms_path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        service = (
            services
            if isinstance(services, ServiceServices)
            else ServiceServices.from_console(services, rooms_path)
        )
        service.auth.require(user, "device_diagnostics")  # for service engineers (audited)
        self.services = service
        self.user = user
        self.setObjectName("serviceConsole")
        self.unit: ServiceUnit | None = None
        self.tasks = BackgroundTasks(self, workers=1, name="service")  # one: commands in order
        self.estop_tasks = BackgroundTasks(self, workers=1, name="service-estop")
        self.notice = Notice()
        self.notice.setObjectName("serviceNotice")

        self.unit_box = QComboBox()
        self.unit_box.setObjectName("serviceUnit")
        self.unit_box.setMinimumWidth(320)
        self.connect_button = button("&Connect", role="primary", name="connectUnit")
        self.disconnect_button = button("&Disconnect", name="disconnectUnit")
        self.unit_label = label("No unit connected.", wrap=True)
        self.unit_label.setObjectName("connectedUnit")
        self.estop = EmergencyStopButton()
        bar = QWidget()
        bar_layout = QHBoxLayout(bar)
        bar_layout.setContentsMargins(0, 0, 0, 0)
        bar_layout.addWidget(label("Unit", "section", wrap=False))
        bar_layout.addWidget(self.unit_box)
        bar_layout.addWidget(self.connect_button)
        bar_layout.addWidget(self.disconnect_button)
        bar_layout.addWidget(self.unit_label, 1)
        bar_layout.addWidget(self.estop)

        self.diagnostics_page = DiagnosticsPage(self.tasks, user)
        self.raw_page = RawConsolePage(self.tasks, user)
        self.commlog_tasks = BackgroundTasks(self, workers=1, name="service-commlog")
        self.commlog_page = CommLogPage(service, self.commlog_tasks, user)
        self.rooms_page = RoomsPage(service, self.tasks, user, self._rooms_changed)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("serviceTabs")
        for page, name in zip(self.pages(), TAB_NAMES, strict=True):
            wrapper = QWidget()
            wrapper_layout = QVBoxLayout(wrapper)
            wrapper_layout.setContentsMargins(16, 12, 16, 12)
            wrapper_layout.addWidget(page)
            self.tabs.addTab(wrapper, name)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 12, 18, 12)
        layout.addWidget(label(f"Service — {user.full_name}", "title"))
        layout.addWidget(
            label(
                "Keep the units safe to use. Sessions appear by id only; diagnostics, raw "
                "commands and link changes are recorded in the audit trail.",
                "subtitle",
            )
        )
        layout.addWidget(self.notice)
        layout.addWidget(bar)
        layout.addWidget(self.tabs, 1)

        self.key_filter = EmergencyKeyFilter(
            self.emergency_stop, lambda: self.unit is not None, self
        )
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.key_filter)
        self.connect_button.clicked.connect(self.connect_unit)
        self.disconnect_button.clicked.connect(self.disconnect_unit)
        self.estop.triggered.connect(self.emergency_stop)
        self._show_unit(None)
        self.rooms_page.load()
        self.commlog_page.load()

    def pages(self) -> list[QWidget]:
        return [self.diagnostics_page, self.raw_page, self.commlog_page, self.rooms_page]

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TAB_NAMES.index(name))

    # ------------------------------------------------------------------ units
    def _rooms_changed(self, settings: RoomSettings) -> None:
        current = self.unit_box.currentData()
        self.unit_box.clear()
        for unit in settings.units:
            self.unit_box.addItem(f"{unit.label} — {unit.link}", unit)
        if current is not None:
            index = self.unit_box.findText(f"{current.label} — {current.link}")
            if index >= 0:
                self.unit_box.setCurrentIndex(index)

    def select_unit(self, room: str, name: str) -> None:
        for i in range(self.unit_box.count()):
            unit = self.unit_box.itemData(i)
            if isinstance(unit, UnitLink) and (unit.room, unit.name) == (room, name):
                self.unit_box.setCurrentIndex(i)
                return

    def connect_unit(self) -> None:
        unit = self.unit_box.currentData()
        if not isinstance(unit, UnitLink) or self.unit is not None:
            return
        self.connect_button.setEnabled(False)
        self.unit_label.setText(f"Connecting to {unit.link} …")
        self.tasks.submit(
            lambda: self.services.connect(self.user, unit), self._show_unit, self._connect_failed
        )

    def _connect_failed(self, exc: BaseException) -> None:
        self._show_unit(None)
        self.notice.show_lines("Connect", [str(exc) or type(exc).__name__], "refuse")

    def _show_unit(self, unit: ServiceUnit | None) -> None:
        self.unit = unit
        for page in (self.diagnostics_page, self.raw_page):
            page.set_unit(unit)
        self.connect_button.setEnabled(unit is None)
        self.disconnect_button.setEnabled(unit is not None)
        self.unit_box.setEnabled(unit is None)
        if unit is None:
            self.unit_label.setText("No unit connected.")
        else:
            self.notice.clear()
            i = unit.identity
            self.unit_label.setText(
                f"Connected: {i.model} serial {i.serial}, firmware {i.firmware} ({unit.unit.link})"
            )

    def disconnect_unit(self) -> None:
        unit = self.unit
        if unit is None:
            return
        self._show_unit(None)
        self.tasks.submit(lambda: unit.close(self.user), None, self._connect_failed)

    def emergency_stop(self) -> None:
        """The button and Esc: on a thread of its own, never behind a diagnostics run."""
        unit = self.unit
        if unit is None:
            self.notice.show_lines(
                "Emergency stop", ["no unit is connected: nothing to stop"], "warning"
            )
            return
        self.estop_tasks.submit(
            lambda: unit.emergency_stop(self.user),
            lambda delivered: self.notice.show_lines(
                "EMERGENCY STOP",
                [f"{unit.unit.label} stopped and latched in fault ({delivered} pulses)"],
                "refuse",
            ),
            lambda exc: self.notice.show_lines(
                "EMERGENCY STOP NOT CONFIRMED", [str(exc)], "refuse"
            ),
        )

    def shutdown(self) -> None:
        """Close the connected unit (left stopped and disarmed) and stop the worker threads."""
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.key_filter)
        unit, self.unit = self.unit, None
        if unit is not None:
            unit.close(self.user)
        self.tasks.shutdown()
        self.commlog_tasks.shutdown()
        self.estop_tasks.shutdown()
