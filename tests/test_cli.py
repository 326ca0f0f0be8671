"""The `opsdeck` command: migrations, users, audit verification and `serve` end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import text

from opsdeck.cli import main
from opsdeck.core.db import make_engine
from opsdeck.models import metadata
from opsdeck.settings import Settings, get_settings
from tests.conftest import STRONG_PASSWORD


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point the in-process CLI at the test stack's database."""
    for name in list(os.environ):
        if name.startswith("OPSDECK_") and not name.startswith("OPSDECK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPSDECK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("OPSDECK_DATABASE_URL", settings.database_url_resolved)
    monkeypatch.setenv("OPSDECK_SECRET_KEY", settings.secret_key.get_secret_value())
    if settings.redis_url:
        monkeypatch.setenv("OPSDECK_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _isolated_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDECK_")}
    env.update(OPSDECK_DATA_DIR=str(data_dir), OPSDECK_LOG_LEVEL="WARNING")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _opsdeck(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsdeck", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrations_match_the_models(base_settings: Settings) -> None:
    engine = make_engine(base_settings.database_url_resolved)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_db_check_fails_until_upgrade(tmp_path: Path) -> None:
    env = _isolated_env(tmp_path)

    behind = _opsdeck("db", "check", env=env)
    assert behind.returncode == 1
    assert "run `opsdeck db upgrade` first" in behind.stderr

    # The distributed roles refuse a database that is behind (`serve` migrates it itself).
    for role in (("web", "--port", "1"), ("worker",)):
        refused = _opsdeck(*role, env=env)
        assert refused.returncode == 1, role
        assert "opsdeck db upgrade" in refused.stderr, role

    assert _opsdeck("db", "upgrade", env=env).returncode == 0
    at_head = _opsdeck("db", "check", env=env)
    assert at_head.returncode == 0
    assert "database at head" in at_head.stdout


def test_migrate_is_db_upgrade(tmp_path: Path) -> None:
    env = _isolated_env(tmp_path)
    assert _opsdeck("db", "check", env=env).returncode == 1

    migrated = _opsdeck("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "database at head" in migrated.stdout
    assert _opsdeck("db", "check", env=env).returncode == 0
    # Idempotent: the image's one-shot migrate role runs on every deploy.
    assert _opsdeck("migrate", env=env).returncode == 0

    listed = _opsdeck("--help", env=env)
    assert "migrate" in listed.stdout


def test_production_without_secret_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    env = _isolated_env(tmp_path) | {"OPSDECK_ENVIRONMENT": "production"}
    result = _opsdeck("db", "check", env=env)
    assert result.returncode == 1
    assert "invalid configuration" in result.stderr
    assert "OPSDECK_SECRET_KEY" in result.stderr
    assert "PostgreSQL" in result.stderr


def test_users_create_and_audit_verify(cli_env: Settings) -> None:
    runner = CliRunner()
    created = runner.invoke(
        main,
        [
            "users",
            "create",
            "--username",
            "Root",
            "--email",
            "root@example.com",
            "--admin",
            "--password-stdin",
        ],
        input=STRONG_PASSWORD + "\n",
    )
    assert created.exit_code == 0, created.output
    assert "created admin root" in created.output

    duplicate = runner.invoke(
        main,
        ["users", "create", "--username", "root", "--email", "x@example.com", "--password-stdin"],
        input=STRONG_PASSWORD + "\n",
    )
    assert duplicate.exit_code == 1
    assert "root" in duplicate.output

    weak = runner.invoke(
        main,
        ["users", "create", "--username", "weak", "--email", "w@example.com", "--password-stdin"],
        input="password\n",
    )
    assert weak.exit_code == 1

    intact = runner.invoke(main, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "audit chain intact: 1 entries verified" in intact.output

    engine = make_engine(cli_env.database_url_resolved)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE id = 1"))
    engine.dispose()
    broken = runner.invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN at entry 1" in broken.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback test
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split()
        found.update(int(child) for child in children)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_serve_runs_web_and_worker_and_stops_both_on_ctrl_c(tmp_path: Path) -> None:
    # A fresh data directory, never migrated: `serve` applies the migrations itself.
    env = _isolated_env(tmp_path)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "opsdeck", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status: int | None = None
        while time.monotonic() < deadline:
            try:
                status, body = _get(f"{base}/ready")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert status == 200, f"not ready: {status}"
        assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}
        assert _get(f"{base}/health") == (200, {"status": "ok"})

        created = _opsdeck(
            "users",
            "create",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
            "--admin",
            "--password-stdin",
            env=env,
            stdin=STRONG_PASSWORD + "\n",
        )
        assert created.returncode == 0, created.stderr
        form = urllib.parse.urlencode({"username": "admin", "password": STRONG_PASSWORD}).encode()
        with urllib.request.urlopen(f"{base}/api/v1/auth/token", data=form, timeout=10) as resp:  # noqa: S310
            token = json.loads(resp.read())["access_token"]
        status, me = _get(f"{base}/api/v1/users/me", {"Authorization": f"Bearer {token}"})
        assert status == 200
        assert me["username"] == "admin"
        assert me["role"] == "admin"

        workers = _children(server.pid)
        assert workers, "serve started no worker process"
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert f"listening on http://127.0.0.1:{port}" in stderr
    assert "opsdeck users create" in stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def _client_seen_by_the_app(settings: Settings, forwarded_for: str) -> str:
    """The client address an app behind uvicorn's configuration (as `opsdeck web` and `serve`
    build it) sees for a connection from 127.0.0.1 that claims `forwarded_for`."""
    import asyncio

    import uvicorn

    from opsdeck.cli import proxy_options

    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    config = uvicorn.Config(app, log_config=None, **proxy_options(settings))
    config.load()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"x-forwarded-for", forwarded_for.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8004),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    asyncio.run(config.loaded_app(scope, receive, send))
    return seen[0]


def test_forwarding_headers_are_trusted_only_from_configured_proxies() -> None:
    # By default none is trusted, not even a local process: it could claim any address.
    assert _client_seen_by_the_app(Settings(_env_file=None), "203.0.113.9") == "127.0.0.1"
    behind_a_proxy = Settings(forwarded_allow_ips="127.0.0.1")
    assert _client_seen_by_the_app(behind_a_proxy, "203.0.113.9") == "203.0.113.9"
