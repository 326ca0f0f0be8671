"""Shaping chat rows into response schemas (one query for the people of a page)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.chat import service
from opsdeck.chat.models import Conversation, ConversationKind, Member, Message, PresenceStatus
from opsdeck.chat.schemas import MemberOut, MessageOut, ReactionOut, RoomOut, UserRef


def _people(session: Session, user_ids: set[str]) -> dict[str, UserRef]:
    users = accounts.users_by_id(session, user_ids)
    return {
        uid: UserRef(id=user.id, username=user.username, display_name=user.display_name)
        for uid, user in users.items()
    }


def rooms_out(
    session: Session, user_id: str, conversations: Sequence[Conversation]
) -> list[RoomOut]:
    ids = [conversation.id for conversation in conversations]
    mine = service.memberships(session, user_id, ids)
    unread = service.unread_counts(session, user_id, ids)
    counts = service.member_counts(session, ids)
    dm_members = {
        conversation.id: service.member_ids(session, conversation.id)
        for conversation in conversations
        if conversation.kind == ConversationKind.DM
    }
    people = _people(session, {uid for uids in dm_members.values() for uid in uids})
    result = []
    for conversation in conversations:
        member = mine.get(conversation.id)
        result.append(
            RoomOut(
                id=conversation.id,
                kind=conversation.kind,
                visibility=conversation.visibility,
                name=conversation.name,
                topic=conversation.topic,
                description=conversation.description,
                created_at=conversation.created_at,
                last_activity_at=conversation.last_activity_at,
                archived_at=conversation.archived_at,
                last_seq=conversation.next_seq,
                member=member is not None,
                role=member.role if member is not None else None,
                last_read_seq=member.last_read_seq if member is not None else 0,
                unread=unread.get(conversation.id, 0),
                member_count=counts.get(conversation.id, 0),
                members=[
                    people[uid] for uid in dm_members.get(conversation.id, []) if uid in people
                ],
            )
        )
    return result


def room_out(session: Session, user_id: str, conversation: Conversation) -> RoomOut:
    return rooms_out(session, user_id, [conversation])[0]


def members_out(
    session: Session,
    members: Sequence[Member],
    presence: Mapping[str, PresenceStatus] | None = None,
) -> list[MemberOut]:
    people = _people(session, {member.user_id for member in members})
    known = presence or {}
    return [
        MemberOut(
            user=people[member.user_id],
            role=member.role,
            joined_at=member.joined_at,
            presence=known.get(member.user_id, PresenceStatus.OFFLINE),
        )
        for member in members
        if member.user_id in people
    ]


def messages_out(session: Session, messages: Sequence[Message]) -> list[MessageOut]:
    """A page of messages: one query each for their people, reactions and thread counts."""
    people = _people(session, {m.author_id for m in messages if m.author_id is not None})
    ids = [message.id for message in messages]
    reactions = service.reactions_for(session, ids)
    threads = service.thread_stats(session, ids)
    no_thread = service.ThreadStats(reply_count=0, last_reply_at=None)
    return [
        MessageOut(
            id=message.id,
            room_id=message.conversation_id,
            seq=message.seq,
            client_id=message.client_id,
            author=people.get(message.author_id) if message.author_id else None,
            body=message.body,
            body_html=message.body_html,
            created_at=message.created_at,
            edited_at=message.edited_at,
            deleted=message.deleted_at is not None,
            reply_to=message.reply_to_id,
            reactions=[
                ReactionOut(emoji=r.emoji, count=r.count, user_ids=r.user_ids)
                for r in reactions.get(message.id, [])
            ],
            reply_count=threads.get(message.id, no_thread).reply_count,
            last_reply_at=threads.get(message.id, no_thread).last_reply_at,
        )
        for message in messages
    ]


def message_out(session: Session, message: Message) -> MessageOut:
    return messages_out(session, [message])[0]
