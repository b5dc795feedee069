"""Entry point of the bundled console (PyInstaller runs this file as ``__main__``).

The same ``console.cli.main`` as the installed ``therapy-console`` script, so the bundle and a
pip installation behave alike. ``freeze_support`` lets the audit verifier's worker processes
(multiprocessing, spawn) start from the frozen executable instead of re-running the console.
"""

from __future__ import annotations

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from console.cli import main

    raise SystemExit(main())
