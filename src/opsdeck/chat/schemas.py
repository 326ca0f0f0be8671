"""Request and response bodies of the chat API and the payloads of its Socket.IO events
(docs/chat.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from opsdeck.chat.models import AttachmentStatus as AttachmentStatus
from opsdeck.chat.models import ConversationKind as ConversationKind
from opsdeck.chat.models import MemberRole as MemberRole
from opsdeck.chat.models import PresenceStatus as PresenceStatus
from opsdeck.chat.models import RoomVisibility as RoomVisibility
from opsdeck.core.pagination import MAX_QUERY_INT, Page
from opsdeck.core.params import Trimmed

# Characters, checked before the service's byte limit (10 KB) so that a huge body is refused
# without being encoded; the byte limit is the rule.
BODY_MAX_CHARS = 20_000
RoomName = Annotated[str, Field(min_length=1, max_length=80), Trimmed]
Topic = Annotated[str, Field(max_length=250), AfterValidator(str.strip)]
Description = Annotated[str, StringConstraints(max_length=1000)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Body = Annotated[str, Field(max_length=BODY_MAX_CHARS)]
# One emoji grapheme (checked by the service); a bound on its length first.
Emoji = Annotated[str, StringConstraints(min_length=1, max_length=32)]
# Strict: a JSON `false` or `"3"` is not a sequence number (bodies and socket payloads only).
Seq = Annotated[int, Field(strict=True, ge=0, le=MAX_QUERY_INT)]
AttachmentIds = Annotated[
    list[Id],
    Field(
        max_length=10,
        description="Your uploads to this conversation (POST .../attachments), at most 10.",
    ),
]


class Input(BaseModel):
    # An unknown field is a typo or a probe (an `author` in a message); say so.
    model_config = ConfigDict(extra="forbid")


class UserRef(BaseModel):
    id: str
    username: str
    display_name: str


# -- rooms -----------------------------------------------------------------------------------


class RoomCreate(Input):
    name: RoomName
    visibility: RoomVisibility
    topic: Topic = ""
    description: Description = ""


class RoomOut(BaseModel):
    id: str
    kind: ConversationKind
    visibility: RoomVisibility
    name: str
    topic: str
    description: str
    created_at: datetime
    last_activity_at: datetime
    archived_at: datetime | None
    last_seq: int = Field(description="The sequence number of the latest message (0: none).")
    member: bool = Field(description="Whether the caller is in the conversation.")
    role: MemberRole | None
    last_read_seq: int
    unread: int = Field(description="Messages by others after the caller's read pointer.")
    mentions: int = Field(
        default=0,
        description="Unread messages by others that mention the caller or @room.",
    )
    incident_number: int | None = Field(
        default=None, description="A war room: the incident it was opened for."
    )
    member_count: int
    members: list[UserRef] = Field(
        description="The people of a direct message (empty for rooms: see /members)."
    )


class RoomPage(Page[RoomOut]):
    pass


class MemberIn(Input):
    user_id: Id


class RoleIn(Input):
    role: MemberRole


class MemberOut(BaseModel):
    user: UserRef
    role: MemberRole
    joined_at: datetime
    presence: PresenceStatus = Field(
        default=PresenceStatus.OFFLINE, description="online, away (tabs hidden) or offline."
    )


class PresenceItem(BaseModel):
    user_id: str
    status: PresenceStatus


class PresenceList(BaseModel):
    items: list[PresenceItem]


class DmCreate(Input):
    user_ids: list[Id] = Field(min_length=1, max_length=9)


class ReadIn(Input):
    seq: Seq


class ReadOut(BaseModel):
    room_id: str
    last_read_seq: int
    unread: int
    mentions: int = 0


# -- messages --------------------------------------------------------------------------------


class MessageCreate(Input):
    client_id: ClientId = Field(
        description="Chosen by the client (a UUID): sending it again answers the same message."
    )
    body: Body
    reply_to: Id | None = None
    attachment_ids: AttachmentIds = []


class MessageEditIn(Input):
    body: Body


class ChatAttachmentOut(BaseModel):
    id: str
    filename: str
    content_type: str = Field(description="Detected from the uploaded bytes.")
    size: int = Field(description="The uploaded file's size in bytes.")
    url: str = Field(
        description="The file to show or download: for an image, its compressed copy (WebP) "
        "once made, the upload itself until then."
    )
    preview_url: str | None = Field(description="A small WebP preview of an image, once made.")
    original_url: str | None = Field(
        description="An image's uploaded original, when its uploader asked to keep it."
    )
    status: AttachmentStatus
    message_id: str | None = Field(description="The message it was sent in (null: not yet).")
    created_at: datetime


class PinOut(BaseModel):
    number: int = Field(description="The incident's number.")
    event_id: int = Field(description="The pinned note on the incident's timeline.")


class ReactionOut(BaseModel):
    emoji: str
    count: int
    user_ids: list[str]


class MessageOut(BaseModel):
    id: str
    room_id: str
    seq: int
    client_id: str
    author: UserRef | None
    body: str
    body_html: str = Field(description="Sanitised HTML rendered from the Markdown body.")
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    reply_to: str | None = Field(description="The root of the thread this reply is in.")
    reactions: list[ReactionOut] = Field(
        default_factory=list, description="Per emoji, in the order each was first used."
    )
    reply_count: int = Field(default=0, description="Replies in its thread (a root).")
    last_reply_at: datetime | None = None
    attachments: list[ChatAttachmentOut] = []
    mentions: list[str] = Field(
        default_factory=list, description="The ids of the members it mentions, in order."
    )
    mentions_room: bool = Field(default=False, description="Whether it mentions @room.")
    pinned_to_incident: PinOut | None = Field(
        default=None, description="The incident timeline event it is pinned to."
    )


class MessagePage(Page[MessageOut]):
    pass


class ThreadOut(BaseModel):
    root: MessageOut
    items: list[MessageOut] = Field(description="Replies in sequence order.")
    next_cursor: str | None


class ReactionIn(Input):
    emoji: Emoji


class MessageVersionOut(BaseModel):
    body: str
    edited_at: datetime


class RoomRef(BaseModel):
    id: str
    name: str
    kind: ConversationKind


class SearchHit(BaseModel):
    message: MessageOut
    room: RoomRef
    rank: float | None = Field(description="Relevance (higher is better); null by date.")


class SearchPage(Page[SearchHit]):
    pass


# -- Socket.IO payloads (client -> server) -------------------------------------------------------


class RoomEvent(Input):
    room_id: Id


class SendEvent(Input):
    room_id: Id
    client_id: ClientId
    body: Body
    reply_to: Id | None = None
    attachment_ids: AttachmentIds = []


class EditEvent(Input):
    id: Id
    body: Body


class DeleteEvent(Input):
    id: Id


class ReadEvent(Input):
    room_id: Id
    seq: Seq


class SyncEvent(Input):
    room_id: Id
    after_seq: Seq = 0


class ReactionEvent(Input):
    id: Id
    emoji: Emoji


class PresenceEvent(Input):
    status: Literal["online", "away"]


class LiveEvent(Input):
    topic: Annotated[str, StringConstraints(min_length=1, max_length=120)]
