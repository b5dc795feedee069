"""The figures behind the admin's charts, computed from the session records in one read.

Only treatment sessions count (at least one pulse delivered): a session ended at screening is
not a treatment. Means are exact decimals to one place (no floats cross into the screens'
values), with the number of sessions behind each so a mean of two is not read as a trend.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import text

from audit.trail import AuditTrail
from console.auth import AuthService, SignedInUser

MODALITIES = ("epat", "emtt")
DEFAULT_WEEKS = 26


@dataclass(frozen=True, slots=True)
class WeekCount:
    week_start: date
    counts: tuple[tuple[str, int], ...]  # (modality, sessions), in MODALITIES order

    def count(self, modality: str) -> int:
        return dict(self.counts).get(modality, 0)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True, slots=True)
class AdverseRate:
    """Sessions with at least one adverse event, per modality, and the events by kind."""

    modality: str
    sessions: int
    with_adverse_events: int
    by_kind: tuple[tuple[str, int], ...]

    @property
    def percent(self) -> Decimal:
        if self.sessions == 0:
            return Decimal(0)
        return (Decimal(self.with_adverse_events) * 100 / self.sessions).quantize(
            Decimal("0.1"), ROUND_HALF_EVEN
        )


@dataclass(frozen=True, slots=True)
class PainChange:
    """Mean pain (NRS 0–10) before and after, per protocol, over sessions with both scores."""

    protocol_id: str
    sessions: int
    mean_before: Decimal
    mean_after: Decimal


@dataclass(frozen=True, slots=True)
class ChartData:
    start: date
    end: date
    weeks: tuple[WeekCount, ...]
    adverse: tuple[AdverseRate, ...]
    pain: tuple[PainChange, ...]
    sessions: int


def _mean(values: list[int]) -> Decimal:
    return (Decimal(sum(values)) / len(values)).quantize(Decimal("0.1"), ROUND_HALF_EVEN)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class ClinicCharts:
    def __init__(self, auth: AuthService, trail: AuditTrail) -> None:
        self.auth = auth
        self.trail = trail

    def latest_session_date(self) -> date | None:
        with self.trail.store.connection() as conn:
            value = conn.execute(text("SELECT max(session_date) FROM treatment_sessions")).scalar()
        return None if value is None else _as_date(value)

    def data(
        self, user: SignedInUser, start: date | None = None, end: date | None = None
    ) -> ChartData:
        """The charts for sessions dated ``start``..``end`` (default: the 26 weeks up to the
        latest session in the record)."""
        self.auth.require(user, "view_audit")
        if end is None:
            end = self.latest_session_date() or date.today()
        if start is None:
            start = end - timedelta(weeks=DEFAULT_WEEKS) + timedelta(days=1)
        if start > end:
            raise ValueError("the range is empty: 'from' must not be after 'to'")
        with self.trail.store.connection() as conn:
            rows = conn.execute(
                text(
                    "SELECT session_date, modality, protocol_id, pain_before, pain_after, "
                    "adverse_events FROM treatment_sessions WHERE delivered > 0 AND "
                    "session_date >= :a AND session_date <= :b"
                ),
                {"a": start, "b": end},
            ).all()
        per_week: dict[date, Counter[str]] = defaultdict(Counter)
        monday = start - timedelta(days=start.weekday())
        while monday <= end:
            per_week[monday] = Counter()
            monday += timedelta(weeks=1)
        sessions: Counter[str] = Counter()
        with_ae: Counter[str] = Counter()
        kinds: dict[str, Counter[str]] = defaultdict(Counter)
        pain: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for day, modality, protocol, before, after, adverse in rows:
            day = _as_date(day)
            per_week[day - timedelta(days=day.weekday())][modality] += 1
            sessions[modality] += 1
            events = json.loads(adverse) if isinstance(adverse, str) else list(adverse or [])
            if events:
                with_ae[modality] += 1
                kinds[modality].update(events)
            if before is not None and after is not None:
                pain[protocol][0].append(int(before))
                pain[protocol][1].append(int(after))
        weeks = tuple(
            WeekCount(w, tuple((m, per_week[w][m]) for m in MODALITIES)) for w in sorted(per_week)
        )
        adverse_rates = tuple(
            AdverseRate(m, sessions[m], with_ae[m], tuple(sorted(kinds[m].items())))
            for m in MODALITIES
        )
        pain_changes = tuple(
            PainChange(p, len(b), _mean(b), _mean(a)) for p, (b, a) in sorted(pain.items())
        )
        return ChartData(start, end, weeks, adverse_rates, pain_changes, len(rows))
