"""Rooms and direct messages over REST: the contract, roles, moderation (audited) and IDOR:
someone outside a private room or a direct message finds nothing at any route."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.app import create_app
from opsdeck.audit.models import AuditEntry
from opsdeck.settings import Settings
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender
from tests.conftest import error_of, make_settings


def _audit(db: Session, action: str) -> list[AuditEntry]:
    entries = list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))
    db.commit()
    return entries


def test_a_room_is_created_listed_and_read(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    created = client.post(
        f"{CHAT}/rooms",
        json={"name": " ops ", "visibility": "public", "topic": "on call"},
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    room = created.json()
    assert created.headers["Location"] == f"/api/v1/chat/rooms/{room['id']}"
    assert room["name"] == "ops"
    assert room["topic"] == "on call"
    assert room["kind"] == "room"
    assert room["visibility"] == "public"
    assert room["member"] is True
    assert room["role"] == "owner"
    assert room["unread"] == 0
    assert room["last_seq"] == 0
    assert room["member_count"] == 1

    listed = client.get(f"{CHAT}/rooms", headers=bob.headers).json()
    assert [item["id"] for item in listed["items"]] == [room["id"]]
    assert listed["items"][0]["member"] is False
    assert listed["next_cursor"] is None
    assert client.get(f"{CHAT}/rooms/{room['id']}", headers=bob.headers).json()["name"] == "ops"

    bad = client.post(
        f"{CHAT}/rooms", json={"name": "", "visibility": "secret"}, headers=bob.headers
    )
    assert bad.status_code == 422
    assert client.get(f"{CHAT}/rooms").status_code == 401


def test_the_room_list_pages_without_gaps(
    client: TestClient, alice: Person, make_room: RoomFactory
) -> None:
    ids = {make_room(alice, name=f"room-{n}")["id"] for n in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "sort": "name"}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"{CHAT}/rooms", params=params, headers=alice.headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert set(seen) == ids


def test_a_private_room_does_not_exist_for_outsiders(
    client: TestClient,
    alice: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room = make_room(alice, name="secret", visibility="private")
    message = send(alice, room["id"], "the launch codes")
    base = f"{CHAT}/rooms/{room['id']}"
    attempts = [
        client.get(base, headers=eve.headers),
        client.post(f"{base}/join", headers=eve.headers),
        client.post(f"{base}/leave", headers=eve.headers),
        client.get(f"{base}/messages", headers=eve.headers),
        client.get(f"{base}/messages", params={"after_seq": 0}, headers=eve.headers),
        client.post(f"{base}/messages", json={"client_id": "x", "body": "hi"}, headers=eve.headers),
        client.get(f"{base}/members", headers=eve.headers),
        client.post(f"{base}/members", json={"user_id": eve.id}, headers=eve.headers),
        client.post(f"{base}/read", json={"seq": 1}, headers=eve.headers),
        client.post(f"{base}/archive", headers=eve.headers),
        client.post(f"{base}/bans", json={"user_id": alice.id}, headers=eve.headers),
        client.delete(f"{base}/members/{alice.id}", headers=eve.headers),
        client.patch(f"{CHAT}/messages/{message['id']}", json={"body": "x"}, headers=eve.headers),
        client.delete(f"{CHAT}/messages/{message['id']}", headers=eve.headers),
        client.get(f"{CHAT}/messages/{message['id']}/edits", headers=eve.headers),
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request.url, response.text)
        assert "launch" not in response.text
    listed = client.get(f"{CHAT}/rooms", headers=eve.headers).json()
    assert listed["items"] == []


def test_joining_leaving_and_invites(
    client: TestClient, alice: Person, bob: Person, eve: Person, make_room: RoomFactory
) -> None:
    public = make_room(alice, name="general")
    private = make_room(alice, name="leads", visibility="private")

    joined = client.post(f"{CHAT}/rooms/{public['id']}/join", headers=bob.headers)
    assert joined.status_code == 200
    assert joined.json()["member"] is True
    assert client.post(f"{CHAT}/rooms/{public['id']}/join", headers=bob.headers).status_code == 200
    assert client.post(f"{CHAT}/rooms/{public['id']}/leave", headers=bob.headers).status_code == 204
    assert client.post(f"{CHAT}/rooms/{public['id']}/leave", headers=bob.headers).status_code == 403

    assert client.post(f"{CHAT}/rooms/{private['id']}/join", headers=bob.headers).status_code == 404
    invited = client.post(
        f"{CHAT}/rooms/{private['id']}/members", json={"user_id": bob.id}, headers=alice.headers
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["user"]["username"] == "bob"
    assert invited.json()["role"] == "member"
    assert (
        client.get(f"{CHAT}/rooms/{private['id']}/messages", headers=bob.headers).status_code == 200
    )

    # A member invites nobody; a moderator does.
    refused = client.post(
        f"{CHAT}/rooms/{private['id']}/members", json={"user_id": eve.id}, headers=bob.headers
    )
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "not_moderator"
    promoted = client.put(
        f"{CHAT}/rooms/{private['id']}/members/{bob.id}/role",
        json={"role": "moderator"},
        headers=alice.headers,
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "moderator"
    assert (
        client.post(
            f"{CHAT}/rooms/{private['id']}/members", json={"user_id": eve.id}, headers=bob.headers
        ).status_code
        == 201
    )
    unknown = client.post(
        f"{CHAT}/rooms/{private['id']}/members", json={"user_id": "nobody"}, headers=alice.headers
    )
    assert unknown.status_code == 404
    members = client.get(f"{CHAT}/rooms/{private['id']}/members", headers=eve.headers).json()
    assert {m["user"]["username"]: m["role"] for m in members} == {
        "alice": "owner",
        "bob": "moderator",
        "eve": "member",
    }


def test_kick_and_ban_by_moderators_are_audited(
    client: TestClient,
    db: Session,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
) -> None:
    room = make_room(alice, name="general")
    base = f"{CHAT}/rooms/{room['id']}"
    for person in (bob, eve):
        assert client.post(f"{base}/join", headers=person.headers).status_code == 200

    refused = client.delete(f"{base}/members/{eve.id}", headers=bob.headers)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "not_moderator"
    owner = client.delete(f"{base}/members/{alice.id}", headers=bob.headers)
    assert owner.status_code == 403

    assert client.delete(f"{base}/members/{eve.id}", headers=alice.headers).status_code == 204
    assert [e.details["user_id"] for e in _audit(db, "chat.member_kicked")] == [eve.id]
    # Kicked is not banned: a public room can be joined again.
    assert client.post(f"{base}/join", headers=eve.headers).status_code == 200

    assert (
        client.post(f"{base}/bans", json={"user_id": eve.id}, headers=alice.headers).status_code
        == 204
    )
    assert [e.details["user_id"] for e in _audit(db, "chat.member_banned")] == [eve.id]
    assert client.post(f"{base}/join", headers=eve.headers).status_code == 404
    assert client.get(f"{base}/messages", headers=eve.headers).status_code == 404
    assert client.get(f"{CHAT}/rooms", headers=eve.headers).json()["items"] == []

    assert client.delete(f"{base}/bans/{eve.id}", headers=alice.headers).status_code == 204
    assert len(_audit(db, "chat.member_unbanned")) == 1
    assert client.post(f"{base}/join", headers=eve.headers).status_code == 200


def test_archiving_makes_a_room_read_only(
    client: TestClient,
    alice: Person,
    bob: Person,
    admin_headers: dict[str, str],
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room = make_room(alice, name="old")
    other = make_room(bob, name="bobs")
    base = f"{CHAT}/rooms/{room['id']}"
    assert client.post(f"{base}/join", headers=bob.headers).status_code == 200
    send(alice, room["id"], "before")

    assert client.post(f"{base}/archive", headers=bob.headers).status_code == 403
    archived = client.post(f"{base}/archive", headers=alice.headers)
    assert archived.status_code == 200
    assert archived.json()["archived_at"]
    # Admins archive any room.
    assert (
        client.post(f"{CHAT}/rooms/{other['id']}/archive", headers=admin_headers).status_code == 200
    )

    refused = client.post(
        f"{base}/messages", json={"client_id": "a", "body": "x"}, headers=alice.headers
    )
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "room_archived"
    assert [
        m["body"] for m in client.get(f"{base}/messages", headers=bob.headers).json()["items"]
    ] == ["before"]
    assert client.get(f"{CHAT}/rooms", headers=alice.headers).json()["items"] == []
    everything = client.get(
        f"{CHAT}/rooms", params={"archived": True}, headers=alice.headers
    ).json()
    assert {item["id"] for item in everything["items"]} == {room["id"], other["id"]}


def test_the_same_people_find_the_same_direct_message(
    client: TestClient, alice: Person, bob: Person, eve: Person, send: Sender
) -> None:
    first = client.post(f"{CHAT}/dms", json={"user_ids": [bob.id]}, headers=alice.headers)
    assert first.status_code == 200, first.text
    dm = first.json()
    assert dm["kind"] == "dm"
    assert dm["visibility"] == "private"
    assert sorted(p["username"] for p in dm["members"]) == ["alice", "bob"]
    again = client.post(f"{CHAT}/dms", json={"user_ids": [alice.id, alice.id]}, headers=bob.headers)
    assert again.json()["id"] == dm["id"]
    group = client.post(f"{CHAT}/dms", json={"user_ids": [bob.id, eve.id]}, headers=alice.headers)
    assert group.json()["id"] != dm["id"]

    send(alice, dm["id"], "just us")
    assert client.get(f"{CHAT}/rooms/{dm['id']}/messages", headers=eve.headers).status_code == 404
    assert client.post(f"{CHAT}/rooms/{dm['id']}/join", headers=eve.headers).status_code == 404
    assert client.post(f"{CHAT}/rooms/{dm['id']}/leave", headers=bob.headers).status_code == 409
    invite = client.post(
        f"{CHAT}/rooms/{dm['id']}/members", json={"user_id": eve.id}, headers=alice.headers
    )
    assert invite.status_code == 409

    for user_ids, status in (
        ([alice.id], 422),
        ([f"u{n}" for n in range(10)], 422),
        (["nobody"], 404),
    ):
        assert (
            client.post(
                f"{CHAT}/dms", json={"user_ids": user_ids}, headers=alice.headers
            ).status_code
            == status
        )


def test_unread_counts_follow_the_read_pointer(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice)
    base = f"{CHAT}/rooms/{room['id']}"
    assert client.post(f"{base}/join", headers=bob.headers).status_code == 200
    for n in range(3):
        send(alice, room["id"], f"m{n}")
    assert client.get(f"{CHAT}/rooms", headers=bob.headers).json()["items"][0]["unread"] == 3
    # Your own messages are read.
    assert client.get(base, headers=alice.headers).json()["unread"] == 0

    read = client.post(f"{base}/read", json={"seq": 2}, headers=bob.headers)
    assert read.json() == {"room_id": room["id"], "last_read_seq": 2, "unread": 1, "mentions": 0}
    back = client.post(f"{base}/read", json={"seq": 1}, headers=bob.headers)
    assert back.json()["last_read_seq"] == 2
    beyond = client.post(f"{base}/read", json={"seq": 99}, headers=bob.headers)
    assert beyond.json() == {"room_id": room["id"], "last_read_seq": 3, "unread": 0, "mentions": 0}


def test_room_and_member_limits_and_the_owner_leaving(
    base_settings: Settings,
    alice: Person,
    bob: Person,
    eve: Person,
    client: TestClient,
) -> None:
    small = make_settings(
        base_settings.data_dir, chat_max_rooms_per_user=1, chat_max_members_per_room=2
    )
    with TestClient(create_app(small)) as limited:
        first = limited.post(
            f"{CHAT}/rooms", json={"name": "one", "visibility": "public"}, headers=alice.headers
        )
        assert first.status_code == 201
        room = first.json()
        second = limited.post(
            f"{CHAT}/rooms", json={"name": "two", "visibility": "public"}, headers=alice.headers
        )
        assert second.status_code == 409
        assert error_of(second)["code"] == "room_limit"
        assert (
            limited.post(f"{CHAT}/rooms/{room['id']}/join", headers=bob.headers).status_code == 200
        )
        full = limited.post(f"{CHAT}/rooms/{room['id']}/join", headers=eve.headers)
        assert full.status_code == 409
        assert error_of(full)["code"] == "room_full"

    # The last owner leaves: the longest-standing member takes over.
    assert client.post(f"{CHAT}/rooms/{room['id']}/leave", headers=alice.headers).status_code == 204
    assert client.get(f"{CHAT}/rooms/{room['id']}", headers=bob.headers).json()["role"] == "owner"


def test_a_member_path_without_a_user_is_no_route_at_all(
    client: TestClient, alice: Person, make_room: RoomFactory
) -> None:
    """`/members/role` (a user id left out) is not the member `role` of `DELETE /members/{id}`:
    a 404 for every method, never a 405 naming methods the path does not have (found by the
    fuzz gate's stateful run)."""
    room = make_room(alice)["id"]
    for method in ("PUT", "DELETE", "GET"):
        answer = client.request(
            method,
            f"{CHAT}/rooms/{room}/members/role",
            json={"role": "moderator"},
            headers=alice.headers,
        )
        assert answer.status_code == 404, method


def test_presence_asks_for_user_ids_and_names_a_bad_one(client: TestClient, alice: Person) -> None:
    # Found by the fuzz gate: an empty id was answered as if it named someone, and a client
    # following that item to /users/{user_id} reached the user list instead.
    for params in ({"user_id": ""}, {"user_id": [alice.id, "nobody"]}, {}):
        refused = client.get(f"{CHAT}/presence", params=params, headers=alice.headers)
        assert refused.status_code == 422, (params, refused.text)
        assert error_of(refused)["code"] == "validation_error"
    answer = client.get(
        f"{CHAT}/presence", params={"user_id": [alice.id] * 2}, headers=alice.headers
    )
    assert answer.json() == {"items": [{"user_id": alice.id, "status": "offline"}]}
