"""incidents: incidents, their people, timeline, comments, postmortems, follow-ups,
categories, tags, integrations, outbound endpoints and mail preferences

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 23:21:18.421135
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_categories",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_incident_categories_name")),
    )
    op.create_table(
        "incident_postmortem_templates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_postmortem_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_incident_postmortem_templates_name")),
    )
    op.create_table(
        "incident_tags",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_tags")),
        sa.UniqueConstraint("name", name=op.f("uq_incident_tags_name")),
    )
    op.create_table(
        "incident_integrations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        sa.Column("severity_label", sa.String(length=64), nullable=False),
        sa.Column("severity_map", sa.JSON(), nullable=False),
        sa.Column("default_severity", sa.String(length=8), nullable=False),
        sa.Column("resolve_on_recovery", sa.Boolean(), nullable=False),
        sa.Column("category_id", sa.String(length=32), nullable=True),
        sa.Column("created_by_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('alertmanager', 'generic')", name=op.f("ck_incident_integrations_kind")
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["incident_categories.id"],
            name=op.f("fk_incident_integrations_category_id_incident_categories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_incident_integrations_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_integrations")),
        sa.UniqueConstraint("name", name=op.f("uq_incident_integrations_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_incident_integrations_token_hash")),
    )
    op.create_table(
        "incident_notification_preferences",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("assignment", sa.Boolean(), nullable=False),
        sa.Column("status_change", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Boolean(), nullable=False),
        sa.Column("follow_up_due", sa.Boolean(), nullable=False),
        sa.Column("daily_digest", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_incident_notification_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_incident_notification_preferences")),
    )
    op.create_table(
        "incident_webhook_endpoints",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_incident_webhook_endpoints_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_webhook_endpoints")),
    )
    op.create_table(
        "incident_webhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_incident_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["incident_webhook_endpoints.id"],
            name=op.f("fk_incident_webhook_deliveries_endpoint_id_incident_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_webhook_deliveries")),
    )
    with op.batch_alter_table("incident_webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_webhook_deliveries_endpoint", ["endpoint_id", "created_at"], unique=False
        )

    op.create_table(
        "incidents",
        sa.Column("number", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("description_html", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("category_id", sa.String(length=32), nullable=True),
        sa.Column("reporter_id", sa.String(length=32), nullable=True),
        sa.Column("commander_id", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("integration_id", sa.String(length=32), nullable=True),
        sa.Column("alert_group_key", sa.String(length=255), nullable=True),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mitigated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "severity IN ('SEV1', 'SEV2', 'SEV3', 'SEV4')", name=op.f("ck_incidents_severity")
        ),
        sa.CheckConstraint(
            "source IN ('manual', 'alertmanager', 'generic')", name=op.f("ck_incidents_source")
        ),
        sa.CheckConstraint(
            "status IN ('triage', 'investigating', 'identified', 'monitoring', 'resolved', 'closed')",
            name=op.f("ck_incidents_status"),
        ),
        sa.CheckConstraint(
            "visibility IN ('public', 'restricted')", name=op.f("ck_incidents_visibility")
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["incident_categories.id"],
            name=op.f("fk_incidents_category_id_incident_categories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["commander_id"],
            ["users.id"],
            name=op.f("fk_incidents_commander_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["incident_integrations.id"],
            name=op.f("fk_incidents_integration_id_incident_integrations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["users.id"],
            name=op.f("fk_incidents_reporter_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incidents_alert_group", ["integration_id", "alert_group_key"], unique=False
        )
        batch_op.create_index("ix_incidents_category", ["category_id"], unique=False)
        batch_op.create_index("ix_incidents_commander", ["commander_id"], unique=False)
        batch_op.create_index("ix_incidents_declared_at", ["declared_at"], unique=False)
        batch_op.create_index("ix_incidents_reporter", ["reporter_id"], unique=False)
        batch_op.create_index("ix_incidents_resolved_at", ["resolved_at"], unique=False)
        batch_op.create_index("ix_incidents_severity_number", ["severity", "number"], unique=False)
        batch_op.create_index("ix_incidents_status_number", ["status", "number"], unique=False)

    op.create_table(
        "incident_alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("integration_id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_alert_deliveries_incident_number_incidents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["incident_integrations.id"],
            name=op.f("fk_incident_alert_deliveries_integration_id_incident_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_alert_deliveries")),
        sa.UniqueConstraint(
            "integration_id", "digest", name=op.f("uq_incident_alert_deliveries_integration_id")
        ),
    )
    op.create_table(
        "incident_comments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_incident_comments_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_comments_incident_number_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_comments")),
    )
    with op.batch_alter_table("incident_comments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_comments_incident", ["incident_number", "id"], unique=False
        )

    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("old_value", sa.String(length=255), nullable=True),
        sa.Column("new_value", sa.String(length=255), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('declared', 'status_changed', 'severity_changed', 'field_changed', 'commander_changed', 'assignee_added', 'assignee_removed', 'watcher_added', 'watcher_removed', 'comment_added', 'comment_edited', 'comment_deleted', 'note', 'alert_firing', 'alert_resolved', 'attachment_added', 'postmortem_changed', 'follow_up_changed', 'notification_failed')",
            name=op.f("ck_incident_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_incident_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_events_incident_number_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_events")),
    )
    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_events_incident", ["incident_number", "id"], unique=False
        )
        batch_op.create_index("ix_incident_events_kind_at", ["kind", "at"], unique=False)

    op.create_table(
        "incident_follow_ups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_on", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'in_progress', 'done')", name=op.f("ck_incident_follow_ups_status")
        ),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_follow_ups_incident_number_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_incident_follow_ups_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_follow_ups")),
    )
    with op.batch_alter_table("incident_follow_ups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_follow_ups_incident", ["incident_number", "id"], unique=False
        )
        batch_op.create_index("ix_incident_follow_ups_owner", ["owner_id", "status"], unique=False)
        batch_op.create_index(
            "ix_incident_follow_ups_status_due", ["status", "due_date"], unique=False
        )

    op.create_table(
        "incident_notifications",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_incident_notifications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_notifications_incident_number_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_incident_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notifications")),
    )
    with op.batch_alter_table("incident_notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_notifications_status", ["status", "created_at"], unique=False
        )

    op.create_table(
        "incident_participants",
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('assignee', 'watcher')", name=op.f("ck_incident_participants_role")
        ),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_participants_incident_number_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_incident_participants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "incident_number", "user_id", "role", name=op.f("pk_incident_participants")
        ),
    )
    with op.batch_alter_table("incident_participants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_participants_user", ["user_id", "role", "incident_number"], unique=False
        )

    op.create_table(
        "incident_postmortems",
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'in_review', 'published')",
            name=op.f("ck_incident_postmortems_status"),
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_incident_postmortems_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_postmortems_incident_number_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_number", name=op.f("pk_incident_postmortems")),
    )
    op.create_table(
        "incident_tag_links",
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_incident_tag_links_incident_number_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"],
            ["incident_tags.id"],
            name=op.f("fk_incident_tag_links_tag_id_incident_tags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_number", "tag_id", name=op.f("pk_incident_tag_links")),
    )
    with op.batch_alter_table("incident_tag_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_tag_links_tag", ["tag_id", "incident_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("incident_tag_links", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_tag_links_tag")

    op.drop_table("incident_tag_links")
    op.drop_table("incident_postmortems")
    with op.batch_alter_table("incident_participants", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_participants_user")

    op.drop_table("incident_participants")
    with op.batch_alter_table("incident_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_notifications_status")

    op.drop_table("incident_notifications")
    with op.batch_alter_table("incident_follow_ups", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_follow_ups_status_due")
        batch_op.drop_index("ix_incident_follow_ups_owner")
        batch_op.drop_index("ix_incident_follow_ups_incident")

    op.drop_table("incident_follow_ups")
    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_events_kind_at")
        batch_op.drop_index("ix_incident_events_incident")

    op.drop_table("incident_events")
    with op.batch_alter_table("incident_comments", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_comments_incident")

    op.drop_table("incident_comments")
    op.drop_table("incident_alert_deliveries")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_status_number")
        batch_op.drop_index("ix_incidents_severity_number")
        batch_op.drop_index("ix_incidents_resolved_at")
        batch_op.drop_index("ix_incidents_reporter")
        batch_op.drop_index("ix_incidents_declared_at")
        batch_op.drop_index("ix_incidents_commander")
        batch_op.drop_index("ix_incidents_category")
        batch_op.drop_index("ix_incidents_alert_group")

    op.drop_table("incidents")
    with op.batch_alter_table("incident_webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_webhook_deliveries_endpoint")

    op.drop_table("incident_webhook_deliveries")
    op.drop_table("incident_webhook_endpoints")
    op.drop_table("incident_notification_preferences")
    op.drop_table("incident_integrations")
    op.drop_table("incident_tags")
    op.drop_table("incident_postmortem_templates")
    op.drop_table("incident_categories")
