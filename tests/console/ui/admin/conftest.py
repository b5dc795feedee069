"""The admin console's GUI tests reuse the application-layer fixtures of ``tests/console/admin``
(a real record through ``ConsoleServices``, simulated units, the signed-in admin, a treated and
signed session)."""

from __future__ import annotations

from tests.console.admin.conftest import (  # noqa: F401 (fixtures)
    admin,
    admin_services,
    emtt_sim,
    epat_sim,
    services,
    treated,
)
