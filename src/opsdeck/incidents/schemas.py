"""Request and response bodies of the incidents API (docs/incidents.md)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from opsdeck.core.pagination import Page
from opsdeck.core.params import IsoDate, IsoDateTime, Trimmed
from opsdeck.incidents.models import (
    DeliveryStatus as DeliveryStatus,
)
from opsdeck.incidents.models import (
    EventKind as EventKind,
)
from opsdeck.incidents.models import (
    IncidentSource as IncidentSource,
)
from opsdeck.incidents.models import (
    IncidentStatus as IncidentStatus,
)
from opsdeck.incidents.models import (
    IntegrationKind as IntegrationKind,
)
from opsdeck.incidents.models import (
    Severity as Severity,
)
from opsdeck.incidents.models import (
    Visibility as Visibility,
)

TITLE_MAX = 200
# A long postmortem fits; a pasted log file does not (attach it instead).
MARKDOWN_MAX = 100_000
COMMENT_MAX = 20_000
TAGS_MAX = 20

Title = Annotated[str, Field(min_length=1, max_length=TITLE_MAX), Trimmed]
Markdown = Annotated[str, Field(max_length=MARKDOWN_MAX)]
CommentBody = Annotated[str, Field(min_length=1, max_length=COMMENT_MAX), Trimmed]
Name = Annotated[str, Field(min_length=1, max_length=64), Trimmed]
Username = Annotated[str, Field(min_length=1, max_length=200), Trimmed]


class Input(BaseModel):
    # An unknown field is a typo or a probe (`status` on a PATCH); say so.
    model_config = ConfigDict(extra="forbid")


class UserRef(BaseModel):
    id: str
    username: str
    display_name: str


# -- incidents -------------------------------------------------------------------------------


class IncidentCreate(Input):
    title: Title
    description: Markdown = ""
    severity: Severity
    category: Name | None = None
    tags: Annotated[list[Name], Field(max_length=TAGS_MAX)] = []
    visibility: Visibility = Visibility.PUBLIC


class IncidentUpdate(Input):
    """Only the fields sent change. `commander: null` clears the commander, `category: null`
    the category."""

    title: Title | None = None
    description: Markdown | None = None
    severity: Severity | None = None
    category: Name | None = None
    tags: Annotated[list[Name], Field(max_length=TAGS_MAX)] | None = None
    visibility: Visibility | None = None
    commander: Username | None = None


class IncidentSummary(BaseModel):
    number: int
    key: str = Field(description="INC-<number>")
    title: str
    severity: Severity
    status: IncidentStatus
    visibility: Visibility
    category: str | None
    tags: list[str]
    commander: UserRef | None
    declared_at: datetime
    resolved_at: datetime | None
    updated_at: datetime


class IncidentOut(IncidentSummary):
    description: str
    description_html: str = Field(description="The description rendered and sanitised.")
    source: IncidentSource
    reporter: UserRef | None
    assignees: list[UserRef]
    watchers: list[UserRef]
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    closed_at: datetime | None
    allowed_transitions: list[IncidentStatus] = Field(
        description="The states this incident may move to next."
    )
    can_edit: bool = Field(description="Whether the caller may edit and transition it.")
    watching: bool = Field(description="Whether the caller watches it.")
    war_room_id: str | None = Field(
        default=None, description="Its chat war room (null until opened: POST .../war-room)."
    )


class IncidentPage(Page[IncidentSummary]):
    pass


class TransitionIn(Input):
    to: IncidentStatus
    note: Annotated[str, Field(max_length=COMMENT_MAX)] | None = None


class PersonIn(Input):
    username: Username


# -- comments and the timeline --------------------------------------------------------------


class CommentIn(Input):
    body: CommentBody


class CommentOut(BaseModel):
    id: str
    author: UserRef | None
    body: str
    body_html: str
    created_at: datetime
    edited_at: datetime | None
    deleted: bool


class CommentPage(Page[CommentOut]):
    pass


class NoteIn(Input):
    body: CommentBody
    pinned: StrictBool = False


class PinIn(Input):
    pinned: StrictBool


class TimelineEventOut(BaseModel):
    id: int
    at: datetime
    actor: UserRef | None
    kind: EventKind
    old_value: str | None
    new_value: str | None
    body: str
    body_html: str
    data: dict[str, Any]
    pinned: bool


class TimelinePage(Page[TimelineEventOut]):
    pass


# -- attachments -----------------------------------------------------------------------------


class AttachmentOut(BaseModel):
    id: str
    name: str
    content_type: str
    size: int
    uploader: UserRef | None
    created_at: datetime
    download_url: str
    preview: Literal["none", "pending", "ready", "failed"] = Field(
        description="Images get a small WebP preview from the images pipeline."
    )
    preview_url: str | None


# -- alert integrations (service/integrations.py) --------------------------------------------

IntegrationName = Annotated[str, Field(min_length=1, max_length=100), Trimmed]
LabelName = Annotated[str, Field(min_length=1, max_length=64), Trimmed]
LabelValue = Annotated[str, Field(min_length=1, max_length=255), Trimmed]
# What most Prometheus rules put in their `severity` label.
DEFAULT_SEVERITY_MAP: dict[str, Severity] = {
    "critical": Severity.SEV1,
    "error": Severity.SEV2,
    "warning": Severity.SEV3,
    "info": Severity.SEV4,
}
SEVERITY_MAP_MAX = 50


class IntegrationCreate(Input):
    name: IntegrationName
    kind: IntegrationKind
    severity_label: LabelName = Field(
        default="severity", description="The alert label whose value picks the severity."
    )
    severity_map: Annotated[dict[LabelValue, Severity], Field(max_length=SEVERITY_MAP_MAX)] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_MAP),
        description="Label value -> severity (values compared case-insensitively). A value "
        "that is itself SEV1..SEV4 needs no entry. Omitted: critical SEV1, error SEV2, "
        "warning SEV3, info SEV4.",
    )
    default_severity: Severity = Field(
        default=Severity.SEV3, description="The severity when no label value maps to one."
    )
    resolve_on_recovery: StrictBool = Field(
        default=False,
        description="Resolve the incident when its alerts resolve (when the workflow allows).",
    )
    category: Name | None = Field(
        default=None, description="The category of the incidents it declares."
    )


class IntegrationUpdate(Input):
    """Only the fields sent change; `category: null` clears the category. The kind (and so its
    endpoint) and the token cannot change: create another integration for those."""

    name: IntegrationName | None = None
    severity_label: LabelName | None = Field(
        default=None, description="The alert label whose value picks the severity."
    )
    severity_map: (
        Annotated[dict[LabelValue, Severity], Field(max_length=SEVERITY_MAP_MAX)] | None
    ) = Field(
        default=None,
        description="Replaces the whole map: label value -> severity (values compared "
        "case-insensitively). `{}` keeps only values that are SEV1..SEV4 themselves.",
    )
    default_severity: Severity | None = Field(
        default=None, description="The severity when no label value maps to one."
    )
    resolve_on_recovery: StrictBool | None = Field(
        default=None,
        description="Resolve the incident when its alerts resolve (when the workflow allows).",
    )
    category: Name | None = Field(
        default=None, description="The category of the incidents it declares; null clears it."
    )


class IntegrationOut(BaseModel):
    """An integration as admins see it: never its token, only the token's first characters."""

    id: str
    name: str
    kind: IntegrationKind
    url: str = Field(description="The path alerts are posted to, with the token as a Bearer.")
    token_prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    severity_label: str
    severity_map: dict[str, Severity]
    default_severity: Severity
    resolve_on_recovery: bool
    category: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool = Field(description="False once revoked: its token is refused.")


class IntegrationCreated(IntegrationOut):
    token: str = Field(description="The bearer token; shown in this answer only, never again.")


class IntegrationPage(Page[IntegrationOut]):
    pass


AlertStatus = Literal["firing", "resolved"]


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager notification. Unknown fields are ignored (Alertmanager and
    compatible senders such as Grafana add their own)."""

    model_config = ConfigDict(populate_by_name=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: IsoDateTime | None = Field(default=None, alias="startsAt")
    ends_at: IsoDateTime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""


class AlertmanagerPayload(BaseModel):
    """Prometheus Alertmanager's webhook notification, version 4 (its `webhook_config`)."""

    model_config = ConfigDict(populate_by_name=True)

    version: Literal["4"]
    group_key: Annotated[str, Field(min_length=1)] = Field(alias="groupKey")
    status: AlertStatus
    receiver: str = ""
    alerts: Annotated[list[AlertmanagerAlert], Field(min_length=1)]
    group_labels: dict[str, str] = Field(default={}, alias="groupLabels")
    common_labels: dict[str, str] = Field(default={}, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default={}, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    truncated_alerts: Annotated[int, Field(strict=True, ge=0)] = Field(
        default=0, alias="truncatedAlerts"
    )


class GenericAlert(Input):
    """The generic webhook: one alert (or one group of them) from any tool.

    `dedup_key` groups notifications: while an incident opened for that key is open, more
    `firing` notifications are added to its timeline; `resolved` records the recovery (and
    resolves the incident when the integration says so)."""

    dedup_key: Annotated[str, Field(min_length=1, max_length=255), Trimmed]
    status: AlertStatus
    title: Title
    description: Markdown = ""
    severity: Severity | None = Field(
        default=None, description="Wins over the integration's label mapping."
    )
    labels: Annotated[
        dict[LabelName, Annotated[str, Field(max_length=1000)]], Field(max_length=64)
    ] = {}


class AlertOutcome(StrEnum):
    """What an alert notification did.

    - opened: a new incident (answered 201)
    - appended: an `alert_firing` event on the group's open incident
    - resolved: an `alert_resolved` event, and the incident resolved (resolve_on_recovery)
    - recorded: an `alert_resolved` event only (or nothing, when the group has no incident)
    - duplicate: the same body was received before; nothing changed, the same incident
    """

    OPENED = "opened"
    APPENDED = "appended"
    RESOLVED = "resolved"
    RECORDED = "recorded"
    DUPLICATE = "duplicate"


class AlertResult(BaseModel):
    incident: int | None = Field(description="The incident's number, if the alert has one.")
    outcome: AlertOutcome


# -- categories and tags ----------------------------------------------------------------------


class CategoryIn(Input):
    name: Name
    description: Annotated[str, Field(max_length=500)] = ""


class CategoryUpdate(Input):
    name: Name | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str


class TagIn(Input):
    name: Name


class TagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str


# -- postmortems and follow-ups ---------------------------------------------------------------
# (kept in one section at the end of the file; the enums come from models like the others)


from opsdeck.incidents.models import FollowUpStatus as FollowUpStatus  # noqa: E402
from opsdeck.incidents.models import PostmortemStatus as PostmortemStatus  # noqa: E402

TemplateName = Annotated[str, Field(min_length=1, max_length=100), Trimmed]


class PostmortemTemplateIn(Input):
    name: TemplateName
    body: Markdown
    is_default: StrictBool = Field(
        default=False, description="New postmortems start from it (one template at a time)."
    )


class PostmortemTemplateUpdate(Input):
    name: TemplateName | None = None
    body: Markdown | None = None
    is_default: StrictBool | None = None


class PostmortemTemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    body: str = Field(
        description="Markdown; {{key}}, {{title}}, {{severity}}, {{timeline}} and "
        "{{follow_ups}} are filled in when a postmortem starts from it."
    )
    is_default: bool
    updated_at: datetime


class PostmortemCreate(Input):
    template_id: str | None = Field(
        default=None, max_length=32, description="The default template when left out."
    )


class PostmortemUpdate(Input):
    body: Markdown


class PostmortemTransitionIn(Input):
    to: PostmortemStatus


class PostmortemOut(BaseModel):
    incident_number: int
    key: str = Field(description="INC-<number>")
    status: PostmortemStatus
    body: str
    body_html: str = Field(description="The body rendered and sanitised.")
    author: UserRef | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    allowed_transitions: list[PostmortemStatus] = Field(
        description="The states the caller may move it to next."
    )
    can_edit: bool = Field(description="Whether the caller may edit and move it.")


class FollowUpCreate(Input):
    title: Title
    owner: Username | None = Field(default=None, description="A username.")
    due_date: IsoDate | None = Field(default=None, description="Today or later.")
    status: FollowUpStatus = FollowUpStatus.OPEN


class FollowUpUpdate(Input):
    """Only the fields sent change; `owner: null` and `due_date: null` clear them."""

    title: Title | None = None
    owner: Username | None = None
    due_date: IsoDate | None = None
    status: FollowUpStatus | None = None


class FollowUpOut(BaseModel):
    id: str
    incident_number: int
    incident_key: str = Field(description="INC-<number>")
    incident_title: str
    title: str
    owner: UserRef | None
    due_date: date | None
    status: FollowUpStatus
    overdue: bool = Field(description="Due before today (UTC) and not done.")
    created_at: datetime
    completed_at: datetime | None


class FollowUpPage(Page[FollowUpOut]):
    pass


# -- reports ----------------------------------------------------------------------------------


class DayCount(BaseModel):
    day: date = Field(description="A UTC day.")
    count: int


class DurationPercentiles(BaseModel):
    """A duration over the period's incidents that have it, in seconds; null when none does."""

    count: int = Field(description="How many incidents the percentiles are over.")
    p50_seconds: float | None
    p90_seconds: float | None
    p95_seconds: float | None


class IncidentStats(BaseModel):
    """Over the incidents the caller may see. `open_by_severity` is now; the rest is over the
    period [since, until): incidents declared in it (by status, MTTA, MTTR), declared and
    resolved per UTC day (every day listed, zero-filled)."""

    since: datetime
    until: datetime
    open_by_severity: dict[Severity, int]
    by_status: dict[IncidentStatus, int]
    created_per_day: list[DayCount]
    resolved_per_day: list[DayCount]
    mtta: DurationPercentiles = Field(description="Declared to acknowledged.")
    mttr: DurationPercentiles = Field(description="Declared to resolved.")


# -- notification preferences (api/notifications.py) ---------------------------------------


class NotificationPreferences(BaseModel):
    """Which incident e-mails a user gets (all on by default)."""

    assignment: bool
    status_change: bool
    comment: bool
    follow_up_due: bool
    daily_digest: bool
    chat_mentions: bool = Field(
        description="Chat mentions and direct messages left unread, as an e-mail digest."
    )


class NotificationPreferencesUpdate(BaseModel):
    """Only the kinds sent change."""

    model_config = {"extra": "forbid"}

    assignment: StrictBool | None = None
    status_change: StrictBool | None = None
    comment: StrictBool | None = None
    follow_up_due: StrictBool | None = None
    daily_digest: StrictBool | None = None
    chat_mentions: StrictBool | None = None


# -- outbound webhooks (service/outbound.py) --------------------------------------------------

# The events an endpoint may subscribe to, in the order they are listed.
WEBHOOK_EVENTS = (
    "incident.created",
    "incident.status_changed",
    "incident.resolved",
    "incident.comment_added",
)


class WebhookEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="http(s) URL the events go to")
    events: list[str] = Field(
        default=[],
        max_length=len(WEBHOOK_EVENTS),
        description=f"Any of {', '.join(WEBHOOK_EVENTS)}; empty: all of them.",
    )


class WebhookEndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    is_active: bool
    created_at: datetime


class WebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="Also the X-OpsDeck-Delivery header of every attempt.")
    event: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveryPage(Page[WebhookDeliveryOut]):
    pass
