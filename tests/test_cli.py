"""The command line's skeleton: version and help work for every subcommand."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console import __version__, cli
from console.cli import EXIT_CODES, EXIT_INTERNAL, build_parser, main
from console.cli._errors import classify

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(subparsers, argparse._SubParsersAction)
    for name in subparsers.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_console_script_runs_as_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "console", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "therapy-console" in result.stdout


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    """Every (sub)command's parser with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


@pytest.mark.req("CLI-ERR-1")
def test_every_help_at_every_level_ends_with_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = list(_parsers(build_parser()))
    assert len(found) > 20  # db, user, audit, device, session … and their actions
    for path, _ in found:
        with pytest.raises(SystemExit) as exc:
            main([*path, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: therapy-console"), path
        codes = out[out.index("exit codes:") :]
        for code, meaning in EXIT_CODES.items():
            assert f"{code:>3}  {meaning}" in codes, (path, code)


@pytest.mark.req("CLI-ERR-1")
def test_the_exit_codes_are_distinct_and_documented_in_the_requirements() -> None:
    constants = {
        name: value
        for name, value in vars(cli).items()
        if name.startswith("EXIT_") and name != "EXIT_CODES"
    }
    assert len(set(constants.values())) == len(constants)  # one code per class
    assert set(constants.values()) == set(EXIT_CODES)
    table = (ROOT / "docs" / "requirements" / "cli.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.M))
    assert {int(code): text for code, text in rows.items()} == EXIT_CODES


@pytest.mark.req("CLI-ERR-1")
def test_device_help_says_it_signs_in_and_refuses_units_in_a_session(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for job in ("info", "selftest", "events", "watch", "raw"):
        with pytest.raises(SystemExit):
            main(["device", job, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--user USER" in out and "standard input" in out
        assert "refused for a unit in an open session" in out


@pytest.mark.req("CLI-ERR-1")
def test_an_unexpected_exception_is_one_line_naming_the_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No command anticipates a bare ValueError: the user still gets one line, exit 70."""
    monkeypatch.setenv("THERAPY_CONSOLE_LOG_DIR", str(tmp_path / "logs"))
    try:
        raise ValueError("limit minimum 1 is above its maximum 0")
    except ValueError as exc:
        error = classify(exc)
    assert error.exit_code == EXIT_INTERNAL
    assert "internal error (ValueError: limit minimum 1 is above its maximum 0)" in str(error)
    log = tmp_path / "logs" / "therapy-console.log"
    assert str(log) in str(error)
    assert "Traceback" in log.read_text(encoding="utf-8")
