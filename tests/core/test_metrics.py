"""Prometheus metrics: request counts and latency by route template, task counts, latency and
failures from the real worker, and the queue depth gauge."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from opsdeck.core import queue as queue_module
from opsdeck.core.queue import celery_app, register_queue
from tests.core.conftest import PURGE_TASK, TEST_PREFIX, AppFactory, closed_port_redis_url
from tests.stack import ManagedProcess

WIDGET_ROUTE = f"{TEST_PREFIX}/widgets/{{widget_id}}"
PROBE_QUEUE = "depth-probe"  # no worker consumes it


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when the series does not exist yet (a counter never set)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


def scrape(client: TestClient | httpx.Client, base_url: str = "") -> Scrape:
    response = client.get(f"{base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def test_requests_are_counted_and_timed_by_route_template(kernel_client: TestClient) -> None:
    before = scrape(kernel_client)

    kernel_client.get(f"{TEST_PREFIX}/widgets/1")
    kernel_client.get(f"{TEST_PREFIX}/widgets/2")
    kernel_client.get(f"{TEST_PREFIX}/widgets/not-a-number")
    after = scrape(kernel_client)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    requests = "opsdeck_http_requests_total"
    assert delta(requests, method="GET", route=WIDGET_ROUTE, status="200") == 2
    assert delta(requests, method="GET", route=WIDGET_ROUTE, status="422") == 1
    latency = "opsdeck_http_request_duration_seconds_count"
    assert delta(latency, method="GET", route=WIDGET_ROUTE) == 3
    assert (
        after.value("opsdeck_http_request_duration_seconds_bucket", route=WIDGET_ROUTE, le="+Inf")
        >= 3
    )
    routes = after.label_values(requests, "route")
    assert not any("/widgets/1" in r or "not-a-number" in r for r in routes)


def test_unmatched_paths_share_one_label(kernel_client: TestClient) -> None:
    api_scans = [f"/api/v1/scan-{uuid.uuid4().hex}" for _ in range(3)]
    # Outside the API, an unknown path may be answered by the web app's client-side router
    # (200) or be a 404 when it is not built: either way no route template matched it.
    page_scan = f"/wp-login-{uuid.uuid4().hex}.php"
    labels = {"method": "GET", "route": "<unmatched>"}
    name = "opsdeck_http_requests_total"
    before = scrape(kernel_client)

    for path in api_scans:
        assert kernel_client.get(path).status_code == 404
    kernel_client.get(page_scan)
    after = scrape(kernel_client)

    assert after.value(name, **labels) - before.value(name, **labels) == 4
    assert after.value(name, **labels, status="404") - before.value(
        name, **labels, status="404"
    ) >= len(api_scans)
    leaked = [path for path in [*api_scans, page_scan] if path.split("/")[-1] in after.text]
    assert leaked == [], "a raw path leaked into a label"


@pytest.fixture
def probe_queue(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(queue_module, "_queues", set(queue_module._queues))
    register_queue(PROBE_QUEUE)  # as a module routing tasks to its own queue does
    try:
        yield PROBE_QUEUE
    finally:
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(PROBE_QUEUE)


def test_queue_depth_gauge_counts_waiting_messages(
    kernel_client: TestClient, probe_queue: str
) -> None:
    assert scrape(kernel_client).value("opsdeck_queue_depth", queue=probe_queue) == 0

    for _ in range(3):
        celery_app.send_task(PURGE_TASK, queue=probe_queue)
    after = scrape(kernel_client)

    assert after.value("opsdeck_queue_depth", queue=probe_queue) == 3
    assert "opsdeck" in after.label_values("opsdeck_queue_depth", "queue")


def test_queue_depth_gauge_does_not_break_the_scrape_when_the_broker_is_down(
    app_with: AppFactory,
) -> None:
    app = app_with(redis_url=closed_port_redis_url())
    with TestClient(app) as client:
        response = client.get("/metrics")

    assert response.status_code == 200
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert "opsdeck_queue_depth" in families
    assert "opsdeck_http_requests" in families


def test_worker_task_metrics_reach_the_web_process_scrape(
    app: FastAPI,
    celery_worker: ManagedProcess,
    web_server: tuple[str, ManagedProcess],
) -> None:
    """Three processes: the worker counts tasks into PROMETHEUS_MULTIPROC_DIR, a separate
    `opsdeck web` serves /metrics from the same folder, this test process only sends tasks."""
    base_url, _web = web_server
    with httpx.Client(timeout=10) as http:
        before = scrape(http, base_url)
        succeeded = celery_app.send_task(PURGE_TASK)
        # A producer sending arguments the task does not take: a real failure in the worker.
        failed = celery_app.send_task(PURGE_TASK, kwargs={"no_such_argument": 1})
        for result, state in ((succeeded, "SUCCESS"), (failed, "FAILURE")):

            def finished(r: dict[str, Any], task_id: str = result.id, state: str = state) -> bool:
                return bool(
                    r.get("event") == "task_finished"
                    and r.get("task_id") == task_id
                    and r.get("state") == state
                )

            celery_worker.wait_for_record(
                finished, message=f"task {result.id} to finish with {state}"
            )
        http.get(f"{base_url}/health")
        after = scrape(http, base_url)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("opsdeck_tasks_total", task=PURGE_TASK, state="SUCCESS") >= 1
    assert delta("opsdeck_tasks_total", task=PURGE_TASK, state="FAILURE") >= 1
    assert delta("opsdeck_task_failures_total", task=PURGE_TASK, exception="TypeError") >= 1
    assert delta("opsdeck_task_duration_seconds_count", task=PURGE_TASK) >= 2
    assert after.value("opsdeck_task_duration_seconds_bucket", task=PURGE_TASK, le="+Inf") >= 2
    # ...beside the web process's own request counts, in one scrape.
    assert delta("opsdeck_http_requests_total", method="GET", route="/health", status="200") >= 1
    assert "opsdeck" in after.label_values("opsdeck_queue_depth", "queue")
