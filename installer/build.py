"""Build the console's one-folder bundle with PyInstaller, check it starts, and pack it.

    python installer/build.py [--dist DIR] [--work DIR] [--no-archive]

Produces, in ``--dist`` (default ``dist/``):

- ``therapy-console/``: the bundle (the ``therapy-console`` program with its own Python and Qt);
- Linux: ``therapy-console-<version>-linux-<machine>.tar.gz``, unpacking to one folder with the
  bundle, ``install.sh``/``uninstall.sh``, the desktop entry, icons, udev rule, the clinic-server
  scripts and the installation guides; Windows: ``therapy-console-<version>-windows-<machine>.zip``
  with the bundle, the clinic-server scripts and the guides (no installer: see
  docs/installing.md);
- ``build-info.json``: version, build seconds, bundle size and file count, archive size.

The same script runs on Windows (untested here); the platform-specific part is
``make_archive``'s choice of format and contents.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

INSTALLER = Path(__file__).resolve().parent
REPO = INSTALLER.parent
SPEC = INSTALLER / "therapy-console.spec"
IS_WINDOWS = sys.platform == "win32"
PROGRAM = "therapy-console.exe" if IS_WINDOWS else "therapy-console"


class BuildError(Exception):
    """The build failed; the message says where and what to do."""


@dataclass(frozen=True, slots=True)
class BuildInfo:
    version: str
    pyinstaller: str
    platform: str
    build_seconds: float
    bundle: str
    bundle_bytes: int
    bundle_files: int
    archive: str | None
    archive_bytes: int | None
    missing_system_libraries: list[str]


def console_version() -> str:
    sys.path.insert(0, str(REPO))
    from console import __version__

    return __version__


def pyinstaller_version() -> str:
    try:
        import PyInstaller
    except ImportError:
        raise BuildError(
            "PyInstaller is not installed in this Python: pip install -e '.[build]' "
            "(or pip install 'pyinstaller>=6')"
        ) from None
    return str(PyInstaller.__version__)


MISSING_LIBRARY = re.compile(
    r"Library not found: could not resolve '([^']+)', dependency of '([^']+)'"
)


def run_pyinstaller(dist: Path, work: Path) -> tuple[float, list[str]]:
    """Run the spec; returns the seconds it took and the shared libraries Qt's plugins need that
    this build machine lacks (the bundle then relies on the target PC's own copies)."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            str(SPEC),
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(work),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-25:])
        raise BuildError(f"PyInstaller failed (exit {result.returncode}):\n{tail}")
    return time.perf_counter() - started, _missing_libraries(result.stderr, dist)


def _missing_libraries(log: str, dist: Path) -> list[str]:
    """Libraries the build machine lacks that a binary *kept in the bundle* needs (plugins the
    spec drops, such as the GTK theme, do not count)."""
    kept = {path.name for path in (dist / "therapy-console").rglob("*") if path.is_file()}
    return sorted(
        {lib for lib, needed_by in MISSING_LIBRARY.findall(log) if Path(needed_by).name in kept}
    )


def check_bundle(bundle: Path, version: str) -> None:
    """The bundled program must start and say its version."""
    program = bundle / PROGRAM
    if not program.is_file():
        raise BuildError(f"the bundle has no {PROGRAM}: {bundle}")
    result = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    said = result.stdout.strip()
    if result.returncode != 0 or said != f"therapy-console {version}":
        raise BuildError(
            f"{program} --version said {said!r} (exit {result.returncode}), expected "
            f"'therapy-console {version}': {result.stderr.strip()[-500:]}"
        )


def folder_size(folder: Path) -> tuple[int, int]:
    total = files = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            files += 1
    return total, files


def archive_members(bundle: Path) -> list[tuple[Path, str]]:
    """(source, name inside the archive's top folder) for everything shipped beside the bundle."""
    members = [
        (INSTALLER / "clinic-server" / name, f"clinic-server/{name}")
        for name in ("prepare.sh", "roles.sql", "schema.sql", "grants.sql")
    ]
    members += [
        (REPO / "docs" / name, f"docs/{name}") for name in ("installing.md", "clinic-server.md")
    ]
    if not IS_WINDOWS:
        linux = INSTALLER / "linux"
        members += [
            (linux / "install.sh", "install.sh"),
            (linux / "uninstall.sh", "uninstall.sh"),
            (linux / "therapy-console.desktop", "therapy-console.desktop"),
            (linux / "70-therapy-console.rules", "70-therapy-console.rules"),
            (INSTALLER / "icons" / "therapy-console.svg", "icons/therapy-console.svg"),
            (INSTALLER / "icons" / "therapy-console.png", "icons/therapy-console.png"),
        ]
    absent = [str(source) for source, _ in members if not source.is_file()]
    if absent:
        raise BuildError(f"files to ship are missing: {', '.join(absent)}")
    return [*members, (bundle, "bundle")]


def make_archive(dist: Path, bundle: Path, version: str) -> Path:
    machine = platform.machine().lower() or "unknown"
    top = f"therapy-console-{version}"
    if IS_WINDOWS:  # WINDOWS: a zip of the bundle and the guides (no install script there)
        target = dist / f"{top}-windows-{machine}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for source, name in archive_members(bundle):
                paths = sorted(source.rglob("*")) if source.is_dir() else [source]
                for path in paths:
                    inner = name if path == source else f"{name}/{path.relative_to(source)}"
                    archive.write(path, f"{top}/{inner}".replace("\\", "/"))
        return target
    target = dist / f"{top}-linux-{machine}.tar.gz"

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        for source, name in archive_members(bundle):
            archive.add(source, f"{top}/{name}", filter=owned_by_root)
    return target


def build(dist: Path, work: Path, *, archive: bool = True) -> BuildInfo:
    version = console_version()
    tool = pyinstaller_version()
    dist.mkdir(parents=True, exist_ok=True)
    bundle = dist / "therapy-console"
    seconds, missing = run_pyinstaller(dist, work)
    check_bundle(bundle, version)
    size, files = folder_size(bundle)
    packed = make_archive(dist, bundle, version) if archive else None
    info = BuildInfo(
        version=version,
        pyinstaller=tool,
        platform=f"{sys.platform}-{platform.machine().lower()}",
        build_seconds=round(seconds, 1),
        bundle=str(bundle),
        bundle_bytes=size,
        bundle_files=files,
        archive=str(packed) if packed else None,
        archive_bytes=packed.stat().st_size if packed else None,
        missing_system_libraries=missing,
    )
    (dist / "build-info.json").write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="output folder")
    parser.add_argument(
        "--work", type=Path, default=REPO / "build" / "pyinstaller", help="PyInstaller's scratch"
    )
    parser.add_argument("--no-archive", action="store_true", help="skip the tarball/zip")
    args = parser.parse_args(argv)
    try:
        info = build(args.dist.resolve(), args.work.resolve(), archive=not args.no_archive)
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"bundle:  {info.bundle} ({info.bundle_bytes / 2**20:.0f} MiB, {info.bundle_files} files)"
    )
    if info.archive:
        print(f"archive: {info.archive} ({(info.archive_bytes or 0) / 2**20:.0f} MiB)")
    print(f"built in {info.build_seconds:.0f} s with PyInstaller {info.pyinstaller}")
    if info.missing_system_libraries:
        print(
            "note: not on this build machine, so not in the bundle (the target PC must have "
            f"them; see docs/installing.md): {', '.join(info.missing_system_libraries)}"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")  # reproducible module order in the archive
    raise SystemExit(main())
