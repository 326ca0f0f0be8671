"""Real batches through the API, the broker and a real Celery worker, fetching from a local
HTTP server: outputs, the output CSV, the signed webhook, retries."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.core import webhooks
from opsdeck.core.db import utcnow
from opsdeck.core.jobs import RELAY_INTERVAL_SECONDS, JobOutbox
from opsdeck.core.observability import REQUEST_ID_HEADER
from opsdeck.core.queue import celery_app
from opsdeck.images import service
from opsdeck.images.formats import sniff
from opsdeck.images.models import ImageBatch, ImageItem
from tests.images.servers import LocalServer, Route
from tests.stack import TestStack, wait_until

API = "/api/v1/images"
FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}

pytestmark = pytest.mark.integration


def _finished(client: TestClient, headers: dict[str, str], request_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"{API}/batches/{request_id}", headers=headers).json()
        return body if body["status"] in FINAL else None

    return wait_until(done, timeout=120, message=f"batch {request_id} to finish")


def test_csv_batch_end_to_end(
    client: TestClient, owner: dict[str, str], server: LocalServer, images: Any, db: Session
) -> None:
    photo = images.jpeg_bytes()
    a = server.serve("/a.jpg", photo)
    same = server.serve("/same.jpg", photo)
    png = server.serve("/b.png", images.png_bytes(), "image/png")
    missing = server.url("/missing.jpg")
    html = server.serve("/page.jpg", b"<html>not an image</html>", "image/jpeg")
    hook = server.url("/hook")
    csv_body = (
        "S. No.,Product Name,Input Image Urls\n"
        f'1,Mug,"{a},{missing},{same}"\n'
        f'2,Cap,"{png},{html}"\n'
    ).encode()

    accepted = client.post(
        f"{API}/batches",
        headers=owner,
        files={"file": ("products.csv", csv_body, "text/csv")},
        data={"webhook_url": hook},
    )
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]

    batch = _finished(client, owner, request_id)

    assert batch["status"] == "completed_with_errors"
    assert (batch["total_images"], batch["processed_images"], batch["failed_images"]) == (5, 5, 2)
    mug, cap = batch["products"]
    assert [i["status"] for i in mug["images"]] == ["succeeded", "failed", "succeeded"]
    assert "404" in mug["images"][1]["error"]
    assert [i["status"] for i in cap["images"]] == ["succeeded", "failed"]
    assert "not an image" in cap["images"][1]["error"].lower()
    first = mug["images"][0]
    assert first["width"] == 320
    assert first["height"] == 240
    assert first["bytes_in"] == len(photo)
    assert first["format"] == "jpeg"

    # Outputs: absolute, unguessable, right content type, long cache; identical ones stored once.
    output_path = first["output_url"].split("127.0.0.1:8004", 1)[1]
    media = client.get(output_path)
    assert media.status_code == 200
    assert media.headers["content-type"] == "image/jpeg"
    assert "immutable" in media.headers["cache-control"]
    assert sniff(media.content) == "jpeg"
    assert len(first["output_url"].rsplit("/", 1)[1].split(".")[0]) >= 32
    assert mug["images"][2]["output_url"] != first["output_url"]
    rows = db.scalars(select(ImageItem).where(ImageItem.status == "succeeded")).all()
    keys = {row.input_url: row.output_key for row in rows}
    db.commit()
    assert keys[a] == keys[same]

    # The output CSV: input columns, outputs in input order with failures left empty, errors.
    out = client.get(f"{API}/batches/{request_id}/output.csv", headers=owner)
    table = list(csv.reader(io.StringIO(out.content.decode("utf-8-sig"))))
    assert table[0][-2:] == ["Output Image Urls", "Errors"]
    mug_outputs = table[1][3].split(",")
    assert mug_outputs[0] == first["output_url"]
    assert mug_outputs[1] == ""
    assert table[1][4].startswith("2: ")
    assert table[2][4].startswith("2: ")

    # Exactly one signed webhook.
    delivery = wait_until(lambda: server.deliveries, timeout=60, message="the webhook")[0]
    time.sleep(1)  # a duplicate would arrive within this window; there must be none
    assert len(server.deliveries) == 1
    assert delivery.path == "/hook"
    payload = json.loads(delivery.body)
    assert payload == {
        "event": "batch.completed",
        "request_id": request_id,
        "status": "completed_with_errors",
        "total_images": 5,
        "processed_images": 5,
        "failed_images": 2,
        "output_csv_url": batch["output_csv_url"],
    }
    secret = client.app.state.settings.webhook_secret.get_secret_value().encode()  # type: ignore[attr-defined]
    assert webhooks.verify(
        secret, delivery.body, delivery.headers["x-opsdeck-signature"], now=int(time.time())
    )
    assert not webhooks.verify(
        b"wrong", delivery.body, delivery.headers["x-opsdeck-signature"], now=int(time.time())
    )
    assert delivery.headers["x-opsdeck-delivery"]
    assert delivery.headers["x-opsdeck-event"] == "batch.completed"
    hook_state = wait_until(
        lambda: (
            (b := client.get(f"{API}/batches/{request_id}", headers=owner).json()["webhook"])[
                "status"
            ]
            == "delivered"
            and b
        ),
        timeout=30,
        message="the webhook to be recorded",
    )
    assert hook_state["attempts"] == 1

    # Retry: the missing image now exists; only failed images run again.
    server.serve("/missing.jpg", photo)
    hits_before = server.hits.get("/a.jpg", 0)
    retried = client.post(f"{API}/batches/{request_id}/retry", headers=owner)
    assert retried.json()["retried_images"] == 2
    again = _finished(client, owner, request_id)
    assert again["status"] == "completed_with_errors"
    assert [i["status"] for i in again["products"][0]["images"]] == ["succeeded"] * 3
    assert again["failed_images"] == 1
    assert server.hits.get("/a.jpg", 0) == hits_before


def test_conversion_and_resize(
    client: TestClient, owner: dict[str, str], server: LocalServer, images: Any
) -> None:
    url = server.serve("/big.jpg", images.jpeg_bytes(width=1600, height=1200))
    body = f"S. No.,Product Name,Input Image Urls\n1,Lamp,{url}\n".encode()
    request_id = client.post(
        f"{API}/batches",
        headers=owner,
        files={"file": ("p.csv", body, "text/csv")},
        data={"operations": '{"format": "webp", "max_width": 512, "quality": 70}'},
    ).json()["request_id"]

    batch = _finished(client, owner, request_id)

    image = batch["products"][0]["images"][0]
    assert batch["status"] == "completed"
    assert (image["width"], image["height"], image["format"]) == (512, 384, "webp")
    assert image["output_url"].endswith(".webp")
    media = client.get(image["output_url"].split("127.0.0.1:8004", 1)[1])
    assert media.headers["content-type"] == "image/webp"
    assert sniff(media.content) == "webp"


def test_every_image_failing_fails_the_batch(
    client: TestClient, owner: dict[str, str], server: LocalServer
) -> None:
    body = (
        "S. No.,Product Name,Input Image Urls\n"
        f"1,A,{server.url('/gone-1.jpg')}\n2,B,{server.url('/gone-2.jpg')}\n"
    ).encode()
    request_id = client.post(
        f"{API}/batches", headers=owner, files={"file": ("p.csv", body, "text/csv")}
    ).json()["request_id"]

    batch = _finished(client, owner, request_id)

    assert batch["status"] == "failed"
    assert batch["failed_images"] == 2


def _pool_children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _connected_to(pids: set[int], port: int) -> set[int]:
    """The processes among `pids` holding a TCP connection to 127.0.0.1:`port`."""
    remote = f"0100007F:{port:04X}"
    inodes = {
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[2] == remote
    }
    holders = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                holders.add(pid)
    return holders


@pytest.mark.parametrize("fast_images", [4, 70], ids=["a task per image", "chunks"])
def test_worker_processes_killed_mid_batch_lose_and_duplicate_nothing(
    client: TestClient,
    owner: dict[str, str],
    server: LocalServer,
    images: Any,
    celery_worker: Any,
    db: Session,
    fast_images: int,
) -> None:
    photo = images.jpeg_bytes()
    fast = [server.serve(f"/fast-{n}.jpg", photo) for n in range(fast_images)]
    server.routes["/slow.jpg"] = Route(body=photo, content_type="image/jpeg", delay=4.0)
    slow = server.url("/slow.jpg")
    hook = server.url("/hook")
    rows = "".join(f"{n},P{n},{url}\n" for n, url in enumerate([slow, *fast], start=1))
    trace = f"kill-{uuid.uuid4().hex}"
    request_id = client.post(
        f"{API}/batches",
        headers={**owner, REQUEST_ID_HEADER: trace},
        files={"file": ("p.csv", f"S. No.,Product Name,Input Image Urls\n{rows}", "text/csv")},
        data={"webhook_url": hook},
    ).json()["request_id"]

    # SIGKILL the pool process that is fetching the slow image, as the kernel's OOM killer
    # would. acks_late + reject_on_worker_lost put the task back.
    wait_until(lambda: server.hits.get("/slow.jpg"), timeout=60, message="the slow fetch")
    port = int(server.base_url.rsplit(":", 1)[1])
    fetching = wait_until(
        lambda: _connected_to(_pool_children(celery_worker.process.pid), port),
        timeout=10,
        message="the pool process fetching the slow image",
    )
    for child in fetching:
        os.kill(child, signal.SIGKILL)
    # Redis hands the task back by itself. Celery's filesystem transport (embedded mode)
    # cannot: there the `images.requeue_stalled` sweep does it, which beat runs every minute
    # for images stuck past the task time limit; here it runs once with a short cutoff.
    time.sleep(1)
    stalled = service.stalled_items(db, utcnow() - timedelta(seconds=0.5))
    service.enqueue_items(db, stalled)
    db.commit()

    batch = _finished(client, owner, request_id)

    assert batch["status"] == "completed"
    assert batch["processed_images"] == fast_images + 1
    assert batch["failed_images"] == 0
    assert server.hits["/slow.jpg"] >= 2
    items = db.scalars(select(ImageItem).where(ImageItem.batch_id == request_id)).all()
    db.commit()
    assert len(items) == fast_images + 1
    assert all(item.output_token for item in items)
    # The big batch went in chunks (several images a task), the small one an image a task.
    tasks_run = {
        record.get("task")
        for record in celery_worker.log_records()
        if record.get("event") == "task_finished" and record.get("request_id") == trace
    }
    assert ("images.process_items" in tasks_run) == (fast_images > 32)
    wait_until(lambda: server.deliveries, timeout=60, message="the webhook")
    time.sleep(1)
    assert len(server.deliveries) == 1


def _worker_idle() -> bool:
    inspect = celery_app.control.inspect(timeout=1.0)
    active, reserved = inspect.active(), inspect.reserved()
    if active is None or reserved is None:  # no answer yet
        return False
    busy = [task for tasks in (*active.values(), *reserved.values()) for task in tasks]
    return not busy


@contextmanager
def _broker_unreachable(test_stack: TestStack, tmp_path: Path) -> Iterator[None]:
    """The broker cannot take a message. On the integration stack the test Redis is stopped
    (every process loses it) and started again on its port; on the embedded stack this
    process publishes into a broker folder that is a file (kombu refuses every message)."""
    if test_stack.redis is not None:
        # What is tested here is the POST, so the worker is idle first (a batch losing Redis
        # mid-way is tests/images/test_outages.py).
        wait_until(_worker_idle, timeout=120, message="the worker to be idle")
        test_stack.redis.stop()
        try:
            yield
        finally:
            test_stack.redis.start(same_port=True)
        return
    options = dict(celery_app.conf.broker_transport_options)
    broken = tmp_path / "not-a-folder"
    broken.write_text("a file where the broker's folder should be")
    celery_app.conf.broker_transport_options = {**options, "data_folder_out": str(broken)}
    try:
        yield
    finally:
        celery_app.conf.broker_transport_options = options


def _owed_jobs(db: Session) -> list[tuple[str, list[Any]]]:
    rows = [(row.task, list(row.args)) for row in db.scalars(select(JobOutbox))]
    db.commit()
    return rows


def test_a_batch_posted_while_the_broker_is_unreachable_is_accepted_once_and_runs_later(
    client: TestClient,
    owner: dict[str, str],
    server: LocalServer,
    images: Any,
    db: Session,
    test_stack: TestStack,
    tmp_path: Path,
) -> None:
    url = server.serve("/during-outage.jpg", images.jpeg_bytes())
    body = f"S. No.,Product Name,Input Image Urls\n1,Lamp,{url}\n".encode()

    with _broker_unreachable(test_stack, tmp_path):
        accepted = client.post(
            f"{API}/batches", headers=owner, files={"file": ("p.csv", body, "text/csv")}
        )
        assert accepted.status_code == 202, accepted.text
        request_id = accepted.json()["request_id"]
        batches = db.scalars(select(ImageBatch.id)).all()
        db.commit()
        assert batches == [request_id]
        if test_stack.redis is not None:
            # Every relay (this app's, the worker's) fails too while Redis is down.
            time.sleep(2 * RELAY_INTERVAL_SECONDS)
            assert _owed_jobs(db) == [("images.start_batch", [request_id])]
            assert server.hits.get("/during-outage.jpg") is None

    batch = _finished(client, owner, request_id)

    assert batch["status"] == "completed"
    assert batch["processed_images"] == 1
    assert db.scalars(select(ImageBatch.id)).all() == [request_id]
    db.commit()
    assert _owed_jobs(db) == []
