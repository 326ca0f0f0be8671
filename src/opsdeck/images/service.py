"""Image batches: creating them from a CSV or uploads, reporting on them, and the state changes
workers make. No HTTP here; the request or task boundary commits.

State rules that keep concurrent workers honest:
- an item moves pending -> processing -> succeeded | failed through conditional UPDATEs, so a
  duplicate delivery of the same task changes nothing more;
- counts are derived from the items (never a counter that can drift);
- a batch is finished by exactly one conditional UPDATE, and only the worker whose UPDATE won
  schedules the webhook, so it is sent once however many workers finish at the same moment.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, cast

import structlog
from psycopg.types.json import Json
from sqlalchemy import (
    JSON,
    Integer,
    String,
    Table,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from opsdeck.core.db import after_commit, new_id, utcnow
from opsdeck.core.errors import Conflict, NotFound, ValidationFailed
from opsdeck.core.jobs import JobOutbox, enqueue, enqueue_many
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.core.queue import discard_queued, queued_tasks
from opsdeck.images.formats import DECODABLE_FORMATS, content_type_and_extension, sniff
from opsdeck.images.models import (
    ACTIVE_BATCH_STATUSES,
    ACTIVE_ITEM_STATUSES,
    BatchSource,
    BatchStatus,
    ImageBatch,
    ImageItem,
    ImageProduct,
    ImageStatus,
    WebhookAttempt,
    WebhookStatus,
)
from opsdeck.settings import Settings

log = structlog.get_logger("opsdeck.images")

# The images jobs (declared in tasks.py), sent by name: tasks.py imports this module.
START_BATCH_JOB = "images.start_batch"
PROCESS_ITEM_JOB = "images.process_item"
PROCESS_ITEMS_JOB = "images.process_items"
DELIVER_WEBHOOK_JOB = "images.deliver_webhook"
# Images per task: up to CHUNK_MAX, fewer in small batches so they still spread over every
# worker (a batch of n images makes about n / CHUNK_SPREAD tasks before the cap).
CHUNK_MAX = 16
CHUNK_SPREAD = 32
# A chunk holds at most 1 / CHUNK_TAPER of the images left to pack from it on, so the tasks
# at the end of a batch are a few images, then one, whichever worker takes them.
CHUNK_TAPER = 8


class User(Protocol):
    """Who asks: an accounts user (this module reads its id and role, nothing else)."""

    @property
    def id(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


@dataclass(frozen=True)
class ProductInput:
    serial_number: str
    product_name: str
    cells: list[str]
    urls: list[str]


@dataclass(frozen=True)
class UploadInput:
    name: str
    key: str


@dataclass(frozen=True)
class Counts:
    total: int = 0
    succeeded: int = 0
    failed: int = 0

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed


# -- creating batches ------------------------------------------------------------------------


def create_csv_batch(
    session: Session,
    owner: User,
    *,
    columns: list[str],
    products: Sequence[ProductInput],
    operations: dict[str, Any],
    webhook_url: str | None,
) -> ImageBatch:
    batch = _new_batch(session, owner, BatchSource.CSV, columns, operations, webhook_url)
    product_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    for position, product in enumerate(products):
        product_id = new_id()
        product_rows.append(
            {
                "id": product_id,
                "batch_id": batch.id,
                "position": position,
                "serial_number": product.serial_number,
                "product_name": product.product_name,
                "cells": product.cells,
            }
        )
        item_rows.extend(
            _item_row(batch.id, product_id, index, input_url=url)
            for index, url in enumerate(product.urls)
        )
    return _store_rows(session, batch, product_rows, item_rows)


def create_upload_batch(
    session: Session,
    owner: User,
    *,
    uploads: Sequence[UploadInput],
    operations: dict[str, Any],
    webhook_url: str | None,
) -> ImageBatch:
    columns = ["S. No.", "Product Name", "Input Image Urls"]
    batch = _new_batch(session, owner, BatchSource.UPLOAD, columns, operations, webhook_url)
    product_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    for position, upload in enumerate(uploads):
        product_id = new_id()
        serial = str(position + 1)
        product_rows.append(
            {
                "id": product_id,
                "batch_id": batch.id,
                "position": position,
                "serial_number": serial,
                "product_name": upload.name,
                "cells": [serial, upload.name, upload.name],
            }
        )
        item_rows.append(
            _item_row(batch.id, product_id, 0, input_key=upload.key, input_name=upload.name)
        )
    return _store_rows(session, batch, product_rows, item_rows)


def _new_batch(
    session: Session,
    owner: User,
    source: str,
    columns: list[str],
    operations: dict[str, Any],
    webhook_url: str | None,
) -> ImageBatch:
    batch = ImageBatch(
        id=new_id(),
        owner_id=owner.id,
        source=source,
        status=BatchStatus.PENDING,
        operations=operations,
        columns=columns,
        total_images=0,
        webhook_url=webhook_url,
        webhook_status=WebhookStatus.PENDING if webhook_url else WebhookStatus.NONE,
    )
    session.add(batch)
    return batch


def _item_row(batch_id: str, product_id: str, position: int, **values: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "batch_id": batch_id,
        "product_id": product_id,
        "position": position,
        "status": ImageStatus.PENDING,
        "attempts": 0,
        **values,
    }


def _store_rows(
    session: Session,
    batch: ImageBatch,
    product_rows: list[dict[str, Any]],
    item_rows: list[dict[str, Any]],
) -> ImageBatch:
    batch.total_images = len(item_rows)
    session.flush()
    _bulk_insert(session, cast(Table, ImageProduct.__table__), product_rows)
    _bulk_insert(session, cast(Table, ImageItem.__table__), item_rows)
    enqueue(session, START_BATCH_JOB, batch.id)
    return batch


def _bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in one go. On PostgreSQL, COPY: a 1,000-row CSV's 2,500 rows take
    ~10 ms, where an executemany INSERT takes ~130 ms. Elsewhere, a Core executemany."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    columns = list(rows[0])
    json_columns = {name for name in columns if isinstance(table.c[name].type, JSON)}
    names = ", ".join(f'"{name}"' for name in columns)
    raw = connection.connection.driver_connection
    if raw is None:  # pragma: no cover - a pooled connection always has its driver's
        raise RuntimeError("no database connection")
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [Json(row[name]) if name in json_columns else row[name] for name in columns]
            )


# -- reading ---------------------------------------------------------------------------------


def batch_owner_id(session: Session, batch_id: str) -> str | None:
    """Whose batch it is (None: no such batch); live updates reach its owner and admins."""
    if len(batch_id) > 64:
        return None
    return session.scalar(select(ImageBatch.owner_id).where(ImageBatch.id == batch_id))


def batch_live_states(session: Session, batch_ids: Iterable[str]) -> list[dict[str, Any]]:
    """`{id, status, updated_at}` of each batch, what a live `images:batch` event carries."""
    ids = sorted(set(batch_ids))
    if not ids:
        return []
    now = utcnow().isoformat()
    rows = session.execute(select(ImageBatch.id, ImageBatch.status).where(ImageBatch.id.in_(ids)))
    return [{"id": batch_id, "status": str(status), "updated_at": now} for batch_id, status in rows]


def get_batch(session: Session, user: User, batch_id: str) -> ImageBatch:
    """The batch, when `user` may see it (its owner or an admin); 404 otherwise, so ids of
    other people's batches are not confirmed."""
    batch = session.get(ImageBatch, batch_id) if len(batch_id) <= 64 else None
    if batch is None or (batch.owner_id != user.id and not user.is_admin):
        raise NotFound(f"No image batch {batch_id!r}.", code="batch_not_found")
    return batch


def counts_for(session: Session, batch_ids: Sequence[str]) -> dict[str, Counts]:
    if not batch_ids:
        return {}
    rows = session.execute(
        select(ImageItem.batch_id, ImageItem.status, func.count())
        .where(ImageItem.batch_id.in_(batch_ids))
        .group_by(ImageItem.batch_id, ImageItem.status)
    ).all()
    totals: dict[str, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
    for batch_id, status, count in rows:
        totals[batch_id][status] = int(count)
    return {
        batch_id: Counts(
            total=sum(by_status.values()),
            succeeded=by_status.get(ImageStatus.SUCCEEDED, 0),
            failed=by_status.get(ImageStatus.FAILED, 0),
        )
        for batch_id, by_status in totals.items()
    }


BATCH_SORTS = SortOrders(
    name="BatchSort",
    id_column=ImageBatch.id,
    keys={"created_at": ImageBatch.created_at},
    default="-created_at",
)


def list_batches(session: Session, user: User, page: PageParams) -> Paged[ImageBatch]:
    """The user's batches (every batch for an administrator), newest first by default."""
    query = select(ImageBatch)
    if not user.is_admin:
        query = query.where(ImageBatch.owner_id == user.id)
    return paginate(session, query, page)


def products_with_items(
    session: Session, batch: ImageBatch, *, offset: int = 0, limit: int | None = None
) -> list[tuple[ImageProduct, list[ImageItem]]]:
    """The batch's products in input order (a page of them with offset / limit), each with
    its images in input order."""
    query = (
        select(ImageProduct)
        .where(ImageProduct.batch_id == batch.id)
        .order_by(ImageProduct.position)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    products = list(session.scalars(query))
    if not products:
        return []
    items: dict[str, list[ImageItem]] = {product.id: [] for product in products}
    item_query = select(ImageItem).where(ImageItem.batch_id == batch.id)
    if offset or limit is not None:
        item_query = item_query.where(ImageItem.product_id.in_(list(items)))
    for item in session.scalars(item_query.order_by(ImageItem.product_id, ImageItem.position)):
        items[item.product_id].append(item)
    return [(product, items[product.id]) for product in products]


def product_count(session: Session, batch: ImageBatch) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(ImageProduct).where(ImageProduct.batch_id == batch.id)
        )
        or 0
    )


def find_output(session: Session, token: str) -> ImageItem | None:
    if len(token) > 64:
        return None
    return session.scalar(
        select(ImageItem).where(
            ImageItem.output_token == token, ImageItem.status == ImageStatus.SUCCEEDED
        )
    )


# -- user actions ----------------------------------------------------------------------------


def retry_batch(session: Session, batch: ImageBatch, settings: Settings | None = None) -> list[str]:
    """`POST .../retry`: the batch's failed images go back to pending and to the queue, and
    (given `settings`) so do its stuck ones, those nothing will run (stuck_now); returns the
    ids re-dispatched."""
    if batch.status == BatchStatus.CANCELLED:
        raise Conflict("This batch was cancelled; start a new one.", code="batch_cancelled")
    # Before the failed ones turn pending (they would look stuck too).
    stuck = stuck_now(session, settings, batch_id=batch.id) if settings is not None else []
    failed = list(
        session.scalars(
            select(ImageItem.id).where(
                ImageItem.batch_id == batch.id, ImageItem.status == ImageStatus.FAILED
            )
        )
    )
    if failed:
        session.execute(
            update(ImageItem)
            .where(ImageItem.id.in_(failed), ImageItem.status == ImageStatus.FAILED)
            .values(status=ImageStatus.PENDING, error=None, error_kind=None, finished_at=None)
        )
        batch.status = BatchStatus.PROCESSING
        batch.finished_at = None
        if batch.webhook_url:
            batch.webhook_status = WebhookStatus.PENDING
            batch.webhook_delivery_id = None
    ids = [*failed, *stuck]
    enqueue_units(session, same_url_units(session, batch.id, ids))
    return ids


def cancel(session: Session, batch: ImageBatch) -> None:
    # One conditional UPDATE, so a worker finishing the batch at the same moment either wins
    # (and the cancel is refused) or loses (and stops at its next image).
    changed = session.execute(
        update(ImageBatch)
        .where(ImageBatch.id == batch.id, ImageBatch.status.in_(ACTIVE_BATCH_STATUSES))
        .values(
            status=BatchStatus.CANCELLED, finished_at=utcnow(), webhook_status=WebhookStatus.NONE
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(batch)
    if _affected(changed) != 1:
        raise Conflict(
            f"This batch is already {batch.status.replace('_', ' ')}.", code="batch_finished"
        )
    _drop_dispatch(session, batch.id)


def _drop_dispatch(session: Session, batch_id: str) -> None:
    """A cancelled batch leaves no work for the queue: its jobs still owed in the outbox go
    with the cancel's transaction, and once that commits its chunks waiting in the broker
    are deleted. Those a worker already holds find the batch cancelled and return at once."""
    ids = set(session.scalars(select(ImageItem.id).where(ImageItem.batch_id == batch_id)))

    def of_batch(task: str, args: list[Any]) -> bool:
        if not args:
            return False
        if task == START_BATCH_JOB:
            return bool(args[0] == batch_id)
        if task == PROCESS_ITEM_JOB:
            return args[0] in ids
        if task == PROCESS_ITEMS_JOB:
            return isinstance(args[0], list) and set(args[0]) <= ids
        return False

    owed = session.execute(
        select(JobOutbox.id, JobOutbox.task, JobOutbox.args).where(
            JobOutbox.task.in_([START_BATCH_JOB, PROCESS_ITEM_JOB, PROCESS_ITEMS_JOB])
        )
    ).all()
    dropped = [row_id for row_id, task, args in owed if of_batch(task, list(args))]
    if dropped:
        session.execute(delete(JobOutbox).where(JobOutbox.id.in_(dropped)))

    def discard() -> None:
        try:
            discarded = discard_queued(of_batch)
        except Exception as exc:  # the chunks left cost a no-op task each, nothing more
            log.warning("images_cancel_discard_failed", batch_id=batch_id, error=str(exc))
            return
        log.info("images_cancel_discarded", batch_id=batch_id, tasks=discarded)

    after_commit(session, discard)


def item_ids(session: Session, batch_id: str, *, status: str = ImageStatus.PENDING) -> list[str]:
    return list(
        session.scalars(
            select(ImageItem.id)
            .where(ImageItem.batch_id == batch_id, ImageItem.status == status)
            .order_by(ImageItem.product_id, ImageItem.position)
        )
    )


def same_url_units(
    session: Session, batch_id: str, item_ids: Sequence[str] | None = None
) -> list[list[str]]:
    """The `pending` images of a batch not finished or cancelled (or those of `item_ids`
    among its images, in any status) as
    units that go to the queue together: the images of one URL form one unit, fetched and
    processed once for them all (a batch has one set of operations); an upload is a unit of
    its own. In input order, by each unit's first image."""
    # The batch row locked, so a cancel is either committed before (nothing is sent) or waits
    # for this transaction (and then drops what it sent: see cancel).
    status = session.scalar(
        select(ImageBatch.status).where(ImageBatch.id == batch_id).with_for_update()
    )
    if status not in ACTIVE_BATCH_STATUSES:
        return []
    query = select(ImageItem.id, ImageItem.input_url).where(ImageItem.batch_id == batch_id)
    if item_ids is None:
        query = query.where(ImageItem.status == ImageStatus.PENDING)
    else:
        query = query.where(ImageItem.id.in_(list(item_ids)))
    units: list[list[str]] = []
    by_url: dict[str, list[str]] = {}
    for item_id, url in session.execute(query.order_by(ImageItem.product_id, ImageItem.position)):
        if url is None:
            units.append([item_id])
        elif url in by_url:
            by_url[url].append(item_id)
        else:
            by_url[url] = [item_id]
            units.append(by_url[url])
    return units


def chunks(item_ids: list[str]) -> list[list[str]]:
    """The images in task-sized groups, in order: one per task for small batches, up to
    CHUNK_MAX for big ones, where Celery's fixed cost per task (message, acknowledgement,
    bookkeeping; a few ms) matters next to a few tens of ms of libvips per thumbnail."""
    return pack([[item_id] for item_id in item_ids])


def pack(units: Sequence[Sequence[str]], *, per_task: int | None = None) -> list[list[str]]:
    """`chunks` for units of images that must stay in one task (same_url_units): a unit is
    never split, and one bigger than a chunk is a chunk of its own.

    `per_task`: chunks of that many images (at most CHUNK_MAX), neither spread nor tapered:
    for the rest of a chunk handed back (pipeline.hand_back), which is a part of a batch, not
    a batch."""
    remaining = sum(len(unit) for unit in units)
    largest = (
        min(CHUNK_MAX, max(1, remaining // CHUNK_SPREAD))
        if per_task is None
        else min(CHUNK_MAX, max(1, per_task))
    )
    packed: list[list[str]] = []
    current: list[str] = []
    for unit in units:
        # The last chunks get smaller (CHUNK_TAPER): the workers run out of work together
        # instead of most of them waiting for the few that took a full chunk last.
        size = largest if per_task is not None else min(largest, max(1, remaining // CHUNK_TAPER))
        if current and len(current) + len(unit) > size:
            packed.append(current)
            remaining -= len(current)
            current = []
        current.extend(unit)
    if current:
        packed.append(current)
    return packed


def enqueue_items(session: Session, item_ids: Sequence[str]) -> int:
    """Send these images to the queue once the session commits: a process_item task for a
    lone image, process_items for a chunk."""
    return enqueue_units(session, [[item_id] for item_id in item_ids])


def enqueue_units(
    session: Session, units: Sequence[Sequence[str]], *, per_task: int | None = None
) -> int:
    """enqueue_items for units that must stay in one task (same_url_units); `per_task` as
    for pack."""
    enqueue_many(
        session,
        [
            (PROCESS_ITEM_JOB, (chunk[0],)) if len(chunk) == 1 else (PROCESS_ITEMS_JOB, (chunk,))
            for chunk in pack(units, per_task=per_task)
        ],
    )
    return sum(len(unit) for unit in units)


# -- worker state changes --------------------------------------------------------------------


@dataclass(frozen=True)
class ItemWork:
    item_id: str
    batch_id: str
    input_url: str | None
    input_key: str | None
    operations: dict[str, Any]
    attempt: int


# The statements a worker runs for every image (claim, record, the batch's end), built once:
# a statement object run again with new parameters reuses its cache key, where one built per
# call makes SQLAlchemy construct, coerce and key it anew every time. They are Core statements
# on the tables, not ORM ones: no object of these rows is loaded in the worker's sessions, so
# the ORM's session synchronisation had nothing to do but its own bookkeeping.
_ITEMS = cast(Table, ImageItem.__table__)
_BATCHES = cast(Table, ImageBatch.__table__)

_CLAIM = (
    update(_ITEMS)
    .where(
        _ITEMS.c.id.in_(bindparam("p_ids", expanding=True)),
        _ITEMS.c.status.in_(ACTIVE_ITEM_STATUSES),
        select(_BATCHES.c.id)
        .where(_BATCHES.c.id == _ITEMS.c.batch_id, _BATCHES.c.status != BatchStatus.CANCELLED)
        .exists(),
    )
    .values(
        status=ImageStatus.PROCESSING,
        attempts=_ITEMS.c.attempts + 1,
        started_at=bindparam("p_now"),
    )
    .returning(
        _ITEMS.c.id,
        _ITEMS.c.batch_id,
        _ITEMS.c.input_url,
        _ITEMS.c.input_key,
        _ITEMS.c.attempts,
    )
)

_COMPLETE_ONE = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("p_id"), _ITEMS.c.status == ImageStatus.PROCESSING)
    .values(
        status=ImageStatus.SUCCEEDED,
        output_key=bindparam("p_output_key"),
        output_format=bindparam("p_output_format"),
        output_token=bindparam("p_output_token"),
        bytes_in=bindparam("p_bytes_in"),
        bytes_out=bindparam("p_bytes_out"),
        width=bindparam("p_width"),
        height=bindparam("p_height"),
        error=None,
        error_kind=None,
        finished_at=bindparam("p_now"),
    )
)

# The batch row, locked (finish_batches): what a recorder needs to know of it.
_BATCH_END_LOCKED = (
    select(_BATCHES.c.status, _BATCHES.c.webhook_status)
    .where(_BATCHES.c.id == bindparam("p_batch_id"))
    .with_for_update()
)

# EXISTS, not COUNT: counting what remains after every image is quadratic in the batch's
# size (a 10,000-image batch would visit 50 million index entries); this stops at one.
_UNFINISHED = select(
    select(_ITEMS.c.id)
    .where(
        _ITEMS.c.batch_id == bindparam("p_batch_id"),
        _ITEMS.c.status.in_(ACTIVE_ITEM_STATUSES),
    )
    .exists()
)


def claim_item(
    session: Session,
    item_id: str,
    *,
    started_batches: MutableMapping[str, dict[str, Any]] | None = None,
) -> ItemWork | None:
    """Mark an item processing. None when there is nothing to do: it is finished, or its batch
    was cancelled. A `processing` item is claimed again: its worker died (acks_late redelivery).
    """
    claimed = claim_items(session, [item_id], started_batches=started_batches)
    return claimed[0] if claimed else None


def claim_items(
    session: Session,
    item_ids: Sequence[str],
    *,
    started_batches: MutableMapping[str, dict[str, Any]] | None = None,
) -> list[ItemWork]:
    """claim_item for several items at once, in one conditional UPDATE ... RETURNING; the
    claimed ones come back in the order asked.

    Moving a batch from `pending` to `processing` and reading its operations happen once per
    batch: `started_batches` (batch id -> operations, kept by the caller between calls)
    remembers the batches already done. Neither fact changes back: a batch leaves `pending` for
    good, and its operations are fixed."""
    if not item_ids:
        return []
    now = utcnow()
    rows = session.execute(_CLAIM, {"p_ids": list(item_ids), "p_now": now}).all()
    by_id = {row[0]: row for row in rows}
    operations: dict[str, dict[str, Any]] = {}
    for batch_id in {row[1] for row in rows}:
        known = started_batches.get(batch_id) if started_batches is not None else None
        if known is None:
            # Conditional, not an ORM write of a loaded row: a cancel committed since the
            # claim must not be overwritten.
            session.execute(
                update(ImageBatch)
                .where(ImageBatch.id == batch_id, ImageBatch.status == BatchStatus.PENDING)
                .values(status=BatchStatus.PROCESSING, started_at=now)
            )
            known = dict(
                session.scalar(select(ImageBatch.operations).where(ImageBatch.id == batch_id)) or {}
            )
            if started_batches is not None:
                started_batches[batch_id] = known
        operations[batch_id] = known
    return [
        ItemWork(
            item_id=item_id,
            batch_id=row[1],
            input_url=row[2],
            input_key=row[3],
            operations=dict(operations[row[1]]),
            attempt=int(row[4]),
        )
        for item_id in item_ids
        if (row := by_id.get(item_id)) is not None
    ]


def release_items(session: Session, item_ids: Sequence[str]) -> int:
    """Hand claimed items back (`pending`, the claim not counted as an attempt), for a task
    that took more than it will do."""
    if not item_ids:
        return 0
    released = session.execute(
        update(ImageItem)
        .where(ImageItem.id.in_(list(item_ids)), ImageItem.status == ImageStatus.PROCESSING)
        .values(status=ImageStatus.PENDING, attempts=ImageItem.attempts - 1, started_at=None)
        .execution_options(synchronize_session=False)
    )
    return _affected(released)


@dataclass(frozen=True)
class ItemResult:
    output_key: str
    output_format: str
    bytes_in: int
    bytes_out: int
    width: int
    height: int


def complete_item(session: Session, item_id: str, result: ItemResult) -> bool:
    changed = session.execute(
        _COMPLETE_ONE,
        {
            "p_id": item_id,
            "p_output_key": result.output_key,
            "p_output_format": result.output_format,
            "p_output_token": secrets.token_urlsafe(24),
            "p_bytes_in": result.bytes_in,
            "p_bytes_out": result.bytes_out,
            "p_width": result.width,
            "p_height": result.height,
            "p_now": utcnow(),
        },
    )
    return _affected(changed) == 1


# The columns complete_items sets from each image's result, in its rows' order.
_COMPLETED_COLUMNS: tuple[tuple[str, type[String] | type[Integer]], ...] = (
    ("id", String),
    ("output_key", String),
    ("output_format", String),
    ("output_token", String),
    ("bytes_in", Integer),
    ("bytes_out", Integer),
    ("width", Integer),
    ("height", Integer),
)


@lru_cache(maxsize=1)
def _complete_many() -> Any:
    """complete_items' statement (PostgreSQL), built once.

    The rows are locked in id order first (the CTE, read in order before the UPDATE writes).
    unnest() of one array a column, not VALUES: the statement is the same for any number of
    images, so SQLAlchemy compiles it once (a VALUES list is compiled every time)."""
    locked = (
        select(_ITEMS.c.id)
        .where(
            _ITEMS.c.id.in_(bindparam("p_ids", expanding=True)),
            _ITEMS.c.status == ImageStatus.PROCESSING,
        )
        .order_by(_ITEMS.c.id)
        .with_for_update()
        .cte("locked")
    )
    done = (
        func.unnest(
            *(bindparam(f"done_{name}", type_=ARRAY(kind)) for name, kind in _COMPLETED_COLUMNS)
        )
        .table_valued(*(column(name, kind) for name, kind in _COMPLETED_COLUMNS), name="done")
        .render_derived()
    )
    return (
        update(_ITEMS)
        .where(
            _ITEMS.c.id == done.c.id,
            _ITEMS.c.id.in_(select(locked.c.id)),
            _ITEMS.c.status == ImageStatus.PROCESSING,
        )
        .values(
            status=ImageStatus.SUCCEEDED,
            output_key=done.c.output_key,
            output_format=done.c.output_format,
            output_token=done.c.output_token,
            bytes_in=done.c.bytes_in,
            bytes_out=done.c.bytes_out,
            width=done.c.width,
            height=done.c.height,
            error=None,
            error_kind=None,
            finished_at=bindparam("p_now"),
        )
        .returning(_ITEMS.c.id)
    )


def complete_items(session: Session, results: Mapping[str, ItemResult]) -> set[str]:
    """complete_item for several images in one statement (PostgreSQL); the ids it changed.

    The rows are locked in id order first (the CTE, read in order before the UPDATE writes),
    so two workers recording overlapping sets (a redelivered chunk) wait for each other
    instead of deadlocking. SQLite serialises writers anyway: one statement an image there
    costs no round trip."""
    ids = sorted(results)
    if len(ids) < 2 or session.get_bind().dialect.name != "postgresql":
        return {item_id for item_id in ids if complete_item(session, item_id, results[item_id])}
    rows = [
        (
            item_id,
            result.output_key,
            result.output_format,
            secrets.token_urlsafe(24),
            result.bytes_in,
            result.bytes_out,
            result.width,
            result.height,
        )
        for item_id in ids
        for result in (results[item_id],)
    ]
    arrays = {
        f"done_{name}": [row[n] for row in rows] for n, (name, _) in enumerate(_COMPLETED_COLUMNS)
    }
    changed = session.execute(_complete_many(), {"p_ids": ids, "p_now": utcnow(), **arrays})
    return set(changed.scalars())


def fail_item(session: Session, item_id: str, *, kind: str, message: str) -> bool:
    changed = session.execute(
        update(ImageItem)
        .where(ImageItem.id == item_id, ImageItem.status.in_(ACTIVE_ITEM_STATUSES))
        .values(
            status=ImageStatus.FAILED, error=message[:1000], error_kind=kind, finished_at=utcnow()
        )
    )
    return _affected(changed) == 1


def finish_if_done(session: Session, batch_id: str) -> str | None:
    """When no item is left to do, set the batch's final status. Returns that status to the one
    caller whose update won (it sends the webhook), None to everyone else."""
    # Lock the batch row first. Without it, two workers finishing the last two images at once
    # each count the other's image as still processing (its update is not committed yet) and
    # neither finishes the batch. With it, the second waits, then sees the first's commit.
    # (SQLite needs no lock: every transaction there already holds the database's write lock.)
    session.execute(select(ImageBatch.id).where(ImageBatch.id == batch_id).with_for_update())
    return _finish_locked(session, batch_id)


@dataclass(frozen=True)
class BatchEnd:
    """A batch after finish_batches: its status now, whether this call finished it, and whether
    its completion webhook is owed (pending)."""

    batch_id: str
    status: str
    finished: bool
    webhook_pending: bool


def finish_batches(session: Session, batch_ids: Iterable[str]) -> list[BatchEnd]:
    """finish_if_done for each batch (in id order: the lock order), with what a recorder needs
    besides: each batch's status (the live event's) and whether a webhook is owed, read with
    the row lock, so no further statement reads the batch. A batch that is gone is left out."""
    ends: list[BatchEnd] = []
    for batch_id in sorted(set(batch_ids)):
        row = session.execute(_BATCH_END_LOCKED, {"p_batch_id": batch_id}).first()
        if row is None:
            continue
        final = _finish_locked(session, batch_id)
        ends.append(
            BatchEnd(
                batch_id=batch_id,
                status=str(final or row.status),
                finished=final is not None,
                webhook_pending=row.webhook_status == WebhookStatus.PENDING,
            )
        )
    return ends


def live_state(batch_id: str, status: str) -> dict[str, Any]:
    """What a live `images:batch` event carries (see batch_live_states)."""
    return {"id": batch_id, "status": status, "updated_at": utcnow().isoformat()}


def _finish_locked(session: Session, batch_id: str) -> str | None:
    """finish_if_done once the batch row is locked."""
    unfinished = session.scalar(_UNFINISHED, {"p_batch_id": batch_id})
    if unfinished:
        return None
    counts = counts_for(session, [batch_id])[batch_id]
    if counts.total and counts.failed == counts.total:
        final = BatchStatus.FAILED
    elif counts.failed:
        final = BatchStatus.COMPLETED_WITH_ERRORS
    else:
        final = BatchStatus.COMPLETED
    changed = session.execute(
        update(ImageBatch)
        .where(ImageBatch.id == batch_id, ImageBatch.status.in_(ACTIVE_BATCH_STATUSES))
        .values(status=final, finished_at=utcnow())
    )
    return final if _affected(changed) == 1 else None


# -- webhook bookkeeping ---------------------------------------------------------------------


def start_webhook_delivery(session: Session, batch_id: str) -> str | None:
    """A delivery id for the batch's completion webhook, or None when there is none to send."""
    batch = session.get(ImageBatch, batch_id)
    if batch is None or not batch.webhook_url or batch.webhook_status != WebhookStatus.PENDING:
        return None
    if batch.webhook_delivery_id is None:
        batch.webhook_delivery_id = new_id()
    return batch.webhook_delivery_id


def record_webhook_attempt(
    session: Session,
    batch_id: str,
    delivery_id: str,
    *,
    status_code: int | None,
    error: str | None,
    succeeded: bool,
    final: bool,
) -> int:
    batch = session.get(ImageBatch, batch_id)
    if batch is None:
        return 0
    batch.webhook_attempts += 1
    session.add(
        WebhookAttempt(
            batch_id=batch_id,
            delivery_id=delivery_id,
            attempt=batch.webhook_attempts,
            status_code=status_code,
            error=error,
            succeeded=succeeded,
        )
    )
    batch.webhook_last_error = error
    if succeeded:
        batch.webhook_status = WebhookStatus.DELIVERED
    elif final:
        batch.webhook_status = WebhookStatus.FAILED
    return batch.webhook_attempts


# A batch's `pending` images count as stuck only once the batch is this old: its fan-out
# (start_batch) may still be on its way.
PENDING_GRACE_SECONDS = 120.0


def stuck_now(session: Session, settings: Settings, *, batch_id: str | None = None) -> list[str]:
    """stuck_items as of now: `processing` past any task's deadline (the task time limit and a
    minute), `pending` with no message owed in the outbox or held by the broker. The outbox
    is read before the broker, and both before the images, so a message on its way from one
    to the other is seen in one of them. When the broker cannot be read, pending images are
    left alone (better late than sent twice)."""
    now = utcnow()
    processing_before = now - timedelta(seconds=settings.task_time_limit_seconds + 60)
    owed = owed_jobs(session)
    try:
        queued = list(queued_tasks(settings))
    except Exception as exc:
        log.warning("images_broker_unreadable", error=f"{type(exc).__name__}: {exc}")
        return stuck_items(session, processing_before=processing_before, batch_id=batch_id)
    return stuck_items(
        session,
        processing_before=processing_before,
        pending_before=now - timedelta(seconds=PENDING_GRACE_SECONDS),
        waiting=waiting_for([*owed, *queued]),
        batch_id=batch_id,
    )


def stalled_items(session: Session, started_before: datetime) -> list[str]:
    """Images still `processing` long after their task should have ended: their worker died
    and the broker could not hand the task back (Celery's filesystem transport cannot)."""
    return stuck_items(session, processing_before=started_before)


@dataclass(frozen=True)
class Waiting:
    """What messages (owed in the outbox, or held by the broker) will still run: their images,
    and the batches whose fan-out (start_batch) is still to run."""

    items: frozenset[str] = frozenset()
    batches: frozenset[str] = frozenset()


def waiting_for(messages: Iterable[tuple[str, Sequence[Any]]]) -> Waiting:
    """The images and batches that these messages (task name, arguments) are about."""
    items: set[str] = set()
    batches: set[str] = set()
    for name, args in messages:
        if name == PROCESS_ITEM_JOB and args:
            items.add(str(args[0]))
        elif name == PROCESS_ITEMS_JOB and args and isinstance(args[0], list):
            items.update(str(item_id) for item_id in args[0])
        elif name == START_BATCH_JOB and args:
            batches.add(str(args[0]))
    return Waiting(frozenset(items), frozenset(batches))


def owed_jobs(session: Session) -> list[tuple[str, list[Any]]]:
    """(task, arguments) of the images jobs owed in the outbox (not yet with the broker)."""
    return [
        (task, list(args))
        for task, args in session.execute(
            select(JobOutbox.task, JobOutbox.args).where(
                JobOutbox.task.in_([PROCESS_ITEM_JOB, PROCESS_ITEMS_JOB, START_BATCH_JOB])
            )
        )
    ]


def stuck_items(
    session: Session,
    *,
    processing_before: datetime,
    pending_before: datetime | None = None,
    waiting: Waiting | None = None,
    batch_id: str | None = None,
) -> list[str]:
    """Images of live batches that nothing will run:
    - `processing` since before `processing_before` (past any task's deadline: its worker died
      or its message was lost);
    - with `pending_before` and `waiting`: `pending` in a batch created before
      `pending_before` (a grace period for a fan-out in flight) with no message owed or held
      for it or its batch's fan-out (the message was lost: a whole-worker kill in embedded mode,
      a task acknowledged by a version that did not retry a database outage)."""
    live = ImageBatch.status.in_(ACTIVE_BATCH_STATUSES)
    scope = [ImageBatch.id == batch_id] if batch_id is not None else []
    found = list(
        session.scalars(
            select(ImageItem.id)
            .join(ImageBatch, ImageBatch.id == ImageItem.batch_id)
            .where(
                ImageItem.status == ImageStatus.PROCESSING,
                ImageItem.started_at < processing_before,
                live,
                *scope,
            )
            .order_by(ImageItem.product_id, ImageItem.position)
        )
    )
    if pending_before is None or waiting is None:
        return found
    pending = session.execute(
        select(ImageItem.id, ImageItem.batch_id)
        .join(ImageBatch, ImageBatch.id == ImageItem.batch_id)
        .where(
            ImageItem.status == ImageStatus.PENDING,
            ImageBatch.created_at < pending_before,
            live,
            *scope,
        )
        .order_by(ImageItem.batch_id, ImageItem.product_id, ImageItem.position)
    ).all()
    found.extend(
        item_id
        for item_id, item_batch in pending
        if item_id not in waiting.items and item_batch not in waiting.batches
    )
    return found


def orphan_candidates(session: Session) -> list[tuple[str, str]]:
    """(item id, batch id) of every image not yet done (`pending`, or `processing` by a worker
    that may have died) in a batch that is not finished."""
    return [
        (item_id, batch_id)
        for item_id, batch_id in session.execute(
            select(ImageItem.id, ImageItem.batch_id)
            .join(ImageBatch, ImageBatch.id == ImageItem.batch_id)
            .where(
                ImageItem.status.in_(ACTIVE_ITEM_STATUSES),
                ImageBatch.status.in_(ACTIVE_BATCH_STATUSES),
            )
        )
    ]


def expired_outputs(session: Session, now: datetime, retention: timedelta) -> list[ImageItem]:
    return list(
        session.scalars(
            select(ImageItem).where(
                ImageItem.status == ImageStatus.SUCCEEDED,
                ImageItem.finished_at < now - retention,
                ImageItem.output_key.is_not(None),
            )
        )
    )


def output_key_in_use(session: Session, key: str, *, except_ids: Iterable[str]) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(ImageItem)
            .where(ImageItem.output_key == key, ImageItem.id.not_in(list(except_ids)))
        )
        or 0
    ) > 0


def _affected(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# -- previews for other modules --------------------------------------------------------------

PREVIEW_OPERATIONS: dict[str, Any] = {
    "quality": 75,
    "format": "webp",
    "max_width": 640,
    "max_height": 640,
    "animated": False,
}
# A file to show in place of an upload: WebP at quality 80, at most 2560 x 2560, animations
# kept (chat attachments).
COMPRESSED_OPERATIONS: dict[str, Any] = {
    "quality": 80,
    "format": "webp",
    "max_width": 2560,
    "max_height": 2560,
    "animated": True,
}


def processable_image(data: bytes) -> str | None:
    """The format of `data` when it is an image this pipeline can process, else None (other
    modules decide whether an upload gets a preview with it)."""
    fmt = sniff(data[:4096])
    return fmt if fmt in DECODABLE_FORMATS else None


def image_content_type(fmt: str) -> str:
    """The media type of an image format `processable_image` answered (`png`: `image/png`)."""
    return content_type_and_extension(fmt)[0]


def check_image(data: bytes, *, max_pixels: int) -> str:
    """The format of an image about to be stored for processing, from its header (no pixel
    decoded): a 422 `invalid_image` naming what is wrong when it is not an image the pipeline
    can read (unknown, a damaged header, more than `max_pixels`)."""
    from opsdeck.images.processing import ImageError, inspect

    try:
        return inspect(data, max_pixels=max_pixels).format
    except ImageError as exc:
        raise ValidationFailed(
            exc.message,
            code="invalid_image",
            details=[{"field": "body.file", "message": exc.message, "type": exc.kind}],
        ) from None


def start_preview(
    session: Session,
    owner: User,
    *,
    name: str,
    key: str,
    operations: dict[str, Any] | None = None,
) -> str:
    """Send a stored image (a media-store key) through the pipeline for a small WebP preview
    (at most 640 x 640), or what `operations` ask (COMPRESSED_OPERATIONS); the batch id, to
    ask `preview_of` later. The batch is the owner's, like any upload of theirs."""
    batch = create_upload_batch(
        session,
        owner,
        uploads=[UploadInput(name=name[:255], key=key)],
        operations=operations or PREVIEW_OPERATIONS,
        webhook_url=None,
    )
    return batch.id


@dataclass(frozen=True)
class Preview:
    status: ImageStatus
    key: str | None
    content_type: str | None


def preview_of(session: Session, batch_id: str) -> Preview | None:
    """Where a preview started by `start_preview` stands: pending or processing, succeeded
    with its media-store key, or failed. None when the batch is gone."""
    return previews_of(session, [batch_id]).get(batch_id)


def previews_of(session: Session, batch_ids: Iterable[str]) -> dict[str, Preview]:
    """`preview_of` for many batches in one query (a batch that is gone is left out)."""
    ids = sorted(set(batch_ids))
    if not ids:
        return {}
    found: dict[str, Preview] = {}
    for item in session.scalars(select(ImageItem).where(ImageItem.batch_id.in_(ids))):
        fmt = item.output_format
        kind = content_type_and_extension(fmt)[0] if fmt else None
        found.setdefault(
            item.batch_id,
            Preview(status=ImageStatus(item.status), key=item.output_key, content_type=kind),
        )
    return found
