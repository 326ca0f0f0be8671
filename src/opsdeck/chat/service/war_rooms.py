"""Incident war rooms: one chat room per incident, opened on demand and linked both ways
(`Conversation.incident_number`, the incident's `war_room_id`).

- Opening (`open_war_room`) needs only to see the incident. The first call creates the room:
  public for a public incident, private for a restricted one (then only its participants
  and admins may see the incident, so only they may join: through this same call); its
  members are the incident's reporter, commander, assignees and watchers, and the caller.
  The caller and the commander own it. Later calls answer the same room and add the caller
  (a private room is entered this way). A user banned from the room stays out.
- The incident's timeline gets a note "opened the war room", the audit log
  `chat.war_room_opened`.
- Closing the incident archives the room, reopening it unarchives it: chat subscribes to the
  incidents module's `incidents.changed` signal (core.signals; `on_incident_changed`).
- Pinning (`pin_to_incident`): a member of a war room who may see its incident pins a message
  to the incident's timeline, as a pinned note quoting it (author, time, a link back). Once
  per message: pinning again answers the same timeline event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.audit import service as audit
from opsdeck.chat.models import (
    Conversation,
    ConversationKind,
    Member,
    MemberRole,
    Message,
    RoomVisibility,
)
from opsdeck.chat.service.access import Actor, membership, require_member
from opsdeck.chat.service.messages import get_message
from opsdeck.core.db import utcnow
from opsdeck.core.errors import Conflict, Forbidden, NotFound
from opsdeck.incidents import service as incidents
from opsdeck.incidents.schemas import IncidentStatus, Visibility
from opsdeck.settings import Settings

CLOSED = IncidentStatus.CLOSED
QUOTE_LIMIT = 4000


def chat_path(conversation_id: str, seq: int | None = None) -> str:
    """The web app's address of a conversation (at a message): links in mails and notes."""
    return f"/chat/rooms/{conversation_id}" + (f"?seq={seq}" if seq is not None else "")


def war_room_of(session: Session, number: int) -> Conversation | None:
    return session.scalars(
        select(Conversation).where(Conversation.incident_number == number)
    ).one_or_none()


def _name(number: int, title: str) -> str:
    name = f"{incidents.incident_label(number)}: {title}"
    return name if len(name) <= 80 else name[:79] + "…"


def _add(session: Session, room: Conversation, user_id: str, role: MemberRole) -> None:
    existing = membership(session, room.id, user_id)
    if existing is None:
        session.add(Member(conversation_id=room.id, user_id=user_id, role=role, last_read_seq=0))
    elif not existing.banned and role == MemberRole.OWNER:
        existing.role = role


@dataclass(frozen=True)
class Opened:
    room: Conversation
    created: bool


def open_war_room(session: Session, settings: Settings, actor: Actor, number: int) -> Opened:
    """The incident's war room, created the first time (`created`), the caller in it."""
    # Locks the incident's row (PostgreSQL): two first calls at once make one room.
    incident = incidents.get_visible(session, actor, number, for_update=True)
    room = war_room_of(session, number)
    if room is not None:
        member = membership(session, room.id, actor.id)
        if member is not None and member.banned:
            raise Forbidden("You are banned from this war room.", code="banned")
        if member is None:
            _add(session, room, actor.id, MemberRole.MEMBER)
            session.flush()
        return Opened(room, created=False)
    restricted = incident.visibility == Visibility.RESTRICTED
    room = Conversation(
        kind=ConversationKind.ROOM,
        visibility=RoomVisibility.PRIVATE if restricted else RoomVisibility.PUBLIC,
        name=_name(number, incident.title),
        topic=f"War room of {incidents.incident_label(number)} ({incident.severity})",
        created_by_id=actor.id,
        incident_number=number,
    )
    try:
        with session.begin_nested():
            session.add(room)
            session.flush()
    except IntegrityError:
        # Opened at the same moment by another request (SQLite has no row lock to wait on).
        existing = war_room_of(session, number)
        if existing is None:
            raise
        return open_war_room(session, settings, actor, number)
    people = incidents.participant_ids(session, incident) - {actor.id}
    users = accounts.users_by_id(session, people)
    active = sorted(uid for uid, user in users.items() if user.is_active)
    _add(session, room, actor.id, MemberRole.OWNER)
    room_size = settings.chat_max_members_per_room - 1
    for user_id in active[:room_size]:
        owner = user_id == incident.commander_id
        _add(session, room, user_id, MemberRole.OWNER if owner else MemberRole.MEMBER)
    session.flush()
    incidents.link_war_room(session, number, room.id)
    incidents.add_note(
        session,
        actor,
        number,
        f"Opened the war room: [{room.name}]({chat_path(room.id)})",
        pinned=False,
        data={"war_room_id": room.id, "action": "war_room_opened"},
    )
    audit.record(
        session,
        "chat.war_room_opened",
        actor=actor,
        target_type="chat_room",
        target_id=room.id,
        details={"room": room.name, "incident": number, "members": len(active) + 1},
    )
    return Opened(room, created=True)


# -- pinning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinned:
    number: int
    event_id: int
    created: bool


def _quote(session: Session, message: Message, room: Conversation) -> str:
    author = accounts.users_by_id(session, [message.author_id or ""]).get(message.author_id or "")
    name = f"@{author.username}" if author is not None else "a former user"
    body = message.body if len(message.body) <= QUOTE_LIMIT else message.body[:QUOTE_LIMIT] + "…"
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    when = message.created_at.strftime("%Y-%m-%d %H:%M UTC")
    link = chat_path(room.id, message.seq)
    return f"{quoted}\n\n— {name}, {when}, in the war room ([message #{message.seq}]({link}))"


def pin_to_incident(session: Session, actor: Actor, message_id: str) -> Pinned:
    message = get_message(session, actor, message_id)
    room, _member = require_member(session, actor, message.conversation_id)
    if room.incident_number is None:
        raise Conflict("Only a war room's messages go to an incident.", code="not_a_war_room")
    # One pin per message, even when two arrive at once (the message's row lock).
    message = session.scalars(
        select(Message).where(Message.id == message.id).with_for_update()
    ).one()
    if message.deleted_at is not None:
        raise NotFound("The message was deleted.", code="message_deleted")
    number = room.incident_number
    if message.pinned_event_id is not None and message.pinned_incident_number == number:
        return Pinned(number, message.pinned_event_id, created=False)
    event = incidents.add_note(
        session,
        actor,
        number,
        _quote(session, message, room),
        pinned=True,
        data={"chat_message_id": message.id, "war_room_id": room.id, "seq": message.seq},
    )
    message.pinned_incident_number = number
    message.pinned_event_id = event.id
    audit.record(
        session,
        "chat.message_pinned",
        actor=actor,
        target_type="chat_message",
        target_id=message.id,
        details={"room_id": room.id, "incident": number, "event_id": event.id},
    )
    session.flush()
    return Pinned(number, event.id, created=True)


# -- following the incident ------------------------------------------------------------------


def on_incident_changed(
    session: Session, *, number: int, event: str, data: dict[str, Any], **_: Any
) -> None:
    """The `incidents.changed` signal: archive the war room when its incident closes,
    unarchive it when the incident is reopened."""
    if event not in (incidents.IncidentEvent.STATUS_CHANGED, incidents.IncidentEvent.RESOLVED):
        return
    old, new = str(data.get("from", "")), str(data.get("to", ""))
    closing, reopening = new == CLOSED, old == CLOSED and new != CLOSED
    if not (closing or reopening):
        return
    room = war_room_of(session, number)
    if room is None:
        return
    if closing and room.archived_at is None:
        room.archived_at = utcnow()
        action = "chat.room_archived"
    elif reopening and room.archived_at is not None:
        room.archived_at = None
        action = "chat.room_unarchived"
    else:
        return
    audit.record(
        session,
        action,
        actor_name="system",
        target_type="chat_room",
        target_id=room.id,
        details={"room": room.name, "incident": number, "incident_status": new},
    )
    session.flush()
