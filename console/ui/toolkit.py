"""A start-up check of the Qt binding itself.

PySide6/shiboken6 6.12.0 (abi3 wheels) returns ``None`` (and ``True``/``False``) from C++ calls
without taking a reference on Python < 3.12, where those objects are not immortal. Every
``painter.setPen(...)`` or ``label.setText(...)`` then drops one reference, and after some
thousands of calls the interpreter aborts ("deallocating None"). A console that may abort in
the middle of a delivery must not start on such a binding: the fix is another PySide6 release
(6.11.3 is known good).
"""

from __future__ import annotations

import sys

_PROBE_CALLS = 64


def reference_count_defect() -> str | None:
    """Why the installed Qt binding cannot be trusted, or None when it behaves."""
    if sys.version_info >= (3, 12):
        return None  # None, True and False are immortal: a missing reference harms nothing
    import PySide6
    from PySide6.QtGui import QFont

    font = QFont()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        font.setBold(True)  # a void C++ call: must leave None's reference count alone
    lost = before - sys.getrefcount(None)
    if lost < _PROBE_CALLS // 2:
        return None
    return (
        f"PySide6 {PySide6.__version__} loses a reference to None on every void call on Python "
        f"{sys.version_info.major}.{sys.version_info.minor} and would crash the console; "
        "install a release without this defect (e.g. pip install 'PySide6-Essentials<6.12')"
    )
