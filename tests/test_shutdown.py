"""Clean stops: SIGTERM ends every process OpsDeck started, whether it reaches one process or
its whole process group (systemd, an init with `-g`, Ctrl-C in a terminal), just after start
or mid-batch, and nothing in flight is lost.

Before core/shutdown.py, a SIGTERM to `serve`'s group left the Celery worker's main process
waiting for ever in billiard's `Pool._help_stuff_finish`, and a SIGTERM to `serve` alone left
the whole worker running (uvicorn re-raised the signal before `serve` could stop it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from opsdeck.core.shutdown import FORCED_STOP_STATUS, child_pids
from tests.conftest import STRONG_PASSWORD
from tests.images.conftest import ImageFactory
from tests.images.servers import LocalServer, Route
from tests.images.test_worker_restart import FINAL, _call, _multipart, _ready
from tests.stack import ManagedProcess, free_port, start_opsdeck, wait_until
from tests.test_cli import _alive, _isolated_env, _opsdeck

# A bound that catches a hang, not a speed claim: the design stops within 9 s (the worker's
# 7 s stop deadline, then `serve` kills what is left 2 s later).
STOP_BOUND = 30.0


def _tree(root: int) -> set[int]:
    """`root` and every live process below it."""
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if _alive(pid):
            found.add(pid)
            todo.extend(child_pids(pid))
    return found


def _wait_gone(pids: set[int], what: str) -> None:
    wait_until(
        lambda: not any(_alive(pid) for pid in pids),
        timeout=STOP_BOUND,
        message=f"{what} to end (left: {sorted(p for p in pids if _alive(p))})",
    )


def _kill_leftovers(pids: set[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def _serving(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`opsdeck serve` in a process group of its own (as a service manager would start it),
    ready; whatever it leaves running when the test ends is killed, and the test fails."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "opsdeck", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[int] = {server.pid}
    try:
        wait_until(lambda: _ready(base), timeout=90, message="serve to be ready")
        wait_until(lambda: len(_tree(server.pid)) > 2, timeout=60, message="the worker's pool")
        seen |= _tree(server.pid)
        yield base, server
    finally:
        seen |= _tree(server.pid)
        leftovers = {pid for pid in seen if _alive(pid) and pid != server.pid}
        if server.poll() is None:
            server.kill()
            server.wait()
        _kill_leftovers(leftovers)


def _stop(server: subprocess.Popen[bytes], *, group: bool) -> None:
    processes = _tree(server.pid)
    assert len(processes) >= 3, "serve, its worker and the worker's pool"
    if group:
        os.killpg(server.pid, signal.SIGTERM)
    else:
        server.send_signal(signal.SIGTERM)
    _wait_gone(processes, "serve and every process it started")
    assert server.wait() == 0


def _prepared_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = _isolated_env(tmp_path)
    env.update(extra)
    assert _opsdeck("db", "upgrade", env=env).returncode == 0
    return env


@pytest.mark.parametrize("group", [True, False], ids=["signal-to-group", "signal-to-serve"])
def test_serve_stops_every_process_on_sigterm_just_after_start(tmp_path: Path, group: bool) -> None:
    env = _prepared_env(tmp_path)
    with _serving(env, tmp_path / "serve.log") as (_base, server):
        _stop(server, group=group)


def _user_token(base: str, env: dict[str, str]) -> str:
    form = urllib.parse.urlencode({"username": "shop", "password": STRONG_PASSWORD})
    token: str = _call(f"{base}/api/v1/auth/token", data=form.encode())["access_token"]
    return token


def _submit(base: str, token: str, urls: list[str]) -> str:
    rows = "".join(f"{n},P{n},{url}\n" for n, url in enumerate(urls, start=1))
    body, ctype = _multipart(
        {"file": ("p.csv", f"S. No.,Product Name,Input Image Urls\n{rows}".encode(), "text/csv")}
    )
    request_id: str = _call(f"{base}/api/v1/images/batches", token=token, data=body, ctype=ctype)[
        "request_id"
    ]
    return request_id


@pytest.mark.parametrize(
    ("delay", "stop_timeout"),
    [(1.5, "7"), (60.0, "1")],
    ids=["tasks-finish-in-the-grace-period", "tasks-cut-by-the-stop-deadline"],
)
def test_serve_stopped_mid_batch_by_its_group_loses_nothing(
    tmp_path: Path, delay: float, stop_timeout: str
) -> None:
    """Stopped while images are being fetched (finishing in the grace period, or cut by the
    stop deadline), then started again: the batch completes, every image once in the output."""
    env = _prepared_env(
        tmp_path,
        OPSDECK_FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
        OPSDECK_WORKER_CONCURRENCY="2",
        OPSDECK_WORKER_STOP_TIMEOUT_SECONDS=stop_timeout,
        OPSDECK_FETCH_TOTAL_TIMEOUT_SECONDS="120",
        OPSDECK_LOG_LEVEL="INFO",
    )
    created = _opsdeck(
        "users", "create", "--username", "shop", "--email", "shop@example.com",
        "--password-stdin", env=env, stdin=STRONG_PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    photo = ImageFactory().jpeg_bytes()
    log_path = tmp_path / "serve.log"
    with LocalServer().running() as origin:
        urls = []
        for n in range(4):
            origin.routes[f"/slow-{n}.jpg"] = Route(
                body=photo, content_type="image/jpeg", delay=delay
            )
            urls.append(origin.url(f"/slow-{n}.jpg"))
        with _serving(env, log_path) as (base, server):
            token = _user_token(base, env)
            request_id = _submit(base, token, urls)
            wait_until(lambda: sum(origin.hits.values()), timeout=60, message="the first fetch")
            _stop(server, group=True)
        # The slow origin answers at once from now on: what was cut short runs again.
        for route in origin.routes.values():
            route.delay = 0.0
        with _serving(env, log_path) as (base, server):

            def finished() -> dict[str, Any] | None:
                batch: dict[str, Any] = _call(
                    f"{base}/api/v1/images/batches/{request_id}", token=token
                )
                return batch if batch["status"] in FINAL else None

            batch = wait_until(finished, timeout=120, message="the batch to finish")
            _stop(server, group=True)
    output = log_path.read_text(errors="replace")
    assert batch["status"] == "completed", output[-3000:]
    assert batch["processed_images"] == 4
    assert batch["failed_images"] == 0
    outputs = [image["output_url"] for product in batch["products"] for image in product["images"]]
    assert len(outputs) == len(set(outputs)) == 4
    if stop_timeout == "1":
        assert "worker_stop_forced" in output


def test_a_worker_stops_on_sigterm_to_its_group(
    base_settings: Any, metrics_dir: Path, tmp_path: Path
) -> None:
    """`opsdeck worker` on the test stack (Redis, or the filesystem broker), its pool children
    in its process group as a service manager starts them: one SIGTERM to the group stops it,
    cleanly (status 0)."""
    worker: ManagedProcess = start_opsdeck(
        "stop-worker",
        ["worker", "--concurrency", "2"],
        settings=base_settings,
        metrics_dir=metrics_dir,
        workdir=tmp_path / "worker",
    )
    try:
        worker.wait_for_record(
            lambda r: str(r.get("event", "")).endswith(" ready."),
            message="the worker's 'ready' line",
            timeout=90,
        )
        processes = _tree(worker.process.pid)
        assert len(processes) >= 3
        os.killpg(worker.process.pid, signal.SIGTERM)
        _wait_gone(processes, "the worker and its pool")
        assert worker.process.wait() == 0, worker.diagnostics()
    finally:
        _kill_leftovers(_tree(worker.process.pid))


def test_a_pool_child_ignores_sigterm_from_its_fork_on(tmp_path: Path) -> None:
    """A SIGTERM to the worker's group that reaches a pool child still starting (after the
    fork, before or during Celery's child initializer) neither runs the main process's handler
    there nor kills the child: it is ignored from the fork on, and the initializer's reset of
    signals leaves it ignored. (Under load, a stop just after "ready" met children in that
    window: each began a shutdown of its own and the stop ended forced, status 3.)"""
    script = textwrap.dedent(
        """
        import os, signal
        from celery import platforms
        from celery.concurrency import prefork
        from opsdeck.core.shutdown import install_worker_stop

        # Stands for Celery's warm-shutdown handler of the worker's main process.
        signal.signal(signal.SIGTERM, lambda *_: os.write(1, b"main handler ran\\n"))
        install_worker_stop(30)
        pid = os.fork()
        if pid == 0:
            ignored_at_fork = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            # What Celery's child initializer (prefork.process_initializer) does first.
            platforms.signals.reset(*prefork.WORKER_SIGRESET)
            platforms.signals.ignore(*prefork.WORKER_SIGIGNORE)
            ignored_after_init = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            os.write(1, f"child {ignored_at_fork} {ignored_after_init}\\n".encode())
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child status", os.waitstatus_to_exitcode(status), flush=True)
        print("main keeps its handler", signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=STOP_BOUND,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "child True True",
        "child status 0",
        "main keeps its handler True",
    ], done.stdout + done.stderr


def test_the_stop_deadline_kills_what_still_runs(tmp_path: Path) -> None:
    """A worker whose shutdown began and did not end in time kills its children and exits
    with FORCED_STOP_STATUS, whatever held it (here: a main thread that never returns)."""
    script = textwrap.dedent(
        """
        import subprocess, sys, time
        from celery import signals
        from opsdeck.core.shutdown import install_worker_stop

        install_worker_stop(0.5)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(child.pid, flush=True)
        signals.worker_shutting_down.send(sender="test", sig="SIGTERM", how="Warm", exitcode=0)
        time.sleep(600)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert process.stdout is not None
    child = int(process.stdout.readline())
    try:
        assert process.wait(timeout=STOP_BOUND) == FORCED_STOP_STATUS
        wait_until(lambda: not _alive(child), timeout=STOP_BOUND, message="the child to die")
    finally:
        _kill_leftovers({process.pid, child})
