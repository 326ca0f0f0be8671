from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from opsdeck.core.pagination import Page
from opsdeck.images.models import BatchSource, BatchStatus, ImageStatus, WebhookStatus


class WebhookOut(BaseModel):
    url: str | None
    status: WebhookStatus
    attempts: int
    last_error: str | None


class ImageOut(BaseModel):
    position: int
    input_url: str | None
    input_name: str | None
    output_url: str | None
    status: ImageStatus
    error: str | None
    bytes_in: int | None
    bytes_out: int | None
    width: int | None
    height: int | None
    format: str | None


class ProductOut(BaseModel):
    serial_number: str
    product_name: str
    images: list[ImageOut]


class BatchSummary(BaseModel):
    request_id: str
    status: BatchStatus
    source: BatchSource
    total_images: int
    processed_images: int
    failed_images: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    webhook: WebhookOut
    output_csv_url: str


class BatchOut(BatchSummary):
    operations: dict[str, object]
    products_total: int
    products_offset: int
    # Every product by default; a page of them with ?products_offset=&products_limit=.
    products: list[ProductOut]


class BatchPage(Page[BatchSummary]):
    pass


class RetryOut(BaseModel):
    request_id: str
    retried_images: int
