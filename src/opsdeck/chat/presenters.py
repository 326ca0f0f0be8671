"""Shaping chat rows into response schemas (one query for the people of a page)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.chat import service
from opsdeck.chat.models import (
    Attachment,
    Conversation,
    ConversationKind,
    Member,
    Message,
    PresenceStatus,
)
from opsdeck.chat.schemas import (
    ChatAttachmentOut,
    MemberOut,
    MessageOut,
    PinOut,
    ReactionOut,
    RoomOut,
    RoomRef,
    SearchHit,
    UserRef,
)
from opsdeck.chat.service import attachments as files
from opsdeck.chat.service.search import Hit
from opsdeck.core.http import API_PREFIX


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
    mentions = service.mention_counts(session, user_id, ids)
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
                mentions=mentions.get(conversation.id, 0),
                incident_number=conversation.incident_number,
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


def attachment_url(attachment_id: str, what: str = "file") -> str:
    return f"{API_PREFIX}/chat/attachments/{attachment_id}/{what}"


def attachments_out(session: Session, rows: Sequence[Attachment]) -> list[ChatAttachmentOut]:
    return [
        ChatAttachmentOut(
            id=state.attachment.id,
            filename=state.attachment.filename,
            content_type=state.attachment.content_type,
            size=state.attachment.size,
            url=attachment_url(state.attachment.id),
            preview_url=attachment_url(state.attachment.id, "preview") if state.preview else None,
            original_url=(
                attachment_url(state.attachment.id, "original") if state.original else None
            ),
            status=state.status,
            message_id=state.attachment.message_id,
            created_at=state.attachment.created_at,
        )
        for state in files.describe(session, rows)
    ]


def _message_out(
    message: Message,
    people: dict[str, UserRef],
    *,
    reactions: Sequence[ReactionOut] = (),
    thread: service.ThreadStats | None = None,
    attachments: Sequence[ChatAttachmentOut] = (),
    mentions: Sequence[str] = (),
) -> MessageOut:
    """One message's answer from what its caller read (a page, or a send that just stored it)."""
    deleted = message.deleted_at is not None
    return MessageOut(
        id=message.id,
        room_id=message.conversation_id,
        seq=message.seq,
        client_id=message.client_id,
        author=people.get(message.author_id) if message.author_id else None,
        body=message.body,
        body_html=message.body_html,
        created_at=message.created_at,
        edited_at=message.edited_at,
        deleted=deleted,
        reply_to=message.reply_to_id,
        reactions=list(reactions),
        reply_count=thread.reply_count if thread else 0,
        last_reply_at=thread.last_reply_at if thread else None,
        attachments=list(attachments),
        mentions=list(mentions),
        mentions_room=message.mentions_room and not deleted,
        pinned_to_incident=(
            PinOut(number=message.pinned_incident_number, event_id=message.pinned_event_id)
            if message.pinned_incident_number is not None and message.pinned_event_id is not None
            else None
        ),
    )


def messages_out(session: Session, messages: Sequence[Message]) -> list[MessageOut]:
    """A page of messages: one query each for their people, reactions and thread counts."""
    people = _people(session, {m.author_id for m in messages if m.author_id is not None})
    attached = files.of_messages(session, [m.id for m in messages])
    shaped = {
        item.id: item
        for item in attachments_out(session, [a for rows in attached.values() for a in rows])
    }
    mentioned = service.mentions_of(session, [m.id for m in messages if m.deleted_at is None])
    ids = [message.id for message in messages]
    reactions = service.reactions_for(session, ids)
    threads = service.thread_stats(session, ids)
    return [
        _message_out(
            message,
            people,
            reactions=[
                ReactionOut(emoji=r.emoji, count=r.count, user_ids=r.user_ids)
                for r in reactions.get(message.id, [])
            ],
            thread=threads.get(message.id),
            attachments=[shaped[a.id] for a in attached.get(message.id, [])],
            mentions=mentioned.get(message.id, []),
        )
        for message in messages
    ]


def message_out(session: Session, message: Message) -> MessageOut:
    return messages_out(session, [message])[0]


def sent_message_out(
    session: Session, sent: service.Sent, *, author: UserRef | None = None
) -> MessageOut:
    """The answer to a send: `message_out`, but a new message is shaped from what the send
    stored (its attachments and mentions; no reactions, replies or pin yet) instead of being
    read back. `author`: the sender as the caller knows them (no query); else one query."""
    if not sent.created:
        return message_out(session, sent.message)
    message = sent.message
    if author is not None and author.id == message.author_id:
        people = {author.id: author}
    else:
        people = _people(session, {message.author_id} if message.author_id else set())
    return _message_out(
        message,
        people,
        attachments=attachments_out(session, list(sent.attachments)),
        mentions=list(sent.mentions),
    )


def search_hits_out(session: Session, hits: Sequence[Hit]) -> list[SearchHit]:
    messages = messages_out(session, [hit.message for hit in hits])
    return [
        SearchHit(
            message=message,
            room=RoomRef(
                id=hit.conversation.id, name=hit.conversation.name, kind=hit.conversation.kind
            ),
            rank=hit.rank,
        )
        for hit, message in zip(hits, messages, strict=True)
    ]
