"""Figures of the bundle: build time, size (and what takes the room), start-up times.

    python bench/installer_bundle.py [--bundle-dist DIR] [--runs N] [--drop-caches]

Without ``--bundle-dist`` it builds the bundle (``installer/build.py``) into a temporary folder
and times the build; with it, it reads ``build-info.json`` of an earlier build. Start-up is
timed from the process start to the first painted window, offscreen, observed through Qt's own
painting log (no hook in the program): the demo (``--demo``: simulators, demo record, the
console logged out) and a fresh installation (no data folder: the database and key are made,
then the first-admin screen). The pip-installed console is timed the same way for comparison.
``--drop-caches`` (root) empties the page cache before the first run of each, which is the cold
start after a reboot; the other runs are warm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.installer.installer_helpers import time_to_first_window  # noqa: E402

#: (what, path prefixes inside _internal/) for the size breakdown; the first match counts
GROUPS = (
    ("ICU (Unicode data QtCore links)", ("PySide6/Qt/lib/libicu",)),
    ("Qt libraries", ("PySide6/Qt/lib/",)),
    ("Qt plugins", ("PySide6/Qt/plugins/",)),
    ("PySide6/shiboken bindings", ("PySide6/", "shiboken6/")),
    ("libpython + stdlib extensions", ("libpython", "python3", "base_library.zip")),
    ("cryptography (OpenSSL)", ("cryptography", "libcrypto", "libssl")),
    ("psycopg + libpq", ("psycopg",)),
    ("SQLAlchemy", ("sqlalchemy",)),
    ("pydantic", ("pydantic",)),
)


def build(dist: Path) -> dict:
    subprocess.run(
        [sys.executable, str(REPO / "installer" / "build.py"), "--dist", str(dist / "dist"),
         "--work", str(dist / "work")],
        check=True,
    )  # fmt: skip
    return json.loads((dist / "dist" / "build-info.json").read_text())


def composition(bundle: Path) -> list[tuple[str, int]]:
    inside = bundle / "_internal"
    sizes = {name: 0 for name, _ in GROUPS}
    sizes["the program (with the archive of Python modules)"] = (
        (bundle / "therapy-console").stat().st_size
    )
    sizes["other shared libraries and data"] = 0
    for path in inside.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(inside).as_posix()
        name = next(
            (name for name, prefixes in GROUPS if rel.startswith(prefixes)),
            "other shared libraries and data",
        )
        sizes[name] += path.stat().st_size
    return sorted(sizes.items(), key=lambda item: -item[1])


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def time_starts(command: list[str], runs: int, cold: bool) -> list[float | None]:
    times: list[float | None] = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as data:
            env = {**os.environ, "THERAPY_CONSOLE_DATA_DIR": data,
                   "THERAPY_CONSOLE_LOG_DIR": str(Path(data) / "log")}  # fmt: skip
            env.pop("THERAPY_CONSOLE_DB", None)
            if cold and run == 0:
                drop_caches()
            outcome = time_to_first_window(command, env, timeout=120)
            times.append(outcome.first_window_s)
            if outcome.first_window_s is None:
                print(f"  no window: exit {outcome.exit_code}: {outcome.output.strip()[-300:]}")
    return times


def show(label: str, times: list[float | None], cold: bool) -> None:
    got = [t for t in times if t is not None]
    if not got:
        print(f"{label:<46} no window")
        return
    first = f"first {got[0]:.2f} s{' (cold cache)' if cold else ''}"
    warm = got[1:] or got
    print(f"{label:<46} {first}; then median {statistics.median(warm):.2f} s ({len(warm)} runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle-dist", type=Path, help="dist folder of an earlier build")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--drop-caches", action="store_true", help="cold first start (root)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.bundle_dist:
            info = json.loads((args.bundle_dist / "build-info.json").read_text())
        else:
            started = time.perf_counter()
            info = build(Path(scratch))
            print(f"build.py wall time: {time.perf_counter() - started:.1f} s")
        bundle = Path(info["bundle"])
        print(f"PyInstaller {info['pyinstaller']} on {info['platform']}, {os.cpu_count()} CPUs")
        print(f"build (PyInstaller run):      {info['build_seconds']:.1f} s")
        print(f"bundle:                       {info['bundle_bytes'] / 2**20:.0f} MiB in "
              f"{info['bundle_files']} files")  # fmt: skip
        if info.get("archive_bytes"):
            print(f"tarball:                      {info['archive_bytes'] / 2**20:.0f} MiB")
        for name, size in composition(bundle):
            print(f"  {name:<40} {size / 2**20:6.1f} MiB")
        program = str(bundle / "therapy-console")
        installed = str(Path(sys.executable).parent / "therapy-console")
        started = time.perf_counter()
        subprocess.run([program, "--version"], check=True, capture_output=True)
        print(f"bundled --version:            {time.perf_counter() - started:.2f} s")
        print("start to first window, offscreen:")
        for label, command in (
            ("bundled --demo (demo record, login screen)", [program, "--demo"]),
            ("bundled, fresh install (first-admin screen)", [program]),
            ("pip-installed --demo", [installed, "--demo"]),
            ("pip-installed, fresh install", [installed]),
        ):
            show(label, time_starts(command, args.runs, args.drop_caches), args.drop_caches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
