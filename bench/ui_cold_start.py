"""Benchmark: cold start of the console, from launching Python to the painted login window.

Each run is a fresh process (interpreter start, imports, opening the record, building every
screen, first paint of the login screen), as a therapist starting the console would see it. The
record is made once beforehand (an installed clinic has one). The first run may pay for a cold
disk cache; later runs are warm. Target: <= 1.5 s.

    .venv/bin/python bench/ui_cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import sys, time
t0 = time.perf_counter()
from PySide6.QtCore import QEvent, QObject
from console.services import ConsoleConfig, ConsoleServices
from console.ui.adapters import ServicesBackend
from console.ui.app import application
from console.ui.main_window import MainWindow
t_import = time.perf_counter()
app = application()
services = ConsoleServices.open(ConsoleConfig(
    db_url=sys.argv[1], signing_key_path=sys.argv[2], workstation="bench"))
t_open = time.perf_counter()
window = MainWindow(ServicesBackend(services))
t_window = time.perf_counter()

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and watched is window.login_screen.sign_in:
            t_paint = time.perf_counter()
            print(f"READY import={t_import - t0:.3f} open={t_open - t_import:.3f} "
                  f"window={t_window - t_open:.3f} paint={t_paint - t_window:.3f}", flush=True)
            app.exit(0)
        return False

painted = FirstPaint()
window.login_screen.sign_in.installEventFilter(painted)
window.show()
app.exec()
window.shutdown()
services.close()
"""


def prepare(folder: Path) -> tuple[str, str]:
    from console.services import ConsoleConfig, ConsoleServices

    config = ConsoleConfig(
        db_url=f"sqlite:///{folder / 'clinic.sqlite3'}",
        signing_key_path=folder / "signing-key.pem",
        workstation="bench",
        create_schema=True,
    )
    services = ConsoleServices.open(config)
    services.auth.add_user(None, "admin", "Ada Admin", "admin", "a long enough password 1")
    services.close()
    return config.db_url, str(config.signing_key_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    env["PYTHONPATH"] = str(ROOT)
    totals: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ui-cold-") as tmp:
        db_url, key = prepare(Path(tmp))
        for run in range(args.runs):
            started = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, db_url, key],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=tmp,
            )
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith("READY"):
                    elapsed = time.perf_counter() - started
                    break
            else:
                raise RuntimeError(f"run {run + 1}: the console did not reach its login window")
            child.wait(30)
            totals.append(elapsed)
            print(f"  run {run + 1}: {elapsed:.3f} s  ({line.split(' ', 1)[1].strip()})")
    print("Cold start, process launch -> login window painted:")
    print(
        f"  first {totals[0]:.3f} s, median {statistics.median(totals):.3f} s, "
        f"max {max(totals):.3f} s over {len(totals)} runs"
    )
    one, five, _ = os.getloadavg()
    print(f"  load average {one:.2f} / {five:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
