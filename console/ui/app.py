"""Start the Qt console: one QApplication, the theme, the main window.

``run`` is what the command line calls (``therapy-console`` and ``--demo``); tests and the
screenshot script build ``MainWindow`` themselves inside pytest-qt's or their own application.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication

from console.ui.input_guard import install_input_guard
from console.ui.main_window import MainWindow
from console.ui.ports import ConsoleBackend
from console.ui.theme import apply_theme
from console.ui.toolkit import reference_count_defect


def application(argv: Sequence[str] | None = None) -> QApplication:
    """The process's QApplication (created once), themed; refuses a defective Qt binding."""
    defect = reference_count_defect()
    if defect is not None:
        raise RuntimeError(defect)
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setApplicationName("therapy-console")
        app.setOrganizationName("clinic")
    assert isinstance(app, QApplication)
    apply_theme(app)
    install_input_guard(app)
    return app


def run(backend: ConsoleBackend, *, lock_after_s: float | None = None) -> int:
    """Show the console and run the event loop until the window closes; returns the exit code."""
    app = application()
    window = MainWindow(backend, lock_after_s=lock_after_s)
    window.show()
    try:
        return app.exec()
    finally:
        window.shutdown()
