"""Shared test configuration.

Qt runs offscreen in every test process; the `req` marker links a test to a named
requirement in docs/requirements.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
