"""Attachments over Socket.IO: `message:send` with `attachment_ids` (against a real `opsdeck
web`, as in test_sockets)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.chat.conftest import CHAT, Connect, Person, RoomFactory


def test_a_socket_send_carries_attachments(
    client: TestClient,
    connect: Connect,
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
) -> None:
    open_socket = connect
    room_id = make_room(alice)["id"]
    assert client.post(f"{CHAT}/rooms/{room_id}/join", headers=bob.headers).status_code == 200
    upload = client.post(
        f"{CHAT}/rooms/{room_id}/attachments",
        files={"file": ("log.txt", b"error at 10:02", "text/plain")},
        headers=alice.headers,
    ).json()
    a, b = open_socket(alice), open_socket(bob)
    assert b.call("room:join", {"room_id": room_id})["ok"] is True
    too_many = a.call(
        "message:send",
        {"room_id": room_id, "client_id": "c-0", "body": "x", "attachment_ids": ["a"] * 11},
    )
    assert too_many["ok"] is False
    assert too_many["error"]["code"] == "invalid_payload"
    foreign = a.call(
        "message:send",
        {"room_id": room_id, "client_id": "c-1", "body": "x", "attachment_ids": ["0" * 32]},
    )
    assert foreign["ok"] is False
    assert foreign["error"]["code"] == "invalid_attachment"

    ack = a.call(
        "message:send",
        {"room_id": room_id, "client_id": "c-2", "body": "", "attachment_ids": [upload["id"]]},
    )
    assert ack["ok"] is True, ack
    assert [f["filename"] for f in ack["message"]["attachments"]] == ["log.txt"]
    got = b.next("message:new")
    assert got["id"] == ack["id"]
    assert got["attachments"][0]["id"] == upload["id"]
    assert client.get(got["attachments"][0]["url"], headers=bob.headers).content == (
        b"error at 10:02"
    )
