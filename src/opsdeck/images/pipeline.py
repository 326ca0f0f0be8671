"""What a worker does for one image and one webhook. Transactions stay short: state is claimed
and recorded in their own units of work, and the slow parts (fetching, decoding, encoding,
delivering) run outside any transaction."""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from typing import Any

import httpx
import structlog

from opsdeck.core import live
from opsdeck.core.db import utcnow
from opsdeck.core.jobs import RetryLater, enqueue, enqueue_from_task
from opsdeck.core.outbound.client import OutboundClient
from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.slots import HostSlots, SlotKeeper
from opsdeck.core.queue import queued_tasks, task_session
from opsdeck.core.storage import media_store
from opsdeck.core.webhooks import post_signed, retry_delay
from opsdeck.images import service
from opsdeck.images.metrics import IMAGE_BYTES, IMAGES, PHASE_SECONDS, WEBHOOKS
from opsdeck.images.models import ImageBatch
from opsdeck.images.presenters import batch_summary
from opsdeck.images.processing import ImageError, Operations, process
from opsdeck.settings import Settings, get_settings

log = structlog.get_logger("opsdeck.images")

PROCESS_ITEM_TASK = service.PROCESS_ITEM_JOB
PROCESS_ITEMS_TASK = service.PROCESS_ITEMS_JOB
START_BATCH_TASK = service.START_BATCH_JOB
# Fetch failures worth another try (timeouts, 5xx, 429) are retried this many times.
MAX_FETCH_RETRIES = 4
# A chunk (service.chunks) takes no new image after CHUNK_SLICE_SECONDS.
CHUNK_SLICE_SECONDS = 1.0
# A chunk records its finished images RECORD_EVERY at a time, or sooner when the oldest has
# waited RECORD_SECONDS: one transaction (and one batch-row lock) for several images.
RECORD_EVERY = 8
RECORD_SECONDS = 0.5
# libvips reports each step of each operation at INFO (14 lines for one thumbnail), which at the
# default level would be most of a worker's log; its warnings and errors still come through.
logging.getLogger("pyvips").setLevel(logging.WARNING)


@lru_cache(maxsize=1)
def _client() -> OutboundClient:
    return OutboundClient.from_settings(get_settings())


@lru_cache(maxsize=1)
def _host_slots() -> HostSlots:
    settings = get_settings()
    return HostSlots(
        settings.fetch_per_host_concurrency,
        redis_url=settings.redis_url,
        lock_dir=settings.data_dir / "hostslots",
    )


class _Bounded(OrderedDict[str, dict[str, Any]]):
    """A map that forgets its oldest entries past `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


# The batches this worker process has seen started, with their operations (see claim_item).
# Forgetting one only costs its next claim two more statements.
_started_batches = _Bounded(256)


def start_batch(batch_id: str) -> int:
    """Send the batch's pending images to the queue, in tasks of one image or a few."""
    with task_session() as session:
        return service.enqueue_units(session, service.same_url_units(session, batch_id))


def requeue(item_ids: list[str]) -> int:
    """Send these images to the queue again (their claims are checked when they run)."""
    with task_session() as session:
        return service.enqueue_items(session, item_ids)


@dataclass(frozen=True)
class FetchLater:
    """Not done: fetch the image again in `countdown` seconds. `counts`: whether this was a
    failed try (counted toward MAX_FETCH_RETRIES); waiting for a busy host is not."""

    countdown: float
    counts: bool = True


@dataclass(frozen=True)
class ItemOutcome:
    status: str
    finished_batch: str | None = None
    webhook: bool = False


def claim(item_ids: list[str]) -> list[service.ItemWork]:
    """Claim images to work on (those not finished, in live batches), in the order given."""
    with task_session() as session:
        return service.claim_items(session, item_ids, started_batches=_started_batches)


def process_item(item_id: str, *, retries_done: int) -> str:
    """One image as a task of its own; raises core.jobs.RetryLater to fetch again later."""
    outcome = run_item(item_id, retries_done=retries_done, max_retries=MAX_FETCH_RETRIES)
    if isinstance(outcome, FetchLater):
        if outcome.counts:
            raise RetryLater(outcome.countdown)
        # Waiting for a busy host uses up no retry: sent again with the count it had.
        enqueue_from_task(
            PROCESS_ITEM_TASK, item_id, countdown=outcome.countdown, retries=retries_done
        )
        return "waiting"
    return outcome.status


def run_item(item_id: str, *, retries_done: int, max_retries: int) -> ItemOutcome | FetchLater:
    works = claim([item_id])
    if not works:
        return ItemOutcome(status="skipped")
    return run_work(works[0], retries_done=retries_done, max_retries=max_retries)


def process_chunk(item_ids: list[str], *, retries_done: int = 0) -> int:
    """A few images of a batch in one task, so Celery's cost per task is paid once for them;
    the number of images it took on.

    The chunk is claimed in one statement, so a worker dying anywhere in it leaves its
    unfinished images `processing`: a redelivered chunk (Redis) claims them again and skips the
    ones recorded; in embedded mode the stalled-image sweep hands them back. The first image of
    the first chunk of a batch this process sees is recorded at once (the batch shows output
    early), the others a few at a time (RECORD_EVERY images or RECORD_SECONDS,
    whichever comes first) in one transaction for them all, so progress still moves. The
    chunk starts no new image once it has run CHUNK_SLICE_SECONDS and hands the rest back to
    the queue, so big images do not pile up on one worker at the end of a batch and other
    batches get their turn. Images of one batch with the same URL (service.same_url_units
    keeps them in one chunk) are fetched and processed once, and each gets the result. An
    image to fetch again later is sent again with its countdown: alone as a process_item
    task, with its same-URL images as a process_items task, carrying `retries_done`."""
    started = time.monotonic()
    seen = set(_started_batches)
    units = same_url(claim(item_ids))
    # A batch new to this process: its first output is recorded at once. Later chunks wait
    # for RECORD_EVERY or RECORD_SECONDS (a transaction each saved: 3 -> 2 for 16 images).
    early = bool(units) and units[0][0].batch_id not in seen
    unrecorded: list[Produced] = []

    def flush() -> None:
        record(unrecorded)
        unrecorded.clear()

    # One host slot kept from image to image while they come from the same host (two Redis
    # round trips a run of images instead of two an image), given back however the chunk ends.
    with _host_slots().keeper() as slots:
        oldest = 0.0
        taken = 0
        for index, unit in enumerate(units):
            if index and time.monotonic() - started > CHUNK_SLICE_SECONDS:
                flush()
                # In tasks of half as many images as this one did in its slice: each should take
                # about half a slice, so the queue's last tasks still end close together.
                hand_back(units[index:], per_task=max(1, taken // 2))
                return taken
            try:
                done = attempt(
                    unit[0], retries_done=retries_done, max_retries=MAX_FETCH_RETRIES, slots=slots
                )
            except BaseException:
                # This image stays claimed (the stalled-image sweep hands it back, as for a
                # single task); the ones after it need not wait for that, nor those done. The
                # error that got us here is the one to report, whatever these two meet.
                try:
                    flush()
                    hand_back(units[index + 1 :])
                except Exception:
                    log.exception("images_chunk_cleanup_failed", images=len(item_ids) - taken)
                raise
            taken += len(unit)
            if isinstance(done, FetchLater):
                fetch_later(unit, done, retries_done=retries_done)
                continue
            if not unrecorded:
                oldest = time.monotonic()
            unrecorded.extend(replace(done, item_id=work.item_id) for work in unit)
            if (
                (index == 0 and early)
                or len(unrecorded) >= RECORD_EVERY
                or time.monotonic() - oldest >= RECORD_SECONDS
            ):
                flush()
        flush()
        return taken


def same_url(works: list[service.ItemWork]) -> list[list[service.ItemWork]]:
    """Claimed images in units of one URL in one batch (an upload alone), in order."""
    units: list[list[service.ItemWork]] = []
    by_url: dict[tuple[str, str], list[service.ItemWork]] = {}
    for work in works:
        if work.input_url is None:
            units.append([work])
            continue
        key = (work.batch_id, work.input_url)
        if key in by_url:
            by_url[key].append(work)
        else:
            by_url[key] = [work]
            units.append(by_url[key])
    return units


def fetch_later(unit: list[service.ItemWork], later: FetchLater, *, retries_done: int) -> None:
    """Send a unit of images again in `later.countdown` seconds; a failed try counts one retry
    more, waiting for a busy host does not."""
    retries = retries_done + 1 if later.counts else retries_done
    ids = [work.item_id for work in unit]
    if len(ids) == 1:
        enqueue_from_task(PROCESS_ITEM_TASK, ids[0], countdown=later.countdown, retries=retries)
    else:
        enqueue_from_task(PROCESS_ITEMS_TASK, ids, countdown=later.countdown, retries=retries)


def hand_back(units: list[list[service.ItemWork]], *, per_task: int = 1) -> None:
    """Give claimed images back unstarted and queue them again, in one unit of work, in tasks
    of `per_task` images (service.pack's; a unit is never split)."""
    if units:
        ids = [[work.item_id for work in unit] for unit in units]
        with task_session() as session:
            service.release_items(session, [item_id for unit in ids for item_id in unit])
            service.enqueue_units(session, ids, per_task=per_task)


def run_work(
    work: service.ItemWork, *, retries_done: int, max_retries: int
) -> ItemOutcome | FetchLater:
    """Fetch, process, store and record one claimed image."""
    done = attempt(work, retries_done=retries_done, max_retries=max_retries)
    if isinstance(done, FetchLater):
        return done
    return record([done])[0]


@dataclass(frozen=True)
class Produced:
    """An image's end, not yet recorded: its output, or why it failed."""

    item_id: str
    batch_id: str
    result: service.ItemResult | None = None
    failure: tuple[str, str] | None = None


def attempt(
    work: service.ItemWork,
    *,
    retries_done: int,
    max_retries: int,
    slots: SlotKeeper | None = None,
) -> Produced | FetchLater:
    """Fetch, process and store one claimed image; record nothing. With `slots`, the host's
    download slot is taken through that keeper (and kept after it); else for the fetch only."""
    settings = get_settings()
    try:
        result = _produce(settings, work, slots)
    except FetchError as exc:
        if exc.kind == "busy":  # not the image's fault: wait for the host, however long
            log.info("image_waiting_for_host", item_id=work.item_id, reason=exc.message)
            return FetchLater(countdown=_jitter(5.0), counts=False)
        if exc.retryable and retries_done < max_retries:
            delay = exc.retry_after or min(300.0, 5.0 * 2**retries_done)
            log.info("image_fetch_retry", item_id=work.item_id, reason=exc.message, delay=delay)
            return FetchLater(countdown=_jitter(delay))
        return Produced(work.item_id, work.batch_id, failure=(exc.kind, exc.message))
    except ImageError as exc:
        return Produced(work.item_id, work.batch_id, failure=(exc.kind, exc.message))
    return Produced(work.item_id, work.batch_id, result=result)


def _jitter(seconds: float) -> float:
    # Jitter only spreads retries out; it needs no cryptographic randomness.
    return seconds * random.uniform(1.0, 1.25)  # noqa: S311  # nosec B311


def _produce(
    settings: Settings, work: service.ItemWork, slots: SlotKeeper | None
) -> service.ItemResult:
    store = media_store(settings)
    started = time.perf_counter()
    if work.input_url:
        holder = slots if slots is not None else _host_slots()
        with holder.hold(httpx.URL(work.input_url).host, wait_seconds=10):
            data = _client().fetch(work.input_url).content
        PHASE_SECONDS.labels("fetch").observe(time.perf_counter() - started)
    elif work.input_key:
        data = store.path(work.input_key).read_bytes()
    else:  # a row written by hand; nothing in the API creates one
        raise ImageError("not_an_image", "The image has neither a URL nor an upload.")
    started = time.perf_counter()
    processed = process(
        data, Operations.model_validate(work.operations), max_pixels=settings.images_max_pixels
    )
    PHASE_SECONDS.labels("process").observe(time.perf_counter() - started)
    return service.ItemResult(
        # Made durable by record(), with the others it records, before they are recorded.
        output_key=store.put(processed.data, sync=False),
        output_format=processed.format,
        bytes_in=processed.bytes_in,
        bytes_out=processed.bytes_out,
        width=processed.width,
        height=processed.height,
    )


def record(produced: list[Produced]) -> list[ItemOutcome]:
    """Record finished images in one transaction, then finish their batches where nothing is
    left; outcomes in the order given. Only the last outcome of a batch this call finished
    carries `finished_batch` (its webhook goes once)."""
    if not produced:
        return []
    # The outputs on disk for good before any row points at them: one sync for them all.
    media_store(get_settings()).sync(
        done.result.output_key for done in produced if done.result is not None
    )
    changed: dict[str, bool] = {}
    finished: dict[str, bool] = {}  # batch id -> a webhook to send
    with task_session() as session:
        # Rows locked in one order (items by id, then batches by id), so two workers recording
        # overlapping sets (a redelivered chunk) wait for each other instead of deadlocking.
        # All successes (the usual case): one statement for them (service.complete_items).
        # With a failure among them, one statement an image, in that same order.
        results = {done.item_id: done.result for done in produced if done.result is not None}
        completed = (
            service.complete_items(session, results) if len(results) == len(produced) else None
        )
        for done in sorted(produced, key=lambda done: done.item_id):
            if done.result is not None:
                changed[done.item_id] = (
                    done.item_id in completed
                    if completed is not None
                    else service.complete_item(session, done.item_id, done.result)
                )
            else:
                kind, message = done.failure or ("unknown", "failed")
                changed[done.item_id] = service.fail_item(
                    session, done.item_id, kind=kind, message=message
                )
        ends = service.finish_batches(session, {done.batch_id for done in produced})
        for end in ends:
            if end.finished:
                finished[end.batch_id] = end.webhook_pending
                if end.webhook_pending:
                    # Owed in the transaction that finished the batch: sent once, never lost.
                    enqueue(session, service.DELIVER_WEBHOOK_JOB, end.batch_id)
        states = [service.live_state(end.batch_id, end.status) for end in ends]
    # Progress to the owners' open pages (a hint to refetch), once it is committed.
    for state in states:
        live.publish(f"images:batch:{state['id']}", "images:batch", state)
    outcomes = []
    last_of_batch = {done.batch_id: index for index, done in enumerate(produced)}
    for index, done in enumerate(produced):
        status = "succeeded" if done.result is not None else "failed"
        if changed[done.item_id]:
            IMAGES.labels(status, done.failure[0] if done.failure else "").inc()
            if done.result is not None:
                IMAGE_BYTES.labels("in").inc(done.result.bytes_in)
                IMAGE_BYTES.labels("out").inc(done.result.bytes_out)
        final = done.batch_id in finished and last_of_batch[done.batch_id] == index
        outcomes.append(
            ItemOutcome(
                status=status,
                finished_batch=done.batch_id if final else None,
                webhook=final and finished[done.batch_id],
            )
        )
    return outcomes


# -- webhooks --------------------------------------------------------------------------------

# The event a finished batch's webhook reports (its payload's `event`, its X-OpsDeck-Event).
WEBHOOK_EVENT = "batch.completed"


@dataclass(frozen=True)
class WebhookAttemptOutcome:
    status: str
    retry_in: float | None = None


def webhook_payload(
    settings: Settings, batch: ImageBatch, counts: service.Counts
) -> dict[str, Any]:
    summary = batch_summary(settings, batch, counts)
    return {
        "event": WEBHOOK_EVENT,
        "request_id": batch.id,
        "status": batch.status,
        "total_images": summary.total_images,
        "processed_images": summary.processed_images,
        "failed_images": summary.failed_images,
        "output_csv_url": summary.output_csv_url,
    }


def deliver_webhook(batch_id: str) -> WebhookAttemptOutcome:
    """One delivery attempt; raises core.jobs.RetryLater when another one is due later."""
    outcome = attempt_webhook(batch_id)
    if outcome.retry_in is not None:
        raise RetryLater(outcome.retry_in)
    return outcome


def attempt_webhook(batch_id: str) -> WebhookAttemptOutcome:
    settings = get_settings()
    with task_session() as session:
        delivery_id = service.start_webhook_delivery(session, batch_id)
        batch = session.get(ImageBatch, batch_id)
        if delivery_id is None or batch is None or batch.webhook_url is None:
            return WebhookAttemptOutcome(status="nothing_to_send")
        url = batch.webhook_url
        attempts_before = batch.webhook_attempts
        payload = webhook_payload(
            settings, batch, service.counts_for(session, [batch_id])[batch_id]
        )
    delivery = post_signed(
        settings, url, payload, delivery_id=delivery_id, event=WEBHOOK_EVENT, client=_client()
    )
    status_code, error, succeeded = delivery.status_code, delivery.error, delivery.succeeded
    retry_in = None if succeeded else retry_delay(attempts_before + 1)
    with task_session() as session:
        service.record_webhook_attempt(
            session,
            batch_id,
            delivery_id,
            status_code=status_code,
            error=error,
            succeeded=succeeded,
            final=not succeeded and retry_in is None,
        )
    result = "delivered" if succeeded else ("retrying" if retry_in is not None else "failed")
    WEBHOOKS.labels(result).inc()
    log.info(
        "webhook_attempt", batch_id=batch_id, result=result, status_code=status_code, error=error
    )
    return WebhookAttemptOutcome(status=result, retry_in=retry_in)


def requeue_stalled() -> int:
    """Hand back to the queue the images nothing will run (beat runs this every minute, in
    embedded mode too: `opsdeck serve` runs beat in its worker): `processing` past any task's
    deadline (their worker died), `pending` with no message owed or waiting for them (their
    message was lost). See service.stuck_now."""
    settings = get_settings()
    with task_session() as session:
        stuck = service.stuck_now(session, settings)
        if stuck:
            log.warning("images_requeued_stuck", images=len(stuck))
        return service.enqueue_items(session, stuck)


def recover_orphans() -> int:
    """Re-queue the images a killed embedded worker took from the broker but never ran."""
    settings = get_settings()
    if not settings.embedded:
        return 0  # Redis hands unacknowledged messages back (visibility timeout)
    orphans = orphaned_items(orphan_candidates(), queued_tasks(settings))
    if orphans:
        log.warning("images_requeued_after_restart", images=len(orphans))
    return requeue(orphans)


def orphaned_items(
    candidates: Iterable[tuple[str, str]], queued: Iterable[tuple[str, list[Any]]]
) -> list[str]:
    """Which unfinished images (item id, batch id) have no message left to run them, given the
    broker's waiting messages (task name, arguments).

    Celery's filesystem transport deletes a message file when a worker takes it, before the
    task runs, and cannot hand it back. A worker killed as a whole (SIGKILL, the OOM killer)
    loses the task it was running and those it had taken but not started; their images stay
    `pending` or `processing` with nothing queued for them. Asked when the embedded worker
    starts: embedded mode runs one worker, so nothing else can be working on them then."""
    waiting = service.waiting_for(queued)
    return [
        item_id
        for item_id, batch_id in candidates
        if item_id not in waiting.items and batch_id not in waiting.batches
    ]


def orphan_candidates() -> list[tuple[str, str]]:
    with task_session() as session:
        return service.orphan_candidates(session)


# -- retention -------------------------------------------------------------------------------


def purge_expired_outputs() -> dict[str, Any]:
    settings = get_settings()
    store = media_store(settings)
    unused: set[str] = set()
    with task_session() as session:
        expired = service.expired_outputs(
            session, utcnow(), timedelta(days=settings.images_retention_days)
        )
        expired_ids = [item.id for item in expired]
        for item in expired:
            key = item.output_key
            item.output_key = None
            item.output_token = None
            item.error = "The output expired and was deleted."
            if key and not service.output_key_in_use(session, key, except_ids=expired_ids):
                unused.add(key)
    # Files go only once the rows no longer point at them.
    removed = sum(int(store.delete(key)) for key in unused)
    return {"expired_images": len(expired_ids), "deleted_files": removed}
