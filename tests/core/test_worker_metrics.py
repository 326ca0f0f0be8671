"""`opsdeck worker --metrics-port`: workers in their own containers or pods are scraped
directly, since no web process shares their metrics directory."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from opsdeck.settings import Settings
from tests.stack import _is_ready_line, free_port, start_opsdeck, wait_until


def test_a_worker_serves_its_own_metrics(
    base_settings: Settings, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    (tmp_path / "metrics").mkdir()
    worker = start_opsdeck(
        "metrics-worker",
        ["worker", "--concurrency", "1", "--metrics-port", str(port)],
        settings=base_settings,
        metrics_dir=tmp_path / "metrics",
        workdir=tmp_path_factory.mktemp("metrics-worker"),
    )
    try:
        worker.wait_for_record(_is_ready_line, message="the worker's 'ready' line")

        def scrape() -> tuple[str, str] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return r.headers["Content-Type"], r.read().decode()
            except OSError:
                return None

        content_type, body = wait_until(scrape, timeout=30, message="the worker's /metrics")
    finally:
        worker.stop()

    assert content_type.startswith("text/plain")
    assert 'opsdeck_queue_depth{queue="opsdeck"}' in body
    assert f"Worker metrics on http://0.0.0.0:{port}/metrics" in worker.log_text()
