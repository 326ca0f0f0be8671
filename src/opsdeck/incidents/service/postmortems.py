"""Postmortems: one Markdown document per incident, started from a template admins edit, and
moved through `draft -> in_review -> published`.

- Who: the incident's editors (commander, assignees, admins) write and move it; everybody who
  sees the incident reads it (a restricted incident's postmortem is as restricted as it is).
- States: `draft <-> in_review -> published`. The body is edited in draft and in review; a
  published postmortem is final and read-only, except that an admin may reopen it
  (`published -> draft`), which clears `published_at`; the reopen is on the timeline.
- Templates: Markdown in which `{{key}}`, `{{title}}`, `{{severity}}`, `{{timeline}}` (the
  incident's pinned timeline events, one "HH:MM UTC — what" line each) and `{{follow_ups}}`
  are filled in once, when the postmortem is created. When no template is the default, the
  built-in one is created on first use.

Every change is a `postmortem_changed` timeline event and goes through hooks.changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.audit import service as audit
from opsdeck.core.db import utcnow
from opsdeck.core.errors import Conflict, NotFound, ValidationFailed
from opsdeck.core.markdown import render
from opsdeck.incidents.models import (
    EventKind,
    FollowUp,
    Incident,
    Postmortem,
    PostmortemStatus,
    PostmortemTemplate,
    TimelineEvent,
)
from opsdeck.incidents.service import timeline
from opsdeck.incidents.service.access import (
    Actor,
    can_edit,
    get_visible,
    incident_label,
    require_admin,
    require_editor,
)
from opsdeck.incidents.service.catalog import same_name
from opsdeck.incidents.service.hooks import Change, IncidentEvent, changed

P = PostmortemStatus

DEFAULT_TEMPLATE_NAME = "Default"
DEFAULT_TEMPLATE_BODY = """\
# {{key}}: {{title}}

## Summary

What happened, in two or three sentences a newcomer understands.

## Impact

Who was affected, how, and for how long ({{severity}}).

## Timeline

{{timeline}}

## Root causes

## What went well

## What went badly

## Follow-ups

{{follow_ups}}
"""
NO_PINNED_EVENTS = (
    "_No pinned events yet: pin the key events on the incident's timeline, or write them here._"
)
NO_FOLLOW_UPS = "_None yet: add them on the incident's follow-ups._"

# Who may move a postmortem where. Published is final for editors; admins may reopen it.
NEXT: dict[PostmortemStatus, tuple[PostmortemStatus, ...]] = {
    P.DRAFT: (P.IN_REVIEW,),
    P.IN_REVIEW: (P.DRAFT, P.PUBLISHED),
    P.PUBLISHED: (),
}
ADMIN_NEXT: dict[PostmortemStatus, tuple[PostmortemStatus, ...]] = {
    **NEXT,
    P.PUBLISHED: (P.DRAFT,),
}


def allowed_next(actor: Actor, status: str) -> tuple[PostmortemStatus, ...]:
    table = ADMIN_NEXT if actor.is_admin else NEXT
    return table[PostmortemStatus(status)]


# -- templates -----------------------------------------------------------------------------


def _template_name_free(session: Session, name: str, exclude: str | None = None) -> None:
    query = select(PostmortemTemplate.id).where(same_name(PostmortemTemplate.name, name))
    if exclude is not None:
        query = query.where(PostmortemTemplate.id != exclude)
    if session.scalar(query) is not None:
        raise Conflict(
            f"A postmortem template named {name!r} exists already.",
            details=[{"field": "name", "message": "taken", "type": "duplicate"}],
        )


def _make_only_default(session: Session, template: PostmortemTemplate) -> None:
    session.execute(
        update(PostmortemTemplate)
        .where(PostmortemTemplate.id != template.id, PostmortemTemplate.is_default.is_(True))
        .values(is_default=False)
    )
    template.is_default = True


def _audit(session: Session, actor: Actor, action: str, template: PostmortemTemplate) -> None:
    audit.record(
        session,
        f"incident.postmortem_template.{action}",
        actor=actor,
        target_type="postmortem_template",
        target_id=template.id,
        details={"name": template.name, "is_default": template.is_default},
    )


def default_template(session: Session) -> PostmortemTemplate:
    """The template new postmortems start from; the built-in one, created now, when none is
    marked default (a fresh deployment, or the default was deleted)."""
    template = session.scalars(
        select(PostmortemTemplate)
        .where(PostmortemTemplate.is_default.is_(True))
        .order_by(PostmortemTemplate.name)
        .limit(1)
    ).first()
    if template is not None:
        return template
    template = session.scalar(
        select(PostmortemTemplate).where(
            func.lower(PostmortemTemplate.name) == DEFAULT_TEMPLATE_NAME.lower()
        )
    )
    if template is None:
        template = PostmortemTemplate(name=DEFAULT_TEMPLATE_NAME, body=DEFAULT_TEMPLATE_BODY)
        session.add(template)
    template.is_default = True
    session.flush()
    return template


def list_templates(session: Session) -> Sequence[PostmortemTemplate]:
    """Every template, the default first (created if there is none yet)."""
    default_template(session)
    return session.scalars(
        select(PostmortemTemplate).order_by(
            PostmortemTemplate.is_default.desc(), func.lower(PostmortemTemplate.name)
        )
    ).all()


def get_template(session: Session, template_id: str) -> PostmortemTemplate:
    template = session.get(PostmortemTemplate, template_id)
    if template is None:
        raise NotFound("There is no such postmortem template.")
    return template


def create_template(
    session: Session, actor: Actor, *, name: str, body: str, is_default: bool = False
) -> PostmortemTemplate:
    require_admin(actor)
    _template_name_free(session, name)
    template = PostmortemTemplate(name=name.strip(), body=body, is_default=False)
    session.add(template)
    session.flush()
    if is_default:
        _make_only_default(session, template)
        session.flush()
    _audit(session, actor, "created", template)
    return template


def update_template(
    session: Session,
    actor: Actor,
    template_id: str,
    *,
    name: str | None = None,
    body: str | None = None,
    is_default: bool | None = None,
) -> PostmortemTemplate:
    """`is_default: false` on the default leaves no default: the next postmortem brings the
    built-in one back."""
    require_admin(actor)
    template = get_template(session, template_id)
    if name is not None:
        _template_name_free(session, name, exclude=template.id)
        template.name = name.strip()
    if body is not None:
        template.body = body
    if is_default is True:
        _make_only_default(session, template)
    elif is_default is False:
        template.is_default = False
    template.updated_at = utcnow()
    session.flush()
    _audit(session, actor, "updated", template)
    return template


def delete_template(session: Session, actor: Actor, template_id: str) -> None:
    """Postmortems started from it keep their text (a template is copied, not linked)."""
    require_admin(actor)
    template = get_template(session, template_id)
    _audit(session, actor, "deleted", template)
    session.delete(template)
    session.flush()


# -- the document --------------------------------------------------------------------------


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe(event: TimelineEvent, names: dict[str, str]) -> str:
    """A timeline event in words, for the postmortem's timeline."""
    who = names.get(event.actor_id or "", "")
    by = f" ({who})" if who else ""
    kind = event.kind
    if kind == EventKind.NOTE:
        return _one_line(event.body) + by
    if kind == EventKind.DECLARED:
        return f"Declared as {event.new_value}{by}"
    if kind == EventKind.STATUS_CHANGED:
        text = f"Status {event.old_value} → {event.new_value}{by}"
        return f"{text}: {_one_line(event.body)}" if event.body.strip() else text
    if kind == EventKind.SEVERITY_CHANGED:
        return f"Severity {event.old_value} → {event.new_value}{by}"
    if kind == EventKind.COMMANDER_CHANGED:
        return f"Commander {event.old_value or 'none'} → {event.new_value or 'none'}{by}"
    if kind in (EventKind.ASSIGNEE_ADDED, EventKind.WATCHER_ADDED):
        role = "assignee" if kind == EventKind.ASSIGNEE_ADDED else "watcher"
        return f"{event.new_value} added as {role}{by}"
    if kind == EventKind.ALERT_FIRING:
        return f"Alert firing: {_one_line(event.body) or event.new_value or ''}".rstrip(": ")
    if kind == EventKind.ALERT_RESOLVED:
        return f"Alert resolved: {_one_line(event.body) or event.new_value or ''}".rstrip(": ")
    if kind == EventKind.FIELD_CHANGED:
        field = str(event.data.get("field", "field"))
        if event.old_value is None and event.new_value is None:
            return f"{field.capitalize()} edited{by}"
        return f"{field.capitalize()} {event.old_value or '—'} → {event.new_value or '—'}{by}"
    label = kind.replace("_", " ").capitalize()
    detail = _one_line(event.body) or event.new_value or ""
    return f"{label}{': ' + detail if detail else ''}{by}"


def _clock(moment: datetime, with_date: bool) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC" if with_date else "%H:%M UTC")


def timeline_excerpt(session: Session, number: int) -> str:
    """The incident's pinned events as Markdown list items, "HH:MM UTC — what" (with the date
    when they span more than one day)."""
    events = list(
        session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.incident_number == number, TimelineEvent.pinned.is_(True))
            .order_by(TimelineEvent.at, TimelineEvent.id)
        )
    )
    if not events:
        return NO_PINNED_EVENTS
    names = _usernames(session, (e.actor_id for e in events))
    with_date = len({event.at.date() for event in events}) > 1
    return "\n".join(
        f"- {_clock(event.at, with_date)} — {describe(event, names)}" for event in events
    )


def follow_ups_excerpt(session: Session, number: int) -> str:
    rows = list(
        session.scalars(
            select(FollowUp).where(FollowUp.incident_number == number).order_by(FollowUp.created_at)
        )
    )
    if not rows:
        return NO_FOLLOW_UPS
    names = _usernames(session, (row.owner_id for row in rows))
    lines = []
    for row in rows:
        mark = "x" if row.status == "done" else " "
        extra = [names[row.owner_id]] if row.owner_id in names else []
        if row.due_date is not None:
            extra.append(f"due {row.due_date.isoformat()}")
        suffix = f" ({', '.join(extra)})" if extra else ""
        lines.append(f"- [{mark}] {_one_line(row.title)}{suffix}")
    return "\n".join(lines)


def _usernames(session: Session, ids: Iterable[str | None]) -> dict[str, str]:
    users = accounts.users_by_id(session, [i for i in ids if i])
    return {user_id: user.username for user_id, user in users.items()}


def fill(template_body: str, session: Session, incident: Incident) -> str:
    """The template with its placeholders filled in for `incident` (plain replacement: any
    other text in braces stays as written)."""
    values = {
        "{{key}}": incident_label(incident.number),
        "{{title}}": incident.title,
        "{{severity}}": incident.severity,
        "{{timeline}}": timeline_excerpt(session, incident.number),
        "{{follow_ups}}": follow_ups_excerpt(session, incident.number),
    }
    body = template_body
    for placeholder, value in values.items():
        if placeholder in body:
            body = body.replace(placeholder, value)
    return body


def _record(
    session: Session,
    actor: Actor,
    incident: Incident,
    action: str,
    *,
    old: str | None = None,
    new: str | None = None,
) -> None:
    timeline.record(
        session,
        incident.number,
        EventKind.POSTMORTEM_CHANGED,
        actor_id=actor.id,
        old=old,
        new=new,
        data={"action": action},
    )
    incident.updated_at = utcnow()
    changed(
        session,
        incident,
        Change(IncidentEvent.UPDATED, actor, data={"postmortem": action, "status": new or old}),
    )


def get_postmortem(session: Session, actor: Actor, number: int) -> Postmortem:
    """404 when the incident is not visible to `actor` or has no postmortem yet."""
    get_visible(session, actor, number)
    postmortem = session.get(Postmortem, number)
    if postmortem is None:
        raise NotFound(f"{incident_label(number)} has no postmortem yet.")
    return postmortem


def create_postmortem(
    session: Session, actor: Actor, number: int, *, template_id: str | None = None
) -> Postmortem:
    """A draft from the template (the default one when `template_id` is None); 409 when the
    incident has one already."""
    incident = get_visible(session, actor, number, for_update=True)
    require_editor(session, actor, incident)
    if session.get(Postmortem, number) is not None:
        raise Conflict(f"{incident_label(number)} has a postmortem already; edit it.")
    if template_id is None:
        template = default_template(session)
    else:
        found = session.get(PostmortemTemplate, template_id)
        if found is None:
            raise ValidationFailed(
                "There is no such postmortem template.",
                details=[
                    {"field": "template_id", "message": "no such template", "type": "unknown"}
                ],
            )
        template = found
    body = fill(template.body, session, incident)
    now = utcnow()
    postmortem = Postmortem(
        incident_number=number,
        status=P.DRAFT,
        body=body,
        body_html=render(body),
        author_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(postmortem)
    session.flush()
    _record(session, actor, incident, "created", new=P.DRAFT)
    return postmortem


def _editable(session: Session, actor: Actor, number: int) -> tuple[Incident, Postmortem]:
    incident = get_visible(session, actor, number, for_update=True)
    postmortem = session.get(Postmortem, number)
    if postmortem is None:
        raise NotFound(f"{incident_label(number)} has no postmortem yet.")
    require_editor(session, actor, incident)
    return incident, postmortem


def update_postmortem(session: Session, actor: Actor, number: int, body: str) -> Postmortem:
    """Replace the body (draft or in review); a published postmortem is a 409."""
    incident, postmortem = _editable(session, actor, number)
    if postmortem.status == P.PUBLISHED:
        way_out = "move it back to draft first" if actor.is_admin else "an admin may reopen it"
        raise Conflict(
            f"The postmortem of {incident_label(number)} is published and final; {way_out}.",
            details=[{"field": "status", "message": "published", "type": "published"}],
        )
    if body == postmortem.body:
        return postmortem
    postmortem.body = body
    postmortem.body_html = render(body)
    postmortem.updated_at = utcnow()
    _record(session, actor, incident, "edited", new=postmortem.status)
    return postmortem


def transition_postmortem(
    session: Session, actor: Actor, number: int, to: PostmortemStatus
) -> Postmortem:
    """Move the postmortem; a move not allowed (for this actor) is a 409 listing the allowed
    next states."""
    incident, postmortem = _editable(session, actor, number)
    allowed = allowed_next(actor, postmortem.status)
    if to not in allowed:
        choices = ", ".join(allowed) if allowed else "nothing (an admin may reopen it)"
        raise Conflict(
            f"The postmortem of {incident_label(number)} is {postmortem.status}; it can move to "
            f"{choices}, not {to}.",
            details=[
                {"field": "to", "message": "allowed next state", "type": "allowed", "value": s}
                for s in allowed
            ],
        )
    old = postmortem.status
    now = utcnow()
    postmortem.status = to
    postmortem.updated_at = now
    postmortem.published_at = now if to == P.PUBLISHED else None
    _record(
        session,
        actor,
        incident,
        "reopened" if old == P.PUBLISHED else "status",
        old=old,
        new=to,
    )
    return postmortem


def postmortem_permissions(
    session: Session, actor: Actor, postmortem: Postmortem
) -> tuple[bool, tuple[PostmortemStatus, ...]]:
    """(whether `actor` may edit its body now, the states `actor` may move it to)."""
    incident = session.get(Incident, postmortem.incident_number)
    if incident is None or not can_edit(session, actor, incident):
        return False, ()
    return postmortem.status != P.PUBLISHED, allowed_next(actor, postmortem.status)


__all__ = [
    "DEFAULT_TEMPLATE_BODY",
    "DEFAULT_TEMPLATE_NAME",
    "allowed_next",
    "create_postmortem",
    "create_template",
    "default_template",
    "delete_template",
    "describe",
    "fill",
    "get_postmortem",
    "get_template",
    "list_templates",
    "postmortem_permissions",
    "timeline_excerpt",
    "transition_postmortem",
    "update_postmortem",
    "update_template",
]
