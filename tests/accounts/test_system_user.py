"""The system actor: the owner of work no person started (`opsdeck images process`), created
on first use, named by the audit log, never able to sign in or to be changed, its name
reserved. The command itself is tested in tests/images/test_commands.py."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from opsdeck.accounts import service
from opsdeck.accounts.models import User
from opsdeck.core.errors import Conflict
from tests.accounts.conftest import audit_actions
from tests.conftest import API, STRONG_PASSWORD, error_of, fields_of, login


def _system(app: FastAPI) -> str:
    session: Session = app.state.sessionmaker()
    try:
        first = service.system_user(session, on_behalf_of="tests")
        second = service.system_user(session, on_behalf_of="tests")
        assert first is second
        session.commit()
        return first.id
    finally:
        session.close()


def test_the_system_actor_is_created_once_and_cannot_sign_in(
    app: FastAPI, client: TestClient, db: Session
) -> None:
    system_id = _system(app)
    assert _system(app) == system_id

    for password in ("!system: this account cannot sign in", STRONG_PASSWORD, "x"):
        refused = login(client, "system", password)
        assert refused.status_code == 401
        assert error_of(refused)["code"] == "invalid_credentials"
    session_refused = client.post(
        f"{API}/auth/session", json={"username": "system", "password": "x"}
    )
    assert session_refused.status_code == 401
    created = audit_actions(db, "user.created")
    assert [(e.actor, e.target_id, e.details["system"]) for e in created] == [
        ("tests", system_id, True)
    ]


def test_an_admin_cannot_change_or_reactivate_the_system_actor(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str]
) -> None:
    system_id = _system(app)

    for change in ({"is_active": True}, {"role": "admin"}, {"display_name": "Me"}):
        refused = client.patch(f"{API}/users/{system_id}", json=change, headers=admin_headers)
        assert refused.status_code == 409, refused.text
        assert error_of(refused)["code"] == "system_user"


def test_nobody_may_take_the_system_name(client: TestClient, admin_headers: dict[str, str]) -> None:
    body = {"username": " SYSTEM ", "email": "s@example.com", "password": STRONG_PASSWORD}

    refused = client.post(f"{API}/users", json=body, headers=admin_headers)

    assert refused.status_code == 422
    assert fields_of(refused) == {"body.username"}
    assert "reserved" in error_of(refused)["message"]


def test_a_person_already_named_system_is_not_handed_out(app: FastAPI, db: Session) -> None:
    db.add(
        User(
            username="system",
            email="person@example.com",
            password_hash=app.state.passwords.hash(STRONG_PASSWORD),
        )
    )
    db.commit()

    with pytest.raises(Conflict) as caught:
        service.system_user(db)
    assert caught.value.code == "system_user_taken"
    db.rollback()
