"""Chat fixtures: three people (alice, bob and eve, the outsider every IDOR test tries with),
their bearer headers, `make_room` / `send` through the API, and `connect`: real Socket.IO
clients of the test web server."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import socketio
from fastapi.testclient import TestClient

from tests.conftest import API, UserFactory, sign_in
from tests.stack import ManagedProcess

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


def join_room(client: TestClient, person: Person, room_id: str) -> None:
    """`person` joins the public room `room_id` through the API."""
    joined = client.post(f"{CHAT}/rooms/{room_id}/join", headers=person.headers)
    assert joined.status_code == 200, joined.text


@pytest.fixture
def make_room(client: TestClient) -> RoomFactory:
    """Create a room through the API as `owner`, then have each of `joined` join it (a public
    room); the 201 answer's body."""

    def factory(
        owner: Person,
        name: str = "ops",
        visibility: str = "public",
        *,
        joined: tuple[Person, ...] = (),
        **more: Any,
    ) -> Any:
        response = client.post(
            f"{CHAT}/rooms",
            json={"name": name, "visibility": visibility, **more},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        room = response.json()
        for person in joined:
            join_room(client, person, room["id"])
        return room

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


# -- Socket.IO clients ---------------------------------------------------------------------

NS = "/chat"
WAIT = 15.0
Events = dict[str, "queue.Queue[Any]"]


class ChatClient:
    """A socketio.Client on /chat that keeps every server event in a queue per name."""

    def __init__(self) -> None:
        self.sio = socketio.Client(reconnection=False)
        self.events: Events = {}
        self.refusals: queue.Queue[Any] = queue.Queue()
        for name in (
            "message:new",
            "message:edited",
            "message:deleted",
            "typing",
            "unread",
            "room:removed",
            "reaction",
            "presence",
            "incidents:incident",
            "images:batch",
        ):
            self.events[name] = queue.Queue()
            self.sio.on(name, self._keeper(name), namespace=NS)
        self.sio.on("connect_error", self.refusals.put, namespace=NS)

    def _keeper(self, name: str) -> Callable[[Any], None]:
        return lambda data: self.events[name].put(data)

    def call(self, event: str, data: Any) -> Any:
        return self.sio.call(event, data, namespace=NS, timeout=WAIT)

    def next(self, name: str) -> Any:
        return self.events[name].get(timeout=WAIT)

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


Connect = Callable[..., ChatClient]


@pytest.fixture
def server(web_server: tuple[str, ManagedProcess]) -> str:
    return web_server[0]


@pytest.fixture
def connect(server: str) -> Iterator[Connect]:
    made: list[ChatClient] = []

    def factory(
        person: Person | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        transport: str = "websocket",
    ) -> ChatClient:
        chat = ChatClient()
        made.append(chat)
        if person is not None:
            token = person.headers["Authorization"].removeprefix("Bearer ")
        chat.sio.connect(
            server,
            namespaces=[NS],
            transports=[transport],
            auth={"token": token} if token is not None else None,
            headers=headers or {},
            wait_timeout=WAIT,
        )
        return chat

    yield factory
    for chat in made:
        chat.close()
