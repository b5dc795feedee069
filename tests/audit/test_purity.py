"""``audit/`` stands alone: no console, no device I/O, no Qt (architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

AUDIT = Path(__file__).resolve().parents[2] / "audit"
FORBIDDEN = {"console", "device_drivers", "PySide6", "serial", "pyvisa"}


@pytest.mark.req("AUD-ARCH-1")
def test_audit_imports_nothing_of_the_console_the_devices_or_qt() -> None:
    offenders = []
    for path in sorted(AUDIT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


@pytest.mark.req("AUD-ARCH-1")
def test_importing_the_whole_package_loads_no_qt() -> None:
    code = (
        "import sys, audit, audit.verify, audit.export, audit.fhir_export, audit.sessions, "
        "audit.users, audit.patients, audit.programmes, audit.migrate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'PySide6', 'console', 'device_drivers'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
