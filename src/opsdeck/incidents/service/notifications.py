"""E-mail notifications: who hears about a change, what each user wants, and the sending.

A change (hooks.changed) queues one `Notification` row per recipient and one job per row, in
the change's transaction: nothing is sent when the change rolls back, and the request never
waits for a mail server. The job (`deliver`) sends the row's message and records how it went:

- assignment: the user just made assignee or commander;
- status change: the watchers, the commander and the assignees;
- comment: the watchers;
- follow-up due: its owner, once a day while it is due or overdue and not done
  (`remind_follow_ups`, a daily job);
- daily digest: the open incidents a user may see that changed in the last day
  (`queue_digests`, a daily job);
- chat mentions: the chat module's digest of mentions and direct messages a user left unread
  (queued by chat with `queue(..., Kind.CHAT_MENTIONS, ...)`, the items in the row's data:
  this mailer sends it, with the same preferences, retries and unsubscribe link).

Never the person who made the change, never a user who turned that kind off
(`NotificationPreference`, everything on by default), never somebody who may not see the
incident (a restricted incident reaches its participants and admins only; checked again when
the mail leaves). Each mail has text and HTML parts and a signed one-click unsubscribe link
(RFC 8058) for its kind. A transient SMTP failure is retried MAX_ATTEMPTS times in all with a
growing delay; a permanent one, or the last attempt, marks the row failed and writes a
`notification_failed` event on the incident's timeline.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.core import mail
from opsdeck.core.db import utcnow
from opsdeck.core.errors import BadRequest
from opsdeck.core.http import API_PREFIX
from opsdeck.core.jobs import RetryLater, enqueue_many
from opsdeck.core.pagination import PageParams
from opsdeck.core.security import TokenError, read_token, sign_token
from opsdeck.incidents.models import (
    Comment,
    DeliveryStatus,
    EventKind,
    FollowUp,
    FollowUpStatus,
    Incident,
    IncidentStatus,
    Notification,
    NotificationPreference,
)
from opsdeck.incidents.service import timeline
from opsdeck.incidents.service.access import (
    Actor,
    assignee_ids,
    can_see,
    incident_label,
    visible_clause,
    watcher_ids,
)
from opsdeck.settings import Settings

if TYPE_CHECKING:
    from opsdeck.incidents.service.hooks import Change

log = structlog.get_logger("opsdeck.incidents.notifications")

SEND_JOB = "incidents.send_notification"
# Attempts of one mail in all (the first and four retries) before it is marked failed.
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 1800.0
UNSUBSCRIBE_PURPOSE = "incidents.unsubscribe"
UNSUBSCRIBE_PATH = f"{API_PREFIX}/incidents/unsubscribe"
# A comment quoted in a mail is cut here (the link leads to the rest).
QUOTE_LIMIT = 2000
DIGEST_LIMIT = 50
# A digest is not queued twice for one user within this long (beat may run a job twice).
DIGEST_GAP = timedelta(hours=20)


class Kind:
    """Notification kinds; each is also the name of its `NotificationPreference` column."""

    ASSIGNMENT = "assignment"
    STATUS_CHANGE = "status_change"
    COMMENT = "comment"
    FOLLOW_UP_DUE = "follow_up_due"
    DAILY_DIGEST = "daily_digest"
    CHAT_MENTIONS = "chat_mentions"


KINDS = (
    Kind.ASSIGNMENT,
    Kind.STATUS_CHANGE,
    Kind.COMMENT,
    Kind.FOLLOW_UP_DUE,
    Kind.DAILY_DIGEST,
    Kind.CHAT_MENTIONS,
)
ALL = "all"

_DESCRIPTION = {
    Kind.ASSIGNMENT: "assignment e-mails",
    Kind.STATUS_CHANGE: "status change e-mails",
    Kind.COMMENT: "comment e-mails",
    Kind.FOLLOW_UP_DUE: "follow-up reminders",
    Kind.DAILY_DIGEST: "the daily digest",
    Kind.CHAT_MENTIONS: "chat mention e-mails",
    ALL: "all incident e-mails",
}


def describe(kind: str) -> str:
    return _DESCRIPTION.get(kind, kind)


# -- preferences ----------------------------------------------------------------------------


def preferences(session: Session, user_id: str) -> dict[str, bool]:
    """What `user_id` wants by mail, kind by kind (everything on when never set)."""
    row = session.get(NotificationPreference, user_id)
    return {kind: bool(getattr(row, kind)) if row else True for kind in KINDS}


def set_preferences(session: Session, actor: Actor, changes: dict[str, bool]) -> dict[str, bool]:
    """Turn kinds on or off for `actor`; kinds not in `changes` stay as they are."""
    unknown = sorted(set(changes) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown notification kinds: {unknown}")
    row = session.get(NotificationPreference, actor.id, with_for_update=True)
    if row is None:
        row = NotificationPreference(user_id=actor.id, **dict.fromkeys(KINDS, True))
        session.add(row)
    for kind, wanted in changes.items():
        setattr(row, kind, wanted)
    row.updated_at = utcnow()
    session.flush()
    return preferences(session, actor.id)


def _opted_out(session: Session, user_ids: Iterable[str], kind: str) -> set[str]:
    ids = list(user_ids)
    if not ids:
        return set()
    column = getattr(NotificationPreference, kind)
    return set(
        session.scalars(
            select(NotificationPreference.user_id).where(
                NotificationPreference.user_id.in_(ids), column.is_(False)
            )
        )
    )


# -- unsubscribing --------------------------------------------------------------------------


def unsubscribe_token(secret: bytes, user_id: str, kind: str) -> str:
    """A signed token naming a user and a kind (or "all"); it does not expire."""
    return sign_token(secret, UNSUBSCRIBE_PURPOSE, {"u": user_id, "k": kind})


def unsubscribe_url(settings: Settings, user_id: str, kind: str) -> str:
    token = unsubscribe_token(settings.secret_bytes(), user_id, kind)
    return f"{settings.public_base_url}{UNSUBSCRIBE_PATH}?token={quote(token, safe='')}"


@dataclass(frozen=True)
class Unsubscription:
    user_id: str
    kind: str


def _bad_token() -> BadRequest:
    return BadRequest(
        "This unsubscribe link is not valid (it was changed or cut short); use the link of a "
        "recent e-mail, or change your notification preferences in OpsDeck.",
        code="invalid_token",
        details=[{"field": "query.token", "message": "invalid unsubscribe token"}],
    )


def read_unsubscribe_token(session: Session, secret: bytes, token: str) -> Unsubscription:
    """Whom and what a link unsubscribes; 400 when the token was tampered with, is not an
    unsubscribe token, or names a user who does not exist."""
    try:
        payload = read_token(secret, UNSUBSCRIBE_PURPOSE, token)
    except TokenError as exc:
        raise _bad_token() from exc
    user_id, kind = payload.get("u"), payload.get("k")
    if not isinstance(user_id, str) or kind not in (*KINDS, ALL):
        raise _bad_token()
    if user_id not in accounts.users_by_id(session, [user_id]):
        raise _bad_token()
    return Unsubscription(user_id=user_id, kind=str(kind))


def unsubscribe(session: Session, secret: bytes, token: str) -> Unsubscription:
    """Apply an unsubscribe link: its kind (or every kind) off for its user. Idempotent."""
    target = read_unsubscribe_token(session, secret, token)
    kinds = KINDS if target.kind == ALL else (target.kind,)
    row = session.get(NotificationPreference, target.user_id, with_for_update=True)
    if row is None:
        row = NotificationPreference(user_id=target.user_id, **dict.fromkeys(KINDS, True))
        session.add(row)
    for kind in kinds:
        setattr(row, kind, False)
    row.updated_at = utcnow()
    session.flush()
    log.info("notifications_unsubscribed", user_id=target.user_id, kind=target.kind)
    return target


# -- queueing -------------------------------------------------------------------------------


def on_change(session: Session, incident: Incident, change: Change) -> int:
    """Queue the mails a change calls for (hooks.changed); how many were queued."""
    from opsdeck.incidents.service.hooks import IncidentEvent  # hooks imports this module

    event, actor, data = change.event, change.actor, change.data
    actor_id = actor.id if actor else None
    actor_name = actor.username if actor else "An integration"
    if event == IncidentEvent.ASSIGNED:
        user_id = data.get("user_id")
        if not isinstance(user_id, str):
            return 0
        kind, recipients = Kind.ASSIGNMENT, {user_id}
        extra = {"role": str(data.get("role", "assignee"))}
    elif event in (IncidentEvent.STATUS_CHANGED, IncidentEvent.RESOLVED):
        kind = Kind.STATUS_CHANGE
        recipients = set(watcher_ids(session, incident.number))
        recipients.update(assignee_ids(session, incident.number))
        if incident.commander_id:
            recipients.add(incident.commander_id)
        extra = {"from": str(data.get("from", "")), "to": str(data.get("to", ""))}
    elif event == IncidentEvent.COMMENT_ADDED:
        kind, recipients = Kind.COMMENT, set(watcher_ids(session, incident.number))
        extra = {"comment_id": str(data.get("comment_id", ""))}
    else:
        return 0
    recipients.discard(actor_id or "")
    subject = _subject(kind, incident, extra)
    return queue(session, incident, kind, recipients, subject, {"actor": actor_name, **extra})


def queue(
    session: Session,
    incident: Incident | None,
    kind: str,
    user_ids: Iterable[str],
    subject: str,
    data: dict[str, Any],
) -> int:
    """One Notification row and one send job per recipient who is active, wants `kind` and
    may see `incident`; how many were queued."""
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    users = accounts.users_by_id(session, ids)
    opted_out = _opted_out(session, ids, kind)
    rows = []
    for user_id in ids:
        user = users.get(user_id)
        if user is None or not user.is_active or user_id in opted_out:
            continue
        if incident is not None and not can_see(session, user, incident):
            continue
        rows.append(
            Notification(
                user_id=user_id,
                incident_number=incident.number if incident else None,
                kind=kind,
                subject=subject[:255],
                data=data,
                status=DeliveryStatus.PENDING,
            )
        )
    if not rows:
        return 0
    session.add_all(rows)
    session.flush()
    enqueue_many(session, [(SEND_JOB, (row.id,)) for row in rows])
    return len(rows)


def _subject(kind: str, incident: Incident, data: dict[str, Any]) -> str:
    label = incident_label(incident.number)
    if kind == Kind.ASSIGNMENT:
        role = "commander" if data.get("role") == "commander" else "assignee"
        return f"[{label}] You are now {role}: {incident.title}"
    if kind == Kind.STATUS_CHANGE:
        return f"[{label}] {data.get('to', incident.status)}: {incident.title}"
    if kind == Kind.COMMENT:
        return f"[{label}] New comment: {incident.title}"
    if kind == Kind.FOLLOW_UP_DUE:
        return f"[{label}] Follow-up due: {data.get('title', '')}"
    return f"[{label}] {incident.title}"


def remind_follow_ups(session: Session, today: date) -> int:
    """Queue a reminder for every follow-up due today or overdue and not done, to its owner,
    once a day (FollowUp.reminded_on); how many were queued."""
    due = list(
        session.scalars(
            select(FollowUp)
            .where(
                FollowUp.status != FollowUpStatus.DONE,
                FollowUp.due_date <= today,
                FollowUp.owner_id.is_not(None),
                or_(FollowUp.reminded_on.is_(None), FollowUp.reminded_on < today),
            )
            .order_by(FollowUp.due_date, FollowUp.id)
            .with_for_update(skip_locked=True)
        )
    )
    queued = 0
    for follow_up in due:
        follow_up.reminded_on = today
        incident = session.get(Incident, follow_up.incident_number)
        if incident is None or follow_up.owner_id is None or follow_up.due_date is None:
            continue
        data = {
            "follow_up_id": follow_up.id,
            "title": follow_up.title,
            "due_date": follow_up.due_date.isoformat(),
            "overdue": follow_up.due_date < today,
        }
        subject = _subject(Kind.FOLLOW_UP_DUE, incident, data)
        queued += queue(session, incident, Kind.FOLLOW_UP_DUE, [follow_up.owner_id], subject, data)
    session.flush()
    return queued


def _active_users(session: Session) -> Iterable[Any]:
    after: tuple[Any, ...] | None = None
    while True:
        page = accounts.list_users(
            session,
            accounts.UserQuery(is_active=True),
            PageParams(orders=accounts.USER_SORTS, sort="username", limit=200, after=after),
        )
        yield from page.items
        if page.next_cursor is None or not page.items:
            return
        last = page.items[-1]
        after = (last.username, last.id)


def queue_digests(session: Session, now: datetime) -> int:
    """Queue each user who wants it a digest of the open incidents they may see that changed
    in the last day (none when nothing did); how many were queued."""
    since = now - timedelta(days=1)
    users = list(_active_users(session))
    opted_out = _opted_out(session, [u.id for u in users], Kind.DAILY_DIGEST)
    recent = set(
        session.scalars(
            select(Notification.user_id).where(
                Notification.kind == Kind.DAILY_DIGEST,
                Notification.created_at >= now - DIGEST_GAP,
            )
        )
    )
    queued = 0
    for user in users:
        if user.id in opted_out or user.id in recent:
            continue
        numbers = list(
            session.scalars(
                select(Incident.number)
                .where(
                    visible_clause(user),
                    Incident.status.not_in([IncidentStatus.RESOLVED, IncidentStatus.CLOSED]),
                    Incident.updated_at >= since,
                )
                .order_by(Incident.number.desc())
                .limit(DIGEST_LIMIT)
            )
        )
        if not numbers:
            continue
        count = f"{len(numbers)} open incident{'s' if len(numbers) != 1 else ''}"
        queued += queue(
            session,
            None,
            Kind.DAILY_DIGEST,
            [user.id],
            f"OpsDeck daily digest: {count} changed",
            {"numbers": numbers, "since": since.isoformat()},
        )
    return queued


# -- sending --------------------------------------------------------------------------------


UnitOfWork = Callable[[], AbstractContextManager[Session]]


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: 30 s, doubling."""
    return float(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2.0 ** max(0, attempts - 1)))


def deliver(unit_of_work: UnitOfWork, settings: Settings, notification_id: str) -> str:
    """Send one notification (the send job): "sent", "failed", or "nothing_to_send" for a row
    already sent, failed or gone; raises RetryLater when a transient failure is retried."""
    with unit_of_work() as session:
        message = _prepare(session, settings, notification_id)
    if message is None:
        return "nothing_to_send"
    try:
        mail.send(settings, message)
    except mail.MailDeliveryError as exc:
        with unit_of_work() as session:
            retry_in = _record_failure(session, notification_id, exc.message, exc.transient)
        log.warning(
            "notification_not_sent",
            notification_id=notification_id,
            transient=exc.transient,
            retry_in=retry_in,
            error=exc.message,
        )
        if retry_in is not None:
            raise RetryLater(retry_in) from None
        return "failed"
    with unit_of_work() as session:
        row = session.get(Notification, notification_id, with_for_update=True)
        if row is not None and row.status == DeliveryStatus.PENDING:
            row.status = DeliveryStatus.DELIVERED
            row.attempts += 1
            row.sent_at = utcnow()
            row.last_error = None
    return "sent"


def _give_up(row: Notification, reason: str) -> None:
    row.status = DeliveryStatus.FAILED
    row.last_error = reason[:500]


def _prepare(session: Session, settings: Settings, notification_id: str) -> EmailMessage | None:
    row = session.get(Notification, notification_id)
    if row is None or row.status != DeliveryStatus.PENDING:
        return None
    user = accounts.users_by_id(session, [row.user_id]).get(row.user_id)
    if user is None or not user.is_active:
        _give_up(row, "the recipient's account is gone or deactivated")
        return None
    if not preferences(session, user.id).get(row.kind, True):
        _give_up(row, "the recipient turned these e-mails off since")
        return None
    incident = session.get(Incident, row.incident_number) if row.incident_number else None
    if row.incident_number is not None and (
        incident is None or not can_see(session, user, incident)
    ):
        _give_up(row, "the recipient may no longer see the incident")
        return None
    content = _compose(session, settings, row, user, incident)
    if content is None:
        _give_up(row, "nothing left to tell")
        return None
    text, body_html = content
    try:
        return mail.build_message(
            settings,
            to=user.email,
            subject=row.subject,
            text=text,
            html=body_html,
            headers={"X-OpsDeck-Notification": row.kind},
            unsubscribe_url=unsubscribe_url(settings, user.id, row.kind),
        )
    except ValueError as exc:  # an address that cannot be written in a header
        _record_failure(session, notification_id, str(exc), transient=False)
        return None


def _record_failure(
    session: Session, notification_id: str, error: str, transient: bool
) -> float | None:
    """Count a failed attempt: seconds until the next one, or None when the row is failed
    (and its incident's timeline says so)."""
    row = session.get(Notification, notification_id, with_for_update=True)
    if row is None or row.status != DeliveryStatus.PENDING:
        return None
    row.attempts += 1
    row.last_error = error[:500]
    if transient and row.attempts < MAX_ATTEMPTS:
        return retry_delay(row.attempts)
    row.status = DeliveryStatus.FAILED
    if row.incident_number is not None:
        user = accounts.users_by_id(session, [row.user_id]).get(row.user_id)
        name = user.username if user else "a user"
        timeline.record(
            session,
            row.incident_number,
            EventKind.NOTIFICATION_FAILED,
            body=f"Notification failed: the {row.kind.replace('_', ' ')} e-mail to {name} "
            f"could not be sent ({row.attempts} attempt{'s' if row.attempts != 1 else ''}).",
            data={
                "notification_id": row.id,
                "kind": row.kind,
                "recipient": name,
                "attempts": row.attempts,
            },
        )
    return None


# -- what a mail says -----------------------------------------------------------------------


def incident_url(settings: Settings, number: int) -> str:
    return f"{settings.public_base_url}/incidents/{number}"


@dataclass(frozen=True)
class _Line:
    label: str
    value: str


def _facts(settings: Settings, incident: Incident) -> tuple[list[_Line], str]:
    return (
        [
            _Line("Incident", f"{incident_label(incident.number)}: {incident.title}"),
            _Line("Severity", incident.severity),
            _Line("Status", incident.status),
        ],
        incident_url(settings, incident.number),
    )


def _compose(
    session: Session,
    settings: Settings,
    row: Notification,
    user: Any,
    incident: Incident | None,
) -> tuple[str, str] | None:
    """(text, html) of a notification, from the incident as it is now."""
    data = row.data or {}
    actor = str(data.get("actor", "Somebody"))
    quote_text: str | None = None
    if row.kind == Kind.DAILY_DIGEST:
        return _compose_digest(session, settings, row, user)
    if row.kind == Kind.CHAT_MENTIONS:
        return _compose_chat(settings, row, user)
    if incident is None:
        return None
    label = incident_label(incident.number)
    if row.kind == Kind.ASSIGNMENT:
        role = "commander" if data.get("role") == "commander" else "an assignee"
        headline = f"{actor} made you {role} of {label}."
    elif row.kind == Kind.STATUS_CHANGE:
        headline = f"{actor} moved {label} from {data.get('from', '?')} to {data.get('to', '?')}."
    elif row.kind == Kind.COMMENT:
        headline = f"{actor} commented on {label}:"
        comment = session.get(Comment, str(data.get("comment_id", "")))
        if comment is None or comment.deleted_at is not None:
            return None
        quote_text = comment.body
        if len(quote_text) > QUOTE_LIMIT:
            quote_text = quote_text[: QUOTE_LIMIT - 1] + "…"
    elif row.kind == Kind.FOLLOW_UP_DUE:
        when = "was due" if data.get("overdue") else "is due"
        title, due = data.get("title", ""), data.get("due_date", "?")
        headline = f"The follow-up \u201c{title}\u201d {when} on {due}."
    else:
        return None
    facts, link = _facts(settings, incident)
    unsubscribe = unsubscribe_url(settings, user.id, row.kind)
    text_lines = [headline, ""]
    if quote_text is not None:
        text_lines += [*(f"> {line}" for line in quote_text.splitlines()), ""]
    text_lines += [f"{fact.label}: {fact.value}" for fact in facts]
    text_lines += [f"Open it: {link}", "", *_text_footer(row.kind, unsubscribe)]
    parts = [f"<p>{html.escape(headline)}</p>"]
    if quote_text is not None:
        parts.append(
            '<blockquote style="white-space: pre-wrap">' + html.escape(quote_text) + "</blockquote>"
        )
    parts.append(_html_table(facts))
    parts.append(f'<p><a href="{html.escape(link)}">Open {html.escape(label)}</a></p>')
    parts.append(_html_footer(row.kind, unsubscribe))
    return "\n".join(text_lines) + "\n", _html_page(parts)


def _compose_digest(
    session: Session, settings: Settings, row: Notification, user: Any
) -> tuple[str, str] | None:
    numbers = [n for n in (row.data or {}).get("numbers", []) if isinstance(n, int)]
    incidents = list(
        session.scalars(
            select(Incident)
            .where(Incident.number.in_(numbers), visible_clause(user))
            .order_by(Incident.number.desc())
        )
    )
    if not incidents:
        return None
    unsubscribe = unsubscribe_url(settings, user.id, row.kind)
    headline = "Open incidents that changed in the last day:"
    text_lines = [headline, ""]
    items = []
    for incident in incidents:
        label = incident_label(incident.number)
        link = incident_url(settings, incident.number)
        text_lines.append(
            f"- {label} [{incident.severity}, {incident.status}] {incident.title}\n  {link}"
        )
        items.append(
            f'<li><a href="{html.escape(link)}">{html.escape(label)}</a> '
            f"[{html.escape(incident.severity)}, {html.escape(incident.status)}] "
            f"{html.escape(incident.title)}</li>"
        )
    text_lines += ["", *_text_footer(row.kind, unsubscribe)]
    parts = [
        f"<p>{html.escape(headline)}</p>",
        "<ul>" + "".join(items) + "</ul>",
        _html_footer(row.kind, unsubscribe),
    ]
    return "\n".join(text_lines) + "\n", _html_page(parts)


def _compose_chat(settings: Settings, row: Notification, user: Any) -> tuple[str, str] | None:
    """The chat digest: the items chat put in the row's data, each `{room, author, excerpt,
    at, url}` (plain text: escaped here)."""
    items = [item for item in (row.data or {}).get("items", []) if isinstance(item, dict)]
    if not items:
        return None
    more = int((row.data or {}).get("more", 0) or 0)
    unsubscribe = unsubscribe_url(settings, user.id, row.kind)
    headline = "You were mentioned or sent direct messages in OpsDeck chat, still unread:"
    text_lines = [headline, ""]
    entries = []
    for item in items:
        room, author = str(item.get("room", "")), str(item.get("author", "somebody"))
        excerpt, at = str(item.get("excerpt", "")), str(item.get("at", ""))
        link = f"{settings.public_base_url}{item.get('url', '/chat')}"
        text_lines += [f"- {author} in {room} ({at}):", f"  {excerpt}", f"  {link}", ""]
        entries.append(
            f"<li><strong>{html.escape(author)}</strong> in "
            f'<a href="{html.escape(link)}">{html.escape(room)}</a> '
            f"({html.escape(at)}):<br>"
            f'<span style="white-space: pre-wrap">{html.escape(excerpt)}</span></li>'
        )
    if more:
        text_lines += [f"... and {more} more.", ""]
    text_lines += _text_footer(row.kind, unsubscribe)
    parts = [f"<p>{html.escape(headline)}</p>", "<ul>" + "".join(entries) + "</ul>"]
    if more:
        parts.append(f"<p>... and {more} more.</p>")
    parts.append(_html_footer(row.kind, unsubscribe))
    return "\n".join(text_lines) + "\n", _html_page(parts)


def _text_footer(kind: str, unsubscribe: str) -> list[str]:
    return [
        "--",
        f"You get this e-mail from OpsDeck. Stop {describe(kind)}: {unsubscribe}",
    ]


def _html_footer(kind: str, unsubscribe: str) -> str:
    return (
        '<p style="color: #555; font-size: small">You get this e-mail from OpsDeck. '
        f'<a href="{html.escape(unsubscribe)}">Stop {html.escape(describe(kind))}</a>.</p>'
    )


def _html_table(facts: list[_Line]) -> str:
    rows = "".join(
        f'<tr><th style="text-align: left; padding-right: 1em">{html.escape(f.label)}</th>'
        f"<td>{html.escape(f.value)}</td></tr>"
        for f in facts
    )
    return f"<table>{rows}</table>"


def _html_page(parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>OpsDeck</title></head><body>\n{body}\n</body></html>\n"
    )
