"""What every member is told after a new message: their unread count, unread mentions and
read pointer in that conversation (the `unread` event, docs/chat.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from opsdeck.chat.models import Member, Message
from opsdeck.chat.service.mentions import mention_count


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
    """Every active member's unread state in one conversation (two queries), but
    `except_user_id`'s (the sender)."""
    members = list(
        session.execute(
            select(Member.user_id, Member.last_read_seq).where(
                Member.conversation_id == conversation_id, Member.banned.is_(False)
            )
        )
    )
    if except_user_id is not None:
        members = [row for row in members if row[0] != except_user_id]
    if not members:
        return []
    counts: dict[str, int] = {
        str(user_id): int(count)
        for user_id, count in session.execute(
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
            .where(Member.conversation_id == conversation_id, Member.banned.is_(False))
            .group_by(Member.user_id)
        )
    }
    mentions = mention_count(session, conversation_id, [row[0] for row in members])
    return [
        UnreadState(
            user_id=user_id,
            room_id=conversation_id,
            unread=int(counts.get(user_id, 0)),
            mentions=mentions.get(user_id, 0),
            last_read_seq=last_read_seq,
        )
        for user_id, last_read_seq in members
    ]
