"""install.sh and uninstall.sh in a temporary prefix, with a small stand-in bundle (a folder
shaped like PyInstaller's: an executable ``therapy-console`` and ``_internal/``). The real bundle
is installed the same way in test_installer_bundle.py (slow)."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.installer.installer_helpers import tree_snapshot

REPO = Path(__file__).resolve().parents[2]
LINUX = REPO / "installer" / "linux"
INSTALL = LINUX / "install.sh"
UNINSTALL = LINUX / "uninstall.sh"
OPT = "opt/therapy-console"
PLACED = (
    "usr/local/bin/therapy-console",
    "usr/share/applications/therapy-console.desktop",
    "usr/share/icons/hicolor/scalable/apps/therapy-console.svg",
    "usr/share/icons/hicolor/256x256/apps/therapy-console.png",
    "etc/udev/rules.d/70-therapy-console.rules",
)


def make_bundle(folder: Path, version: str = "0.1.0", extra: str = "") -> Path:
    (folder / "_internal" / "PySide6").mkdir(parents=True)
    program = folder / "therapy-console"
    program.write_text(f'#!/bin/sh\necho "therapy-console {version}"\n')
    program.chmod(0o755)
    (folder / "_internal" / "libpython3.11.so.1.0").write_bytes(
        b"\x7fELF stand-in" + extra.encode()
    )
    (folder / "_internal" / "PySide6" / "QtCore.abi3.so").write_bytes(b"\x7fELF qt")
    (folder / "_internal" / "base_library.zip").write_bytes(b"PK stand-in")
    return folder


def run(script: Path, *args: str | Path, user: str | None = None) -> subprocess.CompletedProcess:
    command = ["bash", str(script), *map(str, args)]
    if user is not None:
        command = ["setpriv", "--reuid", user, "--regid", user, "--clear-groups", *command]
        # (numeric ids: nobody/nogroup are 65534 on Debian)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    folder = tmp_path / "prefix"
    folder.mkdir()
    return folder


@pytest.mark.req("INST-LINUX-1")
def test_install_puts_everything_in_place(bundle: Path, prefix: Path) -> None:
    result = run(INSTALL, "--prefix", prefix, "--bundle", bundle, "--add-user", "alice")
    assert result.returncode == 0, result.stderr
    installed = prefix / OPT
    assert (installed / "therapy-console").read_bytes() == (bundle / "therapy-console").read_bytes()
    assert os.access(installed / "therapy-console", os.X_OK)
    assert (installed / "_internal" / "PySide6" / "QtCore.abi3.so").is_file()
    assert os.access(installed / "uninstall.sh", os.X_OK)
    for rel in PLACED:
        assert (prefix / rel).exists(), rel
    link = prefix / PLACED[0]
    assert os.readlink(link) == "../../../opt/therapy-console/therapy-console"  # relative
    launched = subprocess.run([str(link), "--version"], capture_output=True, text=True, check=True)
    assert launched.stdout.strip() == "therapy-console 0.1.0"
    for rel in PLACED[1:]:
        assert oct((prefix / rel).stat().st_mode & 0o777) == "0o644", rel
    out = result.stdout
    assert (
        "skipped (prefix is not /): create the group therapy-console: groupadd -f --system" in out
    )
    assert "skipped (prefix is not /): add alice to the group therapy-console" in out
    assert "usermod -a -G therapy-console alice" in out


@pytest.mark.req("INST-LINUX-2")
def test_install_twice_changes_nothing(bundle: Path, prefix: Path) -> None:
    assert run(INSTALL, "--prefix", prefix, "--bundle", bundle).returncode == 0
    before = tree_snapshot(prefix)
    again = run(INSTALL, "--prefix", prefix, "--bundle", bundle)
    assert again.returncode == 0, again.stderr
    assert tree_snapshot(prefix) == before  # contents, modes, mtimes, links
    assert "unchanged: " + str(prefix / OPT) + " (same bundle)" in again.stdout
    assert "installed:" not in again.stdout and "replaced:" not in again.stdout


@pytest.mark.req("INST-LINUX-2")
def test_an_upgrade_replaces_the_program_folder(tmp_path: Path, bundle: Path, prefix: Path) -> None:
    assert run(INSTALL, "--prefix", prefix, "--bundle", bundle).returncode == 0
    newer = make_bundle(tmp_path / "newer", version="0.2.0", extra="v2")
    (bundle / "_internal" / "base_library.zip").unlink()  # gone from the old one's successor
    (newer / "_internal" / "base_library.zip").unlink()
    (newer / "_internal" / "new-module.so").write_bytes(b"new")
    result = run(INSTALL, "--prefix", prefix, "--bundle", newer)
    assert result.returncode == 0, result.stderr
    assert "replaced: " + str(prefix / OPT) in result.stdout
    installed = prefix / OPT
    assert not (installed / "_internal" / "base_library.zip").exists()
    assert (installed / "_internal" / "new-module.so").read_bytes() == b"new"
    assert (installed / "uninstall.sh").is_file()
    assert not list((prefix / "opt").glob(".therapy-console.*"))  # no staging left behind
    version = subprocess.run(
        [str(prefix / PLACED[0]), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == "therapy-console 0.2.0"


@pytest.mark.req("INST-LINUX-3")
def test_an_upgrade_never_drops_files_it_did_not_install(
    tmp_path: Path, bundle: Path, prefix: Path
) -> None:
    assert run(INSTALL, "--prefix", prefix, "--bundle", bundle).returncode == 0
    data = prefix / OPT / "data" / "therapy-console.sqlite3"
    data.parent.mkdir()
    data.write_bytes(b"the clinic's record")
    before = tree_snapshot(prefix)
    result = run(INSTALL, "--prefix", prefix, "--bundle", make_bundle(tmp_path / "b2", "0.2.0"))
    assert result.returncode == 2
    assert "holds files this installer did not put there" in result.stderr
    assert "./data/therapy-console.sqlite3" in result.stderr
    assert tree_snapshot(prefix) == before


@pytest.mark.req("INST-LINUX-3")
def test_uninstall_removes_the_program_and_keeps_the_data(bundle: Path, prefix: Path) -> None:
    assert run(INSTALL, "--prefix", prefix, "--bundle", bundle).returncode == 0
    home = prefix / "home" / "alice" / ".local" / "share" / "therapy-console"
    home.mkdir(parents=True)
    for name in ("therapy-console.sqlite3", "audit-signing-key.pem", "workstation-id"):
        (home / name).write_text(name)
    logs = prefix / "home" / "alice" / ".local" / "state" / "therapy-console" / "log"
    logs.mkdir(parents=True)
    (logs / "console.jsonl").write_text("{}\n")
    stray = prefix / OPT / "exports" / "audit-2026.jsonl"
    stray.parent.mkdir()
    stray.write_text("kept")
    kept_before = {p: p.read_text() for p in (*home.iterdir(), logs / "console.jsonl", stray)}

    result = run(prefix / OPT / "uninstall.sh", "--prefix", prefix)

    assert result.returncode == 0, result.stderr
    for rel in PLACED:
        assert not (prefix / rel).exists() and not (prefix / rel).is_symlink(), rel
    assert not (prefix / OPT / "therapy-console").exists()
    assert not (prefix / OPT / "_internal").exists()
    assert {p: p.read_text() for p in kept_before} == kept_before
    assert "kept: " + str(prefix / OPT) + " holds files the installer did not put there" in (
        result.stdout
    )
    again = run(UNINSTALL, "--prefix", prefix)  # nothing left to remove: still fine
    assert again.returncode == 0, again.stderr
    assert stray.read_text() == "kept" and "holds no program files" in again.stdout


def test_uninstall_without_a_stray_file_removes_the_folder(bundle: Path, prefix: Path) -> None:
    assert run(INSTALL, "--prefix", prefix, "--bundle", bundle).returncode == 0
    result = run(prefix / OPT / "uninstall.sh", "--prefix", prefix)
    assert result.returncode == 0, result.stderr
    assert not (prefix / OPT).exists()
    assert "removed: " + str(prefix / OPT) in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--bundle", "/nonexistent"], "there is no bundle folder /nonexistent"),
        (["--prefix", "/nonexistent"], "--prefix /nonexistent is not a folder"),
        (["--frobnicate"], "unknown argument '--frobnicate'"),
        (["--add-user", "Robert'); DROP"], "is not a user name"),
    ],
)
def test_bad_arguments_are_refused_clearly(
    args: list[str], said: str, bundle: Path, prefix: Path
) -> None:
    base = {"--bundle": str(bundle), "--prefix": str(prefix)}
    for key in ("--bundle", "--prefix"):
        if key in args:
            base.pop(key)
    full = [*args, *[item for pair in base.items() for item in pair]]
    result = run(INSTALL, *full)
    assert result.returncode == 2
    assert said in result.stderr
    assert list(prefix.iterdir()) == []


def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path: Path, prefix: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(INSTALL, "--prefix", prefix, "--bundle", empty)
    assert result.returncode == 2 and "has no executable therapy-console" in result.stderr


def test_a_foreign_launcher_is_not_overwritten(bundle: Path, prefix: Path) -> None:
    launcher = prefix / PLACED[0]
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/bin/sh\n# pip's entry point\n")
    result = run(INSTALL, "--prefix", prefix, "--bundle", bundle)
    assert result.returncode == 2 and "is not this installer's launcher" in result.stderr
    assert launcher.read_text() == "#!/bin/sh\n# pip's entry point\n"


def test_installing_to_the_system_needs_root(bundle: Path) -> None:
    result = run(INSTALL, "--bundle", bundle, user="65534")
    assert result.returncode == 2
    assert "installing to / needs root: run it with sudo" in result.stderr


# --------------------------------------------------------------------------- the files installed
@pytest.mark.req("INST-LINUX-1")
def test_the_desktop_entry_is_well_formed() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(LINUX / "therapy-console.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"] == "/opt/therapy-console/therapy-console"
    assert section["Icon"] == "therapy-console"  # found in hicolor by name
    assert section["Terminal"] == "false"
    assert section["Categories"].endswith(";") and "MedicalSoftware" in section["Categories"]
    for key in section:
        assert re.fullmatch(r"[A-Za-z0-9-]+", key), key


UDEV_KEY = re.compile(
    r'(?P<key>[A-Z_]+)(\{(?P<attr>[A-Za-z_]+)\})?(?P<op>==|!=|\+=|=)"(?P<v>[^"]*)"'
)


@pytest.mark.req("INST-LINUX-4")
def test_the_udev_rule_gives_usb_serial_adapters_to_the_group() -> None:
    rules = [
        line
        for line in (LINUX / "70-therapy-console.rules").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(rules) >= 5
    ids = set()
    for rule in rules:
        parts = [part.strip() for part in rule.split(",")]
        parsed = [UDEV_KEY.fullmatch(part) for part in parts]
        assert all(parsed), rule
        fields = {(m["key"], m["attr"], m["op"]): m["v"] for m in parsed if m}
        assert fields[("SUBSYSTEM", None, "==")] == "tty"
        assert fields[("GROUP", None, "=")] == "therapy-console"
        assert fields[("MODE", None, "=")] == "0660"  # never world-writable
        assert fields[("ENV", "ID_MM_DEVICE_IGNORE", "=")] == "1"
        vendor, product = fields[("ATTRS", "idVendor", "==")], fields[("ATTRS", "idProduct", "==")]
        assert re.fullmatch(r"[0-9a-f]{4}", vendor) and re.fullmatch(r"[0-9a-f]{4}", product)
        ids.add(f"{vendor}:{product}")
    assert {"0403:6001", "067b:2303", "10c4:ea60", "1a86:7523"} <= ids
    header = (LINUX / "70-therapy-console.rules").read_text()
    assert "udevadm info --attribute-walk" in header and "lsusb" in header


# --------------------------------------------------------------------------- installing to /
SYSTEM_RUN = r"""
set -eu
cp -a /etc "$SCRATCH/etc"
mount --bind "$SCRATCH/etc" /etc
for folder in /opt /usr/local/bin /usr/share; do mount -t tmpfs tmpfs "$folder"; done
useradd --no-create-home nurse1
bash "$INSTALL" --bundle "$BUNDLE" --add-user nurse1
echo "== again"
bash "$INSTALL" --bundle "$BUNDLE" --add-user nurse1
echo "== group: $(getent group therapy-console)"
echo "== launcher: $(/usr/local/bin/therapy-console --version)"
stat -c '== rule %a %U:%G' /etc/udev/rules.d/70-therapy-console.rules
bash /opt/therapy-console/uninstall.sh
echo "== after: $(ls -A /opt | wc -l) in /opt; group: $(getent group therapy-console)"
"""


@pytest.mark.req("INST-LINUX-1")
@pytest.mark.req("INST-LINUX-2")
def test_installing_to_the_system_root_in_a_private_mount_namespace(
    bundle: Path, tmp_path: Path
) -> None:
    """The real `/` path (groupadd, usermod, files in /opt, /usr, /etc) as root, in a mount
    namespace whose /etc is a copy and whose /opt, /usr/local/bin, /usr/share are empty: the
    machine running the test is not changed."""
    host_group = Path("/etc/group").read_bytes()
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", SYSTEM_RUN],
        env={
            **os.environ,
            "SCRATCH": str(tmp_path),
            "INSTALL": str(INSTALL),
            "BUNDLE": str(bundle),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{result.stderr}\n(this test needs root and unshare(1) with mount namespaces)"
    )
    first, again = result.stdout.split("== again")
    assert "install.sh: done: create the group therapy-console" in first
    assert "install.sh: done: add nurse1 to the group therapy-console" in first
    assert "skipped" not in first
    assert "unchanged: group therapy-console exists" in again
    assert "unchanged: nurse1 is in the group therapy-console" in again
    assert "installed:" not in again.split("== group")[0]
    assert re.search(r"== group: therapy-console:x:\d+:nurse1", again)
    assert "== launcher: therapy-console 0.1.0" in again
    assert "== rule 644 root:root" in again
    assert "== after: 0 in /opt; group: therapy-console:x:" in again  # the group is kept
    assert Path("/etc/group").read_bytes() == host_group  # the host is untouched
