"""Clean-up of dead sessions and expired refresh tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts import service, tasks
from opsdeck.accounts.models import AuthSession, RefreshToken
from opsdeck.core import queue
from opsdeck.core.db import utcnow
from opsdeck.core.security import digest
from opsdeck.settings import Settings, get_settings


def _session(db: Session, user: Any, name: str, *, expires_in: timedelta, revoked: bool) -> str:
    now = utcnow()
    row = AuthSession(
        id=name.ljust(32, "0"),
        user_id=user.id,
        kind="api",
        expires_at=now + expires_in,
        revoked_at=now if revoked else None,
    )
    db.add(row)
    db.flush()
    return row.id


def _refresh_token(
    db: Session, session_id: str, name: str, *, expires_in: timedelta, used: bool = False
) -> None:
    now = utcnow()
    db.add(
        RefreshToken(
            session_id=session_id,
            token_hash=digest(name),
            expires_at=now + expires_in,
            used_at=now if used else None,
        )
    )


@pytest.fixture
def rows(db: Session, member: Any) -> Session:
    """Live and dead rows of each kind, named after what should become of them."""
    day = timedelta(days=1)
    live = _session(db, member, "live", expires_in=day, revoked=False)
    expired = _session(db, member, "expired", expires_in=-day, revoked=False)
    revoked = _session(db, member, "revoked", expires_in=day, revoked=True)
    _refresh_token(db, live, "keep-unused", expires_in=day)
    _refresh_token(db, live, "keep-spent", expires_in=day, used=True)
    _refresh_token(db, live, "drop-expired", expires_in=-day)
    _refresh_token(db, expired, "drop-with-expired-session", expires_in=day)
    _refresh_token(db, revoked, "drop-with-revoked-session", expires_in=day)
    db.commit()
    return db


def _remaining(db: Session) -> tuple[list[str], list[str]]:
    db.expire_all()
    sessions = sorted(s.rstrip("0") for s in db.scalars(select(AuthSession.id)))
    tokens = sorted(db.scalars(select(RefreshToken.token_hash)))
    return sessions, tokens


EXPECTED_AFTER_PURGE = (
    ["live"],
    sorted([digest("keep-unused"), digest("keep-spent")]),
)


def test_purge_deletes_only_what_can_no_longer_be_used(rows: Session) -> None:
    counts = service.purge_expired(rows, utcnow())
    rows.commit()

    assert counts == service.PurgeCounts(sessions=2, refresh_tokens=3)
    assert _remaining(rows) == EXPECTED_AFTER_PURGE


def test_purge_twice_changes_nothing_more(rows: Session) -> None:
    service.purge_expired(rows, utcnow())
    rows.commit()

    again = service.purge_expired(rows, utcnow())

    assert again == service.PurgeCounts(0, 0)
    assert _remaining(rows) == EXPECTED_AFTER_PURGE


@pytest.fixture
def worker_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point the worker's own settings (read from the environment) at the test database."""
    environment = {
        "OPSDECK_ENVIRONMENT": "test",
        "OPSDECK_DATA_DIR": str(settings.data_dir),
        "OPSDECK_DATABASE_URL": settings.database_url_resolved,
        "OPSDECK_REDIS_URL": settings.redis_url,
        "OPSDECK_SECRET_KEY": settings.secret_key.get_secret_value(),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _forget_worker_state()
    yield get_settings()
    queue._worker_sessionmaker().kw["bind"].dispose()
    _forget_worker_state()


def _forget_worker_state() -> None:
    # Both are cached per process, as a worker wants; a test must start from a clean slate.
    get_settings.cache_clear()
    queue._worker_sessionmaker.cache_clear()


def test_the_celery_task_purges_through_its_own_session(
    rows: Session, worker_settings: Settings
) -> None:
    assert tasks.purge_expired.name == "accounts.purge_expired"

    first = tasks.purge_expired.run()
    second = tasks.purge_expired.run()

    assert first == {"sessions": 2, "refresh_tokens": 3}
    assert second == {"sessions": 0, "refresh_tokens": 0}
    assert _remaining(rows) == EXPECTED_AFTER_PURGE
