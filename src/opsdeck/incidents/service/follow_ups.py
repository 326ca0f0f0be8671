"""Follow-ups: the action items an incident leaves (title, owner, due date, status
open | in_progress | done), listed per incident and across incidents.

- Who: the incident's editors create, change and delete them; a follow-up's owner may also
  move its status (their own work), nothing else. An owner must be able to see the incident
  (on a restricted one, make them a watcher first): owning a follow-up lets nobody in.
  Everybody who sees the incident reads them; the list across incidents shows only
  follow-ups of incidents the caller may see.
- Dates: a due date is a calendar day; a new due date must be today or later (UTC). A
  follow-up is overdue when its due date is before today (UTC) and it is not done.

Every change is a `follow_up_changed` timeline event and goes through hooks.changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, and_, false, not_, select
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.core.db import utcnow
from opsdeck.core.errors import Forbidden, NotFound, ValidationFailed
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.incidents.models import EventKind, FollowUp, FollowUpStatus, Incident
from opsdeck.incidents.service import timeline
from opsdeck.incidents.service.access import (
    Actor,
    can_edit,
    can_see,
    get_visible,
    incident_label,
    require_editor,
    visible_clause,
)
from opsdeck.incidents.service.hooks import Change, IncidentEvent, changed

FOLLOW_UP_SORTS = SortOrders(
    name="FollowUpSort",
    id_column=FollowUp.id,
    keys={"created_at": FollowUp.created_at},
    default="-created_at",
)


def today() -> date:
    """Today in UTC: what "overdue" and "in the past" are measured against."""
    return utcnow().date()


def is_overdue(follow_up: FollowUp, on: date | None = None) -> bool:
    return (
        follow_up.due_date is not None
        and follow_up.status != FollowUpStatus.DONE
        and follow_up.due_date < (on or today())
    )


def _check_due(due_date: date) -> None:
    if due_date < today():
        raise ValidationFailed(
            f"The due date {due_date.isoformat()} is in the past; choose today or later.",
            details=[
                {
                    "field": "due_date",
                    "message": "in the past",
                    "type": "past_date",
                    "value": due_date.isoformat(),
                }
            ],
        )


def _owner(session: Session, username: str, incident: Incident) -> Actor:
    """The active user named, who must be able to see the incident (on a restricted one, an
    editor makes them a watcher first: ownership lets nobody in)."""
    user = accounts.get_active_user_by_username(session, username)
    if user is None:
        raise ValidationFailed(
            f"There is no active user {username!r}.",
            details=[{"field": "owner", "message": "no such user", "type": "unknown"}],
        )
    if not can_see(session, user, incident):
        raise ValidationFailed(
            f"{user.username} cannot see {incident_label(incident.number)}, which is "
            "restricted; add them as a watcher first.",
            details=[{"field": "owner", "message": "cannot see the incident", "type": "no_access"}],
        )
    return user


def _record(
    session: Session,
    actor: Actor,
    incident: Incident,
    follow_up: FollowUp,
    action: str,
    *,
    old: str | None = None,
    new: str | None = None,
    fields: Sequence[str] = (),
) -> None:
    data: dict[str, object] = {
        "action": action,
        "follow_up_id": follow_up.id,
        "title": follow_up.title,
    }
    if fields:
        data["fields"] = list(fields)
    timeline.record(
        session,
        incident.number,
        EventKind.FOLLOW_UP_CHANGED,
        actor_id=actor.id,
        old=old,
        new=new,
        data=data,
    )
    incident.updated_at = utcnow()
    changed(
        session,
        incident,
        Change(
            IncidentEvent.UPDATED,
            actor,
            data={"follow_up": action, "follow_up_id": follow_up.id},
        ),
    )


def create_follow_up(
    session: Session,
    actor: Actor,
    number: int,
    *,
    title: str,
    owner: str | None = None,
    due_date: date | None = None,
    status: FollowUpStatus = FollowUpStatus.OPEN,
) -> FollowUp:
    incident = get_visible(session, actor, number)
    require_editor(session, actor, incident)
    if due_date is not None:
        _check_due(due_date)
    owner_user = _owner(session, owner, incident) if owner else None
    now = utcnow()
    follow_up = FollowUp(
        incident_number=number,
        title=title,
        owner_id=owner_user.id if owner_user else None,
        due_date=due_date,
        status=status,
        created_at=now,
        completed_at=now if status == FollowUpStatus.DONE else None,
    )
    session.add(follow_up)
    session.flush()
    _record(session, actor, incident, follow_up, "created", new=title)
    return follow_up


@dataclass(frozen=True)
class FollowUpChanges:
    """What a PATCH sent; None means "leave it", `clear_owner` / `clear_due_date` say the
    request sent null."""

    title: str | None = None
    owner: str | None = None
    clear_owner: bool = False
    due_date: date | None = None
    clear_due_date: bool = False
    status: FollowUpStatus | None = None

    def only_status(self) -> bool:
        return (
            self.title is None
            and self.owner is None
            and not self.clear_owner
            and self.due_date is None
            and not self.clear_due_date
        )


def _visible_follow_up(
    session: Session, actor: Actor, follow_up_id: str
) -> tuple[Incident, FollowUp]:
    """The follow-up and its incident; a 404 when either is missing or not visible."""
    follow_up = session.get(FollowUp, follow_up_id)
    if follow_up is None:
        raise NotFound("There is no such follow-up.")
    try:
        incident = get_visible(session, actor, follow_up.incident_number)
    except NotFound:
        raise NotFound("There is no such follow-up.") from None
    return incident, follow_up


def update_follow_up(
    session: Session, actor: Actor, follow_up_id: str, changes: FollowUpChanges
) -> FollowUp:
    incident, follow_up = _visible_follow_up(session, actor, follow_up_id)
    owner_moving_it = follow_up.owner_id == actor.id and changes.only_status()
    if not owner_moving_it and not can_edit(session, actor, incident):
        raise Forbidden(
            f"Only the commander, the assignees and admins may change the follow-ups of "
            f"{incident_label(incident.number)}; a follow-up's owner may change its status."
        )
    changed_fields: list[str] = []
    old_status = follow_up.status
    if changes.title is not None and changes.title != follow_up.title:
        follow_up.title = changes.title
        changed_fields.append("title")
    if changes.clear_owner or changes.owner is not None:
        owner_id = _owner(session, changes.owner, incident).id if changes.owner else None
        if owner_id != follow_up.owner_id:
            follow_up.owner_id = owner_id
            changed_fields.append("owner")
    if changes.clear_due_date and follow_up.due_date is not None:
        follow_up.due_date = None
        changed_fields.append("due_date")
    elif changes.due_date is not None and changes.due_date != follow_up.due_date:
        _check_due(changes.due_date)
        follow_up.due_date = changes.due_date
        changed_fields.append("due_date")
    if changes.status is not None and changes.status != follow_up.status:
        follow_up.status = changes.status
        follow_up.completed_at = utcnow() if changes.status == FollowUpStatus.DONE else None
        changed_fields.append("status")
    if changed_fields:
        session.flush()
        status_changed = "status" in changed_fields
        _record(
            session,
            actor,
            incident,
            follow_up,
            "updated",
            old=old_status if status_changed else None,
            new=follow_up.status if status_changed else None,
            fields=changed_fields,
        )
    return follow_up


def delete_follow_up(session: Session, actor: Actor, follow_up_id: str) -> None:
    incident, follow_up = _visible_follow_up(session, actor, follow_up_id)
    require_editor(session, actor, incident)
    _record(session, actor, incident, follow_up, "deleted", old=follow_up.title)
    session.delete(follow_up)
    session.flush()


@dataclass(frozen=True)
class FollowUpFilter:
    """The list's filters: each narrows. An unknown owner matches nothing."""

    status: Sequence[FollowUpStatus] = ()
    owner: str | None = None
    overdue: bool | None = None
    incident: int | None = None


def filtered(session: Session, actor: Actor, filters: FollowUpFilter) -> Select[FollowUp]:
    """The follow-ups of incidents `actor` may see that match `filters`, unordered."""
    query = (
        select(FollowUp)
        .join(Incident, Incident.number == FollowUp.incident_number)
        .where(visible_clause(actor))
    )
    if filters.incident is not None:
        query = query.where(FollowUp.incident_number == filters.incident)
    if filters.status:
        query = query.where(FollowUp.status.in_([str(s) for s in filters.status]))
    if filters.owner:
        owner = accounts.get_active_user_by_username(session, filters.owner)
        # (not `owner_id == None`: that would be IS NULL, the unowned ones)
        query = query.where(FollowUp.owner_id == owner.id if owner else false())
    if filters.overdue is not None:
        overdue = and_(
            FollowUp.due_date.is_not(None),
            FollowUp.due_date < today(),
            FollowUp.status != FollowUpStatus.DONE,
        )
        query = query.where(overdue if filters.overdue else not_(overdue))
    return query


def list_follow_ups(
    session: Session, actor: Actor, filters: FollowUpFilter, page: PageParams
) -> Paged[FollowUp]:
    """Across incidents (or one, `filters.incident`), only those of visible incidents."""
    return paginate(session, filtered(session, actor, filters), page)


def list_incident_follow_ups(
    session: Session, actor: Actor, number: int, filters: FollowUpFilter, page: PageParams
) -> Paged[FollowUp]:
    """One incident's follow-ups; 404 when the incident is not visible."""
    get_visible(session, actor, number)
    return list_follow_ups(
        session,
        actor,
        FollowUpFilter(
            status=filters.status, owner=filters.owner, overdue=filters.overdue, incident=number
        ),
        page,
    )


def incident_titles(session: Session, numbers: Sequence[int]) -> dict[int, str]:
    """Each incident's title, for a page of follow-ups, in one query."""
    if not numbers:
        return {}
    rows = session.execute(
        select(Incident.number, Incident.title).where(Incident.number.in_(set(numbers)))
    )
    return {row[0]: row[1] for row in rows}


__all__ = [
    "FOLLOW_UP_SORTS",
    "FollowUpChanges",
    "FollowUpFilter",
    "create_follow_up",
    "delete_follow_up",
    "filtered",
    "incident_titles",
    "is_overdue",
    "list_follow_ups",
    "list_incident_follow_ups",
    "today",
    "update_follow_up",
]
