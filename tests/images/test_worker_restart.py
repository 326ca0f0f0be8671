"""`opsdeck serve` (embedded mode) when its worker is killed as a whole, the way the kernel's
OOM killer would: the worker comes back and every image it had taken is done, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import STRONG_PASSWORD
from tests.images.servers import LocalServer, Route
from tests.stack import free_port, wait_until
from tests.test_cli import _children, _isolated_env, _opsdeck

FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}


def _call(url: str, *, token: str | None = None, data: bytes | None = None, ctype: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if ctype:
        headers["Content-Type"] = ctype
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def _multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = "opsdeck-test-boundary"
    parts = []
    for name, (filename, body, ctype) in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
            + body
            + b"\r\n"
        )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_worker_killed_whole_under_serve_is_restarted_and_loses_nothing(
    tmp_path: Path, images: Any
) -> None:
    env = _isolated_env(tmp_path)
    env.update(
        OPSDECK_FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
        OPSDECK_WORKER_CONCURRENCY="1",
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
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "opsdeck", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    photo = images.jpeg_bytes()
    try:
        with LocalServer().running() as origin:
            # One worker process takes one task and holds one more (prefetch): both slow.
            slow = []
            for n in range(4):
                origin.routes[f"/slow-{n}.jpg"] = Route(
                    body=photo, content_type="image/jpeg", delay=2.0
                )
                slow.append(origin.url(f"/slow-{n}.jpg"))
            wait_until(lambda: _ready(base), timeout=60, message="serve to be ready")
            form = urllib.parse.urlencode({"username": "shop", "password": STRONG_PASSWORD})
            token = _call(f"{base}/api/v1/auth/token", data=form.encode())["access_token"]
            rows = "".join(f"{n},P{n},{url}\n" for n, url in enumerate(slow, start=1))
            body, ctype = _multipart(
                {
                    "file": (
                        "p.csv",
                        f"S. No.,Product Name,Input Image Urls\n{rows}".encode(),
                        "text/csv",
                    )
                }
            )
            request_id = _call(
                f"{base}/api/v1/images/batches", token=token, data=body, ctype=ctype
            )["request_id"]

            wait_until(lambda: sum(origin.hits.values()), timeout=60, message="the first fetch")
            worker = next(iter(_children(server.pid)))
            for pid in [*_children(worker), worker]:
                os.kill(pid, signal.SIGKILL)

            def finished() -> dict[str, Any] | None:
                batch: dict[str, Any] = _call(
                    f"{base}/api/v1/images/batches/{request_id}", token=token
                )
                return batch if batch["status"] in FINAL else None

            batch = wait_until(finished, timeout=120, message="the batch to finish")
            replacement = _children(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        log.close()
    output = (tmp_path / "serve.log").read_text(errors="replace")

    assert batch["status"] == "completed", output[-3000:]
    assert batch["processed_images"] == 4
    assert batch["failed_images"] == 0
    assert all(
        image["output_url"] and image["status"] == "succeeded"
        for product in batch["products"]
        for image in product["images"]
    )
    assert replacement
    assert worker not in replacement
    assert "The worker exited with status -9; starting it again" in output
    assert "images_requeued_after_restart" in output
    assert server.returncode == 0


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/ready", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False
