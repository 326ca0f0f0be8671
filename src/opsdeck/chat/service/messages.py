"""Messages: send (idempotent by client id, numbered by the conversation's sequence), edit
(history kept), delete (a tombstone), history in sequence order, and catching up after a
sequence number."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Executable, Table, bindparam, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from opsdeck.audit import service as audit
from opsdeck.chat.models import Attachment, Conversation, Member, Message, MessageEdit
from opsdeck.chat.service import attachments, mentions, search
from opsdeck.chat.service.access import (
    Actor,
    active_member,
    get_readable,
    require_member,
    require_moderator,
    require_writable,
)
from opsdeck.core.db import new_id, utcnow
from opsdeck.core.errors import (
    AppError,
    Forbidden,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)
from opsdeck.core.pagination import (
    Paged,
    PageParams,
    SortOrders,
    decode_cursor,
    paginate,
)
from opsdeck.core.ratelimit import RateLimit, rate_limiter
from opsdeck.settings import Settings

MAX_MESSAGE_BYTES = 10 * 1024
MAX_CLIENT_ID_LENGTH = 64
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# What one `sync` answers at most; `more` says to ask again after the last one.
SYNC_LIMIT = 500
MESSAGE_SORTS = SortOrders("ChatMessageSort", Message.seq, {"seq": Message.seq}, default="seq")


def send_limit(settings: Settings) -> RateLimit:
    return RateLimit("chat.send", settings.chat_send_burst, settings.chat_send_window_seconds)


def typing_limit(settings: Settings) -> RateLimit:
    return RateLimit("chat.typing", settings.chat_typing_burst, 10.0)


def check_rate(settings: Settings, limit: RateLimit, user_id: str) -> None:
    decision = rate_limiter(settings).hit(limit, user_id)
    if not decision.allowed:
        raise TooManyRequests(
            "Slow down: too many messages.", retry_after=decision.retry_after, code="rate_limited"
        )


def _check_body(body: str, *, may_be_empty: bool = False) -> str:
    size = len(body.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise ValidationFailed(
            f"A message is at most {MAX_MESSAGE_BYTES} bytes.",
            details=[
                {
                    "field": "body.body",
                    "message": f"{size} bytes",
                    "type": "too_long",
                    "limit_bytes": MAX_MESSAGE_BYTES,
                }
            ],
            code="message_too_long",
        )
    if not body.strip() and not may_be_empty:
        raise ValidationFailed(
            "A message needs some text.",
            details=[{"field": "body.body", "message": "empty", "type": "empty"}],
        )
    return body


def _check_client_id(client_id: str) -> str:
    if not CLIENT_ID_PATTERN.match(client_id):
        raise ValidationFailed(
            "client_id is 1 to 64 letters, digits or . _ : - (a UUID fits).",
            details=[{"field": "body.client_id", "message": "bad client id", "type": "client_id"}],
        )
    return client_id


@dataclass(frozen=True)
class Sent:
    message: Message
    # False when the client id had been sent before: the answer is the earlier message.
    created: bool
    # A new message's attachments (in order) and the people it mentions, as stored: what its
    # answer shows without reading them back (presenters.sent_message_out).
    attachments: Sequence[Attachment] = ()
    mentions: Sequence[str] = ()


def _by_client_id(
    session: Session, author_id: str, conversation_id: str, client_id: str
) -> Message | None:
    return session.scalars(
        select(Message).where(
            Message.author_id == author_id,
            Message.conversation_id == conversation_id,
            Message.client_id == client_id,
        )
    ).first()


def send_message(
    session: Session,
    actor: Actor,
    conversation_id: str,
    *,
    client_id: str,
    body: str,
    reply_to: str | None = None,
    attachment_ids: Sequence[str] = (),
) -> Sent:
    """Post a message as `actor`, with the actor's unsent uploads `attachment_ids` (then the
    body may be empty). A client id the actor already used in this conversation answers the
    message it made, unchanged, so a resend after a lost ack is harmless.

    The common path is one read (the conversation and the actor's membership), the counter's
    guarded `UPDATE ... RETURNING` (which checks the membership and the archive again, at the
    moment the number is taken) and the writes. A resend is found by the client id's unique
    constraint, not looked up first: the message's `INSERT ... ON CONFLICT DO NOTHING` writes
    nothing, the number is given back (still under the counter's lock: no gap) and the earlier
    message is read then. Only a send with files, and a send refused on its
    content or its room's state, look the client id up first (their resend is answered as
    before: the files are bound to the earlier message already, and a resend after the room
    was archived still gets its message)."""
    _check_client_id(client_id)
    conversation, member = require_member(session, actor, conversation_id)
    if attachment_ids:
        earlier = _by_client_id(session, actor.id, conversation.id, client_id)
        if earlier is not None:
            return Sent(earlier, created=False)
    try:
        require_writable(conversation)
        _check_body(body, may_be_empty=bool(attachment_ids))
        files = attachments.claim(session, actor, conversation.id, attachment_ids)
        if reply_to is not None:
            reply_to = _thread_root(session, conversation.id, reply_to)
    except AppError:
        earlier = _by_client_id(session, actor.id, conversation.id, client_id)
        if earlier is not None:
            return Sent(earlier, created=False)
        raise
    # Everything that only reads comes before the counter: its row lock (PostgreSQL) is held
    # from the UPDATE below to the commit, and the sends of one conversation queue on it.
    rendered = mentions.prepare(session, actor, conversation, member, body)
    now = utcnow()
    # The writes of the common path are Core statements on the tables: the ORM's unit of work
    # and its bulk UPDATE's synchronisation cost more than the statements themselves here.
    values = {
        "id": new_id(),
        "conversation_id": conversation.id,
        "author_id": actor.id,
        "client_id": client_id,
        "body": body,
        "body_html": rendered.html,
        "mentions_room": rendered.room,
        "reply_to_id": reply_to,
        "created_at": now,
    }
    # The answer object: what the INSERT below writes, plus the columns a new message has
    # empty (the ORM would read them back; a transient object does not).
    message = Message(
        **values,
        edited_at=None,
        deleted_at=None,
        deleted_by_id=None,
        pinned_incident_number=None,
        pinned_event_id=None,
    )
    # Takes the conversation's row lock (PostgreSQL) until the commit: senders to one
    # conversation queue here, so sequence numbers follow commit order. The WHERE checks again
    # that the sender is still a member and the room still writable.
    seq = session.execute(
        _TAKE_NUMBER, {"room_id": conversation.id, "actor_id": actor.id, "now": now}
    ).scalar_one_or_none()
    if seq is None:
        # Kicked, banned or archived since the read above (another transaction committed in
        # between): the same refusal as if it had come first. Nothing was written.
        session.expire_all()
        conversation, member = require_member(session, actor, conversation_id)
        require_writable(conversation)
        raise NotFound("There is no such conversation.", code="room_not_found")
    message.seq = seq
    inserted = session.execute(_insert_message(session), {**values, "seq": seq}).first()
    if inserted is None:
        # The client id was sent before (or was being sent at once, and that committed while
        # this waited for the counter): give the number back, so the sequence has no gap, and
        # answer the earlier message. The counter's row is still locked by this transaction
        # (SQLite: the whole database), so nobody took a number since.
        session.execute(_GIVE_NUMBER_BACK, {"room_id": conversation.id})
        earlier = _by_client_id(session, actor.id, conversation.id, client_id)
        if earlier is None:
            raise RuntimeError("A client id's conflict without its message.")
        return Sent(earlier, created=False)
    attachments.bind(files, message)
    search.index_message(session, message, new_with_names=[file.filename for file in files])
    mentions.store(session, actor, conversation, message, rendered, edited=False)
    # The author has read what they wrote (never moving their pointer back: a `read` of a
    # later message may have committed since the member row was read).
    session.execute(_READ_OWN, {"room_id": conversation.id, "actor_id": actor.id, "seq": seq})
    if files:
        session.flush()
    return Sent(message, created=True, attachments=files, mentions=rendered.user_ids)


_CONVERSATIONS = cast(Table, Conversation.__table__)
_MEMBERS = cast(Table, Member.__table__)
_MESSAGES = cast(Table, Message.__table__)


# The send path's statements, built once with their cache keys: on SQLite, building a
# statement and its cache key cost more CPU than running it.
_TAKE_NUMBER = (
    update(_CONVERSATIONS)
    .where(
        _CONVERSATIONS.c.id == bindparam("room_id"),
        _CONVERSATIONS.c.archived_at.is_(None),
        exists().where(
            _MEMBERS.c.conversation_id == bindparam("room_id"),
            _MEMBERS.c.user_id == bindparam("actor_id"),
            _MEMBERS.c.banned.is_(False),
        ),
    )
    .values(next_seq=_CONVERSATIONS.c.next_seq + 1, last_activity_at=bindparam("now"))
    .returning(_CONVERSATIONS.c.next_seq)
)
# A resend's number back, and the room's last activity as it was: the time of its last
# message (only a new message sets it).
_GIVE_NUMBER_BACK = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("room_id"))
    .values(
        next_seq=_CONVERSATIONS.c.next_seq - 1,
        last_activity_at=select(_MESSAGES.c.created_at)
        .where(_MESSAGES.c.conversation_id == bindparam("room_id"))
        .order_by(_MESSAGES.c.seq.desc())
        .limit(1)
        .scalar_subquery(),
    )
)
# The author has read what they wrote, never moving the pointer back.
_READ_OWN = (
    update(_MEMBERS)
    .where(
        _MEMBERS.c.conversation_id == bindparam("room_id"),
        _MEMBERS.c.user_id == bindparam("actor_id"),
        _MEMBERS.c.last_read_seq < bindparam("seq"),
    )
    .values(last_read_seq=bindparam("seq"))
)
# The message, unless its client id was sent before (the constraint's columns: both
# PostgreSQL and SQLite need the conflict's target spelled out for DO NOTHING to name it).
_CLIENT_ID_COLUMNS = [
    _MESSAGES.c.author_id,
    _MESSAGES.c.conversation_id,
    _MESSAGES.c.client_id,
]
_INSERT_MESSAGE = {
    "postgresql": postgresql.insert(_MESSAGES)
    .on_conflict_do_nothing(index_elements=_CLIENT_ID_COLUMNS)
    .returning(_MESSAGES.c.id),
    "sqlite": sqlite.insert(_MESSAGES)
    .on_conflict_do_nothing(index_elements=_CLIENT_ID_COLUMNS)
    .returning(_MESSAGES.c.id),
}


def _insert_message(session: Session) -> Executable:
    return _INSERT_MESSAGE[session.get_bind().dialect.name]


def _thread_root(session: Session, conversation_id: str, reply_to: str) -> str:
    parent = session.get(Message, reply_to)
    if parent is None or parent.conversation_id != conversation_id:
        raise NotFound("The message replied to is not in this conversation.", code="no_parent")
    # A reply to a reply joins the root's thread: `reply_to` always names a root.
    return parent.reply_to_id or parent.id


def _editable(session: Session, actor: Actor, message_id: str) -> tuple[Message, Member]:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound("There is no such message.", code="message_not_found")
    member = active_member(session, message.conversation_id, actor.id)
    if member is None:
        raise NotFound("There is no such message.", code="message_not_found")
    if message.deleted_at is not None:
        raise NotFound("The message was deleted.", code="message_deleted")
    return message, member


def edit_message(session: Session, actor: Actor, message_id: str, body: str) -> Message:
    message, member = _editable(session, actor, message_id)
    if message.author_id != actor.id:
        raise Forbidden("Only its author edits a message.", code="not_author")
    conversation = session.get_one(Conversation, message.conversation_id)
    require_writable(conversation)
    _check_body(body, may_be_empty=bool(attachments.of_messages(session, [message.id])))
    if body == message.body:
        return message
    now = utcnow()
    session.add(
        MessageEdit(message_id=message.id, body=message.body, edited_at=now, editor_id=actor.id)
    )
    message.body = body
    message.edited_at = now
    mentions.apply(session, actor, conversation, member, message, edited=True)
    session.flush()
    search.index_message(session, message)
    return message


def delete_message(session: Session, actor: Actor, message_id: str) -> Message:
    """Soft delete: the body and its history go, the sequence number stays (a tombstone). The
    author, the room's moderators and owners, and admins delete; a deletion by someone else is
    written to the audit log."""
    message, member = _editable(session, actor, message_id)
    conversation = session.get_one(Conversation, message.conversation_id)
    if message.author_id != actor.id:
        require_moderator(actor, member)
        audit.record(
            session,
            "chat.message_deleted",
            actor=actor,
            target_type="chat_message",
            target_id=message.id,
            details={"room_id": conversation.id, "author_id": message.author_id},
        )
    for edit in session.scalars(select(MessageEdit).where(MessageEdit.message_id == message.id)):
        session.delete(edit)
    message.deleted_at = utcnow()
    message.deleted_by_id = actor.id
    message.body = ""
    message.body_html = ""
    attachments.drop_for_message(session, message.id)
    search.forget_message(session, message.id)
    session.flush()
    return message


def get_message(session: Session, actor: Actor, message_id: str) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound("There is no such message.", code="message_not_found")
    try:
        get_readable(session, actor, message.conversation_id)
    except (NotFound, Forbidden):
        raise NotFound("There is no such message.", code="message_not_found") from None
    return message


def edits_of(session: Session, actor: Actor, message_id: str) -> Sequence[MessageEdit]:
    message = get_message(session, actor, message_id)
    return list(
        session.scalars(
            select(MessageEdit)
            .where(MessageEdit.message_id == message.id)
            .order_by(MessageEdit.edited_at, MessageEdit.id)
        )
    )


# -- history ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryQuery:
    after_seq: int | None = None
    before_seq: int | None = None
    cursor: str | None = None
    limit: int = 50
    # Jump to a message: the `limit` messages around this one (it included), no cursor.
    around_seq: int | None = None


def _history_params(query: HistoryQuery) -> PageParams:
    if query.cursor is not None:
        # The cursor says which way it goes: forward ("seq") or back ("-seq").
        for sort in ("seq", "-seq"):
            try:
                key = decode_cursor(MESSAGE_SORTS, sort, query.cursor)
            except ValidationFailed:
                continue
            return PageParams(MESSAGE_SORTS, sort, query.limit, key)
        decode_cursor(MESSAGE_SORTS, "seq", query.cursor)  # raises the 422
    if query.after_seq is not None and query.before_seq is not None:
        raise ValidationFailed(
            "Give after_seq or before_seq, not both.",
            details=[{"field": "query.before_seq", "message": "with after_seq"}],
        )
    if query.before_seq is not None:
        return PageParams(MESSAGE_SORTS, "-seq", query.limit, (query.before_seq,))
    after = (query.after_seq,) if query.after_seq is not None else None
    return PageParams(MESSAGE_SORTS, "seq", query.limit, after)


def history(
    session: Session, actor: Actor, conversation_id: str, query: HistoryQuery
) -> Paged[Message]:
    """A page of messages in sequence order. Forward (`after_seq`, or from the start) pages go
    on after their last message; backward ones (`before_seq`: the `limit` messages just before
    it, for scrolling up) go on before their first. `next_cursor` continues either way."""
    conversation, _member = get_readable(session, actor, conversation_id)
    if query.around_seq is not None:
        return Paged(items=_around(session, conversation.id, query), next_cursor=None)
    params = _history_params(query)
    page = paginate(
        session, select(Message).where(Message.conversation_id == conversation.id), params
    )
    if params.sort.startswith("-"):
        return Paged(items=list(reversed(page.items)), next_cursor=page.next_cursor)
    return page


def _around(session: Session, conversation_id: str, query: HistoryQuery) -> list[Message]:
    """`around_seq` with about half the page before it and the rest after; near either end the
    other side fills the page."""
    if query.after_seq is not None or query.before_seq is not None or query.cursor is not None:
        raise ValidationFailed(
            "around_seq goes without after_seq, before_seq and cursor.",
            details=[{"field": "query.around_seq", "message": "with another position"}],
        )
    target, limit = query.around_seq or 0, query.limit
    in_conversation = select(Message).where(Message.conversation_id == conversation_id)
    before = list(
        session.scalars(
            in_conversation.where(Message.seq <= target).order_by(Message.seq.desc()).limit(limit)
        )
    )
    after = list(
        session.scalars(
            in_conversation.where(Message.seq > target).order_by(Message.seq).limit(limit)
        )
    )
    taken_before = min(len(before), max(limit - len(after), limit // 2 + 1))
    taken_after = min(len(after), limit - taken_before)
    return [*reversed(before[:taken_before]), *after[:taken_after]]


def sync(
    session: Session, actor: Actor, conversation_id: str, after_seq: int
) -> tuple[list[Message], bool]:
    """Everything after `after_seq`, in order (at most SYNC_LIMIT; the flag says more are
    there)."""
    conversation, _member = get_readable(session, actor, conversation_id)
    rows = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(SYNC_LIMIT + 1)
        )
    )
    return rows[:SYNC_LIMIT], len(rows) > SYNC_LIMIT
