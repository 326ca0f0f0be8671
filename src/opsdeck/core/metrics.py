"""Prometheus metrics. With several processes (web workers, Celery workers) every process writes
to `PROMETHEUS_MULTIPROC_DIR` and the scrape aggregates them; the CLI sets that directory
before anything imports prometheus_client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "opsdeck_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "opsdeck_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TASKS = Counter(
    "opsdeck_tasks_total",
    "Celery tasks finished, by task name and final state.",
    ["task", "state"],
)
TASK_FAILURES = Counter(
    "opsdeck_task_failures_total",
    "Celery tasks that raised, by task name and exception type.",
    ["task", "exception"],
)
TASK_LATENCY = Histogram(
    "opsdeck_task_duration_seconds",
    "Celery task run time by task name.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


class QueueDepthCollector(Collector):
    """Reads the broker at scrape time, so the figure is the same whichever process serves it."""

    def __init__(self, depth: Callable[[], dict[str, int]]) -> None:
        self._depth = depth

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "opsdeck_queue_depth", "Messages waiting in the broker, by queue.", labels=["queue"]
        )
        try:
            depths = self._depth()
        except Exception:  # a broker outage shows on /ready; the scrape itself must not fail
            depths = {}
        for queue, depth in sorted(depths.items()):
            family.add_metric([queue], depth)
        yield family


def serve_metrics(port: int, queue_depth: Callable[[], dict[str, int]]) -> None:
    """Serve /metrics from a background thread (a worker has no web server of its own)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr="0.0.0.0", registry=_registry(queue_depth))  # noqa: S104  # nosec B104


def render_metrics(queue_depth: Callable[[], dict[str, int]]) -> tuple[bytes, str]:
    return generate_latest(_registry(queue_depth)), CONTENT_TYPE_LATEST


def _registry(queue_depth: Callable[[], dict[str, int]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for collector in (HTTP_REQUESTS, HTTP_LATENCY, TASKS, TASK_FAILURES, TASK_LATENCY):
            registry.register(collector)
    registry.register(QueueDepthCollector(queue_depth))
    return registry
