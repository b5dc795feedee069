"""The Qt binding under the console keeps reference counts (else it would abort mid-session)."""

from __future__ import annotations

import pytest

from console.ui.app import application
from console.ui.toolkit import reference_count_defect

pytestmark = [pytest.mark.gui]


@pytest.mark.req("UI-TOOLKIT-1")
def test_the_installed_qt_binding_keeps_reference_counts(qapp) -> None:
    assert reference_count_defect() is None
    assert application() is qapp  # the console's start path accepts it
