"""Checking what a request brings in, before anything is stored: the uploaded CSV or images,
the operations and the webhook URL. Every refusal names what to fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from opsdeck.core.errors import UnsupportedMediaType, ValidationFailed
from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.policy import AddressPolicy, validate_url
from opsdeck.core.storage import media_store
from opsdeck.core.uploads import read_upload, too_large
from opsdeck.images.csv_input import parse_products
from opsdeck.images.formats import DECODABLE_FORMATS, content_type_and_extension, sniff
from opsdeck.images.processing import parse_operations
from opsdeck.images.service import ProductInput, UploadInput
from opsdeck.settings import Settings

SNIFF_BYTES = 4096
MAX_UPLOAD_FILES = 100


@dataclass(frozen=True)
class BatchRequest:
    operations: dict[str, Any]
    webhook_url: str | None


def content_type(fmt: str | None) -> str:
    try:
        return content_type_and_extension(fmt or "")[0]
    except ValueError:
        return "application/octet-stream"


def address_policy(settings: Settings) -> AddressPolicy:
    return AddressPolicy.from_networks(settings.fetch_allowed_networks)


def parse_batch_request(
    settings: Settings, webhook_url: str | None, operations: str | None
) -> BatchRequest:
    ops = parse_operations(operations or None)
    url = None
    if webhook_url and webhook_url.strip():
        try:
            url = validate_url(webhook_url, policy=address_policy(settings))
        except FetchError as exc:
            raise ValidationFailed(
                f"The webhook URL is {exc.message}.",
                code="invalid_webhook_url",
                details=[{"field": "body.webhook_url", "message": exc.message}],
            ) from exc
    return BatchRequest(operations=ops.model_dump(), webhook_url=url)


def parse_csv(settings: Settings, data: bytes) -> tuple[list[ProductInput], list[str]]:
    rows = parse_products(
        data,
        max_rows=settings.images_max_rows,
        max_urls_per_row=settings.images_max_urls_per_row,
    )
    policy = address_policy(settings)
    problems: list[dict[str, Any]] = []
    for row in rows:
        for url in row.urls:
            try:
                validate_url(url, policy=policy)
            except FetchError as exc:
                problems.append(
                    {
                        "row": row.line,
                        "column": "Input Image Urls",
                        "value": url,
                        "message": f"line {row.line}: {url} is {exc.message}",
                    }
                )
    if problems:
        raise ValidationFailed(
            f"{len(problems)} image URL(s) cannot be fetched; nothing was stored.",
            code="csv_invalid",
            details=problems[:50],
        )
    columns = list(rows[0].header) if rows else []
    products = [
        ProductInput(
            serial_number=row.serial_number,
            product_name=row.product_name,
            cells=list(row.cells),
            urls=list(row.urls),
        )
        for row in rows
    ]
    return products, columns


async def store_uploads(settings: Settings, files: list[UploadFile]) -> list[UploadInput]:
    """Check every file first (size, and an image format from its bytes), then store them:
    a refused file leaves nothing behind."""
    if not files:
        raise ValidationFailed(
            "Attach at least one image file.",
            details=[{"field": "body.files", "message": "no files"}],
        )
    if len(files) > MAX_UPLOAD_FILES:
        raise ValidationFailed(
            f"At most {MAX_UPLOAD_FILES} files per upload; this one has {len(files)}.",
            details=[{"field": "body.files", "message": "too many files"}],
        )
    problems: list[dict[str, Any]] = []
    for number, file in enumerate(files, start=1):
        name = file.filename or f"file {number}"
        if file.size is not None and file.size > settings.max_file_size:
            raise too_large(name, settings.max_file_size)
        head = await file.read(SNIFF_BYTES)
        await file.seek(0)
        fmt = sniff(head)
        if fmt not in DECODABLE_FORMATS:
            what = "not an image" if fmt is None else f"a {fmt} image, which is not supported"
            problems.append({"field": "body.files", "file": name, "message": f"{name} is {what}"})
    if problems:
        raise UnsupportedMediaType(
            "Only JPEG, PNG, WebP, GIF, AVIF and TIFF images can be uploaded; nothing was stored.",
            code="upload_not_an_image",
            details=problems,
        )
    store = media_store(settings)
    uploads = []
    for number, file in enumerate(files, start=1):
        data = await read_upload(file, settings.max_file_size)
        uploads.append(
            UploadInput(
                name=(file.filename or f"file {number}")[:255],
                key=await run_in_threadpool(store.put, data),
            )
        )
    return uploads
