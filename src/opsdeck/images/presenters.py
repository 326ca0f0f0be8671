"""Presenters: shaping batches for the API and the output CSV."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from opsdeck.core.http import API_PREFIX
from opsdeck.images import service
from opsdeck.images.csv_output import OutputImage, OutputRow, iter_output_csv
from opsdeck.images.formats import content_type_and_extension
from opsdeck.images.models import ImageBatch, ImageItem, ImageStatus
from opsdeck.images.schemas import BatchOut, BatchSummary, ImageOut, ProductOut, WebhookOut
from opsdeck.settings import Settings


def output_url(settings: Settings, item: ImageItem) -> str | None:
    if item.status != ImageStatus.SUCCEEDED or not item.output_token or not item.output_format:
        return None
    extension = content_type_and_extension(item.output_format)[1]
    return f"{settings.public_base_url}/media/{item.output_token}{extension}"


def output_csv_url(settings: Settings, batch: ImageBatch) -> str:
    return f"{settings.public_base_url}{API_PREFIX}/images/batches/{batch.id}/output.csv"


def batch_summary(settings: Settings, batch: ImageBatch, counts: service.Counts) -> BatchSummary:
    return BatchSummary(
        request_id=batch.id,
        status=batch.status,
        source=batch.source,
        total_images=batch.total_images,
        processed_images=counts.processed,
        failed_images=counts.failed,
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        webhook=WebhookOut(
            url=batch.webhook_url,
            status=batch.webhook_status,
            attempts=batch.webhook_attempts,
            last_error=batch.webhook_last_error,
        ),
        output_csv_url=output_csv_url(settings, batch),
    )


def _image_out(settings: Settings, item: ImageItem) -> ImageOut:
    return ImageOut(
        position=item.position + 1,
        input_url=item.input_url,
        input_name=item.input_name,
        output_url=output_url(settings, item),
        status=item.status,
        error=item.error,
        bytes_in=item.bytes_in,
        bytes_out=item.bytes_out,
        width=item.width,
        height=item.height,
        format=item.output_format,
    )


def batch_out(
    session: Session,
    settings: Settings,
    batch: ImageBatch,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> BatchOut:
    products = service.products_with_items(session, batch, offset=offset, limit=limit)
    counts = service.counts_for(session, [batch.id])[batch.id]
    summary = batch_summary(settings, batch, counts)
    paged = offset > 0 or limit is not None
    return BatchOut(
        **summary.model_dump(),
        operations=dict(batch.operations),
        products_total=service.product_count(session, batch) if paged else len(products),
        products_offset=offset,
        products=[
            ProductOut(
                serial_number=product.serial_number,
                product_name=product.product_name,
                images=[_image_out(settings, item) for item in items],
            )
            for product, items in products
        ],
    )


def output_csv_lines(session: Session, settings: Settings, batch: ImageBatch) -> Iterator[bytes]:
    rows = [
        OutputRow(
            cells=product.cells,
            images=[
                OutputImage(
                    output_url=output_url(settings, item),
                    error=item.error if item.status == ImageStatus.FAILED else None,
                )
                for item in items
            ],
        )
        for product, items in service.products_with_items(session, batch)
    ]
    return iter_output_csv(batch.columns, rows)
