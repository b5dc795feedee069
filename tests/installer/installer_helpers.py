"""Helpers shared by the installer's tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import psycopg
import pytest

PG_HOST = "127.0.0.1:5432"
PG_USERS = ("postgres", "root")


def admin_dsn(user: str, database: str = "postgres") -> str:
    return f"postgresql://{user}@{PG_HOST}/{database}"


def pg_superuser() -> str:
    """The superuser this machine's PostgreSQL trusts on 127.0.0.1 (fails clearly if none)."""
    errors = []
    for user in PG_USERS:
        try:
            psycopg.connect(admin_dsn(user), connect_timeout=5).close()
            return user
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    pytest.fail(
        f"PostgreSQL is not reachable on {PG_HOST} ({'; '.join(errors)}). Start it "
        "(`.ci/run` does: pg_ctlcluster <version> main start) and run the tests again.",
        pytrace=False,
    )


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every file, folder and link under ``root`` with its content hash, mode and link target:
    equal snapshots mean nothing under ``root`` was created, removed or changed."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            info = path.lstat()
            if path.is_symlink():
                found[rel] = f"link->{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = f"dir {info.st_mode:o}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = f"file {info.st_mode:o} {info.st_mtime_ns} {digest}"
    return found
