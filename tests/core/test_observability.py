"""Structured JSON logs and the correlation id that follows a request into its Celery task."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import re
import uuid
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from starlette.types import Message

from opsdeck.core.http import RequestContextMiddleware
from opsdeck.core.observability import REQUEST_ID_HEADER, configure_logging
from opsdeck.core.queue import celery_app
from tests.core.conftest import PURGE_TASK, TEST_PREFIX, JsonLog
from tests.stack import ManagedProcess

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def test_access_log_line_is_json_with_the_request_id(
    kernel_client: TestClient, json_log: JsonLog
) -> None:
    response = kernel_client.get(
        f"{TEST_PREFIX}/widgets/7", headers={REQUEST_ID_HEADER: "trace-7.a:B_c"}
    )

    assert response.status_code == 200
    [line] = json_log.find(event="request", request_id="trace-7.a:B_c")
    assert line["logger"] == "opsdeck.access"
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["path"] == f"{TEST_PREFIX}/widgets/7"
    assert line["route"] == f"{TEST_PREFIX}/widgets/{{widget_id}}"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float | int)
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    offset = stamp.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0


def test_every_line_logged_during_a_request_carries_its_id(
    kernel_client: TestClient, json_log: JsonLog
) -> None:
    kernel_client.get(f"{TEST_PREFIX}/chatty", headers={REQUEST_ID_HEADER: "chatty-1"})
    kernel_client.get(f"{TEST_PREFIX}/chatty", headers={REQUEST_ID_HEADER: "chatty-2"})
    logging.getLogger("some.third_party.library").warning("outside any request")

    ours = json_log.find(event="widget_inspected")
    assert [r["request_id"] for r in ours] == ["chatty-1", "chatty-2"]
    assert ours[0]["widget"] == "w-1"
    # The standard library's loggers (uvicorn, celery, libraries) go through the same
    # formatter and get the id too.
    library = json_log.find(logger="some.third_party.library")
    assert [r.get("request_id") for r in library] == ["chatty-1", "chatty-2", None]
    assert library[0]["event"] == "library says hello"
    assert library[0]["level"] == "warning"


def test_a_sane_request_id_is_echoed(kernel_client: TestClient) -> None:
    response = kernel_client.get("/health", headers={REQUEST_ID_HEADER: "lb-1234:abc.def_9"})

    assert response.headers[REQUEST_ID_HEADER] == "lb-1234:abc.def_9"


def test_a_request_without_an_id_gets_a_fresh_one_each_time(kernel_client: TestClient) -> None:
    first = kernel_client.get("/health").headers[REQUEST_ID_HEADER]
    second = kernel_client.get("/health").headers[REQUEST_ID_HEADER]

    assert GENERATED_ID.match(first)
    assert GENERATED_ID.match(second)
    assert first != second


async def _call_with_raw_header(value: bytes) -> tuple[list[Message], str | None]:
    """Through the ASGI interface directly, so the bytes reach the middleware untouched
    (an HTTP client library would refuse to send some of them)."""
    seen: dict[str, str | None] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        from opsdeck.core.observability import current_request_id

        seen["bound"] = current_request_id()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/health",
        "headers": [(b"x-request-id", value)],
        "client": ("127.0.0.1", 1234),
    }
    await RequestContextMiddleware(inner)(scope, receive, send)
    return sent, seen["bound"]


def _response_id(messages: list[Message]) -> str:
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]}
    return str(headers["x-request-id"])


def test_a_hostile_request_id_is_replaced_before_it_reaches_logs() -> None:
    hostile = [
        b'abc\n{"level": "critical", "event": "forged"}',  # log-line injection
        b"abc\r\nSet-Cookie: x=1",  # header splitting
        b"a" * 129,  # longer than 128 characters
        b"spaces are not allowed",
        b"",
    ]
    for value in hostile:
        messages, bound = asyncio.run(_call_with_raw_header(value))
        echoed = _response_id(messages)
        assert GENERATED_ID.match(echoed), value
        assert bound == echoed, value

    messages, bound = asyncio.run(_call_with_raw_header(b"a" * 128))
    assert _response_id(messages) == "a" * 128
    assert bound == "a" * 128


def test_log_file_is_rotated_daily_and_keeps_the_configured_days(json_log: JsonLog) -> None:
    handler = json_log.handler
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    assert handler.when == "MIDNIGHT"
    assert handler.interval == 24 * 60 * 60
    assert handler.utc is True
    assert handler.backupCount == 7
    assert handler.baseFilename == str(json_log.path)

    logging.getLogger("opsdeck.core_tests").info("before rotation")
    assert json_log.find(event="before rotation")

    handler.doRollover()  # what midnight does
    logging.getLogger("opsdeck.core_tests").info("after rotation")

    [rotated] = json_log.path.parent.glob("opsdeck.log.*")
    assert re.fullmatch(r"opsdeck\.log\.\d{4}-\d{2}-\d{2}", rotated.name)
    assert '"event": "before rotation"' in rotated.read_text(encoding="utf-8")
    assert [r["event"] for r in json_log.records()] == ["after rotation"]


def test_configuring_logging_again_does_not_duplicate_lines(json_log: JsonLog) -> None:
    # `opsdeck serve` and uvicorn's reloader configure more than once in one process.
    configure_logging(level="INFO", fmt="json", log_file=json_log.path, retention_days=7)
    json_log.handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.handlers.TimedRotatingFileHandler)
    )

    logging.getLogger("opsdeck.core_tests").info("said once")

    assert len(json_log.find(event="said once")) == 1
    assert sum(getattr(h, "_opsdeck", False) for h in logging.getLogger().handlers) == 2


def test_request_id_follows_the_request_into_its_celery_task(
    kernel_client: TestClient, celery_worker: ManagedProcess
) -> None:
    request_id = f"job-{uuid.uuid4().hex}"

    response = kernel_client.post(f"{TEST_PREFIX}/jobs", headers={REQUEST_ID_HEADER: request_id})

    assert response.status_code == 202
    assert response.headers[REQUEST_ID_HEADER] == request_id
    finished = celery_worker.wait_for_record(
        lambda r: r.get("event") == "task_finished" and r.get("request_id") == request_id,
        message=f"the worker's task_finished line for request {request_id}",
    )
    assert finished["task"] == PURGE_TASK
    assert finished["state"] == "SUCCESS"
    assert finished["duration_ms"] >= 0
    records = celery_worker.log_records()
    task_lines = [r for r in records if r.get("task_id") == finished["task_id"]]
    # Whatever the task itself logs carries the same id.
    assert all(r.get("request_id") == request_id for r in task_lines)
    # One line for the task's run, not Celery's "received" and "succeeded" besides (at INFO).
    assert [r["event"] for r in task_lines if r["event"].startswith("task_")] == ["task_finished"]
    assert not [r for r in records if finished["task_id"] in str(r.get("event"))]


def test_a_task_sent_outside_any_request_is_correlated_by_its_task_id(
    app: Any, celery_worker: ManagedProcess
) -> None:
    result = celery_app.send_task(PURGE_TASK)

    finished = celery_worker.wait_for_record(
        lambda r: r.get("event") == "task_finished" and r.get("task_id") == result.id,
        message=f"the worker's task_finished line for task {result.id}",
    )
    assert finished["request_id"] == result.id
