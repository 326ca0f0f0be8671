"""Incident statistics over a period, only over the incidents the caller may see.

- open incidents by severity, now (whatever the period);
- over the period [since, until): the incidents declared in it by their current status, how
  many were declared and how many resolved each UTC day (every day listed, zero-filled), and
  the percentiles (p50, p90, p95, continuous as PostgreSQL's percentile_cont) of the time to
  acknowledge (declared -> acknowledged) and to resolve (declared -> resolved) of the incidents
  declared in it. The timestamps are the workflow's stamps of the timeline's transitions.

PostgreSQL aggregates in SQL (percentile_cont); SQLite, the small embedded deployment, reads
the timestamps and computes the percentiles in Python, the same way. Four statements in all
(see incident_stats); on PostgreSQL the period's are index-only scans.

The API asks through cached_incident_stats: an answer computed less than
`incidents_stats_cache_seconds` ago for the same visibility scope and period, while no change
was recorded since (stats_cache.py says why that rule is exact enough), costs one statement.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Double, and_, func, literal, or_, select, text, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.orm import InstrumentedAttribute, Session

from opsdeck.core.db import utcnow
from opsdeck.core.errors import ValidationFailed
from opsdeck.incidents.models import Incident, IncidentStatus, Severity, TimelineEvent
from opsdeck.incidents.schemas import DayCount, DurationPercentiles, IncidentStats
from opsdeck.incidents.service.access import Actor, visible_clause
from opsdeck.incidents.service.stats_cache import Entry, StatsCache, cache_key, open_key
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


_EPOCH = date(1970, 1, 1)
_DAY_SECONDS = 86_400


def _day(session: Session, column: InstrumentedAttribute[Any]) -> ColumnElement[Any]:
    if _postgres(session):
        # The UTC day as days since 1970: float arithmetic, much cheaper per row than
        # date(timezone('UTC', ...)) (bench/incidents_api.py).
        return func.floor(func.date_part("epoch", column) / _DAY_SECONDS)
    # SQLite keeps UTC timestamps as ISO text: date() reads the day off them.
    return func.date(column)


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, int | float):
        return _EPOCH + timedelta(days=int(value))
    return date.fromisoformat(str(value))


def _zero_filled(counts: dict[date, int], start: datetime, end: datetime) -> list[DayCount]:
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


def _durations(count: int, values: Sequence[float | None] | None) -> DurationPercentiles:
    p50, p90, p95 = values if values is not None else (None, None, None)
    return DurationPercentiles(
        count=count,
        p50_seconds=None if p50 is None else float(p50),
        p90_seconds=None if p90 is None else float(p90),
        p95_seconds=None if p95 is None else float(p95),
    )


def _percentiles_sql(end_column: InstrumentedAttribute[Any]) -> tuple[Any, Any]:
    """How many of the period's incidents have `end_column`, and the PERCENTILES of the
    seconds from declared_at to it: one sort for the three (percentile_cont of an array)."""
    have = end_column.is_not(None)
    # date_part is float8; extract is numeric (PostgreSQL 14+), slower to compute and sort.
    seconds = func.date_part("epoch", end_column - Incident.declared_at)
    fractions = array([literal(fraction, Double) for fraction in PERCENTILES])
    values = func.percentile_cont(fractions).within_group(seconds).filter(have)
    return func.count().filter(have), type_coerce(values, ARRAY(Double))


def _period_durations(
    session: Session, declared: ColumnElement[bool]
) -> tuple[DurationPercentiles, DurationPercentiles]:
    """MTTA and MTTR over the incidents declared in the period, in one statement."""
    if _postgres(session):
        row = session.execute(
            select(
                *_percentiles_sql(Incident.acknowledged_at),
                *_percentiles_sql(Incident.resolved_at),
            ).where(declared)
        ).one()
        return _durations(row[0], row[1]), _durations(row[2], row[3])
    acknowledge: list[float] = []
    resolve: list[float] = []
    for declared_at, acknowledged_at, resolved_at in session.execute(
        select(Incident.declared_at, Incident.acknowledged_at, Incident.resolved_at).where(
            declared, or_(Incident.acknowledged_at.is_not(None), Incident.resolved_at.is_not(None))
        )
    ):
        if acknowledged_at is not None:
            acknowledge.append((acknowledged_at - declared_at).total_seconds())
        if resolved_at is not None:
            resolve.append((resolved_at - declared_at).total_seconds())
    acknowledge.sort()
    resolve.sort()
    return (
        _durations(len(acknowledge), [percentile(acknowledge, f) for f in PERCENTILES]),
        _durations(len(resolve), [percentile(resolve, f) for f in PERCENTILES]),
    )


# Built once: a Core statement (no ORM entity) costs less to run than to build and key anew.
_CHANGE_MARKER = select(func.max(TimelineEvent.__table__.c.id))


def change_marker(session: Session) -> int | None:
    """The newest timeline event's id: every change the stats can see appends one
    (stats_cache.py says which), so an answer computed with another marker is stale. One probe
    of the primary key's end."""
    marker: int | None = session.scalar(_CHANGE_MARKER)
    return marker


def visibility_scope(actor: Actor) -> str:
    """Who sees the same incidents: every admin sees them all; a member sees the public ones
    and the restricted ones they take part in, their own set."""
    return "all" if actor.is_admin else f"user:{actor.id}"


def cached_incident_stats(
    session: Session,
    actor: Actor,
    cache: StatsCache,
    since: datetime | None = None,
    until: datetime | None = None,
) -> bytes:
    """incident_stats through `cache`, as its JSON (a cached answer is sent as it is, neither
    parsed nor validated again): an answer computed for the same visibility scope and period,
    with the same change marker, less than the cache's age limit ago; otherwise computed and
    stored. Without `until`, a cached answer covers up to when it was computed (its `until`).
    The period is checked first, whatever the cache holds (422s unchanged)."""
    now = cache.clock()
    period(since, until, now=now)
    if not cache.enabled:
        return incident_stats(session, actor, since, until, now=now).model_dump_json().encode()
    # Read before computing: a change committed meanwhile gives the next request a newer
    # marker, so at worst this answer is computed again, never kept too long.
    marker = change_marker(session)
    key = cache_key(
        visibility_scope(actor),
        None if since is None else _utc(since),
        None if until is None else _utc(until),
    )
    entry = cache.get(key, marker, now)
    if entry is None:
        with cache.computing(key):
            # Another request of this process may have computed it while this one waited.
            entry = cache.get(key, marker, now)
            if entry is None:
                open_now, open_at = _cached_open_by_severity(session, actor, cache, marker, now)
                computed = incident_stats(session, actor, since, until, now=now, open_now=open_now)
                # As old as its oldest part: the age limit bounds the whole answer.
                entry = Entry.of(marker, min(now, open_at), computed)
                cache.put(key, entry)
    return entry.body


def open_by_severity(session: Session, actor: Actor) -> dict[str, int]:
    """The open incidents `actor` may see, by severity (every severity listed), now."""
    rows = session.execute(
        select(Incident.severity, func.count())
        .where(visible_clause(actor), Incident.status.in_([str(s) for s in OPEN_STATUSES]))
        .group_by(Incident.severity)
    ).all()
    counts = {str(severity): count for severity, count in rows}
    return {s.value: counts.get(s.value, 0) for s in Severity}


def _cached_open_by_severity(
    session: Session, actor: Actor, cache: StatsCache, marker: int | None, now: datetime
) -> tuple[dict[str, int], datetime]:
    """open_by_severity through the cache, and when it was computed: it does not depend on the
    period, so the periods a scope asks (the dashboard's eight weeks) share it, under the same
    freshness rule."""
    key = open_key(visibility_scope(actor))
    entry = cache.get(key, marker, now)
    if entry is not None:
        try:
            counts = json.loads(entry.body)
            if isinstance(counts, dict) and all(isinstance(v, int) for v in counts.values()):
                return {str(k): v for k, v in counts.items()}, entry.computed_at
        except ValueError:
            pass  # not ours: computed again below
    _without_jit(session)
    counts = open_by_severity(session, actor)
    cache.put(key, Entry(marker, now, json.dumps(counts).encode()))
    return counts, now


def _without_jit(session: Session) -> None:
    if _postgres(session):
        # Compiling these plans (JIT: their cost passes jit_above_cost) takes longer than
        # running them: 20-60 ms a statement, a third of the request (bench/incidents_api.py).
        # For this transaction only.
        session.execute(text("SET LOCAL jit = off"))


def incident_stats(
    session: Session,
    actor: Actor,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    now: datetime | None = None,
    open_now: dict[str, int] | None = None,
) -> IncidentStats:
    """Four statements (and SET LOCAL jit on PostgreSQL): open now by severity (unless given
    as `open_now`, open_by_severity's answer); the period's declared incidents by day and
    status; their MTTA and MTTR; the period's resolutions by day. On PostgreSQL the last three
    read ix_incidents_declared_at / ix_incidents_resolved_at alone (covering indexes, 0011)."""
    start, end = period(since, until, now=now)
    _without_jit(session)
    visible = visible_clause(actor)
    declared = and_(visible, Incident.declared_at >= start, Incident.declared_at < end)
    open_counts = open_now if open_now is not None else open_by_severity(session, actor)

    declared_day = _day(session, Incident.declared_at)
    status_counts: dict[str, int] = {}
    created: dict[date, int] = {}
    for day, status, count in session.execute(
        select(declared_day, Incident.status, func.count())
        .where(declared)
        .group_by(declared_day, Incident.status)
    ):
        status_counts[str(status)] = status_counts.get(str(status), 0) + count
        created[_as_date(day)] = created.get(_as_date(day), 0) + count

    mtta, mttr = _period_durations(session, declared)

    resolved_day = _day(session, Incident.resolved_at)
    resolved = {
        _as_date(day): count
        for day, count in session.execute(
            select(resolved_day, func.count())
            .where(visible, Incident.resolved_at >= start, Incident.resolved_at < end)
            .group_by(resolved_day)
        )
    }

    return IncidentStats(
        since=start,
        until=end,
        open_by_severity={s: open_counts.get(s.value, 0) for s in Severity},
        by_status={s: status_counts.get(s.value, 0) for s in IncidentStatus},
        created_per_day=_zero_filled(created, start, end),
        resolved_per_day=_zero_filled(resolved, start, end),
        mtta=mtta,
        mttr=mttr,
    )
