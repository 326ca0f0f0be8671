"""The incident list's filters as one FastAPI dependency: the list, the CSV export and the
stats read the same query parameters the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query

from opsdeck.core.params import IsoDateTime
from opsdeck.incidents.schemas import IncidentStatus, Severity
from opsdeck.incidents.service import IncidentFilter
from opsdeck.incidents.service.search import MAX_QUERY_LENGTH


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# `async`: it only reads the query, and FastAPI would run a sync dependency in its thread pool.
async def incident_filter(
    status: Annotated[
        list[IncidentStatus] | None, Query(description="Any of these statuses.", max_length=6)
    ] = None,
    severity: Annotated[
        list[Severity] | None, Query(description="Any of these severities.", max_length=4)
    ] = None,
    category: Annotated[str | None, Query(max_length=64, description="A category name.")] = None,
    tag: Annotated[str | None, Query(max_length=64, description="A tag name.")] = None,
    commander: Annotated[str | None, Query(max_length=200, description="A username.")] = None,
    assignee: Annotated[str | None, Query(max_length=200, description="A username.")] = None,
    reporter: Annotated[str | None, Query(max_length=200, description="A username.")] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="Declared at or after (ISO 8601).")
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="Declared before (ISO 8601).")] = None,
    mine: Annotated[
        bool, Query(description="Only incidents I command, reported, am assigned or watch.")
    ] = False,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_QUERY_LENGTH,
            description="Full-text search over title, description and comments.",
        ),
    ] = None,
) -> IncidentFilter:
    return IncidentFilter(
        status=tuple(status or ()),
        severity=tuple(severity or ()),
        category=category or None,
        tag=tag or None,
        commander=commander or None,
        assignee=assignee or None,
        reporter=reporter or None,
        since=_utc(since),
        until=_utc(until),
        mine=mine,
        q=(q.strip() or None) if q else None,
    )


IncidentFilterDep = Annotated[IncidentFilter, Depends(incident_filter)]
