"""Incidents: the incident, its people, its timeline and comments, its postmortem and
follow-ups, the categories and tags admins manage, the integrations that declare incidents
from alerts, the endpoints told about incident events, and each user's mail preferences.

Status sets are StrEnums stored as plain strings (docs/architecture.md, "Status sets"). The
incident's key is its `number` (shown as INC-<number>): an integer primary key, so it is
dense, ordered and cheap to page by.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from opsdeck.core.db import Base, new_id, unmodelled_tables, utcnow


class IncidentStatus(StrEnum):
    TRIAGE = "triage"
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


class Visibility(StrEnum):
    PUBLIC = "public"
    RESTRICTED = "restricted"


class IncidentSource(StrEnum):
    MANUAL = "manual"
    ALERTMANAGER = "alertmanager"
    GENERIC = "generic"


class ParticipantRole(StrEnum):
    ASSIGNEE = "assignee"
    WATCHER = "watcher"


class EventKind(StrEnum):
    """What a timeline entry records. `note` is the one people write; the rest the service
    writes for every change."""

    DECLARED = "declared"
    STATUS_CHANGED = "status_changed"
    SEVERITY_CHANGED = "severity_changed"
    FIELD_CHANGED = "field_changed"
    COMMANDER_CHANGED = "commander_changed"
    ASSIGNEE_ADDED = "assignee_added"
    ASSIGNEE_REMOVED = "assignee_removed"
    WATCHER_ADDED = "watcher_added"
    WATCHER_REMOVED = "watcher_removed"
    COMMENT_ADDED = "comment_added"
    COMMENT_EDITED = "comment_edited"
    COMMENT_DELETED = "comment_deleted"
    NOTE = "note"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    ATTACHMENT_ADDED = "attachment_added"
    POSTMORTEM_CHANGED = "postmortem_changed"
    FOLLOW_UP_CHANGED = "follow_up_changed"
    NOTIFICATION_FAILED = "notification_failed"


class PostmortemStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"


class FollowUpStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class IntegrationKind(StrEnum):
    ALERTMANAGER = "alertmanager"
    GENERIC = "generic"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Category(Base):
    __tablename__ = "incident_categories"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tag(Base):
    __tablename__ = "incident_tags"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# What the visibility rule (service.access.visible_clause) reads of an incident.
_VISIBILITY_COLUMNS = ["number", "visibility", "reporter_id", "commander_id"]


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(_in("status", IncidentStatus), name="status"),
        CheckConstraint(_in("severity", Severity), name="severity"),
        CheckConstraint(_in("visibility", Visibility), name="visibility"),
        CheckConstraint(_in("source", IncidentSource), name="source"),
        Index("ix_incidents_status_number", "status", "number"),
        Index("ix_incidents_severity_number", "severity", "number"),
        # The list filtered by status and severity (bench/incidents_api.py: 3.2 -> 2.1 ms).
        Index("ix_incidents_status_severity_number", "status", "severity", "number"),
        # The statistics of a period read these alone, visibility rule included (0011).
        Index(
            "ix_incidents_declared_at",
            "declared_at",
            postgresql_include=[*_VISIBILITY_COLUMNS, "status", "acknowledged_at", "resolved_at"],
        ),
        Index("ix_incidents_resolved_at", "resolved_at", postgresql_include=_VISIBILITY_COLUMNS),
        Index("ix_incidents_commander", "commander_id"),
        Index("ix_incidents_reporter", "reporter_id"),
        Index("ix_incidents_category", "category_id"),
        # An alert group opens one incident at a time (see integrations): the open one.
        Index("ix_incidents_alert_group", "integration_id", "alert_group_key"),
    )

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    description_html: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=IncidentStatus.TRIAGE)
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PUBLIC)
    category_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident_categories.id", ondelete="SET NULL"), default=None
    )
    reporter_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    commander_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    source: Mapped[str] = mapped_column(String(16), default=IncidentSource.MANUAL)
    integration_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident_integrations.id", ondelete="SET NULL"), default=None
    )
    alert_group_key: Mapped[str | None] = mapped_column(String(255), default=None)
    declared_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    mitigated_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Its chat war room, once opened (chat links it: service.link_war_room). No foreign key:
    # the incidents module does not depend on chat's tables.
    war_room_id: Mapped[str | None] = mapped_column(String(32), default=None)


class IncidentTag(Base):
    __tablename__ = "incident_tag_links"
    __table_args__ = (Index("ix_incident_tag_links_tag", "tag_id", "incident_number"),)

    incident_number: Mapped[int] = mapped_column(
        ForeignKey("incidents.number", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[str] = mapped_column(
        ForeignKey("incident_tags.id", ondelete="CASCADE"), primary_key=True
    )


class Participant(Base):
    """Assignees and watchers (the commander and the reporter are columns of the incident)."""

    __tablename__ = "incident_participants"
    __table_args__ = (
        CheckConstraint(_in("role", ParticipantRole), name="role"),
        Index("ix_incident_participants_user", "user_id", "role", "incident_number"),
    )

    incident_number: Mapped[int] = mapped_column(
        ForeignKey("incidents.number", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comment(Base):
    __tablename__ = "incident_comments"
    __table_args__ = (Index("ix_incident_comments_incident", "incident_number", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number", ondelete="CASCADE"))
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class Attachment(Base):
    """A file attached to an incident, kept in the media store. An image also gets a preview
    made by the images pipeline (`preview_batch_id`)."""

    __tablename__ = "incident_attachments"
    __table_args__ = (Index("ix_incident_attachments_incident", "incident_number", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number", ondelete="CASCADE"))
    uploader_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    preview_batch_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class TimelineEvent(Base):
    """One line of an incident's timeline: who, what, old -> new, when. `id` orders it."""

    __tablename__ = "incident_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EventKind), name="kind"),
        Index("ix_incident_events_incident", "incident_number", "id"),
        Index("ix_incident_events_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(String(255), default=None)
    new_value: Mapped[str | None] = mapped_column(String(255), default=None)
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class PostmortemTemplate(Base):
    __tablename__ = "incident_postmortem_templates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    body: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Postmortem(Base):
    __tablename__ = "incident_postmortems"
    __table_args__ = (CheckConstraint(_in("status", PostmortemStatus), name="status"),)

    incident_number: Mapped[int] = mapped_column(
        ForeignKey("incidents.number", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), default=PostmortemStatus.DRAFT)
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(default=None)


class FollowUp(Base):
    __tablename__ = "incident_follow_ups"
    __table_args__ = (
        CheckConstraint(_in("status", FollowUpStatus), name="status"),
        Index("ix_incident_follow_ups_incident", "incident_number", "id"),
        Index("ix_incident_follow_ups_status_due", "status", "due_date"),
        Index("ix_incident_follow_ups_owner", "owner_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    due_date: Mapped[date | None] = mapped_column(Date, default=None)
    status: Mapped[str] = mapped_column(String(16), default=FollowUpStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The day a "due" reminder was last sent, so a daily job reminds once a day at most.
    reminded_on: Mapped[date | None] = mapped_column(Date, default=None)


class Integration(Base):
    """An alert source (Alertmanager or a generic JSON webhook) allowed to declare incidents."""

    __tablename__ = "incident_integrations"
    __table_args__ = (CheckConstraint(_in("kind", IntegrationKind), name="kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # sha256 of the token; the token itself is shown once, at creation.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    # Label value -> severity, e.g. {"critical": "SEV1", "warning": "SEV3"}.
    severity_label: Mapped[str] = mapped_column(String(64), default="severity")
    severity_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    default_severity: Mapped[str] = mapped_column(String(8), default=Severity.SEV3)
    resolve_on_recovery: Mapped[bool] = mapped_column(Boolean, default=False)
    category_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident_categories.id", ondelete="SET NULL"), default=None
    )
    created_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AlertDelivery(Base):
    """Each alert notification an integration accepted, by the digest of its body: a retry of
    the same notification is answered with what the first one did, and changes nothing."""

    __tablename__ = "incident_alert_deliveries"
    __table_args__ = (UniqueConstraint("integration_id", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("incident_integrations.id", ondelete="CASCADE")
    )
    digest: Mapped[str] = mapped_column(String(64))
    incident_number: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.number", ondelete="SET NULL"), default=None
    )
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    """Where incident events are sent, signed like the images webhooks (core.webhooks)."""

    __tablename__ = "incident_webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2048))
    # Event names it wants ("incident.created", ...); empty means all of them.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "incident_webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", DeliveryStatus), name="status"),
        Index("ix_incident_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )

    # Also the X-OpsDeck-Delivery header: the same on every retry of one event.
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("incident_webhook_endpoints.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class NotificationPreference(Base):
    """What a user wants by mail; a user with no row gets the defaults (everything on)."""

    __tablename__ = "incident_notification_preferences"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    assignment: Mapped[bool] = mapped_column(Boolean, default=True)
    status_change: Mapped[bool] = mapped_column(Boolean, default=True)
    comment: Mapped[bool] = mapped_column(Boolean, default=True)
    follow_up_due: Mapped[bool] = mapped_column(Boolean, default=True)
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=True)
    # Chat mentions and direct messages left unread (chat's digest, sent by this mailer).
    chat_mentions: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Notification(Base):
    """One e-mail owed to one user, so a send is retried, never sent twice, and a failure shows
    on the incident's timeline."""

    __tablename__ = "incident_notifications"
    __table_args__ = (
        CheckConstraint(_in("status", DeliveryStatus), name="status"),
        Index("ix_incident_notifications_status", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    incident_number: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.number", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


# -- search (migration 0006) ------------------------------------------------------------------
# The full-text index is not a model: its shape differs per database. PostgreSQL keeps one
# tsvector per incident (`incident_search`, GIN-indexed, removed with the incident), SQLite an
# FTS5 table whose rowid is the incident number (`incident_search_fts`). service/search.py
# reads and writes them; comparisons of the models with the database skip them.
SEARCH_TABLE = "incident_search"
SEARCH_FTS_TABLE = "incident_search_fts"
unmodelled_tables(Base.metadata).update((SEARCH_TABLE, SEARCH_FTS_TABLE))
