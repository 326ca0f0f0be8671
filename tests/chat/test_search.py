"""Search over the messages a user may read (PostgreSQL full text; FTS5 on the embedded
stack), its filters, its index kept in step with edits and deletes, bounded ranking, strings
that are not searches; and jumping to a message (`around_seq`)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsdeck.chat.service import search
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender
from tests.conftest import error_of, fields_of


def _search(client: TestClient, person: Person, q: str, **params: Any) -> Any:
    response = client.get(f"{CHAT}/search", params={"q": q, **params}, headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _bodies(result: Any) -> list[str]:
    return [item["message"]["body"] for item in result["items"]]


def _private_room(
    client: TestClient, make_room: RoomFactory, owner: Person, name: str, *others: Person
) -> str:
    room_id: str = make_room(owner, name, "private")["id"]
    for other in others:
        invited = client.post(
            f"{CHAT}/rooms/{room_id}/members", json={"user_id": other.id}, headers=owner.headers
        )
        assert invited.status_code == 201, invited.text
    return room_id


def test_search_finds_words_in_the_conversations_you_read(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    public = make_room(alice, "ops")["id"]
    shared = _private_room(client, make_room, alice, "alice-bob", bob)
    hidden = _private_room(client, make_room, eve, "eve-only")
    send(alice, public, "We are deploying the database today")
    send(alice, shared, "The database deploy is **done**")
    send(eve, hidden, "database secrets of eve")
    send(alice, public, "lunch?")

    found = _search(client, bob, "deploy database")
    assert sorted(_bodies(found)) == [
        "The database deploy is **done**",
        "We are deploying the database today",
    ]
    item = found["items"][0]
    assert item["rank"] is not None
    assert {hit["room"]["name"] for hit in found["items"]} == {"ops", "alice-bob"}
    assert item["room"]["kind"] == "room"
    assert item["message"]["author"]["username"] == "alice"
    # Eve reads her own room and the public one, never alice and bob's.
    assert sorted(_bodies(_search(client, eve, "database"))) == [
        "We are deploying the database today",
        "database secrets of eve",
    ]
    # Filters: a room, an author, dates.
    assert _bodies(_search(client, bob, "database", room_id=shared)) == [
        "The database deploy is **done**"
    ]
    assert _bodies(_search(client, eve, "database", author_id=eve.id)) == [
        "database secrets of eve"
    ]
    assert _search(client, eve, "database", author_id=bob.id)["items"] == []
    hidden_room = client.get(
        f"{CHAT}/search", params={"q": "database", "room_id": hidden}, headers=bob.headers
    )
    assert hidden_room.status_code == 404
    assert error_of(hidden_room)["code"] == "room_not_found"
    newest = _search(client, bob, "database", sort="-created_at")
    assert _bodies(newest) == [
        "The database deploy is **done**",
        "We are deploying the database today",
    ]
    since = newest["items"][0]["message"]["created_at"]
    assert _bodies(_search(client, bob, "database", since=since)) == [
        "The database deploy is **done**"
    ]
    assert _bodies(_search(client, bob, "database", until=since)) == [
        "We are deploying the database today"
    ]


def test_edits_and_deletes_keep_the_index_in_step(
    client: TestClient, alice: Person, make_room: RoomFactory, send: Sender
) -> None:
    room_id = make_room(alice)["id"]
    message = send(alice, room_id, "the router is flapping")
    assert len(_search(client, alice, "router")["items"]) == 1
    edited = client.patch(
        f"{CHAT}/messages/{message['id']}",
        json={"body": "the switch is flapping"},
        headers=alice.headers,
    )
    assert edited.status_code == 200
    assert _search(client, alice, "router")["items"] == []
    assert len(_search(client, alice, "switch")["items"]) == 1
    client.delete(f"{CHAT}/messages/{message['id']}", headers=alice.headers)
    assert _search(client, alice, "switch")["items"] == []
    assert _search(client, alice, "flapping")["items"] == []


def test_attachment_names_are_searched_too(
    client: TestClient, alice: Person, make_room: RoomFactory
) -> None:
    room_id = make_room(alice)["id"]
    upload = client.post(
        f"{CHAT}/rooms/{room_id}/attachments",
        files={"file": ("quarterly-report.txt", b"figures", "text/plain")},
        headers=alice.headers,
    ).json()
    sent = client.post(
        f"{CHAT}/rooms/{room_id}/messages",
        json={"client_id": "x", "body": "", "attachment_ids": [upload["id"]]},
        headers=alice.headers,
    )
    assert sent.status_code == 201, sent.text
    found = _search(client, alice, "quarterly")
    assert [item["message"]["id"] for item in found["items"]] == [sent.json()["id"]]


def test_results_page_with_a_cursor_and_ranking_is_bounded(
    client: TestClient,
    alice: Person,
    make_room: RoomFactory,
    send: Sender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room_id = make_room(alice)["id"]
    sent = [send(alice, room_id, f"disk alert number {n}")["id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        result = _search(client, alice, "disk", **params)
        ranks = [item["rank"] for item in result["items"]]
        assert ranks == sorted(ranks, reverse=True)
        seen += [item["message"]["id"] for item in result["items"]]
        cursor = result["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(sent)

    # Only the newest RANK_CANDIDATES matches are ranked; by date, every one is found.
    monkeypatch.setattr(search, "RANK_CANDIDATES", 3)
    ranked = _search(client, alice, "disk", limit=10)
    assert sorted(item["message"]["id"] for item in ranked["items"]) == sorted(sent[2:])
    by_date = _search(client, alice, "disk", limit=10, sort="-created_at")
    assert [item["message"]["id"] for item in by_date["items"]] == sent[::-1]
    assert all(item["rank"] is None for item in by_date["items"])


@pytest.mark.parametrize(
    "q",
    [
        "'",
        '"',
        '"unclosed phrase',
        "NEAR(disk alert)",
        "body:disk",
        "disk*",
        "^disk",
        "%",
        "_",
        "' OR 1=1 --",
        "'); DROP TABLE chat_messages; --",
        "a & b | !c",
        "():*",
        "-disk",
        "disk -alert",
        "\\",
        "or",
        "x" * 200,
    ],
)
def test_strings_that_are_not_searches_are_never_a_500(
    client: TestClient, alice: Person, make_room: RoomFactory, send: Sender, q: str
) -> None:
    room_id = make_room(alice)["id"]
    send(alice, room_id, "disk alert")
    response = client.get(f"{CHAT}/search", params={"q": q}, headers=alice.headers)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["items"], list)


def test_a_blank_or_too_long_search_is_a_422(client: TestClient, alice: Person) -> None:
    for q in ("", "   ", "x" * 201):
        response = client.get(f"{CHAT}/search", params={"q": q}, headers=alice.headers)
        assert response.status_code == 422, q
    assert client.get(f"{CHAT}/search", headers=alice.headers).status_code == 422
    bad_cursor = client.get(
        f"{CHAT}/search", params={"q": "x", "cursor": "nonsense"}, headers=alice.headers
    )
    assert bad_cursor.status_code == 422


def test_dates_are_iso_8601_never_numbers(client: TestClient, alice: Person) -> None:
    """A number is no date (found by the fuzz gate: `until=3625` was read as a time)."""
    for name in ("since", "until"):
        response = client.get(
            f"{CHAT}/search", params={"q": "x", name: "3625"}, headers=alice.headers
        )
        assert response.status_code == 422, name
        assert fields_of(response) == {f"query.{name}"}
    fine = client.get(
        f"{CHAT}/search", params={"q": "x", "until": "2026-12-07T10:00:00Z"}, headers=alice.headers
    )
    assert fine.status_code == 200


def test_jump_to_a_message_answers_the_messages_around_it(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room_id = _private_room(client, make_room, alice, "jump", bob)
    for n in range(1, 11):
        send(alice, room_id, f"message {n}")

    def around(seq: int, limit: int, person: Person = bob) -> list[int]:
        response = client.get(
            f"{CHAT}/rooms/{room_id}/messages",
            params={"around_seq": seq, "limit": limit},
            headers=person.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        return [m["seq"] for m in response.json()["items"]]

    assert around(5, 4) == [3, 4, 5, 6]
    assert around(5, 5) == [3, 4, 5, 6, 7]
    assert around(1, 4) == [1, 2, 3, 4]
    assert around(10, 4) == [7, 8, 9, 10]
    assert around(50, 3) == [8, 9, 10]
    assert around(5, 50) == list(range(1, 11))
    hidden = client.get(
        f"{CHAT}/rooms/{room_id}/messages", params={"around_seq": 5}, headers=eve.headers
    )
    assert hidden.status_code == 404
    mixed = client.get(
        f"{CHAT}/rooms/{room_id}/messages",
        params={"around_seq": 5, "after_seq": 2},
        headers=bob.headers,
    )
    assert mixed.status_code == 422
