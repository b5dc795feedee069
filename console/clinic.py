"""The clinic's console start path (``therapy-console`` without ``--demo``).

The database is made ready before any screen opens (created, backed up and migrated, or refused:
``console.firstrun``); a new installation asks for its first admin on a screen of its own; then
the console opens, logged out. The treatment-room units are named by the environment
(``THERAPY_CONSOLE_EPAT`` = a pyserial URL or device path, ``THERAPY_CONSOLE_EMTT`` = a VISA
resource) — no discovery ever broadcasts on the network.
"""

from __future__ import annotations

import os

from console.firstrun import FirstRunError, ServerMigrationNeeded, prepare_database
from console.services import ConsoleConfig, ConsoleServices

ENV_EPAT = "THERAPY_CONSOLE_EPAT"
ENV_EMTT = "THERAPY_CONSOLE_EMTT"
ENV_VISA_BACKEND = "THERAPY_CONSOLE_VISA_BACKEND"


def unit_links() -> dict[str, str | None]:
    """This room's unit links from the environment (None where a unit is not installed)."""
    return {
        "epat_url": os.environ.get(ENV_EPAT) or None,
        "emtt_resource": os.environ.get(ENV_EMTT) or None,
        "visa_backend": os.environ.get(ENV_VISA_BACKEND) or "@py",
    }


def run_clinic_console(exit_after_s: float | None = None) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from console.ui.adapters import ServicesBackend
    from console.ui.app import application, run
    from console.ui.first_run import (
        ask_first_admin,
        confirm_server_migration_box,
        start_refusal_box,
    )

    app = application()
    try:
        try:
            report = prepare_database()
        except ServerMigrationNeeded as exc:
            answer = confirm_server_migration_box(str(exc)).exec()
            if answer != QMessageBox.StandardButton.Yes:
                return 1
            report = prepare_database(server_backup_confirmed=True)
    except FirstRunError as exc:
        print(f"therapy-console: cannot start: {exc}")
        start_refusal_box(str(exc)).exec()
        return 1
    try:
        services = ConsoleServices.open(ConsoleConfig.from_environment(**unit_links()))
    except Exception as exc:  # a record or policy this console cannot use: say it, touch nothing
        print(f"therapy-console: cannot start: {exc}")
        start_refusal_box(str(exc)).exec()
        return 1
    try:
        if report.needs_first_admin:
            intro = [f"New database {report.database} (signing key {report.key_id})."]
            if ask_first_admin(services.auth, intro) is None:
                return 1
        if exit_after_s is not None:
            QTimer.singleShot(int(exit_after_s * 1000), app.quit)
        return run(ServicesBackend(services))
    finally:
        services.close()
