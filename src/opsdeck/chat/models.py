"""Chat: conversations (rooms and direct messages), their members, their messages and the
previous versions of edited messages.

Every message has a `seq`, allocated from its conversation's `next_seq` counter in the sending
transaction (`UPDATE ... RETURNING`: PostgreSQL holds the conversation's row lock until the
commit, SQLite serialises writers), so a conversation's sequence numbers increase without gaps
in commit order and a client catches up by asking for everything after the last one it saw.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from opsdeck.core.db import Base, new_id, unmodelled_tables, utcnow


class ConversationKind(StrEnum):
    ROOM = "room"
    DM = "dm"


class RoomVisibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class PresenceStatus(StrEnum):
    """A person's presence over all their connections (not stored in the database)."""

    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class MemberRole(StrEnum):
    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"


class AttachmentStatus(StrEnum):
    """Where an attachment's processing stands: a file that is not an image is ready at once;
    an image is processing until its preview and compressed copy are made (failed: they could
    not be, and the upload itself is what is served)."""

    READY = "ready"
    PROCESSING = "processing"
    FAILED = "failed"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Conversation(Base):
    __tablename__ = "chat_conversations"
    __table_args__ = (
        CheckConstraint(_in("kind", ConversationKind), name="kind"),
        CheckConstraint(_in("visibility", RoomVisibility), name="visibility"),
        Index("ix_chat_conversations_activity", "last_activity_at", "id"),
        Index("ix_chat_conversations_name", "name", "id"),
        Index("ix_chat_conversations_creator", "created_by_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[ConversationKind] = mapped_column(String(8))
    # Direct messages are private and have no name (clients name them after their members).
    visibility: Mapped[RoomVisibility] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(80), default="")
    topic: Mapped[str] = mapped_column(String(250), default="")
    description: Mapped[str] = mapped_column(String(1000), default="")
    # A direct message's set of members (sorted ids, hashed): the same set finds the same one.
    dm_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    # The last sequence number handed out (0: no message yet).
    next_seq: Mapped[int] = mapped_column(Integer, default=0)
    # A war room: the incident it was opened for (one room per incident; service/war_rooms.py).
    incident_number: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("incidents.number", ondelete="SET NULL"), unique=True, default=None
    )


class Member(Base):
    """A user's place in a conversation. A banned user keeps a row (banned) so a ban outlives
    leaving and cannot be undone by joining again."""

    __tablename__ = "chat_members"
    __table_args__ = (
        CheckConstraint(_in("role", MemberRole), name="role"),
        Index("ix_chat_members_user", "user_id"),
    )

    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[MemberRole] = mapped_column(String(16), default=MemberRole.MEMBER)
    last_read_seq: Mapped[int] = mapped_column(Integer, default=0)
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_chat_messages_seq"),
        # A resend with the same client id is the same message (idempotent sends).
        UniqueConstraint(
            "author_id", "conversation_id", "client_id", name="uq_chat_messages_client_id"
        ),
        Index("ix_chat_messages_reply_to", "reply_to_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL")
    )
    client_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    reply_to_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("chat_messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    # A tombstone: the body is gone, the sequence number stays.
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_by_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL")
    )
    # `@room`: every member is mentioned (service/mentions.py says who may).
    mentions_room: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Pinned to its war room's incident timeline: the incident and the timeline event.
    pinned_incident_number: Mapped[int | None] = mapped_column(Integer, default=None)
    pinned_event_id: Mapped[int | None] = mapped_column(Integer, default=None)


class Mention(Base):
    """A member named in a message (`@username`), in the order they appear."""

    __tablename__ = "chat_mentions"
    __table_args__ = (Index("ix_chat_mentions_user", "user_id", "conversation_id"),)

    message_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_conversations.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class MailNotice(Base):
    """A mention or direct message owed an e-mail if its reader has not read it in time
    (service/digest.py): one row per recipient and message, deleted once the digest job has
    looked at it, so the table holds only what is pending."""

    __tablename__ = "chat_mail_notices"
    __table_args__ = (
        Index("ix_chat_mail_notices_created", "created_at"),
        Index("ix_chat_mail_notices_user", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_messages.id", ondelete="CASCADE")
    )
    # "mention", "room" (@room) or "dm".
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageEdit(Base):
    """A previous version of an edited message (the body it had before the edit)."""

    __tablename__ = "chat_message_edits"
    __table_args__ = (Index("ix_chat_message_edits_message", "message_id", "edited_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    message_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_messages.id", ondelete="CASCADE")
    )
    body: Mapped[str] = mapped_column(Text)
    edited_at: Mapped[datetime] = mapped_column(default=utcnow)
    editor_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL")
    )


class Attachment(Base):
    """A file uploaded to a conversation: first on its own (only its uploader sees it), then
    in the message it was sent with (`message_id`; its members download it). The bytes are in
    the media store under `key`; an image also has a preview and a compressed copy made by the
    images pipeline (`preview_batch_id`, `compressed_batch_id`), and its original is served
    only when the uploader asked to keep it (`keep_original`). Deleting the message deletes
    its attachments' rows."""

    __tablename__ = "chat_attachments"
    __table_args__ = (
        Index("ix_chat_attachments_message", "message_id", "position"),
        Index("ix_chat_attachments_uploader", "uploader_id", "conversation_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_conversations.id", ondelete="CASCADE")
    )
    uploader_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL")
    )
    message_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("chat_messages.id", ondelete="CASCADE"), default=None
    )
    # Its place among the message's attachments (the order of `attachment_ids`).
    position: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str] = mapped_column(String(255))
    # Detected from the bytes, never the type the uploader claimed.
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    keep_original: Mapped[bool] = mapped_column(Boolean, default=False)
    preview_batch_id: Mapped[str | None] = mapped_column(String(32), default=None)
    compressed_batch_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The full-text index of messages (service/search.py): a table on PostgreSQL, an FTS5 table on
# SQLite, made by the migration; not models (their shapes differ per database).
SEARCH_TABLE = "chat_message_search"
SEARCH_FTS_TABLE = "chat_message_search_fts"
unmodelled_tables(Base.metadata).update((SEARCH_TABLE, SEARCH_FTS_TABLE))


class Reaction(Base):
    """One person's emoji on a message (toggled: a second toggle removes it). A message's
    reactions are listed in the order each emoji was first used."""

    __tablename__ = "chat_reactions"
    __table_args__ = (Index("ix_chat_reactions_message", "message_id", "created_at"),)

    message_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    emoji: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
