"""`/incidents/follow-ups` (across incidents) and `/incidents/{number}/follow-ups`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from sqlalchemy.orm import Session

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.core.deps import SessionDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import MAX_QUERY_INT, PageParams, page_params
from opsdeck.incidents.models import FollowUp
from opsdeck.incidents.presenters import People
from opsdeck.incidents.schemas import (
    FollowUpCreate,
    FollowUpOut,
    FollowUpPage,
    FollowUpStatus,
    FollowUpUpdate,
)
from opsdeck.incidents.service import follow_ups as service
from opsdeck.incidents.service.access import incident_label

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])

Number = Annotated[int, Path(ge=1, le=MAX_QUERY_INT, description="The incident's number.")]
FollowUpId = Annotated[str, Path(max_length=32)]
Page = Annotated[PageParams, Depends(page_params(service.FOLLOW_UP_SORTS))]
StatusFilter = Annotated[
    list[FollowUpStatus] | None,
    Query(alias="status", max_length=3, description="Any of these (repeat it)."),
]
OwnerFilter = Annotated[str | None, Query(max_length=200, description="A username.")]
OverdueFilter = Annotated[
    bool | None, Query(description="true: only overdue ones; false: only the others.")
]


def _out(session: Session, rows: Sequence[FollowUp]) -> list[FollowUpOut]:
    titles = service.incident_titles(session, [row.incident_number for row in rows])
    people = People(session, [row.owner_id for row in rows])
    today = service.today()
    items = []
    for row in rows:
        items.append(
            FollowUpOut(
                id=row.id,
                incident_number=row.incident_number,
                incident_key=incident_label(row.incident_number),
                incident_title=titles.get(row.incident_number, ""),
                title=row.title,
                owner=people.ref(row.owner_id),
                due_date=row.due_date,
                status=row.status,
                overdue=service.is_overdue(row, today),
                created_at=row.created_at,
                completed_at=row.completed_at,
            )
        )
    return items


def _filters(
    status_: list[FollowUpStatus] | None, owner: str | None, overdue: bool | None
) -> service.FollowUpFilter:
    return service.FollowUpFilter(status=tuple(status_ or ()), owner=owner, overdue=overdue)


# -- across incidents (static paths: this router is mounted before the one with /{number}) --


@router.get(
    "/follow-ups",
    name="incidents-list-follow-ups",
    response_model=FollowUpPage,
    responses=error_responses(401, 422),
)
def list_follow_ups(
    session: SessionDep,
    user: CurrentUser,
    page: Page,
    status_: StatusFilter = None,
    owner: OwnerFilter = None,
    overdue: OverdueFilter = None,
) -> FollowUpPage:
    """Follow-ups of every incident the caller may see, each with `overdue`."""
    rows = service.list_follow_ups(session, user, _filters(status_, owner, overdue), page)
    return FollowUpPage(items=_out(session, rows.items), next_cursor=rows.next_cursor)


@router.patch(
    "/follow-ups/{follow_up_id}",
    name="incidents-update-follow-up",
    response_model=FollowUpOut,
    responses=error_responses(401, 403, 404, 422),
)
def update_follow_up(
    follow_up_id: FollowUpId, body: FollowUpUpdate, session: SessionDep, user: CurrentUser
) -> FollowUpOut:
    """Only the fields sent change; `owner: null` / `due_date: null` clear them. The
    incident's editors change anything; the owner may change the status."""
    sent = body.model_fields_set
    changes = service.FollowUpChanges(
        title=body.title,
        owner=body.owner,
        clear_owner="owner" in sent and body.owner is None,
        due_date=body.due_date,
        clear_due_date="due_date" in sent and body.due_date is None,
        status=body.status,
    )
    row = service.update_follow_up(session, user, follow_up_id, changes)
    return _out(session, [row])[0]


@router.delete(
    "/follow-ups/{follow_up_id}",
    name="incidents-delete-follow-up",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_follow_up(follow_up_id: FollowUpId, session: SessionDep, user: CurrentUser) -> None:
    service.delete_follow_up(session, user, follow_up_id)


# -- one incident's -----------------------------------------------------------------------


@router.post(
    "/{number}/follow-ups",
    name="incidents-create-follow-up",
    response_model=FollowUpOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 422),
)
def create_follow_up(
    number: Number, body: FollowUpCreate, session: SessionDep, user: CurrentUser
) -> FollowUpOut:
    """A due date in the past is a 422 naming `due_date`; an unknown owner one naming `owner`."""
    row = service.create_follow_up(
        session,
        user,
        number,
        title=body.title,
        owner=body.owner,
        due_date=body.due_date,
        status=body.status,
    )
    return _out(session, [row])[0]


@router.get(
    "/{number}/follow-ups",
    name="incidents-list-incident-follow-ups",
    response_model=FollowUpPage,
    responses=error_responses(401, 404, 422),
)
def list_incident_follow_ups(
    number: Number,
    session: SessionDep,
    user: CurrentUser,
    page: Page,
    status_: StatusFilter = None,
    owner: OwnerFilter = None,
    overdue: OverdueFilter = None,
) -> FollowUpPage:
    rows = service.list_incident_follow_ups(
        session, user, number, _filters(status_, owner, overdue), page
    )
    return FollowUpPage(items=_out(session, rows.items), next_cursor=rows.next_cursor)
