"""Attachments of an incident: upload, list, download, preview, remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, UploadFile, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import NotFound, error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import MAX_QUERY_INT
from opsdeck.core.storage import media_store
from opsdeck.core.uploads import DOWNLOAD_HEADERS, read_upload
from opsdeck.incidents.models import Attachment
from opsdeck.incidents.presenters import People
from opsdeck.incidents.schemas import AttachmentOut
from opsdeck.incidents.service import attachments

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])

Number = Annotated[int, Path(ge=1, le=MAX_QUERY_INT)]
AttachmentId = Annotated[str, Path(max_length=32)]


def _out(session: SessionDep, items: list[Attachment]) -> list[AttachmentOut]:
    people = People(session, (a.uploader_id for a in items))
    result = []
    for item in items:
        base = f"{API_PREFIX}/incidents/{item.incident_number}/attachments/{item.id}"
        state = attachments.preview(session, item).state
        result.append(
            AttachmentOut(
                id=item.id,
                name=item.name,
                content_type=item.content_type,
                size=item.size,
                uploader=people.ref(item.uploader_id),
                created_at=item.created_at,
                download_url=base,
                preview=state,
                preview_url=f"{base}/preview" if state == "ready" else None,
            )
        )
    return result


@router.post(
    "/{number:int}/attachments",
    name="incidents-attach",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentOut,
    responses=error_responses(401, 403, 404, 413, 422),
    summary="Attach a file (images get a preview)",
)
async def attach(
    number: Number,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="Any file up to OPSDECK_MAX_FILE_SIZE.")],
) -> AttachmentOut:
    data = await read_upload(file, settings.max_file_size)

    def store_and_record() -> AttachmentOut:
        key = media_store(settings).put(data)
        attachment = attachments.attach(
            session, user, number, name=file.filename, data=data, key=key
        )
        return _out(session, [attachment])[0]

    return await run_in_threadpool(store_and_record)


@router.get(
    "/{number:int}/attachments",
    name="incidents-list-attachments",
    response_model=list[AttachmentOut],
    responses=error_responses(401, 404, 422),
)
def list_attachments(number: Number, session: SessionDep, user: CurrentUser) -> list[AttachmentOut]:
    return _out(session, list(attachments.list_attachments(session, user, number)))


@router.get(
    "/{number:int}/attachments/{attachment_id}",
    name="incidents-download-attachment",
    response_class=FileResponse,
    responses=error_responses(401, 404, 422),
)
def download(
    number: Number,
    attachment_id: AttachmentId,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> FileResponse:
    item = attachments.get_attachment(session, user, number, attachment_id)
    path = media_store(settings).path(item.key)
    if not path.is_file():
        raise NotFound("The file of this attachment is missing from the media store.")
    return FileResponse(
        path,
        media_type=item.content_type,
        filename=item.name,
        content_disposition_type="attachment",
        headers=DOWNLOAD_HEADERS,
    )


@router.get(
    "/{number:int}/attachments/{attachment_id}/preview",
    name="incidents-attachment-preview",
    response_class=FileResponse,
    responses=error_responses(401, 404, 422),
)
def preview(
    number: Number,
    attachment_id: AttachmentId,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> FileResponse:
    item = attachments.get_attachment(session, user, number, attachment_id)
    found = attachments.preview(session, item)
    if found.key is None:
        raise NotFound(f"This attachment has no preview ({found.state}).")
    return FileResponse(
        media_store(settings).path(found.key),
        media_type=found.content_type or "image/webp",
        headers=DOWNLOAD_HEADERS,
    )


@router.delete(
    "/{number:int}/attachments/{attachment_id}",
    name="incidents-delete-attachment",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete(
    number: Number, attachment_id: AttachmentId, session: SessionDep, user: CurrentUser
) -> None:
    attachments.delete_attachment(session, user, number, attachment_id)
