"""chat war rooms and mentions: rooms linked to incidents (both ways), mentions, pending mail
notices, pinned messages, the chat mail preference

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 02:40:29.001206
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_mail_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_mail_notices_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_mail_notices_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_mail_notices")),
    )
    with op.batch_alter_table("chat_mail_notices", schema=None) as batch_op:
        batch_op.create_index("ix_chat_mail_notices_created", ["created_at"], unique=False)
        batch_op.create_index("ix_chat_mail_notices_user", ["user_id", "id"], unique=False)

    op.create_table(
        "chat_mentions",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_mentions_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_mentions_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_mentions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "user_id", name=op.f("pk_chat_mentions")),
    )
    with op.batch_alter_table("chat_mentions", schema=None) as batch_op:
        batch_op.create_index("ix_chat_mentions_user", ["user_id", "conversation_id"], unique=False)

    with op.batch_alter_table("chat_conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_number", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_chat_conversations_incident_number"), ["incident_number"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_chat_conversations_incident_number_incidents"),
            "incidents",
            ["incident_number"],
            ["number"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mentions_room", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("pinned_incident_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pinned_event_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("incident_notification_preferences", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chat_mentions", sa.Boolean(), server_default=sa.true(), nullable=False)
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("war_room_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("war_room_id")

    with op.batch_alter_table("incident_notification_preferences", schema=None) as batch_op:
        batch_op.drop_column("chat_mentions")

    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_column("pinned_event_id")
        batch_op.drop_column("pinned_incident_number")
        batch_op.drop_column("mentions_room")

    with op.batch_alter_table("chat_conversations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_chat_conversations_incident_number_incidents"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_chat_conversations_incident_number"), type_="unique"
        )
        batch_op.drop_column("incident_number")

    with op.batch_alter_table("chat_mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_mentions_user")

    op.drop_table("chat_mentions")
    with op.batch_alter_table("chat_mail_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_mail_notices_user")
        batch_op.drop_index("ix_chat_mail_notices_created")

    op.drop_table("chat_mail_notices")
