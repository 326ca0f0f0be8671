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
from opsdeck.core.db import make_engine, schema_filter
from opsdeck.models import metadata
from opsdeck.settings import Settings, get_settings
from tests.conftest import STRONG_PASSWORD
from tests.stack import hermetic_env


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
            # The full-text index is a migration's own table, not a model (0006).
            context = MigrationContext.configure(
                connection, opts={"include_name": schema_filter(metadata)}
            )
            diff = compare_metadata(context, metadata)
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


def test_the_migration_seals_plain_seeds_and_keys_rotate_reseals_them(tmp_path: Path) -> None:
    """Seeds stored before 0008 are sealed by the upgrade with the deployment's key; after a
    key change, `opsdeck keys rotate` re-seals them with the new one."""
    from alembic import command
    from sqlalchemy import text

    from opsdeck.core.db import alembic_config
    from opsdeck.core.security import SecretBox

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old_key, new_key = "o" * 40, "n" * 40
    command.upgrade(alembic_config(url), "0007")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, username, email, display_name, role, is_active,"
                    " password_hash, password_changed_at, totp_secret, created_at, updated_at)"
                    " VALUES ('u1', 'ann', 'ann@example.com', '', 'member', 1, 'x',"
                    " CURRENT_TIMESTAMP, 'JBSWY3DPEHPK3PXP', CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                )
            )
        env = _isolated_env(tmp_path)
        env.update(OPSDECK_DATABASE_URL=url, OPSDECK_SECRET_KEY=old_key)

        def seed() -> str:
            with engine.connect() as connection:
                value: str = connection.execute(
                    text("SELECT totp_secret FROM users WHERE id = 'u1'")
                ).scalar_one()
            return value

        assert _opsdeck("db", "upgrade", env=env).returncode == 0
        sealed = seed()
        old_box = SecretBox(old_key.encode(), purpose="totp-secret")
        assert sealed.startswith(f"v1.{old_box.current_kid}.")
        assert old_box.open(sealed, bound_to="u1") == "JBSWY3DPEHPK3PXP"

        env.update(OPSDECK_SECRET_KEY=new_key)
        refused = _opsdeck("keys", "rotate", env=env)
        assert refused.returncode == 1
        assert "OPSDECK_PREVIOUS_SECRET_KEYS" in refused.stderr
        assert seed() == sealed

        env.update(OPSDECK_PREVIOUS_SECRET_KEYS=old_key)
        rotated = _opsdeck("keys", "rotate", env=env)
        assert rotated.returncode == 0, rotated.stderr
        assert "re-sealed 1 TOTP seeds" in rotated.stdout
        new_box = SecretBox(new_key.encode(), purpose="totp-secret")
        assert new_box.open(seed(), bound_to="u1") == "JBSWY3DPEHPK3PXP"
        assert seed().startswith(f"v1.{new_box.current_kid}.")
    finally:
        engine.dispose()


def test_audit_checkpoints_reveal_a_truncated_chain(
    cli_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the newest entries leaves a chain that verifies on its own; against the
    signed checkpoint taken before, `audit verify` fails naming what is missing."""
    monkeypatch.setenv("OPSDECK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    runner = CliRunner()
    for name in ("ann", "bob", "cyd"):
        created = runner.invoke(
            main,
            [
                "users",
                "create",
                "--username",
                name,
                "--email",
                f"{name}@example.com",
                "--password-stdin",
            ],
            input=STRONG_PASSWORD + "\n",
        )
        assert created.exit_code == 0, created.output
    taken = runner.invoke(main, ["audit", "checkpoint"])
    assert taken.exit_code == 0, taken.output
    # The last line is the checkpoint (the log line before it carries the same).
    checkpoint = json.loads(taken.output.splitlines()[-1])
    assert (checkpoint["last_id"], checkpoint["count"]) == (3, 3)
    lines = (tmp_path / "audit-checkpoints.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == checkpoint
    intact = runner.invoke(main, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "reaches the checkpoint" in intact.output

    engine = make_engine(cli_env.database_url_resolved)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE id >= 2"))
    engine.dispose()
    truncated = runner.invoke(main, ["audit", "verify"])
    assert truncated.exit_code == 1
    assert "TRUNCATED: entries 2..3 are missing" in truncated.output

    # A checkpoint edited to match the shorter chain is refused: its signature breaks.
    forged = {**checkpoint, "last_id": 1, "count": 1}
    (tmp_path / "forged.jsonl").write_text(json.dumps(forged) + "\n")
    refused = runner.invoke(
        main, ["audit", "verify", "--checkpoint", str(tmp_path / "forged.jsonl")]
    )
    assert refused.exit_code == 1
    assert "signature does not match" in refused.output


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


def test_the_served_app_keeps_its_startup_objects_out_of_the_collector(
    base_settings: Settings, tmp_path: Path
) -> None:
    """A full collection in a web process walked every object built at startup (every route,
    schema and model): a pause of 100-200 ms in the middle of requests. What `opsdeck web`
    serves is built, collected once, then frozen."""
    env = hermetic_env(base_settings, tmp_path)
    probe = (
        "import gc\n"
        "from opsdeck.app import serve_app\n"
        "before = gc.get_freeze_count()\n"
        "serve_app()\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, frozen, still_tracked = (int(n) for n in done.stdout.split()[-3:])
    assert before == 0
    assert frozen > 100_000  # the application, not a handful of objects
    assert still_tracked < frozen / 10
