"""How `OPSDECK_TEST_STACK` and the `OPSDECK_TEST_*_URL` variables choose the test stack; a
developer relies on these to run the suite the way they mean to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import stack
from tests.stack import DATABASE_ENV, REDIS_ENV, STACK_ENV, decide_stack, redact

PG_URL = "postgresql+psycopg://ci:s3cret@db.internal:5432/opsdeck"
REDIS_URL = "redis://cache.internal:6379/0"


@pytest.fixture
def bare_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "find_postgres_bindir", lambda: None)
    monkeypatch.setattr(stack, "find_redis_server", lambda: None)


@pytest.fixture
def equipped_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "find_postgres_bindir", lambda: Path("/usr/lib/postgresql/15/bin"))
    monkeypatch.setattr(stack, "find_redis_server", lambda: Path("/usr/bin/redis-server"))


@pytest.mark.usefixtures("equipped_machine")
def test_embedded_uses_nothing_even_when_servers_are_offered() -> None:
    chosen = decide_stack({STACK_ENV: "embedded", DATABASE_ENV: PG_URL, REDIS_ENV: REDIS_URL})

    assert chosen.mode == "embedded"
    assert (chosen.database_url, chosen.redis_url) == ("", "")
    assert chosen.describe() == "embedded: SQLite + Celery filesystem broker"
    assert any(DATABASE_ENV in note for note in chosen.notes)


@pytest.mark.usefixtures("equipped_machine")
def test_servers_given_by_url_are_used_and_nothing_is_started() -> None:
    chosen = decide_stack({DATABASE_ENV: PG_URL, REDIS_ENV: REDIS_URL})

    assert chosen.mode == "external"
    assert (chosen.database_url, chosen.redis_url) == (PG_URL, REDIS_URL)
    assert "s3cret" not in chosen.describe()


@pytest.mark.usefixtures("equipped_machine")
def test_a_machine_with_the_servers_gets_the_integration_stack() -> None:
    chosen = decide_stack({})

    assert chosen.mode == "integration"


@pytest.mark.usefixtures("bare_machine")
def test_a_machine_without_them_falls_back_to_embedded_and_says_why() -> None:
    chosen = decide_stack({})

    assert chosen.mode == "embedded"
    assert "SQLite" in chosen.describe()
    [note] = chosen.notes
    assert "postgresql" in note
    assert "redis-server" in note


@pytest.mark.usefixtures("bare_machine")
def test_integration_on_a_machine_without_the_servers_fails_loudly() -> None:
    with pytest.raises(pytest.UsageError, match=r"lacks: PostgreSQL server binaries.*redis-server"):
        decide_stack({STACK_ENV: "integration"})


def test_an_unknown_stack_name_is_refused() -> None:
    with pytest.raises(pytest.UsageError, match="use 'embedded', 'integration'"):
        decide_stack({STACK_ENV: "postgres"})


def test_passwords_are_hidden_in_what_the_stack_prints() -> None:
    assert redact(PG_URL) == "postgresql+psycopg://ci:***@db.internal:5432/opsdeck"
    assert redact(REDIS_URL) == REDIS_URL
    assert redact("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
