"""chat attachments and search: files sent with messages, and the full-text index of messages

`chat_attachments`: a file uploaded to a conversation, then sent in a message.

The index (chat/service/search.py), not a model (its shape differs per database; `opsdeck.core.
db`'s `schema_filter` leaves it out of model comparisons): on PostgreSQL
`chat_message_search(message_id, document tsvector)` with a GIN index, one row per message that
is not deleted, removed with it; on SQLite an FTS5 table `chat_message_search_fts(body,
message_id UNINDEXED)` whose rowid is made from the message id (`search.fts_rowid`). Messages
that exist already are indexed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:41:10.316529
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_INDEX_ALL = (
    "INSERT INTO chat_message_search (message_id, document) "
    "SELECT m.id, to_tsvector('english', m.body) FROM chat_messages m "
    "WHERE m.deleted_at IS NULL"
)


def _fts_rowid(message_id: str) -> int:
    # The same as opsdeck.chat.service.search.fts_rowid (a migration never imports the app).
    return int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=7).digest(), "big")


def upgrade() -> None:
    op.create_table(
        "chat_attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("uploader_id", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("keep_original", sa.Boolean(), nullable=False),
        sa.Column("preview_batch_id", sa.String(length=32), nullable=True),
        sa.Column("compressed_batch_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_attachments_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_attachments_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["users.id"],
            name=op.f("fk_chat_attachments_uploader_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_attachments")),
    )
    with op.batch_alter_table("chat_attachments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chat_attachments_message", ["message_id", "position"], unique=False
        )
        batch_op.create_index(
            "ix_chat_attachments_uploader", ["uploader_id", "conversation_id"], unique=False
        )

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.create_table(
            "chat_message_search",
            sa.Column("message_id", sa.String(length=32), nullable=False),
            sa.Column("document", postgresql.TSVECTOR(), nullable=False),
            sa.ForeignKeyConstraint(
                ["message_id"],
                ["chat_messages.id"],
                name=op.f("fk_chat_message_search_message_id_chat_messages"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("message_id", name=op.f("pk_chat_message_search")),
        )
        op.create_index(
            "ix_chat_message_search_document",
            "chat_message_search",
            ["document"],
            postgresql_using="gin",
        )
        op.execute(_PG_INDEX_ALL)
    else:
        op.execute(
            "CREATE VIRTUAL TABLE chat_message_search_fts USING fts5("
            "body, message_id UNINDEXED, tokenize = 'porter unicode61')"
        )
        rows = bind.execute(
            sa.text("SELECT id, body FROM chat_messages WHERE deleted_at IS NULL")
        ).all()
        if rows:
            bind.execute(
                sa.text(
                    "INSERT INTO chat_message_search_fts (rowid, body, message_id) "
                    "VALUES (:rowid, :body, :message_id)"
                ),
                [
                    {"rowid": _fts_rowid(row[0]), "body": row[1], "message_id": row[0]}
                    for row in rows
                ],
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_chat_message_search_document", table_name="chat_message_search")
        op.drop_table("chat_message_search")
    else:
        op.execute("DROP TABLE IF EXISTS chat_message_search_fts")
    with op.batch_alter_table("chat_attachments", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_attachments_uploader")
        batch_op.drop_index("ix_chat_attachments_message")

    op.drop_table("chat_attachments")
