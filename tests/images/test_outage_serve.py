"""The embedded counterparts of a database outage, on a real `opsdeck serve` (SQLite, the
filesystem broker, beat inside the worker):

- the SQLite database held locked by another process for longer than the busy timeout while
  a batch runs: the tasks that meet "database is locked" run again later, no image fails,
  every image is recorded once, the webhook goes once, the API answers 503 meanwhile;
- a batch whose messages were lost (its images `pending`, nothing queued or owed for them, as
  a whole-worker kill leaves them): beat's sweep, which `serve` runs, sends them again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from opsdeck.accounts.models import User
from opsdeck.core.db import make_engine, make_sessionmaker, utcnow
from opsdeck.core.jobs import JobOutbox
from opsdeck.images import service
from opsdeck.images.models import ImageBatch
from opsdeck.images.processing import Operations
from tests.conftest import STRONG_PASSWORD
from tests.images.servers import LocalServer, Route
from tests.images.test_worker_restart import _call, _multipart, _ready
from tests.stack import free_port, wait_until
from tests.test_cli import _isolated_env, _opsdeck

FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
# Longer than the busy timeout of OpsDeck's SQLite connections (30 s): what waits for the lock
# that long gets "database is locked".
LOCK_SECONDS = 36.0


@dataclass
class Served:
    base: str
    token: str
    data_dir: Path
    log_path: Path
    origin: LocalServer

    @property
    def database(self) -> Path:
        return self.data_dir / "opsdeck.db"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def batch(self, request_id: str) -> dict[str, Any]:
        found: dict[str, Any] = _call(
            f"{self.base}/api/v1/images/batches/{request_id}", token=self.token
        )
        return found

    def finished(self, request_id: str, *, timeout: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            batch = self.batch(request_id)
            return batch if batch["status"] in FINAL else None

        return wait_until(
            done,
            timeout=timeout,
            message=f"batch {request_id} to finish",
            diagnostics=lambda: self.log()[-4000:],
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("outage-serve")
    env = _isolated_env(data_dir)
    env.update(
        OPSDECK_FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
        OPSDECK_WORKER_CONCURRENCY="2",
        OPSDECK_LOG_LEVEL="INFO",
    )
    assert _opsdeck("db", "upgrade", env=env).returncode == 0
    created = _opsdeck(
        "users", "create", "--username", "shop", "--email", "shop@example.com",
        "--password-stdin", env=env, stdin=STRONG_PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "opsdeck", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with LocalServer().running() as origin:
            wait_until(lambda: _ready(base), timeout=90, message="serve to be ready")
            form = urllib.parse.urlencode({"username": "shop", "password": STRONG_PASSWORD})
            token = _call(f"{base}/api/v1/auth/token", data=form.encode())["access_token"]
            yield Served(base, token, data_dir, log_path, origin)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


@contextmanager
def _sqlite_locked(path: Path) -> Iterator[None]:
    """Another process's connection holding the database's write lock (BEGIN EXCLUSIVE).
    OpsDeck opens every transaction with BEGIN IMMEDIATE, so readers and writers alike wait."""
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_a_locked_database_mid_batch_under_serve_fails_no_image(
    served: Served, images: Any
) -> None:
    photo = images.jpeg_bytes()
    urls = []
    for n in range(24):
        path = f"/locked-{n}.jpg"
        served.origin.routes[path] = Route(body=photo, content_type="image/jpeg", delay=0.3)
        urls.append(served.origin.url(path))
    rows = "".join(f"{n},P{n},{url}\n" for n, url in enumerate(urls, start=1))
    body, ctype = _multipart(
        {"file": ("p.csv", f"S. No.,Product Name,Input Image Urls\n{rows}".encode(), "text/csv")}
    )
    hook = served.origin.url("/locked-hook")
    boundary = ctype.rsplit("=", 1)[1]
    field = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="webhook_url"\r\n\r\n{hook}\r\n'
    ).encode()
    request_id = _call(
        f"{served.base}/api/v1/images/batches", token=served.token, data=field + body, ctype=ctype
    )["request_id"]
    wait_until(
        lambda: served.batch(request_id)["processed_images"] >= 3,
        timeout=120,
        message="the first images",
    )
    log_before = len(served.log())
    answers: list[object] = []

    def ask() -> None:
        """The API while the lock is held: it waits for the lock (30 s), then says 503."""
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{served.base}/api/v1/images/batches/{request_id}",
            headers={"Authorization": f"Bearer {served.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                answers.append(response.status)
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, json.loads(exc.read())["error"]["code"]))
        except Exception as exc:  # reported by the assertion below
            answers.append(repr(exc))

    with _sqlite_locked(served.database):
        asking = threading.Thread(target=ask)
        asking.start()
        time.sleep(LOCK_SECONDS)
        asking.join(timeout=120)

    batch = served.finished(request_id, timeout=240)

    during = served.log()[log_before:]
    assert answers == [(503, "database_unavailable")]
    assert batch["status"] == "completed", during[-4000:]
    assert (batch["processed_images"], batch["failed_images"]) == (24, 0)
    outputs = [image["output_url"] for product in batch["products"] for image in product["images"]]
    assert all(outputs)
    assert len(set(outputs)) == 24
    assert "job_database_unavailable" in during
    wait_until(
        lambda: [d for d in served.origin.deliveries if d.path == "/locked-hook"],
        timeout=60,
        message="the webhook",
    )
    time.sleep(2)
    hooks = [d for d in served.origin.deliveries if d.path == "/locked-hook"]
    assert len(hooks) == 1
    assert json.loads(hooks[0].body)["request_id"] == request_id


def test_beat_under_serve_sends_again_pending_images_whose_messages_were_lost(
    served: Served, images: Any
) -> None:
    photo = images.jpeg_bytes()
    urls = [served.origin.serve(f"/lost-{n}.jpg", photo) for n in range(3)]
    engine = make_engine(f"sqlite:///{served.database}")
    try:
        with make_sessionmaker(engine)() as session:
            owner = session.scalars(select(User).where(User.username == "shop")).one()
            batch = service.create_csv_batch(
                session,
                owner,
                columns=["S. No.", "Product Name", "Input Image Urls"],
                products=[
                    service.ProductInput(str(n), f"P{n}", [str(n), f"P{n}", url], [url])
                    for n, url in enumerate(urls, start=1)
                ],
                operations=Operations().model_dump(mode="json"),
                webhook_url=None,
            )
            # What a lost message leaves: the images pending, nothing owed or queued for them.
            session.flush()
            owed = [
                row.id
                for row in session.scalars(select(JobOutbox))
                if row.task == service.START_BATCH_JOB and row.args == [batch.id]
            ]
            assert owed
            session.execute(delete(JobOutbox).where(JobOutbox.id.in_(owed)))
            session.execute(
                update(ImageBatch)
                .where(ImageBatch.id == batch.id)
                .values(created_at=utcnow() - timedelta(hours=1))
            )
            session.commit()
            request_id = batch.id
    finally:
        engine.dispose()

    # Beat runs the sweep every minute; generous for a loaded machine.
    finished = served.finished(request_id, timeout=300)

    assert finished["status"] == "completed"
    assert (finished["processed_images"], finished["failed_images"]) == (3, 0)
    assert "images_requeued_stuck" in served.log()
