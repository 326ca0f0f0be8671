"""A database outage in the middle of a batch loses nothing: the test stack's PostgreSQL is
stopped for about ten seconds while a real worker is part-way through a batch, then started
again. Every image is processed and recorded once, none fails, the webhook goes once, and the
API says 503 (not 500) while the database is away."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsdeck.images.models import ImageItem
from tests.conftest import UserFactory, sign_in
from tests.images.servers import LocalServer, Route
from tests.stack import ManagedProcess, TestStack, current_stack, wait_until

API = "/api/v1/images"
FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
IMAGES = 48
OUTAGE_SECONDS = 10.0

pytestmark = pytest.mark.integration


def _succeeded(app: FastAPI, batch_id: str) -> int:
    with app.state.sessionmaker() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ImageItem)
                .where(ImageItem.batch_id == batch_id, ImageItem.status == "succeeded")
            )
            or 0
        )


if current_stack().postgres is not None:
    # Only where the tests own the database server can they stop and start it.

    def test_a_database_outage_mid_batch_loses_nothing_and_fails_no_image(
        client: TestClient,
        app: FastAPI,
        make_user: UserFactory,
        server: LocalServer,
        images: Any,
        celery_worker: ManagedProcess,
        test_stack: TestStack,
    ) -> None:
        cluster = test_stack.postgres
        assert cluster is not None
        make_user("shop")
        owner = sign_in(client, "shop")
        photo = images.jpeg_bytes()
        # Each fetch takes a moment, so the batch is still running when the database goes.
        urls = []
        for n in range(IMAGES):
            server.routes[f"/p-{n}.jpg"] = Route(body=photo, content_type="image/jpeg", delay=0.4)
            urls.append(server.url(f"/p-{n}.jpg"))
        rows = "".join(f"{n},P{n},{url}\n" for n, url in enumerate(urls, start=1))
        accepted = client.post(
            f"{API}/batches",
            headers=owner,
            files={"file": ("p.csv", f"S. No.,Product Name,Input Image Urls\n{rows}", "text/csv")},
            data={"webhook_url": server.url("/hook")},
        )
        assert accepted.status_code == 202, accepted.text
        request_id = accepted.json()["request_id"]
        wait_until(
            lambda: _succeeded(app, request_id) >= 6,
            timeout=120,
            message="the first images of the batch",
        )
        worker_lines_before = len(celery_worker.log_records())
        done_before = _succeeded(app, request_id)

        cluster.stop()
        try:
            outage_answers = []
            stopped = time.monotonic()
            while time.monotonic() - stopped < OUTAGE_SECONDS:
                outage_answers.append(client.get(f"{API}/batches/{request_id}", headers=owner))
                time.sleep(1.0)
        finally:
            cluster.start()

        # While the database was away the API said so, in the one error shape.
        assert done_before < IMAGES  # the outage landed mid-batch
        assert outage_answers
        for answer in outage_answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"]
            assert answer.json()["error"]["code"] == "database_unavailable"

        def finished() -> dict[str, Any] | None:
            response = client.get(f"{API}/batches/{request_id}", headers=owner)
            if response.status_code != 200:
                return None
            body: dict[str, Any] = response.json()
            return body if body["status"] in FINAL else None

        # Bounded, generously: the worker's tasks come back within their back-off (30 s at
        # most) once the database answers again.
        batch = wait_until(
            finished,
            timeout=240,
            message=f"batch {request_id} to finish after the outage",
            diagnostics=celery_worker.diagnostics,
        )

        assert batch["status"] == "completed", batch
        assert (batch["total_images"], batch["processed_images"], batch["failed_images"]) == (
            IMAGES,
            IMAGES,
            0,
        )
        with app.state.sessionmaker() as session:
            items = session.scalars(select(ImageItem).where(ImageItem.batch_id == request_id)).all()
        assert len(items) == IMAGES
        assert {item.status for item in items} == {"succeeded"}
        # Each image recorded once: one output each, every output its own.
        tokens = [item.output_token for item in items]
        assert all(tokens)
        assert len(set(tokens)) == IMAGES
        # The outage really met the worker's tasks, and they were retried, not failed.
        during = celery_worker.log_records()[worker_lines_before:]
        assert any(r.get("event") == "job_database_unavailable" for r in during), (
            celery_worker.diagnostics()
        )
        assert not any(
            r.get("event") == "task_finished" and r.get("state") == "FAILURE" for r in during
        ), celery_worker.diagnostics()
        # Exactly one webhook.
        wait_until(lambda: server.deliveries, timeout=60, message="the webhook")
        time.sleep(2)  # a duplicate would arrive within this window; there must be none
        assert len(server.deliveries) == 1
        assert server.deliveries[0].path == "/hook"
