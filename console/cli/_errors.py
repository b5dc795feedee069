"""Map an exception no command anticipated to one line and its exit-code class (CLI-ERR-1).

Commands raise ``CommandError`` where they know the context (e.g. "cannot reach the unit" while
opening it); everything else that escapes a handler lands here, so a user never sees a
traceback. The messages of the audit, auth and driver layers already say what to do; an
unexpected exception is logged with its traceback and reported as an internal error.
"""

from __future__ import annotations

import logging

from console.cli import (
    EXIT_AUTH,
    EXIT_DATABASE,
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_REFUSED,
    EXIT_UNIT,
    EXIT_UNIT_BUSY,
    EXIT_USAGE,
    CommandError,
)

_log = logging.getLogger("console.cli")


def classify(exc: BaseException) -> CommandError:
    from audit.errors import AuditDataError, AuditError, NotFound, StoreError
    from console.auth import AuthError, PasswordRejected
    from console.session.workflow import TransitionRefused
    from device_drivers.errors import CommandRefused, DeviceError, UnitInTreatment

    code: int
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, UnitInTreatment):
        code = EXIT_UNIT_BUSY
    elif isinstance(exc, CommandRefused | TransitionRefused):
        code = EXIT_REFUSED
    elif isinstance(exc, DeviceError):
        code = EXIT_UNIT
    elif isinstance(exc, PasswordRejected):
        code = EXIT_USAGE
    elif isinstance(exc, AuthError):
        code = EXIT_AUTH
    elif isinstance(exc, StoreError):
        code = EXIT_DATABASE
    elif isinstance(exc, AuditDataError | NotFound):
        code = EXIT_USAGE
    elif isinstance(exc, AuditError):
        code = EXIT_FAILURE
    else:
        return internal_error(exc)
    return CommandError(str(exc) or type(exc).__name__, code)


def internal_error(exc: BaseException) -> CommandError:
    """A defect: one line for the user, the traceback in the log file."""
    from console.app_logging import configure_logging

    try:
        where = str(configure_logging())  # idempotent; without it the traceback hits stderr
    except OSError as problem:
        where = f"(none: the log folder cannot be written: {problem})"
    else:
        _log.error("internal error in the command line", exc_info=exc)
    return CommandError(
        f"internal error ({type(exc).__name__}: {exc}); please report it with the log file {where}",
        EXIT_INTERNAL,
    )
