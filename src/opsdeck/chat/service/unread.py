"""What every member is told after a new message: their unread count, unread mentions and
read pointer in that conversation (the `unread` event, docs/chat.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from opsdeck.chat.models import Conversation, Member, Mention, Message


@dataclass(frozen=True)
class UnreadState:
    user_id: str
    room_id: str
    unread: int
    mentions: int
    last_read_seq: int

    def payload(self) -> dict[str, object]:
        return {
            "room_id": self.room_id,
            "unread": self.unread,
            "mentions": self.mentions,
            "last_read_seq": self.last_read_seq,
        }


def unread_for_members(
    session: Session, conversation_id: str, *, except_user_id: str | None = None
) -> list[UnreadState]:
    """Every active member's unread state in one conversation, but `except_user_id`'s (the
    sender): the same counts as `unread_counts` and `mention_counts` give each of them.

    Three queries whose cost grows with the messages after the lowest read pointer, not with
    that times the members (a busy room whose members do not read would otherwise cost
    members x unread rows at every push). Sequence numbers have no gaps and messages are
    never removed (a deletion leaves a tombstone), so the messages after a pointer `p` number
    `last_seq - p`; from that are taken the few that do not count: tombstones, and the
    member's own messages after their pointer (sending moves the pointer, so there are
    normally none)."""
    rows = list(
        session.execute(
            select(Member.user_id, Member.last_read_seq, Conversation.next_seq)
            .join(Conversation, Conversation.id == Member.conversation_id)
            .where(Member.conversation_id == conversation_id, Member.banned.is_(False))
        )
    )
    members = [(str(user_id), int(last_read)) for user_id, last_read, _last in rows]
    if except_user_id is not None:
        members = [row for row in members if row[0] != except_user_id]
    if not members:
        return []
    last_seq = int(rows[0][2])
    lowest = min(last_read for _user_id, last_read in members)
    in_range = and_(
        Message.conversation_id == conversation_id,
        Message.seq > lowest,
        Message.seq <= last_seq,
    )
    own_after_pointer = exists().where(
        Member.conversation_id == conversation_id,
        Member.user_id == Message.author_id,
        Member.last_read_seq < Message.seq,
    )
    # Tombstones, `@room` messages and messages after their own author's pointer.
    special = list(
        session.execute(
            select(
                Message.seq,
                Message.author_id,
                Message.deleted_at.is_not(None),
                Message.mentions_room,
            ).where(
                in_range,
                or_(
                    Message.deleted_at.is_not(None),
                    Message.mentions_room.is_(True),
                    own_after_pointer,
                ),
            )
        )
    )
    # Who each live message mentions by name.
    named: dict[str, list[tuple[int, str | None]]] = {}
    for user_id, seq, author_id in session.execute(
        select(Mention.user_id, Message.seq, Message.author_id)
        .join(Message, Message.id == Mention.message_id)
        .where(in_range, Message.deleted_at.is_(None))
    ):
        named.setdefault(str(user_id), []).append((int(seq), author_id))
    states = []
    for user_id, last_read in members:
        not_counted = sum(
            1
            for seq, author_id, deleted, _room in special
            if seq > last_read and (deleted or author_id == user_id)
        )
        mentioned = {
            seq
            for seq, author_id in named.get(user_id, ())
            if seq > last_read and author_id != user_id
        }
        mentioned.update(
            seq
            for seq, author_id, deleted, room in special
            if room and not deleted and seq > last_read and author_id != user_id
        )
        states.append(
            UnreadState(
                user_id=user_id,
                room_id=conversation_id,
                unread=max(0, last_seq - last_read) - not_counted,
                mentions=len(mentioned),
                last_read_seq=last_read,
            )
        )
    return states
