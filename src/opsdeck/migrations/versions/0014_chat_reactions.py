"""chat reactions: one row per person, message and emoji

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 02:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_reactions",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("emoji", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_reactions_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_reactions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "user_id", "emoji", name=op.f("pk_chat_reactions")),
    )
    with op.batch_alter_table("chat_reactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chat_reactions_message", ["message_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("chat_reactions", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_reactions_message")

    op.drop_table("chat_reactions")
