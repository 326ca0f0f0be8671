"""Mentions, incident links and the mail notices of a message.

- `@username` mentions a member of the conversation (someone not in it, or banned, stays
  plain text); at most MAX_MENTIONS different people per message. Mentioning yourself counts
  for nothing.
- `@room` mentions every member: in a direct message, in a room of at most
  ROOM_MENTION_OPEN_SIZE members, or, in a bigger room, when its author is a moderator, the
  owner or an admin; otherwise it stays plain text (the message is not refused).
- `INC-42` becomes a link to the incident (`/incidents/42`); whether the reader may see it is
  the incident page's business, the link tells nothing.
- Nothing in code (spans or blocks) or in a link's text is a mention or a link
  (core.markdown.Inline).

Mentions are parsed at send (`prepare` before the message is numbered, `store` after) and at
edit (`apply`, both at once), by service/messages.py: the
message's `body_html` is rendered with the mention spans and incident links, its `Mention`
rows and `mentions_room` replaced. A member's mention count (`mention_counts`) is the messages
by others after their read pointer that mention them or the room, not deleted: reading resets
it. Each new mention (and each direct message) also leaves a `MailNotice` for the e-mail
digest (service/digest.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from opsdeck.accounts import service as accounts
from opsdeck.chat.models import (
    Conversation,
    ConversationKind,
    MailNotice,
    Member,
    Mention,
    Message,
)
from opsdeck.chat.service.access import MODERATING, Actor
from opsdeck.core.db import utcnow
from opsdeck.core.markdown import Element, Inline, Parsed

MAX_MENTIONS = 20
ROOM_MENTION_OPEN_SIZE = 20
ROOM = "room"
MENTION_PATTERN = re.compile(r"(?<![\w@.+-])@([a-z0-9][a-z0-9._-]{1,63})(?<![.-])", re.IGNORECASE)
INCIDENT_PATTERN = re.compile(r"(?<![\w/-])INC-(\d{1,9})(?![\w-])")


def _incident_link(match: re.Match[str]) -> Element:
    return Element("a", (("href", f"/incidents/{int(match[1])}"),))


INCIDENT_LINK = Inline(INCIDENT_PATTERN, _incident_link)


def render_body(body: str | Parsed, mentioned: dict[str, str], room: bool) -> str:
    """The message's HTML: `mentioned` maps usernames (lower case) to user ids. A `Parsed`
    body is the one `mentioned_names` read (rendering changes it)."""

    def mention(match: re.Match[str]) -> Element | None:
        name = match[1].lower()
        if name == ROOM and room:
            return Element("span", (("class", "mention mention-room"),))
        user_id = mentioned.get(name)
        if user_id is None:
            return None
        return Element("span", (("class", "mention"), ("data-user-id", user_id)))

    parsed = body if isinstance(body, Parsed) else Parsed(body)
    return parsed.render(inlines=(INCIDENT_LINK, Inline(MENTION_PATTERN, mention)))


def mentioned_names(body: str | Parsed) -> list[str]:
    """The `@names` of a body in order of first appearance (lower case, `room` included)."""
    if isinstance(body, str) and "@" not in body:
        return []
    parsed = body if isinstance(body, Parsed) else Parsed(body)
    seen: dict[str, None] = {}
    for match in parsed.matches(MENTION_PATTERN):
        seen.setdefault(match[1].lower(), None)
    return list(seen)


def _room_allowed(
    session: Session, actor: Actor, conversation: Conversation, member: Member
) -> bool:
    if conversation.kind == ConversationKind.DM or actor.is_admin or member.role in MODERATING:
        return True
    size = session.scalar(
        select(func.count())
        .select_from(Member)
        .where(Member.conversation_id == conversation.id, Member.banned.is_(False))
    )
    return (size or 0) <= ROOM_MENTION_OPEN_SIZE


def _members_named(session: Session, conversation_id: str, names: Sequence[str]) -> dict[str, str]:
    """The first MAX_MENTIONS of `names` (in their order) that are active users and members
    of the conversation, not banned: in one query, whatever the number of names."""
    wanted = [name for name in names if name != ROOM]
    if not wanted:
        return {}
    result = session.execute(_MEMBERS_NAMED, {"names": wanted, "conversation_id": conversation_id})
    rows = {str(username): str(user_id) for username, user_id in result}
    found: dict[str, str] = {}
    for name in wanted:
        if name in rows and len(found) < MAX_MENTIONS:
            found[name] = rows[name]
    return found


def _members_named_statement() -> Select[Any]:
    named = accounts.active_users_named(bindparam("names", expanding=True)).subquery()
    return select(named.c.username, named.c.id).join(
        Member,
        and_(
            Member.user_id == named.c.id,
            Member.conversation_id == bindparam("conversation_id"),
            Member.banned.is_(False),
        ),
    )


# Built once (their cache keys too): a send runs them whenever its body has an @name.
_MEMBERS_NAMED = _members_named_statement()
_INSERT_MENTIONS = insert(cast(Table, Mention.__table__))
_INSERT_NOTICES = insert(cast(Table, MailNotice.__table__))


def _others(session: Session, conversation_id: str, author_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Member.user_id).where(
                Member.conversation_id == conversation_id,
                Member.banned.is_(False),
                Member.user_id != author_id,
            )
        )
    )


@dataclass(frozen=True)
class Rendered:
    """A body read for mentions: its HTML, the people it mentions (ids, in order of first
    appearance, the author left out) and whether `@room` counts."""

    html: str
    user_ids: list[str]
    room: bool


def prepare(
    session: Session, actor: Actor, conversation: Conversation, member: Member, body: str
) -> Rendered:
    """Read a body's mentions and render it: only reads (a send does it before it takes the
    conversation's counter, whose row lock it then holds until the commit)."""
    parsed = Parsed(body)
    names = mentioned_names(parsed) if "@" in body else []
    room = ROOM in names and _room_allowed(session, actor, conversation, member)
    mentioned = _members_named(session, conversation.id, names)
    user_ids = [uid for uid in dict.fromkeys(mentioned.values()) if uid != actor.id]
    return Rendered(render_body(parsed, mentioned, room), user_ids, room)


def apply(
    session: Session,
    actor: Actor,
    conversation: Conversation,
    member: Member,
    message: Message,
    *,
    edited: bool,
) -> None:
    """Render the message's HTML and store its mentions (send and edit); queue the mail
    notices of new mentions (and, for a new direct message, of its recipients)."""
    rendered = prepare(session, actor, conversation, member, message.body)
    message.body_html = rendered.html
    store(session, actor, conversation, message, rendered, edited=edited)


def store(
    session: Session,
    actor: Actor,
    conversation: Conversation,
    message: Message,
    rendered: Rendered,
    *,
    edited: bool,
) -> None:
    """Store what `prepare` read: the message's `Mention` rows and `mentions_room`, and the
    mail notices of who is newly told. A new message (`edited=False`) has nothing stored yet."""
    user_ids, room = rendered.user_ids, rendered.room
    before: set[str] = set()
    if edited:
        before = set(
            session.scalars(select(Mention.user_id).where(Mention.message_id == message.id))
        )
    was_room = message.mentions_room if edited else False
    if before:
        session.execute(delete(Mention).where(Mention.message_id == message.id))
    if user_ids:
        session.execute(
            _INSERT_MENTIONS,
            [
                {
                    "message_id": message.id,
                    "user_id": uid,
                    "conversation_id": conversation.id,
                    "position": position,
                }
                for position, uid in enumerate(user_ids)
            ],
        )
    message.mentions_room = room
    # Somebody no longer mentioned owes no mail for it.
    gone = before - set(user_ids)
    if gone and not room:
        session.execute(
            delete(MailNotice).where(
                MailNotice.message_id == message.id, MailNotice.user_id.in_(gone)
            )
        )
    # Mail notices: who is newly told about this message.
    notices: dict[str, str] = {}
    if conversation.kind == ConversationKind.DM and not edited:
        notices.update(dict.fromkeys(_others(session, conversation.id, actor.id), "dm"))
    if room and not was_room and conversation.kind != ConversationKind.DM:
        notices.update(dict.fromkeys(_others(session, conversation.id, actor.id), "room"))
    for uid in user_ids:
        if uid not in before and conversation.kind != ConversationKind.DM:
            notices[uid] = "mention"
    if edited and notices:
        already = set(
            session.scalars(select(MailNotice.user_id).where(MailNotice.message_id == message.id))
        )
        notices = {uid: why for uid, why in notices.items() if uid not in already}
    if notices:
        now = utcnow()
        session.execute(
            _INSERT_NOTICES,
            [
                {"user_id": uid, "message_id": message.id, "reason": why, "created_at": now}
                for uid, why in notices.items()
            ],
        )
    session.flush()


def mention_count(
    session: Session, conversation_id: str, user_ids: Iterable[str]
) -> dict[str, int]:
    """Per member of one conversation (the `unread` push after a new message): messages by
    others after their read pointer, not deleted, that mention them or the room."""
    ids = list(user_ids)
    if not ids:
        return {}
    named = exists().where(Mention.message_id == Message.id, Mention.user_id == Member.user_id)
    rows = session.execute(
        select(Member.user_id, func.count(Message.id))
        .join(
            Message,
            and_(
                Message.conversation_id == Member.conversation_id,
                Message.seq > Member.last_read_seq,
                Message.deleted_at.is_(None),
                or_(Message.author_id.is_(None), Message.author_id != Member.user_id),
            ),
        )
        .where(
            Member.conversation_id == conversation_id,
            Member.user_id.in_(ids),
            Member.banned.is_(False),
            or_(Message.mentions_room.is_(True), named),
        )
        .group_by(Member.user_id)
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({str(user_id): int(count) for user_id, count in rows})
    return counts


def mention_counts(
    session: Session, user_id: str, conversation_ids: Iterable[str]
) -> dict[str, int]:
    """Per conversation the user is in: messages by others after the read pointer, not
    deleted, that mention the user or the room."""
    ids = list(conversation_ids)
    if not ids:
        return {}
    named = exists().where(Mention.message_id == Message.id, Mention.user_id == user_id)
    rows = session.execute(
        select(Message.conversation_id, func.count())
        .join(
            Member,
            and_(
                Member.conversation_id == Message.conversation_id,
                Member.user_id == user_id,
                Member.banned.is_(False),
            ),
        )
        .where(
            Message.conversation_id.in_(ids),
            Message.seq > Member.last_read_seq,
            Message.deleted_at.is_(None),
            or_(Message.author_id.is_(None), Message.author_id != user_id),
            or_(Message.mentions_room.is_(True), named),
        )
        .group_by(Message.conversation_id)
    )
    return {str(conversation_id): int(count) for conversation_id, count in rows}


def mentions_of(session: Session, message_ids: Iterable[str]) -> dict[str, list[str]]:
    """The user ids each message mentions, in the order they appear."""
    ids = list(message_ids)
    if not ids:
        return {}
    result: dict[str, list[str]] = {}
    for message_id, user_id in session.execute(
        select(Mention.message_id, Mention.user_id)
        .where(Mention.message_id.in_(ids))
        .order_by(Mention.message_id, Mention.position)
    ):
        result.setdefault(message_id, []).append(user_id)
    return result
