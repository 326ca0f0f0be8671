"""Images Celery tasks: ids in, the work in pipeline.py. Each is idempotent: running one twice
changes nothing more (pipeline and service claim and record state conditionally)."""

from __future__ import annotations

from typing import Any

from celery import signals

from opsdeck.core.jobs import job, job_retries
from opsdeck.images import pipeline, service


@job(service.START_BATCH_JOB)
def start_batch(batch_id: str) -> int:
    """Fan a batch out into tasks of one image or a few, so it spreads over every worker."""
    return pipeline.start_batch(batch_id)


@job(service.PROCESS_ITEM_JOB)
def process_item(item_id: str) -> str:
    return pipeline.process_item(item_id, retries_done=job_retries())


@job(service.PROCESS_ITEMS_JOB)
def process_items(item_ids: list[str]) -> int:
    """A few images of a batch in one task (see pipeline.process_chunk)."""
    return pipeline.process_chunk(item_ids, retries_done=job_retries())


@job(service.DELIVER_WEBHOOK_JOB)
def deliver_webhook(batch_id: str) -> str:
    return pipeline.deliver_webhook(batch_id).status


@job("images.purge_expired_outputs", every=86400.0)
def purge_expired_outputs() -> dict[str, Any]:
    return pipeline.purge_expired_outputs()


@job("images.requeue_stalled", every=60.0)
def requeue_stalled() -> int:
    """Hand images whose worker died back to the queue."""
    return pipeline.requeue_stalled()


def _recover_on_start(**_: Any) -> None:
    pipeline.recover_orphans()


signals.worker_ready.connect(_recover_on_start, weak=False)
