"""The audit table's model: rows arrive a page at a time, fetched on a worker thread.

Qt asks ``canFetchMore``/``fetchMore`` as the view scrolls near the end; the model then asks the
review service for the next page after the last row's cursor on its own thread and inserts the
rows when they come back. A new filter starts a new *generation*: pages of an older filter that
arrive late are dropped, never mixed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

from console.admin.audit_query import AuditFilter, AuditPage, AuditRow, Cursor
from console.ui import theme
from console.ui.admin.tasks import BackgroundTasks

Fetch = Callable[[AuditFilter, Cursor | None], AuditPage]
COLUMNS = ("seq", "time (UTC)", "user", "role", "action", "subject", "details")
_ACTION_COLOURS = {
    "access.denied": theme.DANGER,
    "user.login_failed": theme.DANGER,
    "audit.checkpoint": theme.MUTED,
    "alarm.raised": theme.CAUTION,
}
Index = QModelIndex | QPersistentModelIndex


class AuditTableModel(QAbstractTableModel):
    page_loaded = Signal(int, float)  # rows in the page, milliseconds the query took
    failed = Signal(str)
    loading_changed = Signal(bool)

    def __init__(self, fetch: Fetch, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fetch = fetch
        self._tasks = BackgroundTasks(self, workers=1, name="audit-pages")
        self._rows: list[AuditRow] = []
        self._filter = AuditFilter()
        self._cursor: Cursor | None = None
        self._exhausted = True
        self._loading = False
        self._generation = 0
        self.pages_loaded = 0

    # ------------------------------------------------------------------ control
    @property
    def filter(self) -> AuditFilter:
        return self._filter

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def set_filter(self, flt: AuditFilter) -> None:
        """Show ``flt`` from its newest event (the first page is fetched at once)."""
        self.beginResetModel()
        self._generation += 1
        self._rows = []
        self._filter = flt
        self._cursor = None
        self._exhausted = False
        self._loading = False
        self.pages_loaded = 0
        self.endResetModel()
        self._request()

    def row_at(self, row: int) -> AuditRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def shutdown(self) -> None:
        self._generation += 1
        self._tasks.shutdown(wait=True)

    # ------------------------------------------------------------------ Qt model
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.row_at(index.row())
        if row is None or not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                row.seq,
                row.ts.replace("T", " ")[:19],
                row.actor,
                row.role,
                row.action,
                f"{row.subject_type} {row.subject_id}",
                row.summary,
            )[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 4:
            colour = _ACTION_COLOURS.get(row.action)
            return QColor(colour) if colour else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.summary if index.column() == 6 else f"{row.ts} (UTC), seq {row.seq}"
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802, B008
        return not parent.isValid() and not self._exhausted and not self._loading

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: N802, B008
        if self.canFetchMore(parent):
            self._request()

    # ------------------------------------------------------------------ paging
    def _request(self) -> None:
        if self._loading or self._exhausted:
            return
        self._set_loading(True)
        generation, flt, cursor = self._generation, self._filter, self._cursor
        self._tasks.submit(
            lambda: self._fetch(flt, cursor),
            lambda page: self._arrived(generation, page),
            lambda exc: self._failed(generation, exc),
        )

    def _arrived(self, generation: int, page: AuditPage) -> None:
        if generation != self._generation:
            return  # a page of an earlier filter
        self._set_loading(False)
        if page.rows:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page.rows) - 1)
            self._rows.extend(page.rows)
            self.endInsertRows()
        self._cursor = page.next_cursor
        self._exhausted = page.next_cursor is None
        self.pages_loaded += 1
        self.page_loaded.emit(len(page.rows), page.elapsed_ms)

    def _failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self._set_loading(False)
        self._exhausted = True
        self.failed.emit(str(exc) or type(exc).__name__)

    def _set_loading(self, loading: bool) -> None:
        if self._loading != loading:
            self._loading = loading
            self.loading_changed.emit(loading)
