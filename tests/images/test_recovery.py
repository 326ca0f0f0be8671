"""Images nothing will run are found and run again: by beat's sweep (images.requeue_stalled)
and by `POST .../retry`. Stuck means `processing` past any task's deadline, or `pending` with
no message owed in the outbox or held by the broker (the message was lost)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from opsdeck.core.db import utcnow
from opsdeck.core.jobs import JobOutbox, enqueue
from opsdeck.images import service
from opsdeck.images.models import ImageBatch, ImageItem
from opsdeck.settings import Settings
from tests.conftest import UserFactory, make_settings, sign_in
from tests.stack import current_stack

API = "/api/v1/images"
LONG_AGO = timedelta(hours=1)


def _batch(session: Session, owner: Any, count: int, *, age: timedelta = LONG_AGO) -> str:
    """A batch of `count` pending images created `age` ago, with no message for it anywhere
    (its start_batch job taken out of the outbox before anything could send it)."""
    batch = service.create_csv_batch(
        session,
        owner,
        columns=["S. No.", "Product Name", "Input Image Urls"],
        products=[
            service.ProductInput(str(n), f"p{n}", [str(n), f"p{n}", "u"], ["http://127.0.0.1:9/a"])
            for n in range(count)
        ],
        operations={"quality": 50},
        webhook_url=None,
    )
    session.execute(delete(JobOutbox).where(JobOutbox.task == service.START_BATCH_JOB))
    session.execute(
        update(ImageBatch).where(ImageBatch.id == batch.id).values(created_at=utcnow() - age)
    )
    session.flush()
    return batch.id


def _set(session: Session, item_id: str, **values: Any) -> None:
    session.execute(update(ImageItem).where(ImageItem.id == item_id).values(**values))


def _broker_settings(tmp_path: Path, kind: str) -> tuple[Settings, Celery]:
    """Settings whose broker is one this test alone uses, and a Celery app sending to it: a
    folder of its own (the filesystem broker) or a Redis database no worker listens to."""
    if kind == "filesystem":
        settings = make_settings(tmp_path, database_url="", redis_url="")
        sender = Celery("probe", broker="filesystem://")
        folder = str(settings.broker_dir / "queue")
        sender.conf.broker_transport_options = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(tmp_path / "control"),
        }
        return settings, sender
    redis_url = current_stack().redis_url.rsplit("/", 1)[0] + "/7"
    settings = make_settings(tmp_path, redis_url=redis_url)
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return settings, Celery("probe", broker=redis_url)


BROKERS = ["filesystem", *(["redis"] if current_stack().redis_url else [])]


@pytest.mark.parametrize("broker", BROKERS)
def test_stuck_images_are_those_no_message_will_run(
    app: FastAPI, make_user: UserFactory, tmp_path: Path, broker: str
) -> None:
    owner = make_user("owner")
    settings, sender = _broker_settings(tmp_path, broker)
    # One transaction, never committed: nothing outside this test (the stack's worker and its
    # relay) sees these rows or the outbox row below.
    with app.state.sessionmaker() as session:
        old = _batch(session, owner, 9)
        ids = service.item_ids(session, old)
        lost, queued, chunked_1, chunked_2, owed, stale, running, failed, done = ids
        _set(session, stale, status="processing", started_at=utcnow() - LONG_AGO)
        _set(session, running, status="processing", started_at=utcnow())
        _set(session, failed, status="failed")
        _set(session, done, status="succeeded")
        enqueue(session, service.PROCESS_ITEM_JOB, owed)
        fresh = _batch(session, owner, 1, age=timedelta(0))  # its fan-out may be on its way
        fanning_out = _batch(session, owner, 2)
        cancelled = _batch(session, owner, 1)
        session.execute(
            update(ImageBatch).where(ImageBatch.id == cancelled).values(status="cancelled")
        )
        session.flush()
        sender.send_task(service.PROCESS_ITEM_JOB, args=[queued], queue="opsdeck")
        sender.send_task(service.PROCESS_ITEMS_JOB, args=[[chunked_1, chunked_2]], queue="opsdeck")
        sender.send_task(service.START_BATCH_JOB, args=[fanning_out], queue="opsdeck")

        others = [service.item_ids(session, b) for b in (fresh, fanning_out, cancelled)]
        stuck = service.stuck_now(session, settings)
        in_old = service.stuck_now(session, settings, batch_id=old)
        session.rollback()

    assert sorted(stuck) == sorted([lost, stale])
    assert sorted(in_old) == sorted([lost, stale])
    assert all(others)  # the other batches' images were there, pending, and none is stuck


def test_retry_re_dispatches_failed_and_stuck_images(
    client: TestClient, app: FastAPI, make_user: UserFactory, db: Session
) -> None:
    """The outage of the issue: images left `pending` with no task, one `processing` long past
    its deadline. `retry` runs them again, with the failed one, and says how many."""
    owner = make_user("shop")
    headers = sign_in(client, "shop")
    batch_id = _batch(db, owner, 6)
    lost_1, lost_2, stale, running, failed, done = service.item_ids(db, batch_id)
    _set(db, stale, status="processing", started_at=utcnow() - LONG_AGO)
    _set(db, running, status="processing", started_at=utcnow())
    _set(db, failed, status="failed", error="HTTP 404", error_kind="http_error")
    _set(db, done, status="succeeded")
    db.execute(update(ImageBatch).where(ImageBatch.id == batch_id).values(status="processing"))
    db.commit()

    retried = client.post(f"{API}/batches/{batch_id}/retry", headers=headers)

    assert retried.status_code == 200, retried.text
    assert retried.json() == {"request_id": batch_id, "retried_images": 4}
    statuses = dict(db.execute(select(ImageItem.id, ImageItem.status)).all())
    db.commit()
    # The failed image is pending again; the others were sent as they were (their claims are
    # checked when they run); the running one and the finished one were left alone.
    assert statuses[failed] in {"pending", "processing"}
    assert statuses[done] == "succeeded"
    assert {statuses[lost_1], statuses[lost_2], statuses[running]} <= {"pending", "processing"}
