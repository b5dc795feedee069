"""The service console's GUI tests reuse the fixtures of ``tests/console/service`` (a real
record, simulated units on TCP at speed 10, the signed-in service engineer)."""

from __future__ import annotations

from tests.console.service.conftest import (  # noqa: F401 (fixtures)
    emtt_sim,
    engineer,
    epat_sim,
    service,
    services,
)
