"""Request and response bodies of the incidents API (docs/incidents.md)."""

from __future__ import annotations

from datetime import date, datetime
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
