"""Request and response bodies of the incidents API (docs/incidents.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opsdeck.core.pagination import Page
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

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX)]
Markdown = Annotated[str, Field(max_length=MARKDOWN_MAX)]
CommentBody = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=COMMENT_MAX)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


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
    """Only the fields sent change. `commander: null` clears the commander."""

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
    pinned: bool = False


class PinIn(Input):
    pinned: bool


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

from datetime import date  # noqa: E402

from opsdeck.incidents.models import FollowUpStatus as FollowUpStatus  # noqa: E402
from opsdeck.incidents.models import PostmortemStatus as PostmortemStatus  # noqa: E402

TemplateName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]


class PostmortemTemplateIn(Input):
    name: TemplateName
    body: Markdown
    is_default: bool = Field(
        default=False, description="New postmortems start from it (one template at a time)."
    )


class PostmortemTemplateUpdate(Input):
    name: TemplateName | None = None
    body: Markdown | None = None
    is_default: bool | None = None


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
    due_date: date | None = Field(default=None, description="Today or later.")
    status: FollowUpStatus = FollowUpStatus.OPEN


class FollowUpUpdate(Input):
    """Only the fields sent change; `owner: null` and `due_date: null` clear them."""

    title: Title | None = None
    owner: Username | None = None
    due_date: date | None = None
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
