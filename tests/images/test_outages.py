"""Images batches across a broker outage, on the real stack: Redis stopped mid-batch and started
again (integration), the filesystem broker's folder unavailable for a while (embedded). Every
image is processed once, the batch finishes and its webhook goes once, soon after the broker
is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.images.models import ImageItem
from opsdeck.settings import Settings
from tests.images.servers import LocalServer, Route
from tests.stack import ManagedProcess, TestStack, wait_until

API = "/api/v1/images"
FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
OUTAGE_SECONDS = 10.0

pytestmark = pytest.mark.integration


def _batch(client: TestClient, headers: dict[str, str], request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{API}/batches/{request_id}", headers=headers).json()
    return body


@contextmanager
def _broker_down(test_stack: TestStack, settings: Settings) -> Iterator[None]:
    """The broker goes away, for every process, and comes back where it was.

    Integration: the test Redis is stopped (its append-only file keeps the queue, as in
    production) and started again on the same port. Embedded: the filesystem broker's queue
    folder is moved away, so the worker finds no message and nobody can write one, then put
    back."""
    if test_stack.redis is not None:
        test_stack.redis.stop()
        try:
            yield
        finally:
            test_stack.redis.start(same_port=True)
        return
    folder = settings.broker_dir / "queue"
    aside = settings.broker_dir / "queue-unavailable"
    folder.rename(aside)
    try:
        yield
    finally:
        aside.rename(folder)


def test_a_batch_survives_the_broker_stopping_mid_batch(
    client: TestClient,
    owner: dict[str, str],
    server: LocalServer,
    images: Any,
    db: Session,
    test_stack: TestStack,
    settings: Settings,
    celery_worker: ManagedProcess,
) -> None:
    photo = images.jpeg_bytes(width=64, height=48)
    count = 40
    urls = []
    for n in range(count):
        # Slow enough that the outage lands with images in flight and images still queued.
        server.routes[f"/img-{n}.jpg"] = Route(body=photo, content_type="image/jpeg", delay=0.3)
        urls.append(server.url(f"/img-{n}.jpg"))
    rows = "".join(f"{n},P{n},{url}\n" for n, url in enumerate(urls))
    accepted = client.post(
        f"{API}/batches",
        headers=owner,
        files={"file": ("p.csv", f"S. No.,Product Name,Input Image Urls\n{rows}".encode())},
        data={"webhook_url": server.url("/hook")},
    )
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]
    wait_until(
        lambda: _batch(client, owner, request_id)["processed_images"] >= 4,
        timeout=120,
        message="the first images to be done",
    )

    # Fetches that start now outlast the outage: their tasks end after the broker is back,
    # on a connection that is no longer the worker's.
    for route in server.routes.values():
        route.delay = OUTAGE_SECONDS + 4
    started = sum(server.hits.values())
    wait_until(
        lambda: sum(server.hits.values()) > started, timeout=60, message="a slow fetch to start"
    )
    with _broker_down(test_stack, settings):
        time.sleep(OUTAGE_SECONDS)
        for route in server.routes.values():
            route.delay = 0.3
        celery_worker.assert_running()
        during = _batch(client, owner, request_id)
        assert during["status"] == "processing"

    def finished() -> dict[str, Any] | None:
        celery_worker.assert_running()
        batch = _batch(client, owner, request_id)
        return batch if batch["status"] in FINAL else None

    # Bounded by seconds after the broker is back, far below beat's stalled-image sweep
    # (which is not running here: without it, a lost task would never be run).
    batch = wait_until(finished, timeout=90, message="the batch to finish after the outage")

    assert batch["status"] == "completed", batch
    assert (batch["processed_images"], batch["failed_images"]) == (count, 0)
    attempts = [item.attempts for item in db.scalars(select(ImageItem))]
    db.commit()
    assert attempts == [1] * count
    assert {f"/img-{n}.jpg": 1 for n in range(count)} == {
        path: hits for path, hits in server.hits.items() if path.startswith("/img-")
    }
    wait_until(lambda: server.deliveries, timeout=60, message="the webhook")
    time.sleep(2)  # a duplicate would arrive within this window; there must be none
    assert len(server.deliveries) == 1
    celery_worker.assert_running()
