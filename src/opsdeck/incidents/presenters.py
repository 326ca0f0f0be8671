"""Shaping incident rows into response schemas, with the people and names they refer to loaded
in one query per kind for a whole page (no query per row)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Integer, String, null, select, union_all
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.incidents.models import (
    Category,
    Comment,
    Incident,
    IncidentTag,
    Participant,
    ParticipantRole,
    Tag,
    TimelineEvent,
)
from opsdeck.incidents.schemas import (
    CommentOut,
    IncidentOut,
    IncidentSummary,
    TimelineEventOut,
    UserRef,
)
from opsdeck.incidents.service import access, workflow


class People:
    """Users by id, loaded once for everything a response mentions."""

    def __init__(self, session: Session, ids: Iterable[str | None]) -> None:
        self._users = accounts.users_by_id(session, [i for i in ids if i])

    def ref(self, user_id: str | None) -> UserRef | None:
        user = self._users.get(user_id) if user_id else None
        if user is None:
            return None
        return UserRef(id=user.id, username=user.username, display_name=user.display_name)

    def refs(self, user_ids: Iterable[str]) -> list[UserRef]:
        return [ref for ref in (self.ref(i) for i in user_ids) if ref is not None]


def _labels(
    session: Session, incidents: Sequence[Incident]
) -> tuple[dict[int, list[str]], dict[str, str]]:
    """Each incident's tag names (by name) and the names of their categories, in one statement
    (a statement costs about a millisecond of the web process's CPU: bench/incidents_api.py)."""
    tags: dict[int, list[str]] = {incident.number: [] for incident in incidents}
    categories: dict[str, str] = {}
    if not incidents:
        return tags, categories
    category_ids = {i.category_id for i in incidents if i.category_id}
    tag_rows = (
        select(IncidentTag.incident_number, null().cast(String).label("category_id"), Tag.name)
        .join(Tag, Tag.id == IncidentTag.tag_id)
        .where(IncidentTag.incident_number.in_(list(tags)))
    )
    category_rows = select(
        null().cast(Integer).label("incident_number"), Category.id, Category.name
    ).where(Category.id.in_(category_ids or [""]))
    labels = union_all(tag_rows, category_rows).subquery()
    for number, category_id, name in session.execute(
        select(labels.c.incident_number, labels.c.category_id, labels.c.name).order_by(
            labels.c.name
        )
    ):
        if number is None:
            categories[str(category_id)] = str(name)
        else:
            tags[number].append(str(name))
    return tags, categories


def _summary_fields(
    incident: Incident, people: People, tags: list[str], category: str | None
) -> dict[str, object]:
    return {
        "number": incident.number,
        "key": access.incident_label(incident.number),
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "visibility": incident.visibility,
        "category": category,
        "tags": tags,
        "commander": people.ref(incident.commander_id),
        "declared_at": incident.declared_at,
        "resolved_at": incident.resolved_at,
        "updated_at": incident.updated_at,
    }


def incident_summaries(session: Session, incidents: Sequence[Incident]) -> list[IncidentSummary]:
    tags, categories = _labels(session, incidents)
    people = People(session, (i.commander_id for i in incidents))
    return [
        IncidentSummary.model_validate(
            _summary_fields(
                incident, people, tags[incident.number], categories.get(incident.category_id or "")
            )
        )
        for incident in incidents
    ]


def incident_out(session: Session, actor: access.Actor, incident: Incident) -> IncidentOut:
    roles = session.execute(
        select(Participant.user_id, Participant.role)
        .where(Participant.incident_number == incident.number)
        .order_by(Participant.created_at)
    ).all()
    assignees = [user_id for user_id, role in roles if role == ParticipantRole.ASSIGNEE]
    watchers = [user_id for user_id, role in roles if role == ParticipantRole.WATCHER]
    people = People(session, [incident.commander_id, incident.reporter_id, *assignees, *watchers])
    tag_names, categories = _labels(session, [incident])
    tags = tag_names[incident.number]
    category = categories.get(incident.category_id or "")
    # The roles are loaded already: no second query for can_edit.
    editor = actor.is_admin or incident.commander_id == actor.id or actor.id in assignees
    return IncidentOut.model_validate(
        {
            **_summary_fields(incident, people, tags, category),
            "description": incident.description,
            "description_html": incident.description_html,
            "source": incident.source,
            "reporter": people.ref(incident.reporter_id),
            "assignees": people.refs(assignees),
            "watchers": people.refs(watchers),
            "acknowledged_at": incident.acknowledged_at,
            "mitigated_at": incident.mitigated_at,
            "closed_at": incident.closed_at,
            "allowed_transitions": list(workflow.allowed_next(incident.status)) if editor else [],
            "can_edit": editor,
            "watching": actor.id in watchers,
            "war_room_id": incident.war_room_id,
        }
    )


def comments_out(session: Session, comments: Sequence[Comment]) -> list[CommentOut]:
    people = People(session, (c.author_id for c in comments))
    return [
        CommentOut(
            id=c.id,
            author=people.ref(c.author_id),
            body=c.body,
            body_html=c.body_html,
            created_at=c.created_at,
            edited_at=c.edited_at,
            deleted=c.deleted_at is not None,
        )
        for c in comments
    ]


def events_out(session: Session, events: Sequence[TimelineEvent]) -> list[TimelineEventOut]:
    people = People(session, (e.actor_id for e in events))
    return [
        TimelineEventOut(
            id=e.id,
            at=e.at,
            actor=people.ref(e.actor_id),
            kind=e.kind,
            old_value=e.old_value,
            new_value=e.new_value,
            body=e.body,
            body_html=e.body_html,
            data=e.data,
            pinned=e.pinned,
        )
        for e in events
    ]
