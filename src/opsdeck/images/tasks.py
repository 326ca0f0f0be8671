"""Images Celery tasks: ids in, state re-read, idempotent. The work itself is in pipeline.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from celery import Task, signals

from opsdeck.core.queue import celery_app, queued_tasks
from opsdeck.images import pipeline
from opsdeck.settings import get_settings

log = structlog.get_logger("opsdeck.images")

# Fetch failures worth another try (timeouts, 5xx, 429) are retried this many times.
MAX_FETCH_RETRIES = 4


@celery_app.task(name=pipeline.START_BATCH_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def start_batch(batch_id: str) -> int:
    """Fan a batch out into one task per image, so it spreads over every worker."""
    return enqueue_items(pipeline.pending_items(batch_id))


def enqueue_items(item_ids: Iterable[str]) -> int:
    count = 0
    for item_id in item_ids:
        process_item.delay(item_id)
        count += 1
    return count


@celery_app.task(name=pipeline.PROCESS_ITEM_TASK, bind=True, acks_late=True, max_retries=None)  # type: ignore[untyped-decorator]
def process_item(self: Task, item_id: str) -> str:
    outcome = pipeline.run_item(
        item_id, retries_done=self.request.retries, max_retries=MAX_FETCH_RETRIES
    )
    if isinstance(outcome, pipeline.RetryLater):
        raise self.retry(countdown=outcome.countdown)
    if outcome.finished_batch and outcome.webhook:
        deliver_webhook.delay(outcome.finished_batch)
    return outcome.status


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
