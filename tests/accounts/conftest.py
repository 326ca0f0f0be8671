"""Helpers for the accounts tests: reading back rows and audit entries, and apps with tighter
throttle limits. Signing in and the cheap password hashing are in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import User
from opsdeck.app import create_app
from opsdeck.audit.models import AuditEntry
from opsdeck.settings import Settings


def audit_actions(db: Session, action_prefix: str = "") -> list[AuditEntry]:
    db.expire_all()
    entries = list(
        db.scalars(
            select(AuditEntry)
            .where(AuditEntry.action.startswith(action_prefix))
            .order_by(AuditEntry.id)
        )
    )
    end_read(db)
    return entries


def reload_user(db: Session, user_id: str) -> User:
    db.expire_all()
    user = db.get_one(User, user_id)
    end_read(db)
    return user


def end_read(db: Session) -> None:
    """End the test's read transaction. On SQLite every transaction begins with BEGIN
    IMMEDIATE and so holds the write lock, which the app's next request would wait for."""
    db.commit()


def next_totp(db: Session, user_id: str, secret: str) -> str:
    """The code for the step after the last one accepted: valid now (within the one-step
    window) and never a replay, however the test's timing falls on step boundaries."""
    last = reload_user(db, user_id).totp_last_counter
    assert last is not None
    return pyotp.TOTP(secret).generate_otp(last + 1)


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def client_with(settings: Settings) -> Iterator[ClientFactory]:
    """A client for an app on the same database with some settings changed."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        app: FastAPI = create_app(settings.model_copy(update=overrides))
        client = TestClient(app, base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)
