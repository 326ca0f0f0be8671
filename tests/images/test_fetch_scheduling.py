"""How the worker schedules fetches, on the real stack: a busy host is waited for without using
up fetch retries, the same URL twice in a batch is fetched once, and a cancelled batch leaves
no work for the queue."""

from __future__ import annotations

import csv
import io
import time
import uuid
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.core.jobs import JobOutbox
from opsdeck.core.observability import REQUEST_ID_HEADER
from opsdeck.core.outbound.slots import HostSlots, slot_key
from opsdeck.core.queue import DEFAULT_QUEUE, queue_depths
from opsdeck.core.redis import redis_client
from opsdeck.images.models import ImageItem
from opsdeck.images.pipeline import MAX_FETCH_RETRIES
from opsdeck.settings import Settings
from tests.images.servers import LocalServer, Route
from tests.stack import ManagedProcess, wait_until

API = "/api/v1/images"
FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
# "Few": a cancelled 3,000-image batch makes 375 chunks; the worker (2 processes) may take a
# handful while the cancel deletes them from the queue.
FEW_TASKS = 20

pytestmark = pytest.mark.integration


def _post_csv(
    client: TestClient, headers: dict[str, str], rows: list[list[str]], **data: str
) -> str:
    body = "S. No.,Product Name,Input Image Urls\n" + "".join(
        f'{serial},{name},"{",".join(urls)}"\n' for serial, name, *urls in rows
    )
    accepted = client.post(
        f"{API}/batches",
        headers=headers,
        files={"file": ("p.csv", body.encode(), "text/csv")},
        data=data,
    )
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["request_id"])


def _finished(client: TestClient, headers: dict[str, str], request_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"{API}/batches/{request_id}", headers=headers).json()
        return body if body["status"] in FINAL else None

    return wait_until(done, timeout=180, message=f"batch {request_id} to finish")


def test_waiting_for_a_busy_host_uses_up_no_fetch_retry(
    client: TestClient,
    owner: dict[str, str],
    server: LocalServer,
    images: Any,
    settings: Settings,
    celery_worker: ManagedProcess,
) -> None:
    # The image answers 503 (retry after 1 s) as many times as a fetch may be retried, then
    # serves the image: it succeeds only if the wait for the busy host was not counted.
    server.routes["/flaky.jpg"] = Route(
        body=images.jpeg_bytes(width=64, height=48),
        content_type="image/jpeg",
        fail_first=MAX_FETCH_RETRIES,
        fail_headers={"Retry-After": "1"},
    )
    trace = f"busy-{uuid.uuid4().hex}"
    slots = HostSlots(
        settings.fetch_per_host_concurrency,
        redis_url=settings.redis_url,
        lock_dir=settings.data_dir / "hostslots",
    )
    if settings.redis_url:
        # Slots leased by worker processes an earlier test killed (a lease outlives its holder
        # by up to two minutes) would keep this test from taking them all.
        redis_client(settings.redis_url).delete(slot_key("127.0.0.1"))
    with ExitStack() as held:
        for _ in range(slots.limit):  # every download slot of the host, as if busy elsewhere
            held.enter_context(slots.hold("127.0.0.1", wait_seconds=30))
        request_id = _post_csv(
            client,
            {**owner, REQUEST_ID_HEADER: trace},
            [["1", "Lamp", server.url("/flaky.jpg")]],
        )
        celery_worker.wait_for_record(
            lambda r: r.get("event") == "image_waiting_for_host" and r.get("request_id") == trace,
            message="the worker to wait for the busy host",
            timeout=120,
        )
        assert server.hits.get("/flaky.jpg") is None

    batch = _finished(client, owner, request_id)

    assert batch["status"] == "completed", batch
    assert server.hits["/flaky.jpg"] == MAX_FETCH_RETRIES + 1


def test_the_same_url_twice_in_a_batch_is_fetched_once(
    client: TestClient, owner: dict[str, str], server: LocalServer, images: Any
) -> None:
    photo = images.jpeg_bytes(width=64, height=48)
    same = server.serve("/same.jpg", photo)
    other = server.serve("/other.jpg", photo)
    request_id = _post_csv(
        client,
        owner,
        [["1", "Mug", same, other, same], ["2", "Cap", same], ["3", "Hat", other]],
        webhook_url=server.url("/hook"),
    )

    batch = _finished(client, owner, request_id)

    assert batch["status"] == "completed", batch
    assert (batch["total_images"], batch["processed_images"]) == (5, 5)
    assert server.hits["/same.jpg"] == 1
    assert server.hits["/other.jpg"] == 1
    outputs = [[image["output_url"] for image in p["images"]] for p in batch["products"]]
    assert all(url for urls in outputs for url in urls)
    assert len({url for urls in outputs for url in urls}) == 5  # each position its own URL
    table = list(
        csv.reader(
            io.StringIO(
                client.get(f"{API}/batches/{request_id}/output.csv", headers=owner).content.decode(
                    "utf-8-sig"
                )
            )
        )
    )
    assert [row[3].split(",") for row in table[1:]] == outputs
    wait_until(lambda: server.deliveries, timeout=60, message="the webhook")


def _tasks_of(worker: ManagedProcess, trace: str) -> int:
    return sum(
        1
        for record in worker.log_records()
        if record.get("event") == "task_finished" and record.get("request_id") == trace
    )


def test_a_big_batch_cancelled_at_once_leaves_no_work_for_the_queue(
    client: TestClient,
    owner: dict[str, str],
    server: LocalServer,
    images: Any,
    db: Session,
    settings: Settings,
    celery_worker: ManagedProcess,
) -> None:
    photo = images.jpeg_bytes(width=32, height=24)
    count = 3000
    urls = [server.serve(f"/c-{n}.jpg", photo) for n in range(count)]
    trace = f"cancel-{uuid.uuid4().hex}"
    request_id = _post_csv(
        client,
        {**owner, REQUEST_ID_HEADER: trace},
        [[str(n), f"P{n}", url] for n, url in enumerate(urls)],
    )

    cancelled = client.post(f"{API}/batches/{request_id}/cancel", headers=owner)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # Images claimed before the cancel committed may still be fetched; no other.
    claimed = db.scalar(
        select(func.count())
        .select_from(ImageItem)
        .where(ImageItem.batch_id == request_id, ImageItem.status != "pending")
    )
    db.commit()
    wait_until(
        lambda: queue_depths(settings).get(DEFAULT_QUEUE) == 0,
        timeout=120,
        message="the queue to be empty",
    )

    def settled() -> tuple[int] | None:
        # The worker's tasks for the batch have stopped coming (none at all is the best case).
        before = _tasks_of(celery_worker, trace)
        time.sleep(2)
        after = _tasks_of(celery_worker, trace)
        return (after,) if after == before else None

    (tasks_run,) = wait_until(settled, timeout=120, message="the batch's tasks to stop")
    # start_batch, and the few chunks the worker took before their messages were deleted,
    # instead of the batch's 375 chunks.
    assert tasks_run <= FEW_TASKS, tasks_run
    fetched = sum(hits for path, hits in server.hits.items() if path.startswith("/c-"))
    assert fetched <= (claimed or 0)
    owed = [
        row.args
        for row in db.scalars(select(JobOutbox))
        if row.task.startswith("images.process") or row.task == "images.start_batch"
    ]
    db.commit()
    assert owed == []
    batch = client.get(f"{API}/batches/{request_id}", headers=owner).json()
    assert batch["status"] == "cancelled"
