"""Image batches: one per CSV or upload request, its products, and one row per image.

Each status set is one StrEnum, used by the check constraints, the service and the API schemas.
The columns stay plain strings (no database enum type): a row reads back as `str`, which a
StrEnum member equals.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsdeck.core.db import Base, new_id, utcnow


class BatchStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImageStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class BatchSource(StrEnum):
    CSV = "csv"
    UPLOAD = "upload"


ACTIVE_BATCH_STATUSES = (BatchStatus.PENDING, BatchStatus.PROCESSING)
FINAL_BATCH_STATUSES = tuple(
    status for status in BatchStatus if status not in ACTIVE_BATCH_STATUSES
)
ACTIVE_ITEM_STATUSES = (ImageStatus.PENDING, ImageStatus.PROCESSING)
FINAL_ITEM_STATUSES = (ImageStatus.SUCCEEDED, ImageStatus.FAILED)


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class ImageBatch(Base):
    __tablename__ = "image_batches"
    __table_args__ = (
        CheckConstraint(_in("status", BatchStatus), name="status"),
        CheckConstraint(_in("source", BatchSource), name="source"),
        Index("ix_image_batches_owner_created", "owner_id", "created_at"),
    )

    # The request id users see.
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), default=BatchStatus.PENDING)
    operations: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The input CSV's header, so the output CSV reproduces every input column.
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    total_images: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    webhook_status: Mapped[str] = mapped_column(String(16), default=WebhookStatus.NONE)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_last_error: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_delivery_id: Mapped[str | None] = mapped_column(String(32), default=None)


class ImageProduct(Base):
    __tablename__ = "image_products"
    __table_args__ = (Index("ix_image_products_batch_position", "batch_id", "position"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("image_batches.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    serial_number: Mapped[str] = mapped_column(String(255))
    product_name: Mapped[str] = mapped_column(Text)
    # Every input cell of the row, in the input's column order.
    cells: Mapped[list[str]] = mapped_column(JSON, default=list)


class ImageItem(Base):
    __tablename__ = "image_items"
    __table_args__ = (
        CheckConstraint(_in("status", ImageStatus), name="status"),
        Index("ix_image_items_batch_status", "batch_id", "status"),
        Index("ix_image_items_product_position", "product_id", "position"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("image_batches.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(ForeignKey("image_products.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    input_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # Uploaded images: the stored input object (the uploaded file's name is in input_name).
    input_key: Mapped[str | None] = mapped_column(String(64), default=None)
    input_name: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    bytes_in: Mapped[int | None] = mapped_column(Integer, default=None)
    bytes_out: Mapped[int | None] = mapped_column(Integer, default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    output_key: Mapped[str | None] = mapped_column(String(64), default=None)
    output_format: Mapped[str | None] = mapped_column(String(8), default=None)
    # Unguessable public name of the output (>= 128 random bits); many tokens may share a key.
    output_token: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookAttempt(Base):
    __tablename__ = "image_webhook_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(
        ForeignKey("image_batches.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    succeeded: Mapped[bool] = mapped_column(default=False)
