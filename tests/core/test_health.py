"""Liveness and readiness: what a load balancer and an orchestrator rely on."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import User
from opsdeck.settings import Settings
from tests.conftest import UserFactory, login, sign_in
from tests.core.conftest import (
    AppFactory,
    JsonLog,
    closed_port_database_url,
    closed_port_redis_url,
)
from tests.stack import TestStack, current_stack, wait_until


def test_health_answers_without_touching_dependencies(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_database_broker_and_storage_answer(client: TestClient) -> None:
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
        "failing": [],
    }


def _ready(app_client: TestClient) -> tuple[int, dict[str, object]]:
    response = app_client.get("/ready")
    return response.status_code, response.json()


def test_ready_names_the_database_when_it_is_unreachable(
    app_with: AppFactory, json_log: JsonLog
) -> None:
    database_url = closed_port_database_url()
    port = str(make_url(database_url).port)
    app = app_with(database_url=database_url, check_migrations=False)

    with TestClient(app) as unreachable:
        response = unreachable.get("/ready")
    status, body = response.status_code, response.json()

    assert status == 503
    assert body == {
        "status": "unavailable",
        "checks": {"database": "error", "broker": "ok", "storage": "ok"},
        "failing": ["database"],
    }
    # Names and states only: where the database is (and the driver's words) go to the log.
    assert port not in response.text
    assert "127.0.0.1" not in response.text
    (logged,) = json_log.find(event="ready_check_failed", check="database")
    assert logged["exc_type"] == "OperationalError"
    assert port in logged["error"]


def test_ready_names_the_broker_when_redis_is_unreachable(app_with: AppFactory) -> None:
    app = app_with(redis_url=closed_port_redis_url())

    with TestClient(app) as unreachable:
        status, body = _ready(unreachable)

    assert status == 503
    assert body["failing"] == ["broker"]
    assert body["checks"] == {"database": "ok", "broker": "error", "storage": "ok"}


def _replace_folder_with_file(folder: Path) -> None:
    # A plain chmod does not stop root (CI runs as root); a file where the folder should be
    # refuses every write, whoever asks.
    shutil.rmtree(folder)
    folder.write_text("not a folder")


def _restore_folder(folder: Path) -> None:
    folder.unlink()
    folder.mkdir()


def test_ready_names_the_broker_when_the_embedded_queue_folder_is_unwritable(
    app_with: AppFactory, tmp_path: Path
) -> None:
    app = app_with(redis_url="", data_dir=tmp_path)
    queue_folder = tmp_path / "broker" / "queue"

    with TestClient(app) as embedded:
        assert _ready(embedded)[0] == 200
        _replace_folder_with_file(queue_folder)
        status, body = _ready(embedded)
        _restore_folder(queue_folder)
        recovered, _ = _ready(embedded)

    assert status == 503
    assert body["failing"] == ["broker"]
    assert recovered == 200


def test_ready_names_storage_when_the_media_folder_is_unwritable(
    app_with: AppFactory, tmp_path: Path
) -> None:
    app = app_with(data_dir=tmp_path)
    media = tmp_path / "media"

    with TestClient(app) as broken:
        assert _ready(broken)[0] == 200
        _replace_folder_with_file(media)
        status, body = _ready(broken)
        _restore_folder(media)
        recovered, _ = _ready(broken)

    assert status == 503
    assert body["failing"] == ["storage"]
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "error"}
    assert recovered == 200


def test_ready_reports_every_failing_dependency_at_once(
    app_with: AppFactory, tmp_path: Path
) -> None:
    app = app_with(
        database_url=closed_port_database_url(),
        redis_url=closed_port_redis_url(),
        data_dir=tmp_path,
        check_migrations=False,
    )

    with TestClient(app) as broken:
        _replace_folder_with_file(tmp_path / "media")
        status, body = _ready(broken)

    assert status == 503
    assert body["failing"] == ["database", "broker", "storage"]


if current_stack().postgres is not None:
    # Only where the tests own a real database server can they stop and start it.

    def test_ready_follows_a_database_restart_and_nothing_is_lost(
        client: TestClient, db: Session, settings: Settings, test_stack: TestStack
    ) -> None:
        cluster = test_stack.postgres
        assert cluster is not None
        db.add(User(username="survivor", email="survivor@example.com", password_hash="x"))
        db.commit()
        db.close()
        assert _ready(client)[0] == 200

        cluster.stop()
        try:
            status, body = _ready(client)
        finally:
            cluster.start()

        assert status == 503
        assert body["failing"] == ["database"]
        # Pooled connections died with the server; the pool notices and reconnects.
        wait_until(lambda: _ready(client)[0] == 200, message="/ready after the restart")
        with client.app.state.sessionmaker() as fresh:  # type: ignore[attr-defined]
            names = fresh.scalars(select(User.username)).all()
        assert names == ["survivor"]

    def test_the_api_answers_503_with_retry_after_while_the_database_is_down(
        client: TestClient, make_user: UserFactory, test_stack: TestStack
    ) -> None:
        cluster = test_stack.postgres
        assert cluster is not None
        make_user("outage")
        headers = sign_in(client, "outage")

        cluster.stop()
        try:
            reading = client.get("/api/v1/users/me", headers=headers)
            signing_in = login(client, "outage")
        finally:
            cluster.start()

        for response in (reading, signing_in):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert response.json()["error"]["code"] == "database_unavailable"
        wait_until(
            lambda: client.get("/api/v1/users/me", headers=headers).status_code == 200,
            message="the API after the database restart",
        )
