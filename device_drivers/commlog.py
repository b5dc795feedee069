"""Communication log: every byte or line on the wire, for service and incident replay.

Each record is (direction, monotonic timestamp in ns, bytes). A log can live in memory (for the
service console and tests) and/or stream to a JSON-lines file, one record per line:
``{"t_ns": 123, "dir": "tx", "hex": "a50201..."}``. Timestamps are ``time.monotonic_ns()`` so
records from one process order correctly even if the wall clock jumps.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Direction = Literal["tx", "rx"]


@dataclass(frozen=True, slots=True)
class CommRecord:
    """One chunk of bytes seen on the wire in one direction."""

    direction: Direction
    t_ns: int
    data: bytes

    def to_json(self) -> str:
        return json.dumps({"t_ns": self.t_ns, "dir": self.direction, "hex": self.data.hex()})

    @classmethod
    def from_json(cls, line: str) -> CommRecord:
        obj = json.loads(line)
        if obj.get("dir") not in ("tx", "rx"):
            raise ValueError(f"not a communication-log record: {line[:80]!r}")
        return cls(obj["dir"], int(obj["t_ns"]), bytes.fromhex(obj["hex"]))


class CommLog:
    """Thread-safe recorder; ``maxlen`` bounds the in-memory ring, ``path`` appends JSON lines."""

    def __init__(self, path: str | Path | None = None, maxlen: int | None = 100_000) -> None:
        self._records: deque[CommRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(path, "a", encoding="ascii") if path else None  # noqa: SIM115
        self.path = Path(path) if path else None

    def record(self, direction: Direction, data: bytes) -> None:
        if not data:
            return
        rec = CommRecord(direction, time.monotonic_ns(), bytes(data))
        with self._lock:
            self._records.append(rec)
            if self._file is not None:
                self._file.write(rec.to_json() + "\n")
                self._file.flush()

    def records(self) -> list[CommRecord]:
        with self._lock:
            return list(self._records)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_commlog(path: str | Path) -> Iterator[CommRecord]:
    """Read a communication-log file back, e.g. to replay an incident against a simulator."""
    with open(path, encoding="ascii") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield CommRecord.from_json(line)
                except (ValueError, KeyError) as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from exc
