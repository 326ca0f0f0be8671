"""Comments (Markdown, rendered and sanitised; an edit is marked; a delete is soft) and the
timeline's notes and pins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.core.db import utcnow
from opsdeck.core.errors import Forbidden, NotFound
from opsdeck.core.markdown import render
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.incidents.models import Comment, EventKind, TimelineEvent
from opsdeck.incidents.service import timeline
from opsdeck.incidents.service.access import Actor, get_visible, require_editor
from opsdeck.incidents.service.hooks import Change, IncidentEvent, changed

COMMENT_SORTS = SortOrders(
    name="CommentSort",
    id_column=Comment.id,
    keys={"created_at": Comment.created_at},
    default="created_at",
)
TIMELINE_SORTS = SortOrders(
    name="TimelineSort", id_column=TimelineEvent.id, keys={"id": TimelineEvent.id}, default="id"
)


def add_comment(session: Session, actor: Actor, number: int, body: str) -> Comment:
    incident = get_visible(session, actor, number)
    comment = Comment(incident_number=number, author_id=actor.id, body=body, body_html=render(body))
    session.add(comment)
    session.flush()
    timeline.record(
        session, number, EventKind.COMMENT_ADDED, actor_id=actor.id, data={"comment_id": comment.id}
    )
    incident.updated_at = utcnow()
    changed(
        session,
        incident,
        Change(
            IncidentEvent.COMMENT_ADDED,
            actor,
            data={"comment_id": comment.id},
            text_changed=True,
        ),
    )
    return comment


def _own_comment(session: Session, actor: Actor, number: int, comment_id: str) -> Comment:
    get_visible(session, actor, number)
    comment = session.get(Comment, comment_id)
    if comment is None or comment.incident_number != number or comment.deleted_at is not None:
        raise NotFound("There is no such comment.")
    if comment.author_id != actor.id and not actor.is_admin:
        raise Forbidden("Only its author or an admin may change a comment.")
    return comment


def edit_comment(
    session: Session, actor: Actor, number: int, comment_id: str, body: str
) -> Comment:
    comment = _own_comment(session, actor, number, comment_id)
    if body != comment.body:
        comment.body = body
        comment.body_html = render(body)
        comment.edited_at = utcnow()
        timeline.record(
            session,
            number,
            EventKind.COMMENT_EDITED,
            actor_id=actor.id,
            data={"comment_id": comment.id},
        )
        incident = get_visible(session, actor, number)
        changed(session, incident, Change(IncidentEvent.UPDATED, actor, text_changed=True))
    return comment


def delete_comment(session: Session, actor: Actor, number: int, comment_id: str) -> None:
    """Soft: the comment stays, marked deleted and emptied, so the thread keeps its shape."""
    comment = _own_comment(session, actor, number, comment_id)
    comment.deleted_at = utcnow()
    comment.body = ""
    comment.body_html = ""
    timeline.record(
        session,
        number,
        EventKind.COMMENT_DELETED,
        actor_id=actor.id,
        data={"comment_id": comment.id},
    )
    incident = get_visible(session, actor, number)
    changed(session, incident, Change(IncidentEvent.UPDATED, actor, text_changed=True))


def list_comments(session: Session, actor: Actor, number: int, page: PageParams) -> Paged[Comment]:
    get_visible(session, actor, number)
    return paginate(session, select(Comment).where(Comment.incident_number == number), page)


def list_timeline(
    session: Session, actor: Actor, number: int, page: PageParams, *, pinned: bool | None = None
) -> Paged[TimelineEvent]:
    get_visible(session, actor, number)
    query = select(TimelineEvent).where(TimelineEvent.incident_number == number)
    if pinned is not None:
        query = query.where(TimelineEvent.pinned.is_(pinned))
    return paginate(session, query, page)


def add_note(
    session: Session,
    actor: Actor,
    number: int,
    body: str,
    *,
    pinned: bool,
    data: dict[str, Any] | None = None,
) -> TimelineEvent:
    """Anybody who sees the incident may add a note to its timeline (`data`: where it came
    from, for a note another module writes, such as a chat message pinned from a war room)."""
    incident = get_visible(session, actor, number)
    event = timeline.record(
        session, number, EventKind.NOTE, actor_id=actor.id, body=body, pinned=pinned, data=data
    )
    incident.updated_at = utcnow()
    return event


def pin_event(
    session: Session, actor: Actor, number: int, event_id: int, *, pinned: bool
) -> TimelineEvent:
    """Pinning marks the key events the postmortem's timeline is built from: editors only."""
    incident = get_visible(session, actor, number)
    require_editor(session, actor, incident)
    event = session.get(TimelineEvent, event_id)
    if event is None or event.incident_number != number:
        raise NotFound("There is no such timeline event.")
    event.pinned = pinned
    session.flush()
    return event
