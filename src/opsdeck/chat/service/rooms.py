"""Rooms and direct messages: create, list, join, leave, invite, kick, ban, roles, archive,
read pointers. Moderation actions are written to the audit log."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, or_, select
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
from opsdeck.chat.service.access import (
    Actor,
    active_member,
    get_visible,
    membership,
    not_found,
    readable_clause,
    require_member,
    require_moderator,
    require_owner,
    require_room,
    require_writable,
)
from opsdeck.core.db import utcnow
from opsdeck.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.settings import Settings

ROOM_SORTS = SortOrders(
    "ChatRoomSort",
    Conversation.id,
    {
        "name": Conversation.name,
        "created_at": Conversation.created_at,
        "last_activity_at": Conversation.last_activity_at,
    },
    default="-last_activity_at",
)
MAX_DM_MEMBERS = 10


@dataclass(frozen=True)
class RoomFilter:
    kind: ConversationKind | None = None
    # True: only conversations the user is in; False: only public rooms the user is not in.
    joined: bool | None = None
    archived: bool | None = False


def _audit(
    session: Session, actor: Actor, action: str, conversation: Conversation, **details: object
) -> None:
    audit.record(
        session,
        action,
        actor=actor,
        target_type="chat_room",
        target_id=conversation.id,
        details={"room": conversation.name, **details},
    )


# -- rooms ---------------------------------------------------------------------------------


def create_room(
    session: Session,
    settings: Settings,
    actor: Actor,
    *,
    name: str,
    visibility: RoomVisibility,
    topic: str = "",
    description: str = "",
) -> Conversation:
    owned = session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.created_by_id == actor.id,
            Conversation.kind == ConversationKind.ROOM,
            Conversation.archived_at.is_(None),
            # War rooms are the incidents' rooms, not their openers'.
            Conversation.incident_number.is_(None),
        )
    )
    if (owned or 0) >= settings.chat_max_rooms_per_user:
        raise Conflict(
            f"You already have {settings.chat_max_rooms_per_user} rooms; archive one first.",
            code="room_limit",
        )
    room = Conversation(
        kind=ConversationKind.ROOM,
        visibility=visibility,
        name=name,
        topic=topic,
        description=description,
        created_by_id=actor.id,
    )
    session.add(room)
    session.flush()
    session.add(Member(conversation_id=room.id, user_id=actor.id, role=MemberRole.OWNER))
    session.flush()
    return room


def list_conversations(
    session: Session, actor: Actor, filters: RoomFilter, page: PageParams
) -> Paged[Conversation]:
    """The conversations the actor may see: public rooms and the ones the actor is in."""
    mine = exists().where(
        Member.conversation_id == Conversation.id,
        Member.user_id == actor.id,
        Member.banned.is_(False),
    )
    query = select(Conversation).where(readable_clause(actor))
    if filters.kind is not None:
        query = query.where(Conversation.kind == filters.kind)
    if filters.joined is not None:
        query = query.where(mine if filters.joined else ~mine)
    if filters.archived is True:
        query = query.where(Conversation.archived_at.is_not(None))
    elif filters.archived is False:
        query = query.where(Conversation.archived_at.is_(None))
    return paginate(session, query, page)


def memberships(
    session: Session, user_id: str, conversation_ids: Iterable[str]
) -> dict[str, Member]:
    ids = list(conversation_ids)
    if not ids:
        return {}
    rows = session.scalars(
        select(Member).where(
            Member.user_id == user_id, Member.conversation_id.in_(ids), Member.banned.is_(False)
        )
    )
    return {row.conversation_id: row for row in rows}


def unread_counts(
    session: Session, user_id: str, conversation_ids: Iterable[str]
) -> dict[str, int]:
    """Per conversation the user is in: messages after the read pointer, by others, not
    deleted."""
    ids = list(conversation_ids)
    if not ids:
        return {}
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
        )
        .group_by(Message.conversation_id)
    )
    return {str(conversation_id): int(count) for conversation_id, count in rows}


def member_counts(session: Session, conversation_ids: Iterable[str]) -> dict[str, int]:
    ids = list(conversation_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Member.conversation_id, func.count())
        .where(Member.conversation_id.in_(ids), Member.banned.is_(False))
        .group_by(Member.conversation_id)
    )
    return {str(conversation_id): int(count) for conversation_id, count in rows}


def get_room(session: Session, actor: Actor, conversation_id: str) -> Conversation:
    conversation, _member = get_visible(session, actor, conversation_id)
    return conversation


def list_members(session: Session, actor: Actor, conversation_id: str) -> Sequence[Member]:
    conversation, member = get_visible(session, actor, conversation_id)
    if member is None and conversation.visibility == RoomVisibility.PRIVATE:
        raise Forbidden("Only members see who is in a private room.", code="not_a_member")
    return list(
        session.scalars(
            select(Member)
            .where(Member.conversation_id == conversation.id, Member.banned.is_(False))
            .order_by(Member.joined_at, Member.user_id)
            .limit(1000)
        )
    )


def _check_room_size(session: Session, settings: Settings, conversation: Conversation) -> None:
    count = member_counts(session, [conversation.id]).get(conversation.id, 0)
    if count >= settings.chat_max_members_per_room:
        raise Conflict(
            f"The room has {settings.chat_max_members_per_room} members, its maximum.",
            code="room_full",
        )


def join_room(
    session: Session, settings: Settings, actor: Actor, conversation_id: str
) -> tuple[Conversation, Member]:
    """Join a public room (idempotent). A private room needs an invite: to a non-member it
    does not exist."""
    conversation, member = get_visible(session, actor, conversation_id, for_update=True)
    if member is not None:
        return conversation, member
    if (
        conversation.kind != ConversationKind.ROOM
        or conversation.visibility != RoomVisibility.PUBLIC
    ):
        if actor.is_admin:
            raise Forbidden("A private room is joined by invitation.", code="invite_only")
        raise not_found()
    require_writable(conversation)
    _check_room_size(session, settings, conversation)
    member = Member(conversation_id=conversation.id, user_id=actor.id, role=MemberRole.MEMBER)
    member.last_read_seq = conversation.next_seq
    session.add(member)
    session.flush()
    return conversation, member


def leave_room(session: Session, actor: Actor, conversation_id: str) -> None:
    conversation, member = require_member(session, actor, conversation_id, for_update=True)
    if conversation.kind == ConversationKind.DM and _dm_size(session, conversation.id) <= 2:
        raise Conflict("A direct message between two people cannot be left.", code="not_a_room")
    session.delete(member)
    session.flush()
    if member.role == MemberRole.OWNER:
        _hand_over_ownership(session, conversation)


def _dm_size(session: Session, conversation_id: str) -> int:
    return member_counts(session, [conversation_id]).get(conversation_id, 0)


def _hand_over_ownership(session: Session, conversation: Conversation) -> None:
    """The last owner left: the longest-standing moderator, else member, becomes owner."""
    owners = session.scalar(
        select(func.count())
        .select_from(Member)
        .where(
            Member.conversation_id == conversation.id,
            Member.role == MemberRole.OWNER,
            Member.banned.is_(False),
        )
    )
    if owners:
        return
    heir = session.scalars(
        select(Member)
        .where(Member.conversation_id == conversation.id, Member.banned.is_(False))
        .order_by((Member.role == MemberRole.MODERATOR).desc(), Member.joined_at, Member.user_id)
        .limit(1)
    ).first()
    if heir is not None:
        heir.role = MemberRole.OWNER


def _target_user(session: Session, user_id: str) -> str:
    users = accounts.users_by_id(session, [user_id])
    user = users.get(user_id)
    if user is None or not user.is_active:
        raise NotFound("There is no such user.", code="user_not_found")
    return user.id


def invite(
    session: Session, settings: Settings, actor: Actor, conversation_id: str, user_id: str
) -> Member:
    conversation, member = require_member(session, actor, conversation_id, for_update=True)
    require_room(conversation)
    require_writable(conversation)
    require_moderator(actor, member)
    target = _target_user(session, user_id)
    existing = membership(session, conversation.id, target)
    if existing is not None and not existing.banned:
        return existing
    _check_room_size(session, settings, conversation)
    if existing is not None:
        # A moderator inviting a banned user lifts the ban.
        existing.banned = False
        existing.role = MemberRole.MEMBER
        existing.joined_at = utcnow()
        _audit(session, actor, "chat.member_unbanned", conversation, user_id=target)
        session.flush()
        return existing
    added = Member(
        conversation_id=conversation.id,
        user_id=target,
        role=MemberRole.MEMBER,
        last_read_seq=0,
    )
    session.add(added)
    session.flush()
    return added


def _moderate_target(
    session: Session, actor: Actor, conversation_id: str, user_id: str
) -> tuple[Conversation, Member | None]:
    conversation, member = require_member(session, actor, conversation_id, for_update=True)
    require_room(conversation)
    require_moderator(actor, member)
    if user_id == actor.id:
        raise Conflict("Leave the room instead.", code="cannot_moderate_self")
    target = membership(session, conversation.id, user_id)
    if target is not None and target.role == MemberRole.OWNER and not actor.is_admin:
        raise Forbidden("The owner of a room cannot be kicked or banned.", code="not_owner")
    if (
        target is not None
        and target.role == MemberRole.MODERATOR
        and member.role != MemberRole.OWNER
        and not actor.is_admin
    ):
        raise Forbidden("Only the owner kicks or bans a moderator.", code="not_owner")
    return conversation, target


def kick(session: Session, actor: Actor, conversation_id: str, user_id: str) -> None:
    conversation, target = _moderate_target(session, actor, conversation_id, user_id)
    if target is None or target.banned:
        raise NotFound("That user is not in the room.", code="not_a_member")
    session.delete(target)
    _audit(session, actor, "chat.member_kicked", conversation, user_id=user_id)
    session.flush()
    _hand_over_ownership(session, conversation)


def ban(session: Session, actor: Actor, conversation_id: str, user_id: str) -> None:
    conversation, target = _moderate_target(session, actor, conversation_id, user_id)
    target_id = _target_user(session, user_id)
    if target is None:
        target = Member(conversation_id=conversation.id, user_id=target_id)
        session.add(target)
    target.banned = True
    target.role = MemberRole.MEMBER
    _audit(session, actor, "chat.member_banned", conversation, user_id=target_id)
    session.flush()
    _hand_over_ownership(session, conversation)


def unban(session: Session, actor: Actor, conversation_id: str, user_id: str) -> None:
    conversation, member = require_member(session, actor, conversation_id, for_update=True)
    require_room(conversation)
    require_moderator(actor, member)
    target = membership(session, conversation.id, user_id)
    if target is None or not target.banned:
        raise NotFound("That user is not banned from the room.", code="not_banned")
    session.delete(target)
    _audit(session, actor, "chat.member_unbanned", conversation, user_id=user_id)
    session.flush()


def set_role(
    session: Session, actor: Actor, conversation_id: str, user_id: str, role: MemberRole
) -> Member:
    conversation, member = require_member(session, actor, conversation_id, for_update=True)
    require_room(conversation)
    require_owner(actor, member)
    target = active_member(session, conversation.id, user_id)
    if target is None:
        raise NotFound("That user is not in the room.", code="not_a_member")
    previous = target.role
    target.role = role
    session.flush()
    _hand_over_ownership(session, conversation)
    _audit(
        session,
        actor,
        "chat.member_role_changed",
        conversation,
        user_id=user_id,
        role=str(role),
        previous=str(previous),
    )
    return target


def archive(session: Session, actor: Actor, conversation_id: str) -> Conversation:
    conversation, member = get_visible(session, actor, conversation_id, for_update=True)
    require_room(conversation)
    require_owner(actor, member)
    if conversation.archived_at is None:
        conversation.archived_at = utcnow()
        _audit(session, actor, "chat.room_archived", conversation)
        session.flush()
    return conversation


# -- direct messages -------------------------------------------------------------------------


def _dm_key(user_ids: Iterable[str]) -> str:
    return hashlib.sha256(",".join(sorted(set(user_ids))).encode()).hexdigest()


def open_dm(session: Session, actor: Actor, user_ids: Sequence[str]) -> Conversation:
    """The direct message between the actor and `user_ids` (1 to 9 others): the same set of
    people always finds the same conversation."""
    others = sorted(set(user_ids) - {actor.id})
    if not others:
        raise ValidationFailed(
            "Name at least one other person.",
            details=[{"field": "body.user_ids", "message": "no one but yourself"}],
        )
    if len(others) + 1 > MAX_DM_MEMBERS:
        raise ValidationFailed(
            f"A direct message has at most {MAX_DM_MEMBERS} people.",
            details=[{"field": "body.user_ids", "message": "too many people"}],
        )
    found = accounts.users_by_id(session, others)
    missing = [uid for uid in others if uid not in found or not found[uid].is_active]
    if missing:
        raise NotFound("There is no such user.", code="user_not_found")
    key = _dm_key([actor.id, *others])
    existing = session.scalars(select(Conversation).where(Conversation.dm_key == key)).first()
    if existing is not None:
        return existing
    dm = Conversation(
        kind=ConversationKind.DM,
        visibility=RoomVisibility.PRIVATE,
        name="",
        dm_key=key,
        created_by_id=actor.id,
    )
    try:
        with session.begin_nested():
            session.add(dm)
            session.flush()
            session.add_all(
                Member(conversation_id=dm.id, user_id=uid, role=MemberRole.MEMBER)
                for uid in [actor.id, *others]
            )
            session.flush()
    except IntegrityError:
        # Opened at the same moment by another request: that one is the conversation.
        return session.scalars(select(Conversation).where(Conversation.dm_key == key)).one()
    return dm


# -- read pointers ---------------------------------------------------------------------------


def mark_read(session: Session, actor: Actor, conversation_id: str, seq: int) -> int:
    """Move the actor's read pointer forward to `seq` (never back, never past the last
    message); answers the unread count after it."""
    conversation, member = require_member(session, actor, conversation_id)
    target = min(seq, conversation.next_seq)
    if target > member.last_read_seq:
        member.last_read_seq = target
        session.flush()
    return unread_counts(session, actor.id, [conversation.id]).get(conversation.id, 0)


def member_ids(session: Session, conversation_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Member.user_id).where(
                Member.conversation_id == conversation_id, Member.banned.is_(False)
            )
        )
    )
