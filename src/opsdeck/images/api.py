"""Images HTTP API: thin routers over images.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import NotFound, error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import MAX_QUERY_INT, PageParams, page_params
from opsdeck.core.storage import media_store
from opsdeck.core.uploads import read_upload
from opsdeck.images import intake, service
from opsdeck.images.models import ImageBatch
from opsdeck.images.presenters import batch_out, batch_summary, output_csv_lines
from opsdeck.images.schemas import BatchOut, BatchPage, BatchSummary, RetryOut
from opsdeck.settings import Settings

router = APIRouter(prefix=f"{API_PREFIX}/images", tags=["images"])
media_router = APIRouter(tags=["images"])

WebhookField = Annotated[
    str | None, Form(description="Called with a signed POST when the batch is done.")
]
OperationsField = Annotated[
    str | None,
    Form(description='JSON, e.g. {"quality": 50, "format": "webp", "max_width": 512}'),
]


def _accepted(response: Response, settings: Settings, batch: ImageBatch) -> BatchSummary:
    response.headers["Location"] = f"{API_PREFIX}/images/batches/{batch.id}"
    return batch_summary(settings, batch, service.Counts(total=batch.total_images))


@router.post(
    "/batches",
    name="images-create-batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchSummary,
    responses=error_responses(400, 401, 403, 413, 415, 422),
    summary="Start a batch from a CSV of products and image URLs",
)
async def create_batch(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="CSV: S. No., Product Name, Input Image Urls")],
    webhook_url: WebhookField = None,
    operations: OperationsField = None,
) -> BatchSummary:
    data = await read_upload(file, settings.max_file_size)

    # Parsing, checking every URL and inserting a 1,000-row CSV is ~100 ms of CPU and database
    # work: off the event loop, so other requests are not held behind it.
    def create() -> ImageBatch:
        request = intake.parse_batch_request(settings, webhook_url, operations)
        products, columns = intake.parse_csv(settings, data)
        return service.create_csv_batch(
            session,
            user,
            columns=columns,
            products=products,
            operations=request.operations,
            webhook_url=request.webhook_url,
        )

    batch = await run_in_threadpool(create)
    return _accepted(response, settings, batch)


@router.post(
    "/uploads",
    name="images-create-upload",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchSummary,
    responses=error_responses(400, 401, 403, 413, 415, 422),
    summary="Start a batch from uploaded image files",
)
async def create_upload(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    files: Annotated[list[UploadFile], File(description="One or more image files")],
    webhook_url: WebhookField = None,
    operations: OperationsField = None,
) -> BatchSummary:
    request = intake.parse_batch_request(settings, webhook_url, operations)
    uploads = await intake.store_uploads(settings, files)
    batch = await run_in_threadpool(
        lambda: service.create_upload_batch(
            session,
            user,
            uploads=uploads,
            operations=request.operations,
            webhook_url=request.webhook_url,
        )
    )
    return _accepted(response, settings, batch)


BatchPageParams = Annotated[
    PageParams, Depends(page_params(service.BATCH_SORTS, default_limit=20, max_limit=100))
]


@router.get(
    "/batches",
    name="images-list-batches",
    response_model=BatchPage,
    responses=error_responses(401, 422),
)
def list_batches(
    session: SessionDep, settings: SettingsDep, user: CurrentUser, page: BatchPageParams
) -> BatchPage:
    batches = service.list_batches(session, user, page)
    counts = service.counts_for(session, [batch.id for batch in batches.items])
    return BatchPage(
        items=[batch_summary(settings, batch, counts[batch.id]) for batch in batches.items],
        next_cursor=batches.next_cursor,
    )


@router.get(
    "/batches/{request_id}",
    name="images-get-batch",
    response_model=BatchOut,
    responses=error_responses(401, 404, 422),
)
def get_batch(
    request_id: str,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    products_offset: Annotated[
        int, Query(ge=0, le=MAX_QUERY_INT, description="Skip this many products (input order).")
    ] = 0,
    products_limit: Annotated[
        int | None,
        Query(ge=0, le=1000, description="At most this many products; 0: counts only."),
    ] = None,
) -> BatchOut:
    """The batch with every product and image, or a page of products: a 10,000-row batch
    watched live is better read a page at a time."""
    batch = service.get_batch(session, user, request_id)
    return batch_out(session, settings, batch, offset=products_offset, limit=products_limit)


@router.get(
    "/batches/{request_id}/output.csv",
    name="images-output-csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 404)},
)
def output_csv(
    request_id: str, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> StreamingResponse:
    batch = service.get_batch(session, user, request_id)
    lines = list(output_csv_lines(session, settings, batch))
    return StreamingResponse(
        iter(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{batch.id}-output.csv"'},
    )


@router.post(
    "/batches/{request_id}/retry",
    name="images-retry-batch",
    response_model=RetryOut,
    responses=error_responses(401, 403, 404, 409),
)
def retry_batch(
    request_id: str, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> RetryOut:
    # The batch's failed images run again, and so do its stuck ones (`pending` with no task
    # left to run them, `processing` past their deadline); `retried_images` counts both.
    batch = service.get_batch(session, user, request_id)
    ids = service.retry_batch(session, batch, settings)
    return RetryOut(request_id=batch.id, retried_images=len(ids))


@router.post(
    "/batches/{request_id}/cancel",
    name="images-cancel-batch",
    response_model=BatchSummary,
    responses=error_responses(401, 403, 404, 409),
)
def cancel_batch(
    request_id: str, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> BatchSummary:
    batch = service.get_batch(session, user, request_id)
    service.cancel(session, batch)
    return batch_summary(settings, batch, service.counts_for(session, [batch.id])[batch.id])


@media_router.get("/media/{name}", name="images-media", include_in_schema=False)
def media(name: str, request: Request, session: SessionDep) -> FileResponse:
    token, _, _extension = name.partition(".")
    item = service.find_output(session, token)
    settings: Settings = request.app.state.settings
    store = media_store(settings)
    if item is None or item.output_key is None or not store.exists(item.output_key):
        raise NotFound("No such image.", code="media_not_found")
    return FileResponse(
        store.path(item.output_key),
        media_type=intake.content_type(item.output_format),
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
