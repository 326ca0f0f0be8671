"""Incident war rooms: opened on demand (201, then 200 with the same room), linked both ways,
the incident's people invited, private for a restricted incident and hidden from who may not
read it, archived when the incident closes and unarchived when it reopens (the
`incidents.changed` signal), a timeline note and audit entries; pinning a message to the
incident's timeline, once per message."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.audit.models import AuditEntry
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender
from tests.conftest import API, error_of

INCIDENTS = f"{API}/incidents"


def _declare(client: TestClient, person: Person, **fields: Any) -> int:
    body = {"title": "Checkout is failing", "severity": "SEV2", **fields}
    response = client.post(INCIDENTS, json=body, headers=person.headers)
    assert response.status_code == 201, response.text
    number: int = response.json()["number"]
    return number


def _open(client: TestClient, person: Person, number: int) -> Any:
    return client.post(f"{INCIDENTS}/{number}/war-room", headers=person.headers)


def _members(client: TestClient, person: Person, room_id: str) -> set[str]:
    response = client.get(f"{CHAT}/rooms/{room_id}/members", headers=person.headers)
    assert response.status_code == 200, response.text
    return {m["user"]["username"] for m in response.json()}


def _transition(client: TestClient, headers: dict[str, str], number: int, to: str) -> None:
    response = client.post(f"{INCIDENTS}/{number}/transition", json={"to": to}, headers=headers)
    assert response.status_code == 200, response.text


def _actions(db: Session) -> list[str]:
    actions = list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    db.commit()  # ends the read, so SQLite's writers are not kept waiting
    return actions


def test_a_war_room_is_opened_once_with_the_incidents_people_and_linked_both_ways(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    admin_headers: dict[str, str],
    db: Session,
) -> None:
    number = _declare(client, alice)
    assert client.get(f"{INCIDENTS}/{number}", headers=alice.headers).json()["war_room_id"] is None
    added = client.post(
        f"{INCIDENTS}/{number}/assignees", json={"username": "bob"}, headers=admin_headers
    )
    assert added.status_code == 200, added.text

    first = _open(client, bob, number)
    assert first.status_code == 201, first.text
    room = first.json()
    assert room["incident_number"] == number
    assert room["visibility"] == "public"
    assert room["name"] == f"INC-{number}: Checkout is failing"
    assert room["member"] is True
    assert room["role"] == "owner"
    assert first.headers["Location"].endswith(f"/chat/rooms/{room['id']}")
    # The reporter (alice, a watcher too) and the assignee who opened it (bob).
    assert _members(client, bob, room["id"]) == {"alice", "bob"}

    incident = client.get(f"{INCIDENTS}/{number}", headers=alice.headers).json()
    assert incident["war_room_id"] == room["id"]
    assert (
        client.get(f"{CHAT}/rooms/{room['id']}", headers=alice.headers).json()["incident_number"]
        == number
    )

    # Again, by anybody who may read the incident: the same room, and they are in it.
    again = _open(client, eve, number)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == room["id"]
    assert again.json()["member"] is True
    assert _open(client, bob, number).json()["id"] == room["id"]
    assert _members(client, bob, room["id"]) == {"alice", "bob", "eve"}

    timeline = client.get(f"{INCIDENTS}/{number}/timeline", headers=alice.headers).json()
    [note] = [e for e in timeline["items"] if e["data"].get("action") == "war_room_opened"]
    assert note["body"].startswith("Opened the war room")
    assert room["id"] in note["body_html"]
    assert _actions(db).count("chat.war_room_opened") == 1


def test_a_restricted_incidents_war_room_is_private_and_hidden_from_outsiders(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    admin_headers: dict[str, str],
) -> None:
    number = _declare(client, alice, visibility="restricted")
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "bob"}, headers=admin_headers)
    room = _open(client, alice, number).json()
    assert room["visibility"] == "private"
    assert _members(client, alice, room["id"]) == {"alice", "bob"}

    # Eve may not read the incident: no war room for her, and the room does not exist to her.
    refused = _open(client, eve, number)
    assert refused.status_code == 404
    assert client.get(f"{CHAT}/rooms/{room['id']}", headers=eve.headers).status_code == 404
    join = client.post(f"{CHAT}/rooms/{room['id']}/join", headers=eve.headers)
    assert join.status_code == 404
    assert error_of(join)["code"] == "room_not_found"
    listed = client.get(f"{CHAT}/rooms", headers=eve.headers).json()["items"]
    assert room["id"] not in {r["id"] for r in listed}

    # Let in (a watcher added by an editor), she enters the same room through the same call.
    watched = client.post(
        f"{INCIDENTS}/{number}/watchers", json={"username": "eve"}, headers=admin_headers
    )
    assert watched.status_code == 200, watched.text
    entered = _open(client, eve, number)
    assert entered.status_code == 200
    assert entered.json()["id"] == room["id"]


def test_closing_the_incident_archives_its_war_room_and_reopening_unarchives_it(
    client: TestClient,
    alice: Person,
    admin_headers: dict[str, str],
    send: Sender,
    db: Session,
) -> None:
    number = _declare(client, alice)
    room = _open(client, alice, number).json()
    send(alice, room["id"], "looking")
    for status in ("investigating", "resolved"):
        _transition(client, admin_headers, number, status)
    assert (
        client.get(f"{CHAT}/rooms/{room['id']}", headers=alice.headers).json()["archived_at"]
        is None
    )

    _transition(client, admin_headers, number, "closed")
    archived = client.get(f"{CHAT}/rooms/{room['id']}", headers=alice.headers).json()
    assert archived["archived_at"] is not None
    refused = client.post(
        f"{CHAT}/rooms/{room['id']}/messages",
        json={"client_id": "late", "body": "one more thing"},
        headers=alice.headers,
    )
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "room_archived"

    _transition(client, admin_headers, number, "investigating")
    assert (
        client.get(f"{CHAT}/rooms/{room['id']}", headers=alice.headers).json()["archived_at"]
        is None
    )
    send(alice, room["id"], "it is back")
    actions = _actions(db)
    assert actions.index("chat.room_archived") < actions.index("chat.room_unarchived")


def test_an_ordinary_rooms_archive_ignores_incidents(
    client: TestClient, alice: Person, admin_headers: dict[str, str], make_room: RoomFactory
) -> None:
    room = make_room(alice)
    number = _declare(client, alice)
    for status in ("resolved", "closed"):
        _transition(client, admin_headers, number, status)
    assert (
        client.get(f"{CHAT}/rooms/{room['id']}", headers=alice.headers).json()["archived_at"]
        is None
    )


def test_pinning_a_war_room_message_adds_a_pinned_note_once(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
    db: Session,
) -> None:
    number = _declare(client, alice)
    room = _open(client, alice, number).json()
    _open(client, bob, number)
    message = send(bob, room["id"], "Rolled back **v42**; errors <script>x</script> dropping")
    assert message["pinned_to_incident"] is None

    pinned = client.post(f"{CHAT}/messages/{message['id']}/pin-to-incident", headers=alice.headers)
    assert pinned.status_code == 201, pinned.text
    pin = pinned.json()
    assert pin["number"] == number

    timeline = client.get(
        f"{INCIDENTS}/{number}/timeline", params={"pinned": "true"}, headers=alice.headers
    ).json()["items"]
    [note] = [e for e in timeline if e["id"] == pin["event_id"]]
    assert note["kind"] == "note"
    assert note["pinned"] is True
    assert note["data"]["chat_message_id"] == message["id"]
    assert "> Rolled back **v42**" in note["body"]
    assert "@bob" in note["body"]
    assert "<strong>v42</strong>" in note["body_html"]
    assert "<script>" not in note["body_html"]
    assert f"/chat/rooms/{room['id']}?seq={message['seq']}" in note["body_html"]

    # Idempotent: the same event, 200, no second note.
    again = client.post(f"{CHAT}/messages/{message['id']}/pin-to-incident", headers=bob.headers)
    assert again.status_code == 200
    assert again.json() == pin
    timeline = client.get(f"{INCIDENTS}/{number}/timeline", headers=alice.headers).json()
    assert sum(1 for e in timeline["items"] if e["data"].get("chat_message_id")) == 1
    shown = client.get(f"{CHAT}/rooms/{room['id']}/messages", headers=alice.headers).json()
    assert shown["items"][0]["pinned_to_incident"] == pin
    assert _actions(db).count("chat.message_pinned") == 1

    # Not a member of the room: eve may read it (public) but not pin from it.
    refused = client.post(f"{CHAT}/messages/{message['id']}/pin-to-incident", headers=eve.headers)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "not_a_member"

    # An ordinary room has no incident.
    other = make_room(alice, name="general")
    plain = send(alice, other["id"], "lunch?")
    refused = client.post(f"{CHAT}/messages/{plain['id']}/pin-to-incident", headers=alice.headers)
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "not_a_war_room"


def test_a_private_war_rooms_messages_are_not_pinned_by_outsiders(
    client: TestClient, alice: Person, eve: Person, send: Sender
) -> None:
    number = _declare(client, alice, visibility="restricted")
    room = _open(client, alice, number).json()
    message = send(alice, room["id"], "secret")
    for path in ("pin-to-incident",):
        refused = client.post(f"{CHAT}/messages/{message['id']}/{path}", headers=eve.headers)
        assert refused.status_code == 404
        assert error_of(refused)["code"] == "message_not_found"
    missing = client.post(f"{INCIDENTS}/999999/war-room", headers=alice.headers)
    assert missing.status_code == 404
