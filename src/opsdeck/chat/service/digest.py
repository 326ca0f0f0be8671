"""The e-mail digest of mentions and direct messages left unread.

"Offline" is judged by the read pointer, not by a live connection: a mention (or `@room`, or a
direct message) that its reader has not read within OPSDECK_CHAT_MENTION_MAIL_DELAY_SECONDS
(10 minutes) of the first one still pending goes out by mail, with every other one pending for
that reader, in one digest. Whatever they read meanwhile (on any device) is left out, and
nothing is sent when nothing is left. A connected reader who has not read the room gets the
mail too: they did not see it.

Each mention leaves a `MailNotice` (service/mentions.py); `queue_digests` (the periodic job
`chat.queue_mention_digests`, every minute) takes the notices of every reader whose oldest one
is due, drops them, and hands what is still unread to the incidents module's mailer
(`queue_notification`, kind `chat_mentions`): its preferences (on by default; the mail's
one-click unsubscribe link turns it off), its retries and its delivery record apply.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.chat.models import Conversation, ConversationKind, MailNotice, Member, Message
from opsdeck.chat.service.war_rooms import chat_path
from opsdeck.incidents import service as incidents
from opsdeck.settings import Settings

# Readers handled per run (the next run takes the rest), items listed per mail.
READERS_PER_RUN = 200
ITEMS_PER_MAIL = 30
EXCERPT_LIMIT = 300


def _excerpt(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= EXCERPT_LIMIT else text[: EXCERPT_LIMIT - 1] + "…"


def _room_label(session: Session, conversation: Conversation, reader_id: str) -> str:
    if conversation.kind != ConversationKind.DM:
        return f"#{conversation.name}"
    others = [
        uid
        for uid in session.scalars(
            select(Member.user_id).where(
                Member.conversation_id == conversation.id, Member.banned.is_(False)
            )
        )
        if uid != reader_id
    ]
    if len(others) <= 1:
        return "a direct message"
    names = sorted(user.username for user in accounts.users_by_id(session, others).values())
    return "a group message with " + ", ".join(names[:5])


def _items(session: Session, reader_id: str, notices: list[MailNotice]) -> list[dict[str, Any]]:
    """What the reader still has not read, oldest first."""
    messages = {
        m.id: m
        for m in session.scalars(
            select(Message).where(Message.id.in_({n.message_id for n in notices}))
        )
    }
    rows = []
    for notice in notices:
        message = messages.get(notice.message_id)
        if message is None or message.deleted_at is not None:
            continue
        member = session.get(Member, (message.conversation_id, reader_id))
        if member is None or member.banned or message.seq <= member.last_read_seq:
            continue
        rows.append((message, notice.reason))
    rows.sort(key=lambda row: (row[0].created_at, row[0].id))
    authors = accounts.users_by_id(session, {m.author_id or "" for m, _ in rows})
    labels: dict[str, str] = {}
    items = []
    for message, reason in rows:
        if message.conversation_id not in labels:
            conversation = session.get_one(Conversation, message.conversation_id)
            labels[message.conversation_id] = _room_label(session, conversation, reader_id)
        author = authors.get(message.author_id or "")
        items.append(
            {
                "room": labels[message.conversation_id],
                "author": author.username if author is not None else "a former user",
                "excerpt": _excerpt(message.body),
                "at": message.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                "url": chat_path(message.conversation_id, message.seq),
                "reason": reason,
                "message_id": message.id,
            }
        )
    return items


def queue_digests(session: Session, settings: Settings, now: datetime) -> int:
    """Queue the digest of every reader whose oldest pending notice is older than the delay;
    how many mails were queued. Idempotent: the notices it looked at are gone."""
    due = now - timedelta(seconds=settings.chat_mention_mail_delay_seconds)
    readers = list(
        session.scalars(
            select(MailNotice.user_id)
            .group_by(MailNotice.user_id)
            .having(func.min(MailNotice.created_at) <= due)
            .order_by(func.min(MailNotice.created_at))
            .limit(READERS_PER_RUN)
        )
    )
    queued = 0
    for reader_id in readers:
        notices = list(
            session.scalars(
                select(MailNotice)
                .where(MailNotice.user_id == reader_id, MailNotice.created_at <= now)
                .order_by(MailNotice.id)
                .with_for_update(skip_locked=True)
            )
        )
        if not notices:
            continue
        items = _items(session, reader_id, notices)
        session.execute(delete(MailNotice).where(MailNotice.id.in_([n.id for n in notices])))
        if not items:
            continue
        count = len(items)
        subject = f"OpsDeck chat: {count} unread message{'s' if count != 1 else ''} for you"
        queued += incidents.queue_notification(
            session,
            None,
            incidents.NotificationKind.CHAT_MENTIONS,
            [reader_id],
            subject,
            {"items": items[:ITEMS_PER_MAIL], "more": max(0, count - ITEMS_PER_MAIL)},
        )
    session.flush()
    return queued
