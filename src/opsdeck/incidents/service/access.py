"""Who may see and change an incident.

- Everybody signed in sees public incidents; a restricted one is seen only by its participants
  (reporter, commander, assignees, watchers) and admins. Not seeing it is a 404, the same
  answer as a number that does not exist, so numbers reveal nothing.
- Members declare, comment and watch; the commander, assignees and admins edit and transition.
"""

from __future__ import annotations

import functools
from typing import Protocol

from sqlalchemy import BindParameter, ColumnElement, String, bindparam, exists, or_, select, true
from sqlalchemy.orm import Session

from opsdeck.core.errors import Forbidden, NotFound
from opsdeck.incidents.models import Incident, Participant, ParticipantRole, Visibility


class Actor(Protocol):
    """Who asks: an accounts user (this module reads its id, name and role, nothing else)."""

    @property
    def id(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def is_admin(self) -> bool: ...


_INCIDENTS = Incident.__table__
_PARTICIPANTS = Participant.__table__


def incident_label(number: int) -> str:
    return f"INC-{number}"


def visible_clause(actor: Actor | None) -> ColumnElement[bool]:
    """A WHERE clause on `Incident` keeping what `actor` may see (None: public ones only, for
    the mail digest of an unknown reader)."""
    if actor is not None and actor.is_admin:
        return true()
    if actor is None:
        return _INCIDENTS.c.visibility == Visibility.PUBLIC
    return _member_visible(actor.id)


@functools.lru_cache(maxsize=1024)
def _member_visible(reader: str) -> ColumnElement[bool]:
    """`_visible_to(reader)`, built once per reader (of the last 1,024): building the clause
    cost more CPU than the first page of the list it filters. The clause holds nothing but the
    reader's id (no permission: who is an admin is decided above, per request), and SQLAlchemy
    clauses are not changed by the statements that use them, so sharing one is safe."""
    return _visible_to(reader)


# The bound parameter of member_visible_clause().
READER_ID = "reader_id"


def member_visible_clause() -> ColumnElement[bool]:
    """visible_clause for a member (not an admin) whose id is bound when the statement runs,
    as READER_ID: for a statement built once and run for every reader."""
    return _visible_to(bindparam(READER_ID, type_=String()))


def _visible_to(reader: str | BindParameter[str]) -> ColumnElement[bool]:
    # Table columns, not ORM attributes: the clause also serves Core selects of columns (the
    # read path of presenters), which ORM attributes would turn into ORM statements.
    incidents, participants = _INCIDENTS.c, _PARTICIPANTS.c
    # OFFSET 0 keeps PostgreSQL from turning the EXISTS into a hashed sub-plan that reads all
    # of the user's participations whenever a page meets a restricted row: with it, one
    # primary-key probe per row (bench/incidents_api.py: deep pages 10.9 -> 1.8 ms for a user
    # in 14,500 incidents).
    participates = (
        select(participants.incident_number)
        .where(participants.incident_number == incidents.number, participants.user_id == reader)
        .offset(0)
    )
    return or_(
        incidents.visibility == Visibility.PUBLIC,
        incidents.reporter_id == reader,
        incidents.commander_id == reader,
        exists(participates),
    )


def not_found(number: int) -> NotFound:
    return NotFound(f"There is no incident {incident_label(number)}.")


def get_visible(
    session: Session, actor: Actor, number: int, *, for_update: bool = False
) -> Incident:
    """The incident, or a 404 when it does not exist or `actor` may not see it."""
    query = select(Incident).where(Incident.number == number, visible_clause(actor))
    if for_update:
        query = query.with_for_update()
    incident = session.scalars(query).one_or_none()
    if incident is None:
        raise not_found(number)
    return incident


def assignee_ids(session: Session, number: int) -> list[str]:
    return list(
        session.scalars(
            select(Participant.user_id).where(
                Participant.incident_number == number,
                Participant.role == ParticipantRole.ASSIGNEE,
            )
        )
    )


def watcher_ids(session: Session, number: int) -> list[str]:
    return list(
        session.scalars(
            select(Participant.user_id).where(
                Participant.incident_number == number,
                Participant.role == ParticipantRole.WATCHER,
            )
        )
    )


def participant_ids(session: Session, incident: Incident) -> set[str]:
    """Everybody with a part in the incident: reporter, commander, assignees, watchers."""
    people = set(
        session.scalars(
            select(Participant.user_id).where(Participant.incident_number == incident.number)
        )
    )
    people.update(i for i in (incident.reporter_id, incident.commander_id) if i)
    return people


def can_see(session: Session, actor: Actor, incident: Incident) -> bool:
    if actor.is_admin or incident.visibility == Visibility.PUBLIC:
        return True
    return actor.id in participant_ids(session, incident)


def can_edit(session: Session, actor: Actor, incident: Incident) -> bool:
    if actor.is_admin or incident.commander_id == actor.id:
        return True
    return actor.id in assignee_ids(session, incident.number)


def require_editor(session: Session, actor: Actor, incident: Incident) -> None:
    """403 unless `actor` is the commander, an assignee or an admin."""
    if not can_edit(session, actor, incident):
        raise Forbidden(
            f"Only the commander, the assignees and admins may change "
            f"{incident_label(incident.number)}."
        )


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("This needs the admin role.")


__all__ = [
    "READER_ID",
    "Actor",
    "assignee_ids",
    "can_edit",
    "can_see",
    "get_visible",
    "incident_label",
    "member_visible_clause",
    "not_found",
    "participant_ids",
    "require_admin",
    "require_editor",
    "visible_clause",
    "watcher_ids",
]
