"""Messages over REST and the service: history in sequence order, idempotent sends, sequence
numbers under concurrent senders, the 10 KB limit, inert HTML, edits, tombstones, rate limits."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.audit.models import AuditEntry
from opsdeck.chat import service
from opsdeck.chat.models import Message
from opsdeck.core.db import transaction
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender
from tests.conftest import FakeClock, error_of


def _messages(client: TestClient, person: Person, room_id: str, **params: Any) -> Any:
    response = client.get(f"{CHAT}/rooms/{room_id}/messages", params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_history_is_in_sequence_order_both_ways(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    sent = [send(alice, room["id"], f"message {n}") for n in range(1, 6)]
    assert [m["seq"] for m in sent] == [1, 2, 3, 4, 5]
    first = sent[0]
    assert first["room_id"] == room["id"]
    assert first["client_id"] == "c-1"
    assert first["author"] == {"id": alice.id, "username": "alice", "display_name": "Alice"}
    assert first["body_html"] == "<p>message 1</p>\n"
    assert first["deleted"] is False

    # A public room's history is readable before joining.
    everything = _messages(client, bob, room["id"])
    assert [m["seq"] for m in everything["items"]] == [1, 2, 3, 4, 5]
    assert everything["next_cursor"] is None
    assert [m["seq"] for m in _messages(client, bob, room["id"], after_seq=3)["items"]] == [4, 5]

    forward = _messages(client, bob, room["id"], after_seq=0, limit=2)
    assert [m["seq"] for m in forward["items"]] == [1, 2]
    following = _messages(client, bob, room["id"], cursor=forward["next_cursor"], limit=2)
    assert [m["seq"] for m in following["items"]] == [3, 4]

    backward = _messages(client, bob, room["id"], before_seq=5, limit=2)
    assert [m["seq"] for m in backward["items"]] == [3, 4]
    earlier = _messages(client, bob, room["id"], cursor=backward["next_cursor"], limit=2)
    assert [m["seq"] for m in earlier["items"]] == [1, 2]
    assert earlier["next_cursor"] is None

    bad = client.get(
        f"{CHAT}/rooms/{room['id']}/messages", params={"cursor": "nonsense"}, headers=bob.headers
    )
    assert bad.status_code == 422
    both = client.get(
        f"{CHAT}/rooms/{room['id']}/messages",
        params={"after_seq": 1, "before_seq": 3},
        headers=bob.headers,
    )
    assert both.status_code == 422


def test_a_resend_with_the_same_client_id_is_the_same_message(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    url = f"{CHAT}/rooms/{room['id']}/messages"
    assert client.post(f"{CHAT}/rooms/{room['id']}/join", headers=bob.headers).status_code == 200
    first = client.post(url, json={"client_id": "abc-1", "body": "once"}, headers=alice.headers)
    again = client.post(url, json={"client_id": "abc-1", "body": "once"}, headers=alice.headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["seq"] == 1
    # The same client id from someone else is their own message.
    other = client.post(url, json={"client_id": "abc-1", "body": "mine"}, headers=bob.headers)
    assert other.status_code == 201
    assert other.json()["seq"] == 2
    assert len(_messages(client, alice, room["id"])["items"]) == 2

    for client_id in ("", "with space", "x" * 65, "<script>"):
        bad = client.post(url, json={"client_id": client_id, "body": "x"}, headers=alice.headers)
        assert bad.status_code == 422, client_id


def test_sequence_numbers_stay_dense_and_ordered_under_concurrent_senders(
    app: FastAPI, alice: Person, bob: Person, make_room: RoomFactory, client: TestClient
) -> None:
    room = make_room(alice)
    assert client.post(f"{CHAT}/rooms/{room['id']}/join", headers=bob.headers).status_code == 200
    per_thread = 8
    errors: list[BaseException] = []
    results: dict[str, list[int]] = {}

    class Who:
        def __init__(self, person: Person) -> None:
            self.id = person.id
            self.username = person.username
            self.is_admin = False

    def run(person: Person, label: str) -> None:
        seqs = []
        try:
            for n in range(per_thread):
                with transaction(app.state.sessionmaker) as session:
                    sent = service.send_message(
                        session, Who(person), room["id"], client_id=f"{label}-{n}", body=f"{n}"
                    )
                    seqs.append(sent.message.seq)
        except BaseException as exc:
            errors.append(exc)
        results[label] = seqs

    threads = [
        threading.Thread(target=run, args=(person, f"{person.username}{k}"))
        for person in (alice, bob)
        for k in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = sorted(seq for seqs in results.values() for seq in seqs)
    assert everything == list(range(1, 4 * per_thread + 1))
    for seqs in results.values():
        assert seqs == sorted(seqs)


def test_a_message_is_at_most_10_kb(
    client: TestClient, alice: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    url = f"{CHAT}/rooms/{room['id']}/messages"
    assert send(alice, room["id"], "a" * 10 * 1024)["seq"] == 1
    for body in ("a" * (10 * 1024 + 1), "€" * 3500, "x" * 30_000):
        refused = client.post(url, json={"client_id": "big", "body": body}, headers=alice.headers)
        assert refused.status_code == 422
    # 3,500 euro signs are 10,500 bytes: the limit is in bytes, not characters.
    euros = client.post(url, json={"client_id": "big", "body": "€" * 3500}, headers=alice.headers)
    assert error_of(euros)["code"] == "message_too_long"
    assert error_of(euros)["details"][0]["limit_bytes"] == 10 * 1024
    blank = client.post(url, json={"client_id": "blank", "body": "  \n"}, headers=alice.headers)
    assert blank.status_code == 422


def test_markdown_is_rendered_and_html_stays_inert(
    alice: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    body = '<script>alert(1)</script> **bold** [x](javascript:alert(1)) <img src=x onerror="a()">'
    message = send(alice, room["id"], body)
    html = message["body_html"]
    assert "<strong>bold</strong>" in html
    assert "<script" not in html
    assert "<img" not in html
    assert 'href="javascript' not in html
    assert message["body"] == body


def test_edits_keep_history_and_deletes_leave_a_tombstone(
    client: TestClient,
    db: Session,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room = make_room(alice)
    for person in (bob, eve):
        assert (
            client.post(f"{CHAT}/rooms/{room['id']}/join", headers=person.headers).status_code
            == 200
        )
    mine = send(bob, room["id"], "frist")
    url = f"{CHAT}/messages/{mine['id']}"

    edited = client.patch(url, json={"body": "*first*"}, headers=bob.headers)
    assert edited.status_code == 200
    assert edited.json()["body_html"] == "<p><em>first</em></p>\n"
    assert edited.json()["edited_at"]
    assert edited.json()["seq"] == mine["seq"]
    history = client.get(f"{url}/edits", headers=alice.headers).json()
    assert [version["body"] for version in history] == ["frist"]
    refused = client.patch(url, json={"body": "mine now"}, headers=alice.headers)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "not_author"

    # A member deletes only their own; the room's owner deletes anyone's (audited).
    assert client.delete(url, headers=eve.headers).status_code == 403
    deleted = client.delete(url, headers=alice.headers)
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert deleted.json()["body"] == ""
    tombstone = _messages(client, eve, room["id"])["items"][0]
    assert (tombstone["seq"], tombstone["deleted"], tombstone["body_html"]) == (1, True, "")
    assert client.get(f"{url}/edits", headers=alice.headers).json() == []
    assert client.patch(url, json={"body": "back"}, headers=bob.headers).status_code == 404
    entries = list(
        db.scalars(select(AuditEntry).where(AuditEntry.action == "chat.message_deleted"))
    )
    db.commit()
    assert [(e.actor_id, e.target_id) for e in entries] == [(alice.id, mine["id"])]


def test_sending_needs_membership_and_a_parent_in_the_room(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    other = make_room(alice, name="other")
    url = f"{CHAT}/rooms/{room['id']}/messages"
    outside = client.post(url, json={"client_id": "a", "body": "hi"}, headers=bob.headers)
    assert outside.status_code == 403
    assert error_of(outside)["code"] == "not_a_member"

    parent = send(alice, room["id"], "question")
    elsewhere = send(alice, other["id"], "elsewhere")
    reply = client.post(
        url,
        json={"client_id": "r", "body": "answer", "reply_to": parent["id"]},
        headers=alice.headers,
    )
    assert reply.status_code == 201
    assert reply.json()["reply_to"] == parent["id"]
    stray = client.post(
        url,
        json={"client_id": "s", "body": "x", "reply_to": elsewhere["id"]},
        headers=alice.headers,
    )
    assert stray.status_code == 404
    forged = client.post(
        url, json={"client_id": "f", "body": "x", "author_id": bob.id}, headers=alice.headers
    )
    assert forged.status_code == 422


def test_sends_are_rate_limited_per_user(
    client: TestClient, clock: FakeClock, alice: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    url = f"{CHAT}/rooms/{room['id']}/messages"
    for n in range(30):
        send(alice, room["id"], f"{n}")
    refused = client.post(url, json={"client_id": "one-more", "body": "x"}, headers=alice.headers)
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    clock.advance(1)
    assert (
        client.post(
            url, json={"client_id": "later", "body": "x"}, headers=alice.headers
        ).status_code
        == 201
    )


def test_message_rows_carry_no_author_from_the_payload(
    app: FastAPI, alice: Person, make_room: RoomFactory, send: Sender, db: Session
) -> None:
    room = make_room(alice)
    send(alice, room["id"], "hi")
    rows = list(db.scalars(select(Message)))
    db.commit()
    assert [(row.author_id, row.seq) for row in rows] == [(alice.id, 1)]


def test_a_read_pointer_is_an_integer_not_a_boolean(
    client: TestClient, alice: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    url = f"{CHAT}/rooms/{room['id']}/read"
    for seq in (False, "0", 1.5):
        refused = client.post(url, json={"seq": seq}, headers=alice.headers)
        assert refused.status_code == 422
    assert client.post(url, json={"seq": 0}, headers=alice.headers).status_code == 200


def test_a_resend_answer_is_documented(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    responses = document["paths"][f"{CHAT}/rooms/{{room_id}}/messages"]["post"]["responses"]
    assert {"200", "201"} <= set(responses)
