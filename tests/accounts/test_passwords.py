"""The password policy: 8 to 128 characters, not common, not the username or e-mail."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts import service
from opsdeck.accounts.models import User
from opsdeck.accounts.policy import password_problem
from opsdeck.core.errors import ValidationFailed
from tests.conftest import API, error_of, login

USERS = f"{API}/users"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short12", "Use at least 8 characters."),
        ("x" * 129, "Use at most 128 characters."),
        ("password1", "This password is one of the most common ones"),
        ("Qwertyuiop", "This password is one of the most common ones"),
        ("NewColleague", "must not be the same as the username or e-mail address"),
        ("new@Example.com", "must not be the same as the username or e-mail address"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(
    client: TestClient, db: Session, admin_headers: dict[str, str], password: str, reason: str
) -> None:
    response = client.post(
        USERS,
        json={"username": "newcolleague", "email": "new@example.com", "password": password},
        headers=admin_headers,
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "weak_password"
    assert error["message"].startswith("The password is too weak: ")
    assert reason in error["message"]
    assert [d["field"] for d in error["details"]] == ["body.password"]
    assert db.scalar(select(User).where(User.username == "newcolleague")) is None


@pytest.mark.parametrize(
    "password",
    ["8 chars!", "x" * 128, "correct horse battery staple", "пароль-надёжный", "🔑🔑🔑🔑🔑🔑🔑🔑"],
)
def test_long_enough_uncommon_passwords_of_any_characters_are_accepted(password: str) -> None:
    assert password_problem(password, username="someone", email="someone@example.com") is None


def test_an_unusual_password_works_end_to_end(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    password = "Grüße aus Köln ☕ 2024"
    created = client.post(
        USERS,
        json={"username": "koeln", "email": "k@example.com", "password": password},
        headers=admin_headers,
    )

    assert created.status_code == 201
    assert login(client, "koeln", password).status_code == 200


def test_the_service_applies_the_policy_for_the_cli_too(app: FastAPI, db: Session) -> None:
    with pytest.raises(ValidationFailed) as refused:
        service.create_user(
            db,
            app.state.passwords,
            username="cliuser",
            email="cli@example.com",
            password="12345678",
            actor_name="cli",
        )

    assert refused.value.code == "weak_password"
    assert refused.value.details[0]["field"] == "body.password"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"username": "No Spaces"}, "body.username"),
        ({"username": "ab"}, "body.username"),
        ({"email": "nope"}, "body.email"),
        ({"role": "owner"}, "body.role"),
        ({"display_name": "x" * 101}, "body.display_name"),
    ],
)
def test_the_service_validates_every_field_for_the_cli(
    app: FastAPI, db: Session, overrides: dict[str, Any], field: str
) -> None:
    values: dict[str, Any] = {
        "username": "cliuser",
        "email": "cli@example.com",
        "password": "a fine cli passphrase",
        **overrides,
    }

    with pytest.raises(ValidationFailed) as refused:
        service.create_user(db, app.state.passwords, actor_name="cli", **values)

    assert refused.value.status_code == 422
    assert [d["field"] for d in refused.value.details] == [field]
