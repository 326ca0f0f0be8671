"""Incident reports: the stats of a period and the CSV export of the list (static paths under
/incidents, mounted before the router with `/incidents/{number}`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.params import IsoDateTime
from opsdeck.incidents.api.filters import IncidentFilterDep
from opsdeck.incidents.schemas import IncidentStats
from opsdeck.incidents.service import export, stats
from opsdeck.incidents.service.stats_cache import stats_cache

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])


@router.get(
    "/stats",
    name="incidents-stats",
    response_model=IncidentStats,
    responses=error_responses(401, 403, 422),
    summary="Incident stats over a period (open by severity, per day, MTTA and MTTR)",
)
def incident_stats(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    since: Annotated[
        IsoDateTime | None, Query(description="Start (ISO 8601; default: 30 days before until).")
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="End, excluded (default: now).")] = None,
) -> Response:
    """At most 366 days; `since` must be before `until`. A time without a zone is UTC."""
    # An answer may come from the cache while no incident changed, for at most
    # incidents_stats_cache_seconds; without `until` it covers up to when it was computed.
    # It is IncidentStats' JSON already: sent as it is, not validated and serialized again.
    body = stats.cached_incident_stats(session, user, stats_cache(settings), since, until)
    return Response(body, media_type="application/json")


@router.get(
    "/export.csv",
    name="incidents-export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 422)},
    summary="The incident list as CSV (the list's filters), streamed",
)
def export_csv(
    request: Request, user: CurrentUser, filters: IncidentFilterDep
) -> StreamingResponse:
    chunks = export.export_csv(request.app.state.sessionmaker, user, filters)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="incidents.csv"'},
    )
