"""Fixtures of the EPAT tests: simulated units on real links (TCP on 127.0.0.1, pty)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.device_drivers.epat.epat_helpers import UnitFactory, units


@pytest.fixture
def make_unit() -> Iterator[UnitFactory]:
    """``make_unit(speed=…, pty=False, applicator=…)`` → a served simulated unit, cleaned up."""
    yield from units()
