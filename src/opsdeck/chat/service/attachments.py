"""Files sent in messages: uploaded to a conversation first (only their uploader sees them),
then sent with a message (`attachment_ids`), downloaded by the conversation's members.

- The bytes go to the media store. Their type is detected from the bytes, never from the name
  or the type the uploader claims: a file claiming to be an image that is not one, or of a
  type outside `OPSDECK_CHAT_ATTACHMENT_TYPES`, is a 415; an image whose header is damaged is
  a 422 `invalid_image`; a file over `OPSDECK_CHAT_ATTACHMENT_MAX_BYTES` a 413.
- An image goes through the images pipeline twice (images.service.start_preview): a small
  preview and a compressed copy. The compressed copy is what `url` serves once it is made; the
  uploaded original is served (`original_url`) only when the uploader asked to keep it.
- Downloads are for the conversation's members only (an admin or a reader of a public room who
  is not in it gets a 404), and end with the message: deleting it deletes its attachments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opsdeck.chat.models import Attachment, AttachmentStatus, Message
from opsdeck.chat.service.access import Actor, active_member, require_member, require_writable
from opsdeck.core.errors import NotFound, TooManyRequests, UnsupportedMediaType, ValidationFailed
from opsdeck.core.ratelimit import RateLimit, rate_limiter
from opsdeck.core.storage import media_store
from opsdeck.core.uploads import clean_name, sniff_content_type
from opsdeck.images import service as images
from opsdeck.settings import Settings

MAX_ATTACHMENTS_PER_MESSAGE = 10
# Uploads per user: a burst of 20, refilled over a minute.
UPLOAD_LIMIT = RateLimit("chat.upload", 20, 60.0)
IDS_FIELD = "body.attachment_ids"


def allowed_types(settings: Settings) -> frozenset[str]:
    return frozenset(
        part.strip().lower() for part in settings.chat_attachment_types.split(",") if part.strip()
    )


def _not_found() -> NotFound:
    return NotFound("There is no such attachment.", code="attachment_not_found")


def detect_type(settings: Settings, data: bytes, claimed: str | None) -> tuple[str, bool]:
    """The type of an upload from its bytes, and whether it is an image for the pipeline;
    refuses what may not be attached (see the module's docstring)."""
    fmt = images.processable_image(data)
    if fmt is not None:
        images.check_image(data, max_pixels=settings.images_max_pixels)
        content_type = images.image_content_type(fmt)
    else:
        content_type = sniff_content_type(data)
        if (claimed or "").strip().lower().startswith("image/"):
            raise UnsupportedMediaType(
                f"The file claims to be an image ({claimed}) but its bytes are {content_type}.",
                code="type_mismatch",
                details=[{"field": "body.file", "message": f"detected {content_type}"}],
            )
    if content_type not in allowed_types(settings):
        raise UnsupportedMediaType(
            f"Files of type {content_type} cannot be attached.",
            code="unsupported_type",
            details=[{"field": "body.file", "message": f"detected {content_type}"}],
        )
    return content_type, fmt is not None


def upload(
    session: Session,
    settings: Settings,
    actor: Actor,
    conversation_id: str,
    *,
    name: str | None,
    data: bytes,
    claimed_type: str | None,
    keep_original: bool = False,
) -> Attachment:
    """Check, store and record a file for a message the actor is about to send here."""
    conversation, _member = require_member(session, actor, conversation_id)
    require_writable(conversation)
    decision = rate_limiter(settings).hit(UPLOAD_LIMIT, actor.id)
    if not decision.allowed:
        raise TooManyRequests(
            "Slow down: too many uploads.", retry_after=decision.retry_after, code="rate_limited"
        )
    content_type, image = detect_type(settings, data, claimed_type)
    key = media_store(settings).put(data)
    filename = clean_name(name)
    attachment = Attachment(
        conversation_id=conversation.id,
        uploader_id=actor.id,
        filename=filename,
        content_type=content_type,
        size=len(data),
        key=key,
        keep_original=keep_original,
    )
    if image:
        attachment.preview_batch_id = images.start_preview(session, actor, name=filename, key=key)
        attachment.compressed_batch_id = images.start_preview(
            session, actor, name=filename, key=key, operations=images.COMPRESSED_OPERATIONS
        )
    session.add(attachment)
    session.flush()
    return attachment


def claim(
    session: Session, actor: Actor, conversation_id: str, attachment_ids: Sequence[str]
) -> list[Attachment]:
    """The actor's unsent uploads to this conversation named by `attachment_ids`, in that
    order; a 422 naming the field for any other id, a repeated one or more than 10."""
    if len(attachment_ids) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise ValidationFailed(
            f"A message has at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments.",
            details=[{"field": IDS_FIELD, "message": "too many", "type": "too_long"}],
        )
    if len(set(attachment_ids)) != len(attachment_ids):
        raise ValidationFailed(
            "An attachment is named twice.",
            details=[{"field": IDS_FIELD, "message": "repeated id", "type": "duplicate"}],
        )
    if not attachment_ids:
        return []
    found = {
        row.id: row
        for row in session.scalars(
            select(Attachment).where(Attachment.id.in_(list(attachment_ids))).with_for_update()
        )
    }
    problems = [
        attachment_id
        for attachment_id in attachment_ids
        if (row := found.get(attachment_id)) is None
        or row.uploader_id != actor.id
        or row.conversation_id != conversation_id
        or row.message_id is not None
    ]
    if problems:
        raise ValidationFailed(
            "Attach only files you uploaded to this conversation and have not sent yet.",
            code="invalid_attachment",
            details=[
                {"field": IDS_FIELD, "message": "not an unsent upload of yours", "value": value}
                for value in problems
            ],
        )
    return [found[attachment_id] for attachment_id in attachment_ids]


def bind(attachments: Sequence[Attachment], message: Message) -> None:
    for position, attachment in enumerate(attachments):
        attachment.message_id = message.id
        attachment.position = position


def of_messages(session: Session, message_ids: Iterable[str]) -> dict[str, list[Attachment]]:
    ids = sorted(set(message_ids))
    result: dict[str, list[Attachment]] = {}
    if not ids:
        return result
    for row in session.scalars(
        select(Attachment)
        .where(Attachment.message_id.in_(ids))
        .order_by(Attachment.message_id, Attachment.position)
    ):
        result.setdefault(row.message_id or "", []).append(row)
    return result


def drop_for_message(session: Session, message_id: str) -> None:
    """A deleted message's attachments go with it (the files stay in the media store, which
    may hold the same bytes for another record)."""
    session.execute(delete(Attachment).where(Attachment.message_id == message_id))


def get_attachment(session: Session, actor: Actor, attachment_id: str) -> Attachment:
    """An attachment the actor may download: an unsent one is its uploader's only; a sent one
    is for the conversation's members. Anything else is a 404."""
    attachment = session.get(Attachment, attachment_id)
    if attachment is None:
        raise _not_found()
    if attachment.message_id is None:
        if attachment.uploader_id != actor.id:
            raise _not_found()
    elif active_member(session, attachment.conversation_id, actor.id) is None:
        raise _not_found()
    return attachment


# -- what is served --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    key: str
    content_type: str
    filename: str


@dataclass(frozen=True)
class AttachmentState:
    attachment: Attachment
    status: AttachmentStatus
    # What `url` serves: the compressed copy once made, else the upload itself.
    file: StoredFile
    preview: StoredFile | None
    original: StoredFile | None


def _webp_name(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return f"{stem}.webp"


def describe(session: Session, attachments: Sequence[Attachment]) -> list[AttachmentState]:
    """Each attachment's status and files (one query for every image's pipeline state)."""
    batch_ids = [
        batch_id
        for row in attachments
        for batch_id in (row.preview_batch_id, row.compressed_batch_id)
        if batch_id is not None
    ]
    found = images.previews_of(session, batch_ids)
    states = []
    for row in attachments:
        upload = StoredFile(row.key, row.content_type, row.filename)
        status = AttachmentStatus.READY
        served, preview, original = upload, None, None
        if row.preview_batch_id is not None or row.compressed_batch_id is not None:
            original = upload if row.keep_original else None
            made = [found.get(row.preview_batch_id or ""), found.get(row.compressed_batch_id or "")]
            if any(p is None or p.status == "failed" for p in made):
                status = AttachmentStatus.FAILED
            elif any(p is not None and p.status != "succeeded" for p in made):
                status = AttachmentStatus.PROCESSING
            small, compressed = made
            if small is not None and small.status == "succeeded" and small.key:
                preview = StoredFile(small.key, small.content_type or "image/webp", row.filename)
            if compressed is not None and compressed.status == "succeeded" and compressed.key:
                kind = compressed.content_type or "image/webp"
                served = StoredFile(compressed.key, kind, _webp_name(row.filename))
        states.append(AttachmentState(row, status, served, preview, original))
    return states
