"""Shaping incident rows into response schemas, with the people and names they refer to loaded
in one statement for a whole page or incident (no query per row)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    bindparam,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.core.pagination import Paged
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
    IncidentPage,
    TimelineEventOut,
    UserRef,
)
from opsdeck.incidents.service import access, workflow
from opsdeck.incidents.service.incidents import IncidentRow, SummaryRow


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


# The read path runs Core statements of table columns, built once (no ORM objects, no
# statement built and keyed per request: docs/benchmarks.md, "Incidents API").
_I = Incident.__table__.c
_P = Participant.__table__.c
_T = Tag.__table__.c
_TL = IncidentTag.__table__.c
_C = Category.__table__.c


def _row(
    kind: str,
    number: ColumnElement[Any] | None,
    key: ColumnElement[Any],
    name: ColumnElement[Any] | None,
    extra: ColumnElement[Any] | None = None,
    at: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """One part of a `_related` union, its columns named alike whichever part comes first."""
    return select(
        literal_column(f"'{kind}'", String()).label("kind"),
        (null().cast(Integer()) if number is None else number).label("number"),
        key.label("key"),
        (null().cast(String()) if name is None else name).label("name"),
        (null().cast(String()) if extra is None else extra).label("extra"),
        (null().cast(_P.created_at.type) if at is None else at).label("at"),
    )


def _related(
    of: Callable[[ColumnElement[int]], ColumnElement[bool]],
    user_ids: Select[Any] | CompoundSelect[Any] | BindParameter[Any],
    category_ids: Select[Any] | BindParameter[Any],
    *,
    participants: bool,
) -> Select[Any]:
    """Everything the incidents `of` keeps (by number) show besides their own columns, in one
    statement of rows (kind, number, key, name, extra), ordered: `p` their participants (key
    the user, name the role) by age, `t` their tags (key the name) by name, `c` the
    categories `category_ids` (key the id, name the name), `u` the users `user_ids` (key the
    id, name the username, extra the display name)."""
    parts: list[Select[Any]] = []
    if participants:
        parts.append(
            _row("p", _P.incident_number, _P.user_id, _P.role, at=_P.created_at).where(
                of(_P.incident_number)
            )
        )
    parts.append(
        _row("t", _TL.incident_number, _T.name, None)
        .join_from(Tag.__table__, IncidentTag.__table__, _T.id == _TL.tag_id)
        .where(of(_TL.incident_number))
    )
    parts.append(_row("c", None, _C.id, _C.name).where(_C.id.in_(category_ids)))
    users = accounts.user_refs_of(user_ids).subquery()
    parts.append(_row("u", None, users.c.id, users.c.username, users.c.display_name))
    rows = union_all(*parts).subquery()
    return select(rows.c.kind, rows.c.number, rows.c.key, rows.c.name, rows.c.extra).order_by(
        rows.c.kind, rows.c.at, rows.c.key
    )


_NUMBER: BindParameter[int] = bindparam("number")
_NUMBERS: BindParameter[int] = bindparam("numbers", expanding=True)


def _is_number(column: ColumnElement[int]) -> ColumnElement[bool]:
    return column == _NUMBER


def _in_numbers(column: ColumnElement[int]) -> ColumnElement[bool]:
    return column.in_(_NUMBERS)


# One incident: its participants, its commander and reporter, its category, by its number.
_ONE = _related(
    _is_number,
    select(_P.user_id)
    .where(_P.incident_number == _NUMBER)
    .union_all(
        select(_I.commander_id).where(_I.number == _NUMBER),
        select(_I.reporter_id).where(_I.number == _NUMBER),
    ),
    select(_I.category_id).where(_I.number == _NUMBER),
    participants=True,
)
# A page: the ids of its commanders and categories are in its rows already.
_PAGE = _related(
    _in_numbers,
    bindparam("user_ids", expanding=True),
    bindparam("category_ids", expanding=True),
    participants=False,
)


class _Related:
    """The rows of a `_related` statement, by kind."""

    def __init__(self, session: Session, statement: Select[Any], params: dict[str, Any]) -> None:
        self.roles: list[tuple[str, str]] = []
        self.tags: dict[int, list[str]] = {}
        self.categories: dict[str, str] = {}
        self.users: dict[str, dict[str, str]] = {}
        for kind, number, key, name, extra in session.execute(statement, params):
            if kind == "p":
                self.roles.append((key, name))
            elif kind == "t":
                self.tags.setdefault(number, []).append(key)
            elif kind == "c":
                self.categories[key] = name
            else:
                self.users[key] = {"id": key, "username": name, "display_name": extra}

    def ref(self, user_id: str | None) -> dict[str, str] | None:
        return self.users.get(user_id) if user_id else None

    def refs(self, user_ids: Iterable[str]) -> list[dict[str, str]]:
        return [self.users[i] for i in user_ids if i in self.users]


def _summary_fields(incident: SummaryRow, related: _Related) -> dict[str, object]:
    return {
        "number": incident.number,
        "key": access.incident_label(incident.number),
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "visibility": incident.visibility,
        "category": related.categories.get(incident.category_id or ""),
        "tags": related.tags.get(incident.number, []),
        "commander": related.ref(incident.commander_id),
        "declared_at": incident.declared_at,
        "resolved_at": incident.resolved_at,
        "updated_at": incident.updated_at,
    }


def incident_page(session: Session, page: Paged[SummaryRow]) -> IncidentPage:
    """A page of the list (rows of SUMMARY_COLUMNS, or Incident objects), with its tags,
    category names and commanders read in one statement for the whole page."""
    items = page.items
    related = _Related(
        session,
        _PAGE,
        {
            "numbers": [i.number for i in items],
            "user_ids": list({i.commander_id for i in items if i.commander_id}),
            "category_ids": list({i.category_id for i in items if i.category_id}),
        },
    )
    return IncidentPage.model_validate(
        {
            "items": [_summary_fields(incident, related) for incident in items],
            "next_cursor": page.next_cursor,
        }
    )


def incident_out(session: Session, actor: access.Actor, incident: IncidentRow) -> IncidentOut:
    """One incident's page for `actor`, from a row of DETAIL_COLUMNS (service.read_incident)
    or an Incident just changed (flushed first: the statements here are Core ones, which do not
    flush the session), with everything it shows besides its own columns in one statement."""
    if isinstance(incident, Incident):
        session.flush()
    related = _Related(session, _ONE, {"number": incident.number})
    assignees = [user_id for user_id, role in related.roles if role == ParticipantRole.ASSIGNEE]
    watchers = [user_id for user_id, role in related.roles if role == ParticipantRole.WATCHER]
    editor = actor.is_admin or incident.commander_id == actor.id or actor.id in assignees
    return IncidentOut.model_validate(
        {
            **_summary_fields(incident, related),
            "description": incident.description,
            "description_html": incident.description_html,
            "source": incident.source,
            "reporter": related.ref(incident.reporter_id),
            "assignees": related.refs(assignees),
            "watchers": related.refs(watchers),
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
