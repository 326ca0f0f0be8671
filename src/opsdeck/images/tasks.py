"""Images Celery tasks: ids in, state re-read, idempotent. The work itself is in pipeline.py."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import structlog
from celery import Task, signals

from opsdeck.core.queue import celery_app, queued_tasks
from opsdeck.images import pipeline, service
from opsdeck.settings import get_settings

log = structlog.get_logger("opsdeck.images")

# Fetch failures worth another try (timeouts, 5xx, 429) are retried this many times.
MAX_FETCH_RETRIES = 4


@celery_app.task(name=pipeline.START_BATCH_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def start_batch(batch_id: str) -> int:
    """Fan a batch out into tasks of one image or a few, so it spreads over every worker."""
    return enqueue_items(pipeline.pending_items(batch_id))


def enqueue_items(item_ids: Iterable[str]) -> int:
    ids = list(item_ids)
    for chunk in pipeline.chunks(ids):
        if len(chunk) == 1:
            process_item.delay(chunk[0])
        else:
            process_items.delay(chunk)
    return len(ids)


@celery_app.task(name=pipeline.PROCESS_ITEM_TASK, bind=True, acks_late=True, max_retries=None)  # type: ignore[untyped-decorator]
def process_item(self: Task, item_id: str) -> str:
    outcome = pipeline.run_item(
        item_id, retries_done=self.request.retries, max_retries=MAX_FETCH_RETRIES
    )
    if isinstance(outcome, pipeline.RetryLater):
        raise self.retry(countdown=outcome.countdown)
    _after(outcome)
    return outcome.status


@celery_app.task(name=pipeline.PROCESS_ITEMS_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def process_items(item_ids: list[str]) -> int:
    """A few images of a batch in one task, so Celery's cost per task is paid once for them.

    The chunk is claimed in one statement, so a worker dying anywhere in it leaves its
    unfinished images `processing`: a redelivered chunk (Redis) claims them again and skips the
    ones recorded; in embedded mode the stalled-image sweep hands them back. The first image is
    recorded at once, the others a few at a time (RECORD_EVERY images or RECORD_SECONDS,
    whichever comes first) in one transaction for them all, so progress still moves. The
    chunk starts no new image once it has run CHUNK_SLICE_SECONDS and hands the rest back to
    the queue, so big images do not pile up on one worker at the end of a batch and other
    batches get their turn. An image to fetch again later gets a process_item task of its own,
    with its countdown."""
    started = time.monotonic()
    works = pipeline.claim(item_ids)
    unrecorded: list[pipeline.Produced] = []
    oldest = 0.0

    def flush() -> None:
        for outcome in pipeline.record(unrecorded):
            _after(outcome)
        unrecorded.clear()

    for index, work in enumerate(works):
        if index and time.monotonic() - started > pipeline.CHUNK_SLICE_SECONDS:
            flush()
            _hand_back(works[index:])
            return index
        try:
            done = pipeline.attempt(work, retries_done=0, max_retries=MAX_FETCH_RETRIES)
        except BaseException:
            # This image stays claimed (the stalled-image sweep hands it back, as for a
            # single task); the ones after it need not wait for that, nor those done. The
            # error that got us here is the one to report, whatever these two meet.
            try:
                flush()
                _hand_back(works[index + 1 :])
            except Exception:
                log.exception("images_chunk_cleanup_failed", images=len(works) - index)
            raise
        if isinstance(done, pipeline.RetryLater):
            process_item.apply_async((work.item_id,), countdown=done.countdown, retries=1)
            continue
        if not unrecorded:
            oldest = time.monotonic()
        unrecorded.append(done)
        if (
            index == 0  # the chunk's first image at once: a new batch shows output early
            or len(unrecorded) >= pipeline.RECORD_EVERY
            or time.monotonic() - oldest >= pipeline.RECORD_SECONDS
        ):
            flush()
    flush()
    return len(works)


def _hand_back(works: list[service.ItemWork]) -> None:
    if works:
        pipeline.release(works)
        enqueue_items([work.item_id for work in works])


def _after(outcome: pipeline.ItemOutcome) -> None:
    if outcome.finished_batch and outcome.webhook:
        deliver_webhook.delay(outcome.finished_batch)


@celery_app.task(name="images.deliver_webhook", bind=True, acks_late=True, max_retries=None)  # type: ignore[untyped-decorator]
def deliver_webhook(self: Task, batch_id: str) -> str:
    attempt = pipeline.deliver_webhook(batch_id)
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in)
    return attempt.status


@celery_app.task(name="images.purge_expired_outputs", acks_late=True)  # type: ignore[untyped-decorator]
def purge_expired_outputs() -> dict[str, Any]:
    return pipeline.purge_expired_outputs()


@celery_app.task(name="images.requeue_stalled", acks_late=True)  # type: ignore[untyped-decorator]
def requeue_stalled() -> int:
    """Hand images whose worker died back to the queue (beat runs this every minute)."""
    return enqueue_items(pipeline.stalled_items())


def recover_orphans() -> int:
    """Re-queue the images a killed embedded worker took from the broker but never ran."""
    settings = get_settings()
    if not settings.embedded:
        return 0  # Redis hands unacknowledged messages back (visibility timeout)
    orphans = pipeline.orphaned_items(pipeline.orphan_candidates(), queued_tasks(settings))
    if orphans:
        log.warning("images_requeued_after_restart", images=len(orphans))
    return enqueue_items(orphans)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _recover_on_start(**_: Any) -> None:
    recover_orphans()
