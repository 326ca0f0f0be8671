"""Shared fixtures. The database and broker come from `tests/stack.py`: a real PostgreSQL and
Redis when the machine has them (the integration stack), otherwise the embedded defaults
(SQLite + Celery's filesystem broker). Both run the same tests.

Every module's tests sign in with the helpers here: `make_user` (any user), the `member` and
`admin` fixtures, `sign_in(client, username)` for bearer headers (`member_headers`,
`admin_headers`), `browser_sign_in(client, username)` for a cookie session and its CSRF header,
and `error_of` / `fields_of` to read the JSON error shape. Mail: `smtp_server` (a real local
SMTP server that keeps what it receives), `make_smtp_server` for TLS and AUTH, and
`smtp_overrides(server)` for the settings that send to it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import Session

from opsdeck.app import create_app
from opsdeck.core.db import make_engine, upgrade_database
from opsdeck.core.ratelimit import rate_limiter
from opsdeck.models import metadata
from opsdeck.settings import Settings
from tests.mail_server import Certificate, SmtpServer, make_certificate, start_smtp_server

pytest_plugins = ["tests.stack"]

STRONG_PASSWORD = "correct horse battery staple"
API = "/api/v1"
CSRF_HEADER = "X-CSRF-Token"


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
        # argon2 at the floor the settings allow (OWASP: t=2, m=19 MiB, p=1): the suite hashes
        # and verifies thousands of passwords, and the production cost (t=3, m=64 MiB, p=4)
        # made each one ~0.3 s of CPU on a 2-core machine. The cost parameters are
        # configuration, not a different code path; tests/accounts checks rehashing on change.
        "password_hash_time_cost": 2,
        "password_hash_memory_kib": 19_456,
        "password_hash_parallelism": 1,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values).prepare()


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
    # Rate-limit buckets live in Redis or in this process, not in the tables.
    rate_limiter(base_settings).clear()


def _empty_tables(settings: Settings) -> None:
    engine = make_engine(settings.database_url_resolved)
    try:
        with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))
    finally:
        engine.dispose()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float | None = None) -> None:
        # Whole seconds, so that adding whole seconds is exact in floating point.
        self.now = float(int(time.time())) if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Stop the rate limiter's clock (every app on the test settings' backend shares it);
    `clock.advance(seconds)` moves it."""
    fake = FakeClock()
    monkeypatch.setattr(rate_limiter(settings), "clock", fake)
    return fake


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


@pytest.fixture
def member(make_user: UserFactory) -> Any:
    return make_user("mallory", display_name="Mallory Member")


@pytest.fixture
def admin(make_user: UserFactory) -> Any:
    return make_user("root", role="admin", display_name="Root Admin")


@pytest.fixture
def admin_headers(client: TestClient, admin: Any) -> dict[str, str]:
    return sign_in(client, admin.username)


@pytest.fixture
def member_headers(client: TestClient, member: Any) -> dict[str, str]:
    return sign_in(client, member.username)


# -- signing in through the API --------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(
    client: TestClient, username: str, password: str = STRONG_PASSWORD, otp: str | None = None
) -> httpx.Response:
    """POST /auth/token as the sign-in form does; the answer, whatever it is."""
    form = {"username": username, "password": password}
    if otp is not None:
        form["otp"] = otp
    response: httpx.Response = client.post(f"{API}/auth/token", data=form)
    return response


def access_token(client: TestClient, username: str, password: str = STRONG_PASSWORD) -> str:
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def sign_in(client: TestClient, username: str, password: str = STRONG_PASSWORD) -> dict[str, str]:
    """Headers that act as `username` with a bearer access token."""
    return bearer(access_token(client, username, password))


def browser_login(
    client: TestClient, username: str, password: str = STRONG_PASSWORD
) -> dict[str, Any]:
    """Sign `client` in with a browser session (it keeps the cookies); the answer's body,
    with `csrf_token`."""
    response = client.post(f"{API}/auth/session", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def browser_sign_in(
    client: TestClient, username: str, password: str = STRONG_PASSWORD
) -> dict[str, str]:
    """Sign `client` in with a browser session; the CSRF header its unsafe requests need."""
    return {CSRF_HEADER: browser_login(client, username, password)["csrf_token"]}


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a JSON error answer."""
    error: dict[str, Any] = response.json()["error"]
    return error


def fields_of(response: httpx.Response) -> set[str]:
    return {detail["field"] for detail in error_of(response)["details"]}


# -- a real SMTP server ------------------------------------------------------------------------


SmtpServerFactory = Callable[..., SmtpServer]


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost / 127.0.0.1; trust it with
    `smtp_ca_file=smtp_certificate.cert_file`."""
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def make_smtp_server(smtp_certificate: Certificate) -> Iterator[SmtpServerFactory]:
    """`make_smtp_server(security="none"|"starttls"|"tls", users={"name": "password"})`: a
    running aiosmtpd server on a free loopback port (tests/mail_server.py), stopped after the
    test. Point settings at it with `smtp_overrides(server, security)`."""
    servers: list[SmtpServer] = []

    def factory(*, security: str = "none", users: dict[str, str] | None = None) -> SmtpServer:
        server = start_smtp_server(certificate=smtp_certificate, security=security, users=users)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server: SmtpServerFactory) -> SmtpServer:
    """A plain SMTP server (no TLS, no AUTH): `.port`, `.messages` (parsed EmailMessage
    objects), `.received` (with envelopes), `.refuse[address] = "550 ..."`, `.stop()`."""
    return make_smtp_server()


def smtp_overrides(server: SmtpServer, security: str = "none", **more: Any) -> dict[str, Any]:
    """Settings overrides (for make_settings or app_with) that send mail to `server`."""
    values: dict[str, Any] = {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_security": security,
        "smtp_timeout_seconds": 5.0,
    }
    values.update(more)
    return values
