"""Declaring, editing and driving incidents; their people. Every change writes its timeline
event and goes through hooks.changed (audit, search, webhooks, mail) in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, Select, bindparam, delete, exists, false, or_, select
from sqlalchemy.orm import Session, defer

from opsdeck.accounts import service as accounts
from opsdeck.core.db import affected_rows, utcnow
from opsdeck.core.errors import Conflict, ValidationFailed
from opsdeck.core.markdown import render
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.incidents.models import (
    Category,
    EventKind,
    Incident,
    IncidentSource,
    IncidentStatus,
    IncidentTag,
    Participant,
    ParticipantRole,
    Severity,
    Tag,
    Visibility,
)
from opsdeck.incidents.service import catalog, search, timeline, workflow
from opsdeck.incidents.service.access import (
    READER_ID,
    Actor,
    get_visible,
    incident_label,
    member_visible_clause,
    not_found,
    require_editor,
    visible_clause,
)
from opsdeck.incidents.service.hooks import Change, IncidentEvent, changed

# Table columns for the statements of the read path (no ORM entities, see SUMMARY_COLUMNS).
_I = Incident.__table__.c
_TAG_LINK = IncidentTag.__table__.c
_TAG = Tag.__table__.c
_PART = Participant.__table__.c

INCIDENT_SORTS = SortOrders(
    name="IncidentSort",
    id_column=Incident.number,
    keys={
        "number": Incident.number,
        "declared_at": Incident.declared_at,
        "updated_at": Incident.updated_at,
        "severity": Incident.severity,
    },
    default="-number",
    # With `q` and no `sort`, a list is by relevance, most relevant first ("-relevance").
    computed={search.RELEVANCE: float},
)


def _user_named(session: Session, username: str, field: str) -> Actor:
    user = accounts.get_active_user_by_username(session, username)
    if user is None:
        raise ValidationFailed(
            f"There is no active user {username!r}.",
            details=[{"field": field, "message": "no such user", "type": "unknown"}],
        )
    return user


# -- declaring ----------------------------------------------------------------------------


def declare(
    session: Session,
    actor: Actor | None,
    *,
    title: str,
    description: str = "",
    severity: Severity,
    category: str | None = None,
    tags: Sequence[str] = (),
    visibility: Visibility = Visibility.PUBLIC,
    source: IncidentSource = IncidentSource.MANUAL,
    integration_id: str | None = None,
    alert_group_key: str | None = None,
    declared_at: datetime | None = None,
) -> Incident:
    """A new incident in triage; `actor` None is an integration declaring it."""
    category_row = catalog.category_by_name(session, category) if category else None
    tag_rows = catalog.tags_by_name(session, tags) if tags else []
    incident = Incident(
        title=title,
        description=description,
        description_html=render(description),
        severity=severity,
        status=IncidentStatus.TRIAGE,
        visibility=visibility,
        category_id=category_row.id if category_row else None,
        reporter_id=actor.id if actor else None,
        source=source,
        integration_id=integration_id,
        alert_group_key=alert_group_key,
        declared_at=declared_at or utcnow(),
    )
    session.add(incident)
    session.flush()
    for tag in tag_rows:
        session.add(IncidentTag(incident_number=incident.number, tag_id=tag.id))
    if actor is not None:
        # The reporter hears about what follows.
        session.add(
            Participant(
                incident_number=incident.number, user_id=actor.id, role=ParticipantRole.WATCHER
            )
        )
    timeline.record(
        session,
        incident.number,
        EventKind.DECLARED,
        actor_id=actor.id if actor else None,
        new=incident.severity,
        data={"title": title, "source": str(source)},
    )
    changed(
        session,
        incident,
        Change(IncidentEvent.CREATED, actor, text_changed=True),
    )
    return incident


# -- editing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edits:
    """What a PATCH sent; None means "leave it". `commander` is a username; `clear_commander`
    says the request sent `commander: null`, `clear_category` that it sent `category: null`."""

    title: str | None = None
    description: str | None = None
    severity: Severity | None = None
    category: str | None = None
    tags: Sequence[str] | None = None
    visibility: Visibility | None = None
    commander: str | None = None
    clear_commander: bool = False
    clear_category: bool = False


def update(session: Session, actor: Actor, number: int, edits: Edits) -> Incident:
    incident = get_visible(session, actor, number, for_update=True)
    require_editor(session, actor, incident)
    text_changed = False
    if edits.title is not None and edits.title != incident.title:
        timeline.record(
            session,
            number,
            EventKind.FIELD_CHANGED,
            actor_id=actor.id,
            old=incident.title,
            new=edits.title,
            data={"field": "title"},
        )
        incident.title = edits.title
        text_changed = True
    if edits.description is not None and edits.description != incident.description:
        timeline.record(
            session,
            number,
            EventKind.FIELD_CHANGED,
            actor_id=actor.id,
            data={"field": "description"},
        )
        incident.description = edits.description
        incident.description_html = render(edits.description)
        text_changed = True
    if edits.severity is not None and edits.severity != incident.severity:
        timeline.record(
            session,
            number,
            EventKind.SEVERITY_CHANGED,
            actor_id=actor.id,
            old=incident.severity,
            new=edits.severity,
        )
        incident.severity = edits.severity
    if edits.clear_category or edits.category is not None:
        category = (
            None if edits.category is None else catalog.category_by_name(session, edits.category)
        )
        new_id = category.id if category else None
        if new_id != incident.category_id:
            old = catalog.category_names(session, [incident.category_id]).get(
                incident.category_id or ""
            )
            timeline.record(
                session,
                number,
                EventKind.FIELD_CHANGED,
                actor_id=actor.id,
                old=old,
                new=category.name if category else None,
                data={"field": "category"},
            )
            incident.category_id = new_id
    if edits.tags is not None:
        _set_tags(session, actor, incident, edits.tags)
    if edits.visibility is not None and edits.visibility != incident.visibility:
        timeline.record(
            session,
            number,
            EventKind.FIELD_CHANGED,
            actor_id=actor.id,
            old=incident.visibility,
            new=edits.visibility,
            data={"field": "visibility"},
        )
        incident.visibility = edits.visibility
    if edits.clear_commander or edits.commander is not None:
        new_commander = (
            None
            if edits.clear_commander
            else _user_named(session, edits.commander or "", "commander")
        )
        _hand_over(session, actor, incident, new_commander)
    incident.updated_at = utcnow()
    changed(session, incident, Change(IncidentEvent.UPDATED, actor, text_changed=text_changed))
    return incident


def _set_tags(session: Session, actor: Actor, incident: Incident, names: Sequence[str]) -> None:
    wanted = catalog.tags_by_name(session, names)
    current = catalog.tag_names(session, [incident.number])[incident.number]
    if sorted(tag.name for tag in wanted) == sorted(current):
        return
    session.execute(delete(IncidentTag).where(IncidentTag.incident_number == incident.number))
    for tag in wanted:
        session.add(IncidentTag(incident_number=incident.number, tag_id=tag.id))
    timeline.record(
        session,
        incident.number,
        EventKind.FIELD_CHANGED,
        actor_id=actor.id,
        old=", ".join(current),
        new=", ".join(sorted(tag.name for tag in wanted)),
        data={"field": "tags"},
    )


def _hand_over(session: Session, actor: Actor, incident: Incident, commander: Actor | None) -> None:
    new_id = commander.id if commander else None
    if new_id == incident.commander_id:
        return
    old_name = None
    if incident.commander_id:
        old = accounts.users_by_id(session, [incident.commander_id]).get(incident.commander_id)
        old_name = old.username if old else None
    timeline.record(
        session,
        incident.number,
        EventKind.COMMANDER_CHANGED,
        actor_id=actor.id,
        old=old_name,
        new=commander.username if commander else None,
        data={"user_id": new_id},
    )
    incident.commander_id = new_id
    if commander is not None:
        changed(
            session,
            incident,
            Change(
                IncidentEvent.ASSIGNED,
                actor,
                data={"user_id": commander.id, "role": "commander"},
            ),
        )


# -- the workflow -------------------------------------------------------------------------


def transition(
    session: Session,
    actor: Actor | None,
    number: int,
    to: IncidentStatus,
    *,
    note: str | None = None,
    incident: Incident | None = None,
) -> Incident:
    """Move an incident to `to`; a move the workflow does not allow is a 409 whose details list
    the allowed next states. `actor` None (with `incident` given) is an integration."""
    if incident is None:
        if actor is None:
            raise ValueError("an incident is needed when no actor is")
        incident = get_visible(session, actor, number, for_update=True)
        require_editor(session, actor, incident)
    allowed = workflow.allowed_next(incident.status)
    if to not in allowed:
        raise Conflict(
            f"{incident_label(incident.number)} is {incident.status}; it can move to "
            f"{', '.join(allowed)}, not {to}.",
            details=[
                {"field": "to", "message": "allowed next state", "type": "allowed", "value": s}
                for s in allowed
            ],
        )
    old = incident.status
    now = utcnow()
    workflow.stamp(incident, to, now)
    incident.status = to
    incident.updated_at = now
    actor_id = actor.id if actor else None
    timeline.record(
        session,
        incident.number,
        EventKind.STATUS_CHANGED,
        actor_id=actor_id,
        old=old,
        new=to,
        body=note or "",
    )
    event = (
        IncidentEvent.RESOLVED if to == IncidentStatus.RESOLVED else IncidentEvent.STATUS_CHANGED
    )
    changed(session, incident, Change(event, actor, data={"from": old, "to": str(to)}))
    return incident


# -- people -------------------------------------------------------------------------------


def _has_role(session: Session, number: int, user_id: str, role: ParticipantRole) -> bool:
    return (
        session.get(Participant, {"incident_number": number, "user_id": user_id, "role": role})
        is not None
    )


def _drop_role(session: Session, number: int, user_id: str, role: ParticipantRole) -> bool:
    """Remove one role of one user; whether there was one to remove."""
    removed = session.execute(
        delete(Participant).where(
            Participant.incident_number == number,
            Participant.user_id == user_id,
            Participant.role == role,
        )
    )
    return affected_rows(removed) > 0


def _watcher(session: Session, actor: Actor, incident: Incident, username: str | None) -> Actor:
    """Whose watching a watch or unwatch changes: the caller's own, or (editors only) the
    named user's."""
    if username is None or username.lower() == actor.username:
        return actor
    require_editor(session, actor, incident)
    return _user_named(session, username, "username")


def add_assignee(session: Session, actor: Actor, number: int, username: str) -> Incident:
    incident = get_visible(session, actor, number, for_update=True)
    require_editor(session, actor, incident)
    user = _user_named(session, username, "username")
    if not _has_role(session, number, user.id, ParticipantRole.ASSIGNEE):
        session.add(
            Participant(incident_number=number, user_id=user.id, role=ParticipantRole.ASSIGNEE)
        )
        timeline.record(
            session,
            number,
            EventKind.ASSIGNEE_ADDED,
            actor_id=actor.id,
            new=user.username,
            data={"user_id": user.id},
        )
        incident.updated_at = utcnow()
        changed(
            session,
            incident,
            Change(IncidentEvent.ASSIGNED, actor, data={"user_id": user.id, "role": "assignee"}),
        )
    return incident


def remove_assignee(session: Session, actor: Actor, number: int, username: str) -> Incident:
    incident = get_visible(session, actor, number, for_update=True)
    require_editor(session, actor, incident)
    user = _user_named(session, username, "username")
    if _drop_role(session, number, user.id, ParticipantRole.ASSIGNEE):
        timeline.record(
            session,
            number,
            EventKind.ASSIGNEE_REMOVED,
            actor_id=actor.id,
            old=user.username,
            data={"user_id": user.id},
        )
        incident.updated_at = utcnow()
        changed(session, incident, Change(IncidentEvent.UPDATED, actor))
    return incident


def watch(session: Session, actor: Actor, number: int, username: str | None = None) -> Incident:
    """`actor` starts watching, or (editors only) makes `username` watch: on a restricted
    incident that is how somebody is let in."""
    incident = get_visible(session, actor, number)
    user = _watcher(session, actor, incident, username)
    if not _has_role(session, number, user.id, ParticipantRole.WATCHER):
        session.add(
            Participant(incident_number=number, user_id=user.id, role=ParticipantRole.WATCHER)
        )
        timeline.record(
            session,
            number,
            EventKind.WATCHER_ADDED,
            actor_id=actor.id,
            new=user.username,
            data={"user_id": user.id},
        )
        session.flush()
    return incident


def unwatch(session: Session, actor: Actor, number: int, username: str | None = None) -> Incident:
    incident = get_visible(session, actor, number)
    user = _watcher(session, actor, incident, username)
    if _drop_role(session, number, user.id, ParticipantRole.WATCHER):
        timeline.record(
            session,
            number,
            EventKind.WATCHER_REMOVED,
            actor_id=actor.id,
            old=user.username,
            data={"user_id": user.id},
        )
    return incident


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentFilter:
    """The list's filters; each one narrows (AND), values within one widen (OR)."""

    status: Sequence[IncidentStatus] = ()
    severity: Sequence[Severity] = ()
    category: str | None = None
    tag: str | None = None
    commander: str | None = None
    assignee: str | None = None
    reporter: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    mine: bool = False
    q: str | None = None


def _user_id_or_none(session: Session, username: str) -> str | None:
    user = accounts.get_active_user_by_username(session, username)
    return user.id if user else None


def filtered(
    session: Session,
    actor: Actor | None,
    filters: IncidentFilter,
    columns: Sequence[ColumnElement[Any]] = (),
) -> Select[Any]:
    """The incidents `actor` may see that match `filters`, unordered: `Incident` objects, or
    the `columns` given (a Core select of its rows). An unknown category, tag or user matches
    nothing (it is a filter, not a reference). With a search (`q`), the statements of the
    session's transaction are planned without parallel workers from here on
    (search.plan_serially)."""
    query = (select(*columns) if columns else select(Incident)).where(visible_clause(actor))
    q = search.normalise(filters.q)
    if q is not None:
        # Serial plans for the rest of this transaction, where the search is sent.
        search.plan_serially(session)
        query = query.where(search.match_clause(session, q)).execution_options(
            **search.PLANNED_EVERY_TIME
        )
    if filters.status:
        query = query.where(_I.status.in_([str(s) for s in filters.status]))
    if filters.severity:
        query = query.where(_I.severity.in_([str(s) for s in filters.severity]))
    if filters.category:
        query = query.where(
            _I.category_id.in_(select(Category.id).where(catalog.named(filters.category)))
        )
    if filters.tag:
        query = query.where(
            exists().where(
                _TAG_LINK.incident_number == _I.number,
                _TAG_LINK.tag_id
                == select(_TAG.id)
                .where(_TAG.name == filters.tag.strip().lower())
                .scalar_subquery(),
            )
        )
    # An unknown username matches nothing (never `IS NULL`: that would list every incident
    # without a commander).
    if filters.commander:
        commander_id = _user_id_or_none(session, filters.commander)
        query = query.where(_I.commander_id == commander_id if commander_id else false())
    if filters.reporter:
        reporter_id = _user_id_or_none(session, filters.reporter)
        query = query.where(_I.reporter_id == reporter_id if reporter_id else false())
    if filters.assignee:
        assignee_id = _user_id_or_none(session, filters.assignee) or ""
        query = query.where(
            exists().where(
                _PART.incident_number == _I.number,
                _PART.user_id == assignee_id,
                _PART.role == ParticipantRole.ASSIGNEE,
            )
        )
    if filters.since is not None:
        query = query.where(_I.declared_at >= filters.since)
    if filters.until is not None:
        query = query.where(_I.declared_at < filters.until)
    if filters.mine and actor is not None:
        query = query.where(
            or_(
                _I.commander_id == actor.id,
                _I.reporter_id == actor.id,
                exists().where(
                    _PART.incident_number == _I.number,
                    _PART.user_id == actor.id,
                ),
            )
        )
    return query


# A list shows summaries: the Markdown and its HTML (up to 100,000 characters each) stay unread.
_SUMMARY_ONLY = (defer(Incident.description), defer(Incident.description_html))


class SummaryRow(Protocol):
    """What a list row carries (SUMMARY_COLUMNS by name): a Core row of them, or an Incident."""

    @property
    def number(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def visibility(self) -> str: ...
    @property
    def category_id(self) -> str | None: ...
    @property
    def commander_id(self) -> str | None: ...
    @property
    def declared_at(self) -> datetime: ...
    @property
    def resolved_at(self) -> datetime | None: ...
    @property
    def updated_at(self) -> datetime: ...


class IncidentRow(SummaryRow, Protocol):
    """What one incident's page shows (DETAIL_COLUMNS by name): a Core row, or an Incident."""

    @property
    def description(self) -> str: ...
    @property
    def description_html(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def reporter_id(self) -> str | None: ...
    @property
    def acknowledged_at(self) -> datetime | None: ...
    @property
    def mitigated_at(self) -> datetime | None: ...
    @property
    def closed_at(self) -> datetime | None: ...
    @property
    def war_room_id(self) -> str | None: ...


# The columns of `incidents` a list row shows (SummaryRow), and one incident's page
# (IncidentRow): read as Core rows, not Incident objects, on the two hottest paths of the API
# (loading ORM objects was the largest part of their CPU: docs/benchmarks.md, "Incidents API").
SUMMARY_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _I.number,
    _I.title,
    _I.severity,
    _I.status,
    _I.visibility,
    _I.category_id,
    _I.commander_id,
    _I.declared_at,
    _I.resolved_at,
    _I.updated_at,
)
DETAIL_COLUMNS: tuple[ColumnElement[Any], ...] = (
    *SUMMARY_COLUMNS,
    _I.description,
    _I.description_html,
    _I.source,
    _I.reporter_id,
    _I.acknowledged_at,
    _I.mitigated_at,
    _I.closed_at,
    _I.war_room_id,
)


def list_incidents(
    session: Session, actor: Actor, filters: IncidentFilter, page: PageParams
) -> Paged[SummaryRow]:
    """A page of `filtered`: rows of SUMMARY_COLUMNS (Incident objects for a list by
    relevance). With a search (`q`) and no `sort` asked for, the most relevant first;
    `sort=relevance` or `-relevance` without a search is a 422."""
    q = search.normalise(filters.q)
    relevance = page.orders.is_computed(page.sort)
    if q is not None and not page.sort_given and page.after is None:
        page = replace(page, sort=f"-{search.RELEVANCE}")
        relevance = True
    if not relevance:
        rows = paginate(
            session, filtered(session, actor, filters, SUMMARY_COLUMNS), page, rows=True
        )
        return cast(Paged[SummaryRow], rows)
    if q is None:
        raise ValidationFailed(
            "Sorting by relevance needs a search (`q`).",
            details=[{"field": "query.sort", "message": "needs q", "type": "needs_search"}],
        )
    # The newest search.CANDIDATES matches of the filtered list, ranked.
    ranked = search.with_relevance(session, filtered(session, actor, filters), q)
    found: Paged[SummaryRow] = paginate(session, ranked.options(*_SUMMARY_ONLY), page)
    return found


def get_incident(session: Session, actor: Actor, number: int) -> Incident:
    return get_visible(session, actor, number)


# Built once (building and keying a statement per request costs more CPU than running it),
# the number and the reader's id bound per request; an admin sees every incident.
_READ_AS_MEMBER = select(*DETAIL_COLUMNS).where(
    _I.number == bindparam("number"), member_visible_clause()
)
_READ_AS_ADMIN = select(*DETAIL_COLUMNS).where(_I.number == bindparam("number"))


def read_incident(session: Session, actor: Actor, number: int) -> IncidentRow:
    """Incident `number` as a row of DETAIL_COLUMNS, or a 404 when it does not exist or
    `actor` may not see it (the visibility rule of get_visible)."""
    statement = _READ_AS_ADMIN if actor.is_admin else _READ_AS_MEMBER
    row: IncidentRow | None = session.execute(
        statement, {"number": number, READER_ID: actor.id}
    ).one_or_none()
    if row is None:
        raise not_found(number)
    return row


# -- the war room (opened by chat) ----------------------------------------------------------


def link_war_room(session: Session, number: int, room_id: str) -> Incident:
    """Record the chat room opened for an incident (the chat module calls it, having checked
    who asks); the incident's JSON shows it as `war_room_id`."""
    incident = session.get_one(Incident, number)
    incident.war_room_id = room_id
    session.flush()
    return incident
