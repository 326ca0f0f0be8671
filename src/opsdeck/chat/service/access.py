"""Who may see, read, write in and moderate a conversation.

- A public room is seen and read by everybody signed in (except users banned from it); writing
  needs membership, which anybody may take by joining (unless banned).
- A private room or a direct message is seen and read by its members only. To anybody else it
  does not exist: a 404, the same answer as an id that does not exist, so ids reveal nothing.
  Admins see every room (to archive it) but read a private one only as members.
- Moderators and owners invite, kick and ban; owners (and admins) archive and name moderators.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session

from opsdeck.chat.models import (
    Conversation,
    ConversationKind,
    Member,
    MemberRole,
    RoomVisibility,
)
from opsdeck.core.errors import Conflict, Forbidden, NotFound


class Actor(Protocol):
    """Who asks: an accounts user (this module reads its id, name and role, nothing else)."""

    @property
    def id(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def is_admin(self) -> bool: ...


MODERATING = frozenset({MemberRole.OWNER, MemberRole.MODERATOR})


def not_found() -> NotFound:
    return NotFound("There is no such conversation.", code="room_not_found")


def membership(session: Session, conversation_id: str, user_id: str) -> Member | None:
    """The member row (banned or not), or None."""
    return session.get(Member, (conversation_id, user_id))


def active_member(session: Session, conversation_id: str, user_id: str) -> Member | None:
    member = membership(session, conversation_id, user_id)
    return member if member is not None and not member.banned else None


def can_see(conversation: Conversation, actor: Actor, member: Member | None) -> bool:
    if member is not None and member.banned:
        return False
    if member is not None:
        return True
    if conversation.kind == ConversationKind.ROOM and actor.is_admin:
        return True
    return (
        conversation.kind == ConversationKind.ROOM
        and conversation.visibility == RoomVisibility.PUBLIC
    )


def can_read(conversation: Conversation, member: Member | None) -> bool:
    if member is not None:
        return not member.banned
    return (
        conversation.kind == ConversationKind.ROOM
        and conversation.visibility == RoomVisibility.PUBLIC
    )


def readable_clause(actor: Actor) -> ColumnElement[bool]:
    """A WHERE clause on `Conversation` keeping what the actor reads (and lists): the
    conversations they are in, and public rooms they are not banned from (`can_read`)."""
    mine = exists().where(
        Member.conversation_id == Conversation.id,
        Member.user_id == actor.id,
        Member.banned.is_(False),
    )
    banned = exists().where(
        Member.conversation_id == Conversation.id,
        Member.user_id == actor.id,
        Member.banned.is_(True),
    )
    public = and_(
        Conversation.kind == ConversationKind.ROOM,
        Conversation.visibility == RoomVisibility.PUBLIC,
        ~banned,
    )
    return or_(mine, public)


def get_visible(
    session: Session, actor: Actor, conversation_id: str, *, for_update: bool = False
) -> tuple[Conversation, Member | None]:
    """The conversation and the actor's member row, or a 404 when the actor may not see it.
    One query reads both (every event checks membership: this is on every event's path)."""
    query = _VISIBLE_FOR_UPDATE if for_update else _VISIBLE
    row = session.execute(
        query, {"conversation_id": conversation_id, "actor_id": actor.id}
    ).one_or_none()
    if row is None:
        raise not_found()
    conversation, member = row
    if not can_see(conversation, actor, member):
        raise not_found()
    return conversation, (member if member is not None and not member.banned else None)


# Built once, with their cache keys (SQLAlchemy keeps a statement's key): building a
# statement and its key cost more CPU than running it on SQLite, and every event reads this.
_VISIBLE = (
    select(Conversation, Member)
    .outerjoin(
        Member,
        and_(
            Member.conversation_id == Conversation.id,
            Member.user_id == bindparam("actor_id"),
        ),
    )
    .where(Conversation.id == bindparam("conversation_id"))
)
# The conversation's row only (PostgreSQL locks no row of an outer join's null side).
_VISIBLE_FOR_UPDATE = _VISIBLE.with_for_update(of=Conversation)


def get_readable(
    session: Session, actor: Actor, conversation_id: str
) -> tuple[Conversation, Member | None]:
    conversation, member = get_visible(session, actor, conversation_id)
    if not can_read(conversation, member):
        # Only an admin sees a private room without being in it: the room is no secret to them.
        raise Forbidden("Only members read a private room.", code="not_a_member")
    return conversation, member


def require_member(
    session: Session, actor: Actor, conversation_id: str, *, for_update: bool = False
) -> tuple[Conversation, Member]:
    """The conversation and the actor's membership; a 404 when it is hidden from the actor,
    a 403 `not_a_member` when it is a public room the actor has not joined."""
    conversation, member = get_visible(session, actor, conversation_id, for_update=for_update)
    if member is None:
        if conversation.kind == ConversationKind.ROOM and (
            conversation.visibility == RoomVisibility.PUBLIC or actor.is_admin
        ):
            raise Forbidden("Join the room first.", code="not_a_member")
        raise not_found()
    return conversation, member


def require_writable(conversation: Conversation) -> None:
    if conversation.archived_at is not None:
        raise Conflict("The room is archived: it is read-only.", code="room_archived")


def require_moderator(actor: Actor, member: Member | None) -> None:
    if actor.is_admin:
        return
    if member is None or member.role not in MODERATING:
        raise Forbidden("This needs a moderator or the owner of the room.", code="not_moderator")


def require_owner(actor: Actor, member: Member | None) -> None:
    if actor.is_admin:
        return
    if member is None or member.role != MemberRole.OWNER:
        raise Forbidden("This needs the owner of the room.", code="not_owner")


def require_room(conversation: Conversation) -> None:
    if conversation.kind != ConversationKind.ROOM:
        raise Conflict("Direct messages have no invites, roles or bans.", code="not_a_room")
