"""Incidents fixtures: the people of an incident (a commander, an outsider), categories and
tags made by an admin, and `declare` through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import API, UserFactory, sign_in

INCIDENTS = f"{API}/incidents"
Declare = Callable[..., dict[str, Any]]


@pytest.fixture
def outsider_headers(client: TestClient, make_user: UserFactory) -> dict[str, str]:
    """A second member: the one every IDOR test tries to get in with."""
    make_user("eve", display_name="Eve Outsider")
    return sign_in(client, "eve")


@pytest.fixture
def catalog(client: TestClient, admin_headers: dict[str, str]) -> None:
    """The categories (database, network) and tags (db, payments) the tests name."""
    for name in ("database", "network"):
        assert (
            client.post(
                f"{INCIDENTS}/categories", json={"name": name}, headers=admin_headers
            ).status_code
            == 201
        )
    for name in ("db", "payments"):
        assert (
            client.post(f"{INCIDENTS}/tags", json={"name": name}, headers=admin_headers).status_code
            == 201
        )


@pytest.fixture
def declare(client: TestClient) -> Declare:
    """Declare an incident through the API; the 201 answer's body."""

    def factory(headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {"title": "Checkout is failing", "severity": "SEV2", **fields}
        response = client.post(INCIDENTS, json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    return factory
