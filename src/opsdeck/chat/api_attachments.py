"""Chat attachments over HTTP: upload to a conversation, then read, download, preview and the
kept original (docs/chat.md). Thin: chat.service.attachments decides."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.chat.presenters import attachments_out
from opsdeck.chat.schemas import ChatAttachmentOut
from opsdeck.chat.service import Actor, attachments
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import NotFound, error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.storage import media_store
from opsdeck.core.uploads import DOWNLOAD_HEADERS, read_upload
from opsdeck.settings import Settings

router = APIRouter(prefix=f"{API_PREFIX}/chat", tags=["chat"])

RoomId = Annotated[str, Path(min_length=1, max_length=64, description="A conversation's id.")]
AttachmentId = Annotated[str, Path(min_length=1, max_length=64)]
AUTH = (401, 403)


@router.post(
    "/rooms/{room_id}/attachments",
    name="chat-upload-attachment",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatAttachmentOut,
    responses=error_responses(*AUTH, 404, 409, 413, 415, 422, 429),
    summary="Upload a file to send in a message (attachment_ids); images get a preview",
)
async def upload(
    room_id: RoomId,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="Up to OPSDECK_CHAT_ATTACHMENT_MAX_BYTES.")],
    keep_original: Annotated[
        bool, Form(description="Keep an image's original besides its compressed copy.")
    ] = False,
) -> ChatAttachmentOut:
    data = await read_upload(file, settings.chat_attachment_max_bytes)

    def record() -> ChatAttachmentOut:
        attachment = attachments.upload(
            session,
            settings,
            user,
            room_id,
            name=file.filename,
            data=data,
            claimed_type=file.content_type,
            keep_original=keep_original,
        )
        return attachments_out(session, [attachment])[0]

    return await run_in_threadpool(record)


@router.get(
    "/attachments/{attachment_id}",
    name="chat-get-attachment",
    response_model=ChatAttachmentOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="An attachment: its status (an image's preview and compressed copy) and links",
)
def get_attachment(
    attachment_id: AttachmentId, session: SessionDep, user: CurrentUser
) -> ChatAttachmentOut:
    return attachments_out(session, [attachments.get_attachment(session, user, attachment_id)])[0]


# A download's part of an attachment: which file of its state, and whether the browser saves
# it (an `attachment` with its name) or shows it (the preview).
FilePart = Literal["file", "preview", "original"]
DOWNLOADED: dict[FilePart, bool] = {"file": True, "preview": False, "original": True}


def _serve(
    session: Session, settings: Settings, user: Actor, attachment_id: str, part: FilePart
) -> FileResponse:
    """One part of an attachment the user may read (`attachments.get_attachment`), or a 404
    when it has no such file (yet) or the media store lost it."""
    attachment = attachments.get_attachment(session, user, attachment_id)
    stored: attachments.StoredFile | None = getattr(
        attachments.describe(session, [attachment])[0], part
    )
    if stored is None:
        raise NotFound("This attachment has no such file.", code="attachment_not_found")
    path = media_store(settings).path(stored.key)
    if not path.is_file():
        raise NotFound("The file is missing from the media store.", code="attachment_not_found")
    return FileResponse(
        path,
        media_type=stored.content_type,
        filename=stored.filename if DOWNLOADED[part] else None,
        content_disposition_type="attachment",
        headers=DOWNLOAD_HEADERS,
    )


@router.get(
    "/attachments/{attachment_id}/file",
    name="chat-download-attachment",
    response_class=FileResponse,
    responses=error_responses(*AUTH, 404, 422),
    summary="Download an attachment (an image: its compressed copy once made)",
)
def download(
    attachment_id: AttachmentId, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> FileResponse:
    return _serve(session, settings, user, attachment_id, "file")


@router.get(
    "/attachments/{attachment_id}/preview",
    name="chat-attachment-preview",
    response_class=FileResponse,
    responses=error_responses(*AUTH, 404, 422),
    summary="An image attachment's small WebP preview",
)
def preview(
    attachment_id: AttachmentId, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> FileResponse:
    return _serve(session, settings, user, attachment_id, "preview")


@router.get(
    "/attachments/{attachment_id}/original",
    name="chat-attachment-original",
    response_class=FileResponse,
    responses=error_responses(*AUTH, 404, 422),
    summary="An image attachment's uploaded original (when its uploader kept it)",
)
def original(
    attachment_id: AttachmentId, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> FileResponse:
    return _serve(session, settings, user, attachment_id, "original")
