"""protocols/ stays pure: no console, device_drivers, audit or Qt imports; no clock; no files."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "protocols"
FORBIDDEN_IMPORTS = ("console", "device_drivers", "audit", "PySide6", "sqlalchemy", "serial",
                     "pyvisa", "time", "os", "socket", "random")  # fmt: skip
FORBIDDEN_CALLS = {"today", "now", "utcnow", "open", "time", "monotonic"}


def modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 10
    return found


@pytest.mark.req("PROT-PURE-1")
@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_module_imports_and_calls_nothing_impure(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_IMPORTS, f"{path.name} imports {name}"
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert called not in FORBIDDEN_CALLS, f"{path.name} calls {called}()"


@pytest.mark.req("PROT-PURE-1")
def test_importing_protocols_loads_no_qt_driver_or_database_module() -> None:
    code = (
        "import sys, protocols; protocols.default_library(); protocols.default_ruleset(); "
        "protocols.default_programmes(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('console', 'device_drivers', 'audit', 'PySide6', 'sqlalchemy')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)  # fmt: skip
    assert out.stdout.strip() == "[]"
