"""Chat fixtures: three people (alice, bob and eve, the outsider every IDOR test tries with),
their bearer headers, and `make_room` / `send` through the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import API, UserFactory, sign_in

CHAT = f"{API}/chat"
RoomFactory = Callable[..., dict[str, Any]]
Sender = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Person:
    id: str
    username: str
    headers: dict[str, str]


def _person(client: TestClient, make_user: UserFactory, name: str) -> Person:
    user = make_user(name, display_name=name.title())
    return Person(id=user.id, username=user.username, headers=sign_in(client, name))


@pytest.fixture
def alice(client: TestClient, make_user: UserFactory) -> Person:
    return _person(client, make_user, "alice")


@pytest.fixture
def bob(client: TestClient, make_user: UserFactory) -> Person:
    return _person(client, make_user, "bob")


@pytest.fixture
def eve(client: TestClient, make_user: UserFactory) -> Person:
    """The outsider."""
    return _person(client, make_user, "eve")


@pytest.fixture
def make_room(client: TestClient) -> RoomFactory:
    """Create a room through the API as `owner`; the 201 answer's body."""

    def factory(owner: Person, name: str = "ops", visibility: str = "public", **more: Any) -> Any:
        response = client.post(
            f"{CHAT}/rooms",
            json={"name": name, "visibility": visibility, **more},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return response.json()

    return factory


@pytest.fixture
def send(client: TestClient) -> Sender:
    """Send a message through the API; the answer's body (201 or 200 for a resend)."""
    counter = iter(range(1, 1_000_000))

    def factory(
        person: Person, room_id: str, body: str = "hello", client_id: str | None = None
    ) -> Any:
        response = client.post(
            f"{CHAT}/rooms/{room_id}/messages",
            json={"client_id": client_id or f"c-{next(counter)}", "body": body},
            headers=person.headers,
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    return factory
