"""The send path's contracts kept while making it cheaper: the answer to a send is the message
as it reads back later, the sender's ack comes before its own `message:new` (which every
subscriber gets in `seq` order), each conversation's events leave one at a time in order, and
the `unread` pushes gather a conversation's new messages (one emit per distinct payload, the
sender left out when nothing came after their message)."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from socketio import packet
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from opsdeck.chat import service
from opsdeck.chat.events import (
    CONTROL_TOPIC,
    NAMESPACE,
    ChatNamespace,
    RoomBroadcasts,
    SocketUser,
    UnreadPushes,
    user_room,
)
from opsdeck.core import live
from opsdeck.core.db import transaction
from tests.chat.conftest import CHAT, WAIT, Connect, Person, RoomFactory, Sender


def test_the_answer_to_a_send_is_the_message_as_read_back(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice, joined=(bob,))
    root = send(bob, room["id"], "the root")
    upload = client.post(
        f"{CHAT}/rooms/{room['id']}/attachments",
        files={"file": ("notes-2026.txt", b"plain text\n", "text/plain")},
        headers=alice.headers,
    )
    assert upload.status_code == 201, upload.text
    sent = client.post(
        f"{CHAT}/rooms/{room['id']}/messages",
        json={
            "client_id": "full",
            "body": "**look** @bob, @alice and @room: INC-7",
            "reply_to": root["id"],
            "attachment_ids": [upload.json()["id"]],
        },
        headers=alice.headers,
    )
    assert sent.status_code == 201, sent.text
    answer = sent.json()
    assert answer["mentions"] == [bob.id]
    assert answer["mentions_room"] is True
    assert [a["filename"] for a in answer["attachments"]] == ["notes-2026.txt"]
    page = client.get(
        f"{CHAT}/rooms/{room['id']}/messages", params={"after_seq": 1}, headers=alice.headers
    )
    assert page.json()["items"] == [answer]
    # The resend answers the same message, read back.
    again = client.post(
        f"{CHAT}/rooms/{room['id']}/messages",
        json={"client_id": "full", "body": "ignored"},
        headers=alice.headers,
    )
    assert again.status_code == 200
    assert again.json() == answer
    # The attachment's name is searchable, as before.
    found = client.get(f"{CHAT}/search", params={"q": "notes"}, headers=alice.headers)
    assert [hit["message"]["id"] for hit in found.json()["items"]] == [answer["id"]]


class _Frames:
    """A bare Engine.IO 4 / Socket.IO 5 client over one websocket: frames in arrival order."""

    def __init__(self, ws: ClientConnection, token: str) -> None:
        self.ws = ws
        assert str(self.ws.recv(timeout=WAIT)).startswith("0")  # Engine.IO open
        self.send(packet.Packet(packet.CONNECT, {"token": token}, namespace=NAMESPACE))
        assert self.next().packet_type == packet.CONNECT

    def send(self, pkt: packet.Packet) -> None:
        self.ws.send("4" + str(pkt.encode()))

    def next(self) -> packet.Packet:
        while True:
            frame = str(self.ws.recv(timeout=WAIT))
            if frame == "2":  # Engine.IO ping
                self.ws.send("3")
                continue
            assert frame.startswith("4"), frame
            return packet.Packet(encoded_packet=frame[1:])


def test_a_senders_ack_comes_before_its_own_message_new(
    server: str, connect: Connect, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    watcher = connect(bob)
    assert watcher.call("room:join", {"room_id": room["id"]})["ok"] is True
    url = server.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    with ws_connect(url, open_timeout=WAIT) as ws:
        frames = _Frames(ws, alice.headers["Authorization"].removeprefix("Bearer "))
        frames.send(
            packet.Packet(
                packet.EVENT, ["room:join", {"room_id": room["id"]}], namespace=NAMESPACE, id=1
            )
        )
        while (joined := frames.next()).packet_type != packet.ACK:
            pass
        assert joined.data[0]["ok"] is True
        client_ids = [uuid.uuid4().hex for _ in range(5)]
        for number, client_id in enumerate(client_ids, start=2):
            payload = {"room_id": room["id"], "client_id": client_id, "body": f"m{number}"}
            frames.send(
                packet.Packet(
                    packet.EVENT, ["message:send", payload], namespace=NAMESPACE, id=number
                )
            )
        order: list[tuple[str, str]] = []
        news: list[dict[str, Any]] = []
        while len(order) < 2 * len(client_ids):
            pkt = frames.next()
            if pkt.packet_type == packet.ACK:
                assert pkt.data[0]["ok"] is True, pkt.data
                order.append(("ack", pkt.data[0]["message"]["client_id"]))
            elif pkt.data[0] == "message:new":
                news.append(pkt.data[1])
                order.append(("new", pkt.data[1]["client_id"]))
    for client_id in client_ids:
        assert order.index(("ack", client_id)) < order.index(("new", client_id)), order
    # Sent at once, the five are numbered 1 to 5 in the order they committed, and every
    # subscriber gets the same payloads.
    assert sorted(m["seq"] for m in news) == [1, 2, 3, 4, 5]
    seen = [watcher.next("message:new") for _ in client_ids]
    assert {m["id"]: m for m in seen} == {m["id"]: m for m in news}


def test_each_conversations_events_leave_one_at_a_time_in_order() -> None:
    emitted: list[tuple[str, str, Any]] = []
    busy: set[str] = set()

    async def emit(room: str, event: str, payload: dict[str, Any]) -> None:
        assert room not in busy, "two emits of one conversation at once"
        busy.add(room)
        try:
            await asyncio.sleep(0.001)
            if payload["n"] == 2:
                raise RuntimeError("a failed emit does not stop the others")
            emitted.append((room, event, payload["n"]))
        finally:
            busy.discard(room)

    async def run() -> None:
        broadcasts = RoomBroadcasts(emit)
        for n, room in enumerate(["a", "b", "a", "a", "b", "a"]):
            broadcasts.push(room, "message:new", {"n": n})
            if n == 3:
                await asyncio.sleep(0.002)  # some go while others wait
        while broadcasts._tasks:
            await asyncio.gather(*broadcasts._tasks)

    asyncio.run(run())
    assert [n for room, _e, n in emitted if room == "a"] == [0, 3, 5]
    assert [n for room, _e, n in emitted if room == "b"] == [1, 4]


class _FakeServer:
    def __init__(self) -> None:
        self.emits: list[tuple[str, dict[str, Any], list[str]]] = []

    async def emit(
        self,
        event: str,
        data: dict[str, Any],
        *,
        to: list[str],
        namespace: str,
        ignore_queue: bool = False,
    ) -> None:
        assert namespace == NAMESPACE
        self.emits.append((event, data, sorted(to)))
        self.ignored_queue = ignore_queue


def test_unread_pushes_gather_a_conversations_new_messages(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room_id = make_room(alice, joined=(bob, eve))["id"]
    server = _FakeServer()
    # A delay nobody waits for: the test flushes by hand.
    pushes = UnreadPushes(server, app.state.sessionmaker, delay=3600)

    async def noted(*sends: tuple[Person, int]) -> None:
        for person, seq in sends:
            pushes.note(room_id, person.id, seq)
        await pushes.flush(room_id)
        await pushes.flush(room_id)  # nothing left: no second push

    for body in ("one", "two"):
        send(alice, room_id, body)
    asyncio.run(noted((alice, 1), (alice, 2)))
    # One emit for bob and eve (the same payload), none for alice (nothing after her message).
    state = {"room_id": room_id, "unread": 2, "mentions": 0, "last_read_seq": 0}
    assert server.emits == [("unread", state, sorted([user_room(bob.id), user_room(eve.id)]))]

    server.emits.clear()
    send(bob, room_id, "three")
    send(alice, room_id, "four")
    asyncio.run(noted((bob, 3), (alice, 4)))
    assert sorted(server.emits, key=lambda e: e[2]) == sorted(
        [
            # Bob sent too, but alice wrote after him: he is told.
            (
                "unread",
                {"room_id": room_id, "unread": 1, "mentions": 0, "last_read_seq": 3},
                [user_room(bob.id)],
            ),
            (
                "unread",
                {"room_id": room_id, "unread": 4, "mentions": 0, "last_read_seq": 0},
                [user_room(eve.id)],
            ),
        ],
        key=lambda e: e[2],
    )


def test_with_redis_an_unread_push_is_one_publish_for_every_payload(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room_id = make_room(alice, joined=(bob, eve))["id"]
    send(alice, room_id, "one")
    # Bob has read it: his payload differs from eve's.
    read = client.post(f"{CHAT}/rooms/{room_id}/read", json={"seq": 1}, headers=bob.headers)
    assert read.status_code == 200, read.text
    send(alice, room_id, "two")
    published: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(
        live,
        "publish",
        lambda topic, event, payload, *, settings: published.append((topic, event, payload)),
    )
    server = _FakeServer()
    distributed = SimpleNamespace(embedded=False)
    pushes = UnreadPushes(server, app.state.sessionmaker, delay=3600, settings=distributed)  # type: ignore[arg-type]

    async def noted() -> None:
        pushes.note(room_id, alice.id, 2)
        await pushes.flush(room_id)

    asyncio.run(noted())
    # Nothing emitted through python-socketio's manager (a Redis message per payload): one
    # publish holding both payloads.
    assert server.emits == []
    assert len(published) == 1, published
    topic, event, payload = published[0]
    assert (topic, event) == (CONTROL_TOPIC, "unread")
    by_user = {
        user_id: group["counts"] for group in payload["groups"] for user_id in group["user_ids"]
    }
    assert by_user == {
        bob.id: {"room_id": room_id, "unread": 1, "mentions": 0, "last_read_seq": 1},
        eve.id: {"room_id": room_id, "unread": 2, "mentions": 0, "last_read_seq": 0},
    }
    # Each process emits it to its own connections only (the bus reached every process).
    chat = app.state.sockets.server.namespace_handlers[NAMESPACE]
    assert isinstance(chat, ChatNamespace)
    monkeypatch.setattr(chat.context.hub, "server", server)
    asyncio.run(chat._control("unread", {"groups": [*payload["groups"], "junk"]}))
    assert sorted(server.emits, key=lambda e: e[2]) == sorted(
        [
            ("unread", by_user[bob.id], [user_room(bob.id)]),
            ("unread", by_user[eve.id], [user_room(eve.id)]),
        ],
        key=lambda e: e[2],
    )
    assert server.ignored_queue is True


def test_an_unread_push_reads_without_waiting_for_a_send_in_progress(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    """The push's read is declared read-only: on SQLite it takes no write lock, so it neither
    waits for a send that holds it nor holds the next send up (PostgreSQL never did)."""
    room_id = make_room(alice, joined=(bob,))["id"]
    send(alice, room_id, "one")
    server = _FakeServer()
    pushes = UnreadPushes(server, app.state.sessionmaker, delay=3600)
    # A send in progress: its number taken and its message written, not committed yet.
    with transaction(app.state.sessionmaker) as writing:
        actor = SocketUser(id=alice.id, username=alice.username, is_admin=False)
        service.send_message(writing, actor, room_id, client_id="open", body="two")

        async def noted() -> None:
            pushes.note(room_id, alice.id, 1)
            await pushes.flush(room_id)

        asyncio.run(noted())
    # Bob's counts as committed when it read: the message in progress is not in them.
    state = {"room_id": room_id, "unread": 1, "mentions": 0, "last_read_seq": 0}
    assert server.emits == [("unread", state, [user_room(bob.id)])]
