"""Shared fixtures. The database and broker come from `tests/stack.py`: a real PostgreSQL and
Redis when the machine has them (the integration stack), otherwise the embedded defaults
(SQLite + Celery's filesystem broker). Both run the same tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import Session

from opsdeck.app import create_app
from opsdeck.core.db import make_engine, upgrade_database
from opsdeck.models import metadata
from opsdeck.settings import Settings

pytest_plugins = ["tests.stack"]

STRONG_PASSWORD = "correct horse battery staple"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "database_url": os.environ.get("OPSDECK_TEST_DATABASE_URL", ""),
        "redis_url": os.environ.get("OPSDECK_TEST_REDIS_URL", ""),
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "webhook_secret": "test-webhook-secret-that-is-long-enough-0123",
        # The tests' image and webhook servers listen on loopback.
        "fetch_allowed_networks": ["127.0.0.0/8"],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values).prepare()  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("opsdeck-data")


@pytest.fixture(scope="session")
def base_settings(data_dir: Path) -> Settings:
    settings = make_settings(data_dir)
    upgrade_database(settings.database_url_resolved)
    return settings


@pytest.fixture
def settings(base_settings: Settings) -> Iterator[Settings]:
    yield base_settings
    _empty_tables(base_settings)


def _empty_tables(settings: Settings) -> None:
    engine = make_engine(settings.database_url_resolved)
    try:
        with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))
    finally:
        engine.dispose()


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def db(app: FastAPI) -> Iterator[Session]:
    """A session for arranging and checking rows; commit explicitly. On SQLite every
    transaction holds the write lock (BEGIN IMMEDIATE), so end reads with commit() before
    calling the client."""
    session: Session = app.state.sessionmaker()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


UserFactory = Callable[..., Any]


@pytest.fixture
def make_user(app: FastAPI) -> UserFactory:
    """Create a user through the accounts service, as the CLI and admin API do."""
    from opsdeck.accounts import service

    counter = iter(range(1, 1_000_000))

    def factory(
        username: str | None = None,
        *,
        password: str = STRONG_PASSWORD,
        role: str = "member",
        email: str | None = None,
        display_name: str = "",
    ) -> Any:
        name = username or f"user{next(counter)}"
        session: Session = app.state.sessionmaker()
        try:
            user = service.create_user(
                session,
                app.state.passwords,
                username=name,
                email=email or f"{name}@example.com",
                password=password,
                display_name=display_name,
                role=role,
                actor_name="tests",
            )
            session.commit()
            return user
        finally:
            session.close()

    return factory
