"""Files attached to an incident: kept in the media store, listed on the incident, downloaded
by whoever sees it. An image also goes through the images pipeline for a small WebP preview.

A download is always served as an attachment with the type we detected, never the type the
uploader claimed, so an uploaded HTML or SVG file cannot run in the application's origin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.core.db import utcnow
from opsdeck.core.errors import Forbidden, NotFound, ValidationFailed
from opsdeck.core.uploads import GENERIC_TYPE, clean_name
from opsdeck.images import service as images
from opsdeck.incidents.models import Attachment, EventKind
from opsdeck.incidents.service import timeline
from opsdeck.incidents.service.access import Actor, get_visible
from opsdeck.incidents.service.hooks import Change, IncidentEvent, changed

IMAGE_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}
MAX_ATTACHMENTS_PER_INCIDENT = 100


@dataclass(frozen=True)
class AttachmentPreview:
    state: str  # none | pending | ready | failed
    key: str | None = None
    content_type: str | None = None


def attach(
    session: Session, actor: Actor, number: int, *, name: str | None, data: bytes, key: str
) -> Attachment:
    """Record a file already stored under `key` (its bytes are `data`)."""
    incident = get_visible(session, actor, number)
    count = len(
        session.scalars(
            select(Attachment.id).where(
                Attachment.incident_number == number, Attachment.deleted_at.is_(None)
            )
        ).all()
    )
    if count >= MAX_ATTACHMENTS_PER_INCIDENT:
        raise ValidationFailed(
            f"An incident holds at most {MAX_ATTACHMENTS_PER_INCIDENT} attachments.",
            details=[{"field": "body.file", "message": "too many attachments"}],
        )
    fmt = images.processable_image(data)
    filename = clean_name(name)
    attachment = Attachment(
        incident_number=number,
        uploader_id=actor.id,
        name=filename,
        content_type=IMAGE_TYPES.get(fmt or "", GENERIC_TYPE),
        size=len(data),
        key=key,
    )
    if fmt is not None:
        attachment.preview_batch_id = images.start_preview(session, actor, name=filename, key=key)
    session.add(attachment)
    session.flush()
    timeline.record(
        session,
        number,
        EventKind.ATTACHMENT_ADDED,
        actor_id=actor.id,
        new=filename,
        data={"attachment_id": attachment.id, "size": len(data)},
    )
    incident.updated_at = utcnow()
    changed(session, incident, Change(IncidentEvent.UPDATED, actor, data={"attachment": filename}))
    return attachment


def list_attachments(session: Session, actor: Actor, number: int) -> Sequence[Attachment]:
    get_visible(session, actor, number)
    return session.scalars(
        select(Attachment)
        .where(Attachment.incident_number == number, Attachment.deleted_at.is_(None))
        .order_by(Attachment.created_at, Attachment.id)
    ).all()


def get_attachment(session: Session, actor: Actor, number: int, attachment_id: str) -> Attachment:
    get_visible(session, actor, number)
    attachment = session.get(Attachment, attachment_id)
    if (
        attachment is None
        or attachment.incident_number != number
        or attachment.deleted_at is not None
    ):
        raise NotFound("There is no such attachment.")
    return attachment


def preview(session: Session, attachment: Attachment) -> AttachmentPreview:
    if attachment.preview_batch_id is None:
        return AttachmentPreview("none")
    found = images.preview_of(session, attachment.preview_batch_id)
    if found is None:
        return AttachmentPreview("failed")
    if found.status == "succeeded" and found.key:
        return AttachmentPreview("ready", found.key, found.content_type)
    return AttachmentPreview("failed" if found.status == "failed" else "pending")


def delete_attachment(session: Session, actor: Actor, number: int, attachment_id: str) -> None:
    """Soft: the file stays in the store (another row may share its content)."""
    attachment = get_attachment(session, actor, number, attachment_id)
    if attachment.uploader_id != actor.id and not actor.is_admin:
        raise Forbidden("Only its uploader or an admin may remove an attachment.")
    attachment.deleted_at = utcnow()
    session.flush()
