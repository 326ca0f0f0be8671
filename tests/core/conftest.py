"""Fixtures for the shared-kernel tests: an app with a few extra routes that exercise the
kernel (a templated path, a body reader, a validated body, a crash, a job sender), app copies
built from altered settings, JSON log capture, and a scratch database."""

from __future__ import annotations

import json
import logging
import logging.handlers
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from opsdeck.app import create_app
from opsdeck.core.deps import SessionDep
from opsdeck.core.jobs import enqueue
from opsdeck.core.observability import configure_logging
from opsdeck.core.queue import configure_celery
from opsdeck.modules import task_modules
from opsdeck.settings import Settings
from tests.conftest import make_settings
from tests.stack import TestStack, free_port

PURGE_TASK = "accounts.purge_expired"
TEST_PREFIX = "/api/v1/core-tests"


class WidgetIn(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    size: int = Field(ge=1)
    tags: list[str] = Field(default_factory=list)


@dataclass
class Probe:
    """What the extra routes saw, so a test can tell whether a handler ran to completion."""

    bodies_read: list[int]


def add_kernel_routes(app: FastAPI) -> Probe:
    probe = Probe(bodies_read=[])
    router = APIRouter(prefix=TEST_PREFIX)
    library_log = logging.getLogger("some.third_party.library")
    own_log = structlog.get_logger("opsdeck.core_tests")

    @router.get("/widgets/{widget_id}")
    def get_widget(widget_id: int, verbose: bool = Query(default=False)) -> dict[str, Any]:
        return {"id": widget_id, "verbose": verbose}

    @router.post("/widgets", status_code=201)
    def create_widget(widget: WidgetIn) -> dict[str, Any]:
        return widget.model_dump()

    @router.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        probe.bodies_read.append(len(body))
        return {"received_bytes": len(body)}

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    @router.get("/boom-database")
    def boom_database() -> None:
        # A database error that is not an outage: core.errors answers it 500 from inside the
        # middleware stack (unlike /boom, which the outermost request-context layer answers).
        raise IntegrityError("INSERT INTO widgets", {}, Exception("duplicate key hunter2"))

    @router.get("/chatty")
    def chatty() -> dict[str, str]:
        own_log.info("widget_inspected", widget="w-1")
        library_log.warning("library says %s", "hello")
        return {"ok": "yes"}

    @router.post("/jobs", status_code=202)
    def send_job(session: SessionDep) -> dict[str, str]:
        session.execute(text("SELECT 1"))
        # As the house rules require: the job leaves only once the transaction committed.
        enqueue(session, PURGE_TASK)
        return {"queued": PURGE_TASK}

    app.include_router(router)
    return probe


@pytest.fixture
def kernel_app(app: FastAPI) -> tuple[FastAPI, Probe]:
    return app, add_kernel_routes(app)


@pytest.fixture
def kernel_client(kernel_app: tuple[FastAPI, Probe]) -> Iterator[TestClient]:
    app, _probe = kernel_app
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def probe(kernel_app: tuple[FastAPI, Probe]) -> Probe:
    return kernel_app[1]


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def app_with(settings: Settings) -> Iterator[AppFactory]:
    """Build an app from the test settings with some values changed. create_app configures the
    process-wide Celery app, so the test settings' broker is put back afterwards."""

    def factory(*, check_migrations: bool = True, **overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            # Resolved, so a different data_dir still means the same (migrated) database.
            "database_url": settings.database_url_resolved,
            "redis_url": settings.redis_url,
        }
        values.update(overrides)
        data_dir = Path(values.pop("data_dir", settings.data_dir))
        altered = make_settings(data_dir, **values)
        app = create_app(altered, check_migrations=check_migrations)
        add_kernel_routes(app)
        return app

    yield factory
    configure_celery(settings, task_modules())


def closed_port_database_url() -> str:
    return f"postgresql+psycopg://opsdeck@127.0.0.1:{free_port()}/nowhere?connect_timeout=3"


def closed_port_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@dataclass
class JsonLog:
    path: Path
    handler: logging.handlers.TimedRotatingFileHandler

    def records(self) -> list[dict[str, Any]]:
        self.handler.flush()
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def find(self, **expected: Any) -> list[dict[str, Any]]:
        return [
            record
            for record in self.records()
            if all(record.get(key) == value for key, value in expected.items())
        ]


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[JsonLog]:
    """configure_logging() as `opsdeck web` calls it, with a log file; undone afterwards."""
    root = logging.getLogger()
    previous_level = root.level
    previous_structlog = structlog.get_config()
    path = tmp_path / "logs" / "opsdeck.log"
    configure_logging(level="INFO", fmt="json", log_file=path, retention_days=7)
    handler = next(
        h for h in root.handlers if isinstance(h, logging.handlers.TimedRotatingFileHandler)
    )
    try:
        yield JsonLog(path, handler)
    finally:
        for installed in [h for h in root.handlers if getattr(h, "_opsdeck", False)]:
            root.removeHandler(installed)
            installed.close()
        root.setLevel(previous_level)
        structlog.configure(**previous_structlog)


@pytest.fixture
def scratch_database_url(test_stack: TestStack, tmp_path: Path) -> Iterator[str]:
    """An empty database of the stack's kind: no tables, no migrations."""
    if test_stack.postgres is None:
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"opsdeck_scratch_{uuid.uuid4().hex[:12]}"
    test_stack.postgres.create_database(name)
    try:
        yield test_stack.postgres.database_url(name)
    finally:
        test_stack.postgres.drop_database(name)
