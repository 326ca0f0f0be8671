"""Incidents HTTP API: thin routers over incidents.service (docs/incidents.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from opsdeck.accounts.dependencies import Credentials, CurrentUser, ReadCredentials, read_as
from opsdeck.accounts.service import Reader
from opsdeck.core.db import unit_of_work
from opsdeck.core.deps import SessionDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import MAX_QUERY_INT, PageParams, page_params
from opsdeck.incidents.api.filters import IncidentFilterDep
from opsdeck.incidents.presenters import (
    comments_out,
    events_out,
    incident_out,
    incident_page,
)
from opsdeck.incidents.schemas import (
    CommentIn,
    CommentOut,
    CommentPage,
    IncidentCreate,
    IncidentOut,
    IncidentPage,
    IncidentUpdate,
    NoteIn,
    PersonIn,
    PinIn,
    TimelineEventOut,
    TimelinePage,
    TransitionIn,
)
from opsdeck.incidents.service import comments, incidents
from opsdeck.incidents.service.comments import COMMENT_SORTS, TIMELINE_SORTS

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])

Number = Annotated[int, Path(ge=1, le=MAX_QUERY_INT, description="The n of INC-<n>.")]
IncidentPageParams = Annotated[
    PageParams, Depends(page_params(incidents.INCIDENT_SORTS, default_limit=25, max_limit=100))
]
CommentPageParams = Annotated[PageParams, Depends(page_params(COMMENT_SORTS, max_limit=100))]
TimelinePageParams = Annotated[PageParams, Depends(page_params(TIMELINE_SORTS, max_limit=200))]
AUTH = (401, 403)


def _json(body: BaseModel) -> Response:
    """`body` as the JSON FastAPI would send for it as the route's response_model: the same
    serializer, without FastAPI validating it a second time (in a thread of its pool, for a
    sync route) before serialising it. The routes returning this are the hot reads of the API
    (docs/benchmarks.md, "Incidents API"); `body` is a validated model already."""
    return Response(
        content=type(body).__pydantic_serializer__.to_json(body), media_type="application/json"
    )


async def _read_in_one_hop(
    credentials: Credentials, read: Callable[[Session, Reader], Response]
) -> Response:
    """`read(session, reader)` in one unit of work (SessionDep's: committed before the answer,
    rolled back on an error), signed in by `credentials` (accounts.read_as), all in one
    thread-pool hop. The hot reads of the API use it instead of SessionDep and CurrentUser, a
    hop each for the session's start and end, for get_principal and for the route: four
    hand-offs a request, and FastAPI's solving of the dependencies between them
    (docs/benchmarks.md, "Incidents API")."""
    sessionmaker = credentials.request.app.state.sessionmaker

    def run() -> Response:
        with unit_of_work(sessionmaker()) as session:
            return read(session, read_as(session, credentials))

    return await run_in_threadpool(run)


@router.post(
    "",
    name="incidents-declare",
    status_code=status.HTTP_201_CREATED,
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 413, 422),
    summary="Declare an incident",
)
def declare(
    body: IncidentCreate, response: Response, session: SessionDep, user: CurrentUser
) -> IncidentOut:
    incident = incidents.declare(
        session,
        user,
        title=body.title,
        description=body.description,
        severity=body.severity,
        category=body.category,
        tags=body.tags,
        visibility=body.visibility,
    )
    response.headers["Location"] = f"{API_PREFIX}/incidents/{incident.number}"
    return incident_out(session, user, incident)


@router.get(
    "",
    name="incidents-list",
    response_model=IncidentPage,
    responses=error_responses(*AUTH, 422),
    summary="List incidents (filters, full-text search, keyset pages)",
)
async def list_incidents(
    credentials: ReadCredentials, filters: IncidentFilterDep, page: IncidentPageParams
) -> Response:
    def read(session: Session, reader: Reader) -> Response:
        return _json(
            incident_page(session, incidents.list_incidents(session, reader, filters, page))
        )

    return await _read_in_one_hop(credentials, read)


@router.get(
    "/{number:int}",
    name="incidents-get",
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="One incident",
)
async def get_incident(number: Number, credentials: ReadCredentials) -> Response:
    def read(session: Session, reader: Reader) -> Response:
        return _json(
            incident_out(session, reader, incidents.read_incident(session, reader, number))
        )

    return await _read_in_one_hop(credentials, read)


@router.patch(
    "/{number:int}",
    name="incidents-update",
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 404, 413, 422),
    summary="Edit an incident (commander, assignees, admins)",
)
def update_incident(
    number: Number, body: IncidentUpdate, session: SessionDep, user: CurrentUser
) -> IncidentOut:
    sent = body.model_fields_set
    edits = incidents.Edits(
        title=body.title,
        description=body.description,
        severity=body.severity,
        category=body.category,
        tags=body.tags,
        visibility=body.visibility,
        commander=body.commander,
        clear_commander="commander" in sent and body.commander is None,
        clear_category="category" in sent and body.category is None,
    )
    return incident_out(session, user, incidents.update(session, user, number, edits))


@router.post(
    "/{number:int}/transition",
    name="incidents-transition",
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Move an incident along its workflow (409 lists the allowed next states)",
)
def transition(
    number: Number, body: TransitionIn, session: SessionDep, user: CurrentUser
) -> IncidentOut:
    incident = incidents.transition(session, user, number, body.to, note=body.note)
    return incident_out(session, user, incident)


@router.post(
    "/{number:int}/assignees",
    name="incidents-add-assignee",
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Assign somebody",
)
def add_assignee(
    number: Number, body: PersonIn, session: SessionDep, user: CurrentUser
) -> IncidentOut:
    incident = incidents.add_assignee(session, user, number, body.username)
    return incident_out(session, user, incident)


@router.delete(
    "/{number:int}/assignees/{username}",
    name="incidents-remove-assignee",
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Unassign somebody",
)
def remove_assignee(
    number: Number,
    username: Annotated[str, Path(max_length=200)],
    session: SessionDep,
    user: CurrentUser,
) -> IncidentOut:
    incident = incidents.remove_assignee(session, user, number, username)
    return incident_out(session, user, incident)


@router.post(
    "/{number:int}/watchers",
    name="incidents-watch",
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Watch an incident (or, as an editor, add a watcher by username)",
)
def watch(
    number: Number, session: SessionDep, user: CurrentUser, body: PersonIn | None = None
) -> IncidentOut:
    incident = incidents.watch(session, user, number, body.username if body else None)
    return incident_out(session, user, incident)


@router.delete(
    "/{number:int}/watchers",
    name="incidents-unwatch",
    response_model=IncidentOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Stop watching (or, as an editor, remove a watcher with ?username=)",
)
def unwatch(
    number: Number,
    session: SessionDep,
    user: CurrentUser,
    username: Annotated[str | None, Query(max_length=200)] = None,
) -> IncidentOut:
    incident = incidents.unwatch(session, user, number, username)
    return incident_out(session, user, incident)


# -- comments -------------------------------------------------------------------------------


@router.get(
    "/{number:int}/comments",
    name="incidents-list-comments",
    response_model=CommentPage,
    responses=error_responses(*AUTH, 404, 422),
    summary="An incident's comments, oldest first",
)
def list_comments(
    number: Number, session: SessionDep, user: CurrentUser, page: CommentPageParams
) -> CommentPage:
    result = comments.list_comments(session, user, number, page)
    return CommentPage(items=comments_out(session, result.items), next_cursor=result.next_cursor)


@router.post(
    "/{number:int}/comments",
    name="incidents-add-comment",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentOut,
    responses=error_responses(*AUTH, 404, 413, 422),
    summary="Comment (Markdown)",
)
def add_comment(
    number: Number, body: CommentIn, session: SessionDep, user: CurrentUser
) -> CommentOut:
    comment = comments.add_comment(session, user, number, body.body)
    return comments_out(session, [comment])[0]


CommentId = Annotated[str, Path(max_length=32)]


@router.patch(
    "/{number:int}/comments/{comment_id}",
    name="incidents-edit-comment",
    response_model=CommentOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Edit your comment (marked as edited)",
)
def edit_comment(
    number: Number, comment_id: CommentId, body: CommentIn, session: SessionDep, user: CurrentUser
) -> CommentOut:
    comment = comments.edit_comment(session, user, number, comment_id, body.body)
    return comments_out(session, [comment])[0]


@router.delete(
    "/{number:int}/comments/{comment_id}",
    name="incidents-delete-comment",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTH, 404, 422),
    summary="Delete your comment (it stays in the thread, marked deleted)",
)
def delete_comment(
    number: Number, comment_id: CommentId, session: SessionDep, user: CurrentUser
) -> None:
    comments.delete_comment(session, user, number, comment_id)


# -- the timeline ----------------------------------------------------------------------------


@router.get(
    "/{number:int}/timeline",
    name="incidents-timeline",
    response_model=TimelinePage,
    responses=error_responses(*AUTH, 404, 422),
    summary="An incident's timeline, oldest first",
)
def read_timeline(
    number: Number,
    session: SessionDep,
    user: CurrentUser,
    page: TimelinePageParams,
    pinned: Annotated[bool | None, Query(description="Only pinned (or unpinned) events.")] = None,
) -> TimelinePage:
    result = comments.list_timeline(session, user, number, page, pinned=pinned)
    return TimelinePage(items=events_out(session, result.items), next_cursor=result.next_cursor)


@router.post(
    "/{number:int}/notes",
    name="incidents-add-note",
    status_code=status.HTTP_201_CREATED,
    response_model=TimelineEventOut,
    responses=error_responses(*AUTH, 404, 413, 422),
    summary="Add a note to the timeline",
)
def add_note(
    number: Number, body: NoteIn, session: SessionDep, user: CurrentUser
) -> TimelineEventOut:
    event = comments.add_note(session, user, number, body.body, pinned=body.pinned)
    return events_out(session, [event])[0]


@router.patch(
    "/{number:int}/timeline/{event_id}",
    name="incidents-pin-event",
    response_model=TimelineEventOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Pin or unpin a timeline event (editors)",
)
def pin_event(
    number: Number,
    event_id: Annotated[int, Path(ge=1, le=MAX_QUERY_INT)],
    body: PinIn,
    session: SessionDep,
    user: CurrentUser,
) -> TimelineEventOut:
    event = comments.pin_event(session, user, number, event_id, pinned=body.pinned)
    return events_out(session, [event])[0]
