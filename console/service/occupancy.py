"""Is a unit in an open session? One check for the service console and the ``device`` commands.

A unit serves one host at a time: a service connection to a unit a console is treating with
replaces that console's link (SVC-SESS-1, CLI-DEV-4). The record knows which units are in
treatment: a session left connected, armed, delivering or paused holds its unit's serial and,
from its connect on, the link it was opened on (the ``unit_link`` of its connect transition).
So a service command asks the record first, by link, before it opens anything (opening would
already cut the treating console's link), and again by serial once the unit has answered
(the same unit may be reachable on another link).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from audit.sessions import SessionBook
from audit.values import SessionRecord

#: The session event that names the unit's link: the connect transition's details.
LINK_KEY = "unit_link"


class UnitInOpenSession(Exception):
    """The record shows the unit in an open session; the message says whose and what to do."""

    def __init__(self, record: SessionRecord, unit: str) -> None:
        super().__init__(
            f"unit {record.device_serial or unit} is in session {record.session_id} "
            f"({record.state}) — use the treating console"
        )
        self.record = record


def session_link(book: SessionBook, session_id: str) -> str | None:
    """The link the session's unit was last connected on (None before its connect)."""
    link = None
    for event in book.events(session_id):
        data: Mapping[str, Any] = event.data
        details = data.get("details")
        if (
            event.action == "session.transition"
            and data.get("action") == "connect"
            and isinstance(details, Mapping)
            and isinstance(details.get(LINK_KEY), str)
        ):
            link = str(details[LINK_KEY])
    return link


def open_session_on(
    book: SessionBook, *, link: str | None = None, serial: str | None = None
) -> SessionRecord | None:
    """The open session (connected, armed, delivering, paused) holding the unit with this
    serial or opened on this link, or None."""
    for record in book.unfinished():
        if serial is not None and record.device_serial == serial:
            return record
        if link is not None and session_link(book, record.session_id) == link.strip():
            return record
    return None


def refuse_unit_in_session(
    book: SessionBook,
    audit: Callable[[dict[str, Any]], None],
    *,
    link: str | None = None,
    serial: str | None = None,
) -> None:
    """Raise ``UnitInOpenSession`` (after ``audit``-ing the refusal) if the record shows the
    unit in an open session; ask by ``link`` before opening it, by ``serial`` after."""
    record = open_session_on(book, link=link, serial=serial)
    if record is None:
        return
    matched = "serial" if serial is not None and record.device_serial == serial else "link"
    audit({"session_id": record.session_id, "session_state": record.state, "matched": matched})
    raise UnitInOpenSession(record, serial or link or "?")
