"""Configuration: environment, `.env`, `*_FILE` secrets, embedded defaults, production refusals."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from opsdeck.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "s" * 48
PG_URL = "postgresql+psycopg://opsdeck:pw@db:5432/opsdeck"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OPSDECK_") or name in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_embedded_defaults_live_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data").prepare()

    assert settings.embedded
    assert settings.broker_url == "filesystem://"
    assert settings.database_url_resolved == f"sqlite:///{(tmp_path / 'data' / 'opsdeck.db')}"
    assert settings.media_dir.is_dir()
    assert (settings.broker_dir / "queue").is_dir()
    assert settings.port == 8004


def test_generated_secret_key_is_private_and_stable(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).prepare()
    key_file = tmp_path / "secret_key"

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret_key.get_secret_value()) >= 32
    second = Settings(data_dir=tmp_path).prepare()
    assert second.secret_key.get_secret_value() == first.secret_key.get_secret_value()


def test_prefixed_and_unprefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h:5432/d")
    monkeypatch.setenv("REDIS_URL", "redis://h:6379/0")
    monkeypatch.setenv("OPSDECK_PORT", "9000")
    settings = Settings()

    assert settings.database_url_resolved == "postgresql+psycopg://u:p@h:5432/d"
    assert settings.broker_url == "redis://h:6379/0"
    assert not settings.embedded
    assert settings.port == 9000

    monkeypatch.setenv("OPSDECK_REDIS_URL", "redis://prefixed:6379/1")
    assert Settings().redis_url == "redis://prefixed:6379/1"


def test_file_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(GOOD_SECRET + "\n")
    monkeypatch.setenv("SECRET_KEY_FILE", str(secret_file))
    db_file = tmp_path / "db"
    db_file.write_text(PG_URL)
    monkeypatch.setenv("OPSDECK_DATABASE_URL_FILE", str(db_file))

    settings = Settings(environment="production", webhook_secret="w" * 40)

    assert settings.secret_key.get_secret_value() == GOOD_SECRET
    assert settings.database_url == PG_URL


def test_unreadable_secret_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDECK_SECRET_KEY_FILE", "/nonexistent/secret")
    with pytest.raises(ValueError, match=r"OPSDECK_SECRET_KEY_FILE=/nonexistent/secret: cannot"):
        Settings()


def test_dotenv_is_read_and_empty_values_mean_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPSDECK_PORT=8123\nOPSDECK_COOKIE_SECURE=\nOPSDECK_LOG_FILE=\n")
    settings = Settings()

    assert settings.port == 8123
    assert settings.cookie_secure is None
    assert settings.log_file is None


def test_cors_origins_accept_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDECK_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    "value",
    [
        '["https://a.example", "https://b.example"]',
        ' [ "https://a.example" ,"https://b.example", "" ] ',
        "https://a.example,https://b.example,",
    ],
)
def test_cors_origins_accept_a_json_list_too(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OPSDECK_CORS_ORIGINS", value)
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    "value", ['["10.20.0.0/16", "192.168.5.0/24"]', "10.20.0.0/16, 192.168.5.0/24"]
)
def test_fetch_allowed_networks_accept_a_json_or_a_comma_list(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OPSDECK_FETCH_ALLOWED_NETWORKS", value)
    assert Settings().fetch_allowed_networks == ["10.20.0.0/16", "192.168.5.0/24"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["https://a.example"', "not a valid JSON list"),
        ('["https://a.example", 5]', "strings only"),
    ],
)
def test_a_broken_json_list_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("OPSDECK_CORS_ORIGINS", value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_a_json_list_of_networks_is_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDECK_FETCH_ALLOWED_NETWORKS", '["10.20.0.1/16"]')
    with pytest.raises(ValidationError, match="not a network in CIDR form"):
        Settings()


@pytest.mark.parametrize("secret", ["", "changeme", "change-me", "short-but-random-91"])
def test_production_refuses_missing_or_placeholder_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match=r"OPSDECK_SECRET_KEY .* must be set"):
        Settings(
            environment="production",
            secret_key=secret,
            webhook_secret="w" * 40,
            database_url=PG_URL,
        )


def test_production_refuses_sqlite() -> None:
    with pytest.raises(ValidationError, match="must point at PostgreSQL in production"):
        Settings(environment="production", secret_key=GOOD_SECRET)
    with pytest.raises(ValidationError, match="must point at PostgreSQL in production"):
        Settings(environment="production", secret_key=GOOD_SECRET, database_url="sqlite:///x.db")


def test_production_refuses_a_missing_webhook_secret() -> None:
    with pytest.raises(ValidationError, match="OPSDECK_WEBHOOK_SECRET"):
        Settings(environment="production", secret_key=GOOD_SECRET, database_url=PG_URL)


def test_production_with_real_values_starts() -> None:
    settings = Settings(
        environment="production",
        secret_key=GOOD_SECRET,
        webhook_secret="w" * 40,
        database_url=PG_URL,
    )
    assert settings.secure_cookies


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(r"^OPSDECK_([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set()
    assert documented - fields == set()


def test_worker_processes_default_to_two_per_usable_core(monkeypatch: pytest.MonkeyPatch) -> None:
    # A container limited to three cores of a big host (its cpuset) gets six, not 2 x the host.
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {4, 5, 6})
    assert Settings().celery_concurrency == 6
    assert Settings(worker_concurrency=3).celery_concurrency == 3
