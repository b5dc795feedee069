"""Course rules: how often and how many sessions of one protocol a patient has.

Too soon after the last session, or more sessions than the course, needs an override; a late
session or a course running long is only noted (a delay is not a hazard).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from protocols.findings import Layer, ValidationFinding
from protocols.library import TreatmentProtocol
from protocols.severity import Severity


def course_findings(
    protocol: TreatmentProtocol, session_date: date, previous_sessions: Iterable[date]
) -> list[ValidationFinding]:
    """Findings for a session of ``protocol`` on ``session_date`` after ``previous_sessions``
    (the dates of this patient's earlier sessions of the same protocol's course)."""
    course = protocol.course
    history = sorted(previous_sessions)
    findings: list[ValidationFinding] = []
    number = len(history) + 1
    if number > course.sessions:
        findings.append(
            ValidationFinding(
                Layer.COURSE,
                "COURSE-SESSIONS",
                "sessions",
                number,
                f"≤ {course.sessions} sessions ({course.description})",
                Severity.OVERRIDE_REQUIRED,
                f"this would be session {number} of a {course.sessions}-session course "
                f"({protocol.id}: {course.description}): review the course, or record an "
                "override with a written reason",
            )
        )
    if not history:
        return findings
    last = history[-1]
    gap = (session_date - last).days
    if gap < course.min_interval_days:
        earliest = last + timedelta(days=course.min_interval_days)
        if gap < 0:
            what = (
                f"an earlier session of this course is dated {last.isoformat()}, "
                f"{-gap} days after this session: check the record and the session date"
            )
        else:
            what = (
                f"only {gap} days since the last session on {last.isoformat()} (the course "
                f"needs at least {course.min_interval_days}): wait until {earliest.isoformat()}"
            )
        findings.append(
            ValidationFinding(
                Layer.COURSE,
                "COURSE-INTERVAL",
                "interval_days",
                gap,
                f"≥ {course.min_interval_days} days",
                Severity.OVERRIDE_REQUIRED,
                f"{what}, or record an override with a written reason",
            )
        )
    elif course.max_interval_days is not None and gap > course.max_interval_days:
        findings.append(
            ValidationFinding(
                Layer.COURSE,
                "COURSE-LATE",
                "interval_days",
                gap,
                f"≤ {course.max_interval_days} days",
                Severity.INFO,
                f"{gap} days since the last session; the course plans at most "
                f"{course.max_interval_days}: the course continues, note the delay",
            )
        )
    if course.span_days is not None:
        elapsed = (session_date - history[0]).days
        if elapsed > course.span_days:
            findings.append(
                ValidationFinding(
                    Layer.COURSE,
                    "COURSE-SPAN",
                    "course_days",
                    elapsed,
                    f"≤ {course.span_days} days",
                    Severity.INFO,
                    f"the course started {elapsed} days ago and is planned over "
                    f"{course.span_days} days: the course continues, note the delay",
                )
            )
    return findings
