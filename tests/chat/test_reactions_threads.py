"""Reactions (a toggle per person and emoji, one emoji only) and threads (reply counts on the
root, the thread read as its root and its replies), over REST."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from opsdeck.chat.service import is_emoji
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender
from tests.conftest import error_of


def _react(client: TestClient, person: Person, message_id: str, emoji: str) -> Any:
    return client.post(
        f"{CHAT}/messages/{message_id}/reactions", json={"emoji": emoji}, headers=person.headers
    )


def _reply(client: TestClient, person: Person, room_id: str, parent: str, body: str) -> Any:
    response = client.post(
        f"{CHAT}/rooms/{room_id}/messages",
        json={"client_id": f"r-{body}", "body": body, "reply_to": parent},
        headers=person.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize(
    "emoji",
    ["👍", "❤️", "🇫🇷", "👩🏽‍💻", "👨‍👩‍👧‍👦", "1️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "✅"],
)
def test_one_emoji_is_an_emoji(emoji: str) -> None:
    assert is_emoji(emoji)


@pytest.mark.parametrize(
    "text", ["", "a", "ok", "👍👍", "👍 ", "<b>", "🇫", "🇫🇷🇩🇪", "\u200d", "👍\u200d", "1", "©a"]
)
def test_anything_else_is_not(text: str) -> None:
    assert not is_emoji(text)


def test_reactions_toggle_in_first_use_order(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    assert client.post(f"{CHAT}/rooms/{room['id']}/join", headers=bob.headers).status_code == 200
    message = send(alice, room["id"], "deploy done")

    first = _react(client, bob, message["id"], "🎉")
    assert first.status_code == 200, first.text
    assert first.json()["reactions"] == [{"emoji": "🎉", "count": 1, "user_ids": [bob.id]}]
    _react(client, alice, message["id"], "👍")
    both = _react(client, alice, message["id"], "🎉").json()
    assert both["reactions"] == [
        {"emoji": "🎉", "count": 2, "user_ids": [bob.id, alice.id]},
        {"emoji": "👍", "count": 1, "user_ids": [alice.id]},
    ]
    # A second toggle takes it back; an emoji nobody has left disappears.
    after = _react(client, alice, message["id"], "👍").json()
    assert [r["emoji"] for r in after["reactions"]] == ["🎉"]
    history = client.get(f"{CHAT}/rooms/{room['id']}/messages", headers=bob.headers).json()
    assert history["items"][0]["reactions"] == [
        {"emoji": "🎉", "count": 2, "user_ids": [bob.id, alice.id]}
    ]


def test_reactions_are_refused_for_bad_emoji_outsiders_and_tombstones(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    secret = make_room(alice, "secret", "private")
    message = send(alice, secret["id"], "hush")
    for text in ("yes", "👍👍", "<script>"):
        refused = _react(client, alice, message["id"], text)
        assert refused.status_code == 422, text
        assert error_of(refused)["code"] == "invalid_emoji"
    assert _react(client, alice, message["id"], "x" * 33).status_code == 422
    # Eve is not in the private room: the message does not exist for her.
    hidden = _react(client, eve, message["id"], "👍")
    assert hidden.status_code == 404
    assert error_of(hidden)["code"] == "message_not_found"
    assert _react(client, eve, "0" * 32, "👍").status_code == 404
    # Bob has not joined a public room: join first.
    public = make_room(alice, "public")
    shout = send(alice, public["id"], "hello")
    assert error_of(_react(client, bob, shout["id"], "👍"))["code"] == "not_a_member"
    client.delete(f"{CHAT}/messages/{message['id']}", headers=alice.headers)
    assert error_of(_react(client, alice, message["id"], "👍"))["code"] == "message_deleted"


@contextmanager
def _statements(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        statement = str(args[2])
        # The page's own reads (not signing in, nor the job relay's thread, nor the socket
        # server's work in asyncio's executor threads: the unread pushes after the sends).
        if threading.current_thread().name.startswith("asyncio_"):
            return
        if "chat_" in statement or "FROM users" in statement:
            seen.append(statement)

    engine = app.state.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_history_page_reads_reactions_and_threads_in_a_fixed_number_of_queries(
    app: FastAPI, client: TestClient, alice: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    url = f"{CHAT}/rooms/{room['id']}/messages"
    first = send(alice, room["id"], "m-0")
    _react(client, alice, first["id"], "👍")
    with _statements(app) as small:
        assert len(client.get(url, headers=alice.headers).json()["items"]) == 1
    for index in range(1, 12):
        message = send(alice, room["id"], f"m-{index}")
        _react(client, alice, message["id"], "👀")
        _reply(client, alice, room["id"], message["id"], f"re-{index}")
    with _statements(app) as large:
        assert len(client.get(url, headers=alice.headers).json()["items"]) == 23
    assert [s[:60] for s in large] == [s[:60] for s in small]


def test_threads_count_replies_and_read_in_order(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room = make_room(alice)
    client.post(f"{CHAT}/rooms/{room['id']}/join", headers=bob.headers)
    root = send(alice, room["id"], "incident call?")
    assert (root["reply_count"], root["last_reply_at"]) == (0, None)
    one = _reply(client, bob, room["id"], root["id"], "one")
    assert one["reply_to"] == root["id"]
    send(alice, room["id"], "unrelated")
    # A reply to a reply joins the root's thread.
    two = _reply(client, alice, room["id"], one["id"], "two")
    assert two["reply_to"] == root["id"]
    three = _reply(client, bob, room["id"], root["id"], "three")

    listed = client.get(f"{CHAT}/rooms/{room['id']}/messages", headers=bob.headers).json()
    first = listed["items"][0]
    assert first["reply_count"] == 3
    assert first["last_reply_at"] == three["created_at"]

    page = client.get(
        f"{CHAT}/messages/{root['id']}/thread", params={"limit": 2}, headers=bob.headers
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["root"]["id"] == root["id"]
    assert body["root"]["reply_count"] == 3
    assert [m["body"] for m in body["items"]] == ["one", "two"]
    rest = client.get(
        f"{CHAT}/messages/{root['id']}/thread",
        params={"cursor": body["next_cursor"]},
        headers=bob.headers,
    ).json()
    assert [m["body"] for m in rest["items"]] == ["three"]
    assert rest["next_cursor"] is None
    # Asking for a reply's thread answers the whole thread.
    via_reply = client.get(f"{CHAT}/messages/{two['id']}/thread", headers=bob.headers).json()
    assert via_reply["root"]["id"] == root["id"]
    assert len(via_reply["items"]) == 3

    # A deleted reply stays in the thread as a tombstone, and no longer counts.
    client.delete(f"{CHAT}/messages/{three['id']}", headers=bob.headers)
    after = client.get(f"{CHAT}/messages/{root['id']}/thread", headers=bob.headers).json()
    assert after["root"]["reply_count"] == 2
    assert [m["deleted"] for m in after["items"]] == [False, False, True]

    secret = make_room(alice, "secret", "private")
    hidden = send(alice, secret["id"], "private root")
    refused = client.get(f"{CHAT}/messages/{hidden['id']}/thread", headers=eve.headers)
    assert refused.status_code == 404
    assert error_of(refused)["code"] == "message_not_found"
    bad = client.get(
        f"{CHAT}/messages/{root['id']}/thread", params={"cursor": "nope"}, headers=bob.headers
    )
    assert bad.status_code == 422
