"""Incident statistics over a period, only over the incidents the caller may see.

- open incidents by severity, now (whatever the period);
- over the period [since, until): the incidents declared in it by their current status, how
  many were declared and how many resolved each UTC day (every day listed, zero-filled), and
  the percentiles (p50, p90, p95, continuous as PostgreSQL's percentile_cont) of the time to
  acknowledge (declared -> acknowledged) and to resolve (declared -> resolved) of the incidents
  declared in it. The timestamps are the workflow's stamps of the timeline's transitions.

PostgreSQL aggregates in SQL (percentile_cont); SQLite, the small embedded deployment, reads
the two timestamps and computes the percentiles in Python, the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from opsdeck.core.db import utcnow
from opsdeck.core.errors import ValidationFailed
from opsdeck.incidents.models import Incident, IncidentStatus, Severity
from opsdeck.incidents.schemas import DayCount, DurationPercentiles, IncidentStats
from opsdeck.incidents.service.access import Actor, visible_clause
from opsdeck.incidents.service.workflow import OPEN_STATUSES

DEFAULT_PERIOD = timedelta(days=30)
MAX_PERIOD = timedelta(days=366)
PERCENTILES = (0.5, 0.9, 0.95)


def _refuse(field: str, message: str, kind: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": field, "message": message, "type": kind}])


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def period(
    since: datetime | None, until: datetime | None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The period asked for: `until` defaults to now, `since` to 30 days before `until`; a
    time without a zone is UTC. since >= until, or a period over 366 days, is a 422."""
    end = _utc(until) if until is not None else (now or utcnow())
    start = _utc(since) if since is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise _refuse("query.since", "since must be before until", "period_empty")
    if end - start > MAX_PERIOD:
        raise _refuse(
            "query.since",
            f"the period is at most {MAX_PERIOD.days} days",
            "period_too_long",
        )
    return start, end


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _day(session: Session, column: InstrumentedAttribute[Any]) -> ColumnElement[Any]:
    if _postgres(session):
        return func.date(func.timezone("UTC", column))
    # SQLite keeps UTC timestamps as ISO text: date() reads the day off them.
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _per_day(
    session: Session,
    visible: ColumnElement[bool],
    column: InstrumentedAttribute[Any],
    start: datetime,
    end: datetime,
) -> list[DayCount]:
    day = _day(session, column)
    rows = session.execute(
        select(day, func.count()).where(visible, column >= start, column < end).group_by(day)
    ).all()
    counts = {_as_date(value): count for value, count in rows}
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [
        DayCount(
            day=first + timedelta(days=offset), count=counts.get(first + timedelta(days=offset), 0)
        )
        for offset in range((last - first).days + 1)
    ]


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Continuous percentile (linear interpolation between the closest ranks), as
    PostgreSQL's percentile_cont."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * weight


def _durations(
    session: Session, declared: ColumnElement[bool], end_column: InstrumentedAttribute[Any]
) -> DurationPercentiles:
    have = and_(declared, end_column.is_not(None))
    if _postgres(session):
        seconds = func.extract("epoch", end_column - Incident.declared_at)
        query: Select[Any] = select(
            func.count(),
            *(func.percentile_cont(fraction).within_group(seconds) for fraction in PERCENTILES),
        ).where(have)
        count, *values = session.execute(query).one()
        p50, p90, p95 = (None if value is None else float(value) for value in values)
        return DurationPercentiles(count=count, p50_seconds=p50, p90_seconds=p90, p95_seconds=p95)
    durations = sorted(
        (finished - started).total_seconds()
        for started, finished in session.execute(
            select(Incident.declared_at, end_column).where(have)
        )
    )
    p50, p90, p95 = (percentile(durations, fraction) for fraction in PERCENTILES)
    return DurationPercentiles(
        count=len(durations), p50_seconds=p50, p90_seconds=p90, p95_seconds=p95
    )


def incident_stats(
    session: Session,
    actor: Actor,
    since: datetime | None = None,
    until: datetime | None = None,
) -> IncidentStats:
    start, end = period(since, until)
    visible = visible_clause(actor)
    declared = and_(visible, Incident.declared_at >= start, Incident.declared_at < end)

    open_rows = session.execute(
        select(Incident.severity, func.count())
        .where(visible, Incident.status.in_([str(s) for s in OPEN_STATUSES]))
        .group_by(Incident.severity)
    ).all()
    open_counts = {str(severity): count for severity, count in open_rows}
    status_rows = session.execute(
        select(Incident.status, func.count()).where(declared).group_by(Incident.status)
    ).all()
    status_counts = {str(status): count for status, count in status_rows}

    return IncidentStats(
        since=start,
        until=end,
        open_by_severity={s: open_counts.get(s.value, 0) for s in Severity},
        by_status={s: status_counts.get(s.value, 0) for s in IncidentStatus},
        created_per_day=_per_day(session, visible, Incident.declared_at, start, end),
        resolved_per_day=_per_day(session, visible, Incident.resolved_at, start, end),
        mtta=_durations(session, declared, Incident.acknowledged_at),
        mttr=_durations(session, declared, Incident.resolved_at),
    )
