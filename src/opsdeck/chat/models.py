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
)
from sqlalchemy.orm import Mapped, mapped_column

from opsdeck.core.db import Base, new_id, utcnow


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
