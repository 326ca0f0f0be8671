"""The /chat Socket.IO namespace against a real `opsdeck web` process, with real
python-socketio clients over the websocket transport: authentication at connect, two people
talking, idempotent resends, errors answered through acks, catching up after a dropped
connection, typing, read pointers and rate limits."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import socketio
from fastapi.testclient import TestClient

from tests.chat.conftest import CHAT, NS, WAIT, ChatClient, Connect, Person, RoomFactory
from tests.conftest import API, STRONG_PASSWORD


def _send(chat: ChatClient, room_id: str, body: str, client_id: str | None = None) -> Any:
    return chat.call(
        "message:send",
        {"room_id": room_id, "client_id": client_id or uuid.uuid4().hex, "body": body},
    )


def test_two_people_talk_and_a_resend_is_the_same_message(
    client: TestClient, connect: Connect, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    a, b = connect(alice), connect(bob)
    joined = b.call("room:join", {"room_id": room["id"]})
    assert joined["ok"] is True
    assert joined["last_seq"] == 0
    assert a.call("room:join", {"room_id": room["id"]})["ok"] is True

    ack = _send(a, room["id"], "hello **bob**", client_id="c-1")
    assert ack["ok"] is True
    assert ack["seq"] == 1
    assert ack["duplicate"] is False
    got = b.next("message:new")
    assert got["id"] == ack["id"]
    assert got["seq"] == 1
    assert got["room_id"] == room["id"]
    assert got["client_id"] == "c-1"
    assert got["body"] == "hello **bob**"
    assert got["author"]["id"] == alice.id
    assert got["author"]["username"] == "alice"
    assert got["body_html"] == "<p>hello <strong>bob</strong></p>\n"
    assert got["created_at"]

    again = _send(a, room["id"], "hello **bob**", client_id="c-1")
    assert (again["ok"], again["id"], again["seq"], again["duplicate"]) == (
        True,
        ack["id"],
        1,
        True,
    )
    reply = _send(b, room["id"], "hi alice")
    assert reply["seq"] == 2
    # The resend was not delivered again: the next message bob sees is his own, seq 2.
    assert [
        b.next("message:new")["seq"],
        a.next("message:new")["seq"],
        a.next("message:new")["seq"],
    ] == [2, 1, 2]

    edited = a.call("message:edit", {"id": ack["id"], "body": "hello bob"})
    assert edited["ok"] is True
    assert b.next("message:edited")["body"] == "hello bob"
    deleted = b.call("message:delete", {"id": reply["id"]})
    assert deleted == {"ok": True, "id": reply["id"], "seq": 2}
    assert a.next("message:deleted")["id"] == reply["id"]

    # What went through the socket is what REST reads.
    history = client.get(f"{CHAT}/rooms/{room['id']}/messages", headers=bob.headers).json()
    assert [(m["seq"], m["body"], m["deleted"]) for m in history["items"]] == [
        (1, "hello bob", False),
        (2, "", True),
    ]


def test_refused_connections_say_why(
    server: str, client: TestClient, connect: Connect, alice: Person
) -> None:
    for token in ("not-a-token", "opd_forged"):
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect(token=token)
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect()

    cookie = httpx.post(
        f"{server}{API}/auth/session", json={"username": "alice", "password": STRONG_PASSWORD}
    ).cookies["opsdeck_session"]
    # The session cookie from another site's page: refused, whatever the transport.
    chat = ChatClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        chat.sio.connect(
            server,
            namespaces=[NS],
            transports=["polling"],
            headers={"Cookie": f"opsdeck_session={cookie}", "Origin": "https://evil.example"},
            wait_timeout=WAIT,
        )
    refusal = chat.refusals.get(timeout=WAIT)
    assert refusal["data"]["code"] == "origin_not_allowed"
    chat.close()
    # From this site's own pages it is accepted.
    same = connect(
        headers={"Cookie": f"opsdeck_session={cookie}", "Origin": server}, transport="polling"
    )
    assert same.sio.connected

    bad = ChatClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        bad.sio.connect(
            server,
            namespaces=[NS],
            transports=["websocket"],
            auth={"token": "nope"},
            wait_timeout=WAIT,
        )
    assert bad.refusals.get(timeout=WAIT)["data"]["code"] == "not_authenticated"
    bad.close()


def test_bad_events_get_an_error_ack_and_the_connection_stays(
    connect: Connect, alice: Person, eve: Person, make_room: RoomFactory
) -> None:
    public = make_room(alice, name="general")
    private = make_room(alice, name="secret", visibility="private")
    e = connect(eve)

    def code(event: str, data: Any) -> str:
        answer = e.call(event, data)
        assert answer["ok"] is False
        assert answer["error"]["message"]
        return str(answer["error"]["code"])

    assert (
        code("message:send", {"room_id": public["id"], "client_id": "a", "body": "x"})
        == "not_a_member"
    )
    assert (
        code("message:send", {"room_id": private["id"], "client_id": "a", "body": "x"})
        == "room_not_found"
    )
    assert code("room:join", {"room_id": private["id"]}) == "room_not_found"
    assert code("sync", {"room_id": private["id"], "after_seq": 0}) == "room_not_found"
    assert code("typing", {"room_id": private["id"]}) == "room_not_found"
    assert code("read", {"room_id": private["id"], "seq": 1}) == "room_not_found"
    assert code("room:join", "not an object") == "invalid_payload"
    assert code("room:join", {"room": public["id"]}) == "invalid_payload"
    assert code("nonsense:event", {}) == "unknown_event"
    assert code("message:edit", {"id": "missing", "body": "x"}) == "message_not_found"

    assert e.call("room:join", {"room_id": public["id"]})["ok"] is True
    forged = {"room_id": public["id"], "client_id": "a", "body": "x", "author_id": alice.id}
    assert code("message:send", forged) == "invalid_payload"
    too_big = {"room_id": public["id"], "client_id": "b", "body": "€" * 3500}
    assert code("message:send", too_big) == "message_too_long"
    assert _send(e, public["id"], "still here")["ok"] is True


def test_sync_after_a_dropped_connection_returns_exactly_what_was_missed(
    connect: Connect, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    a, b = connect(alice), connect(bob)
    for chat in (a, b):
        assert chat.call("room:join", {"room_id": room["id"]})["ok"] is True
    _send(a, room["id"], "one")
    last_seen = b.next("message:new")["seq"]
    b.sio.eio.disconnect(abort=True)  # the network goes, no goodbye
    for body in ("two", "three", "four"):
        assert _send(a, room["id"], body)["ok"] is True

    back = connect(bob)
    caught_up = back.call("sync", {"room_id": room["id"], "after_seq": last_seen})
    assert caught_up["ok"] is True
    assert caught_up["more"] is False
    assert [(m["seq"], m["body"]) for m in caught_up["messages"]] == [
        (2, "two"),
        (3, "three"),
        (4, "four"),
    ]
    assert back.call("room:join", {"room_id": room["id"]})["last_seq"] == 4
    assert _send(a, room["id"], "five")["seq"] == 5
    assert back.next("message:new")["seq"] == 5


def test_typing_read_pointers_removal_and_rate_limits(
    server: str, connect: Connect, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    a, b, b_phone = connect(alice), connect(bob), connect(bob)
    for chat in (a, b):
        assert chat.call("room:join", {"room_id": room["id"]})["ok"] is True

    assert b.call("typing", {"room_id": room["id"]}) == {"ok": True}
    assert a.next("typing") == {"room_id": room["id"], "user": {"id": bob.id, "username": "bob"}}

    for body in ("one", "two"):
        _send(a, room["id"], body)
    # New messages tell every member's connections their unread count (not the sender's):
    # the messages of a short while in one push, so one or two pushes here, ending at 2.
    counts: list[int] = []
    while not counts or counts[-1] < 2:
        pushed = b_phone.next("unread")
        assert pushed == {**pushed, "room_id": room["id"], "mentions": 0, "last_read_seq": 0}
        counts.append(pushed["unread"])
    assert counts in ([1, 2], [2])
    read = b.call("read", {"room_id": room["id"], "seq": 1})
    state = {"room_id": room["id"], "unread": 1, "mentions": 0, "last_read_seq": 1}
    assert read == {"ok": True, **state}
    # Bob's other device hears of it.
    assert b_phone.next("unread") == state
    assert a.events["unread"].empty()

    answers = [b.call("typing", {"room_id": room["id"]}) for _ in range(12)]
    assert answers[-1]["ok"] is False
    assert answers[-1]["error"]["code"] == "rate_limited"

    # Through the server the sockets are on (an app in this process has no client there).
    kicked = httpx.delete(
        f"{server}{CHAT}/rooms/{room['id']}/members/{bob.id}", headers=alice.headers, timeout=WAIT
    )
    assert kicked.status_code == 204
    assert b.next("room:removed") == {"room_id": room["id"]}
    refused = _send(b, room["id"], "still here?")
    assert refused["ok"] is False
    assert refused["error"]["code"] == "not_a_member"
