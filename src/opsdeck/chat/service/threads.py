"""Threads: a reply names its thread's root (`reply_to`; a reply to a reply joins the root's
thread), a root carries how many replies it has and when the last came, and a thread is read
as its root and its replies in sequence order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.chat.models import Message
from opsdeck.chat.service.access import Actor
from opsdeck.chat.service.messages import MESSAGE_SORTS, get_message
from opsdeck.core.pagination import Paged, PageParams, decode_cursor, paginate


@dataclass(frozen=True)
class ThreadStats:
    reply_count: int
    last_reply_at: datetime | None


def thread_root_id(session: Session, parent: Message) -> str:
    """The root of the thread a reply to `parent` joins."""
    return parent.reply_to_id or parent.id


def thread_stats(session: Session, message_ids: Sequence[str]) -> dict[str, ThreadStats]:
    """Replies (not deleted) per root, for a page of messages in one query."""
    if not message_ids:
        return {}
    rows = session.execute(
        select(Message.reply_to_id, func.count(), func.max(Message.created_at))
        .where(Message.reply_to_id.in_(list(message_ids)), Message.deleted_at.is_(None))
        .group_by(Message.reply_to_id)
    )
    return {
        str(root): ThreadStats(reply_count=int(count), last_reply_at=last)
        for root, count, last in rows
    }


@dataclass(frozen=True)
class Thread:
    root: Message
    replies: Paged[Message]


def thread(
    session: Session, actor: Actor, message_id: str, *, limit: int = 50, cursor: str | None = None
) -> Thread:
    """A thread: its root (the message asked for, or the root of the thread it is in) and a
    page of its replies in sequence order, tombstones included."""
    message = get_message(session, actor, message_id)
    root = session.get_one(Message, thread_root_id(session, message))
    after = decode_cursor(MESSAGE_SORTS, "seq", cursor) if cursor is not None else None
    page = paginate(
        session,
        select(Message).where(
            Message.conversation_id == root.conversation_id, Message.reply_to_id == root.id
        ),
        PageParams(MESSAGE_SORTS, "seq", limit, after),
    )
    return Thread(root=root, replies=page)
