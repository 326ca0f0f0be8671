"""Attachments: uploaded to a conversation, sent with a message, downloaded by its members only
(not after the message is deleted), typed by their bytes; images get a preview and a compressed
copy from the real images pipeline, and their original only when asked."""

from __future__ import annotations

from typing import Any

import pyvips
from fastapi.testclient import TestClient

from opsdeck.settings import Settings
from tests.chat.conftest import CHAT, Person, RoomFactory
from tests.conftest import error_of
from tests.stack import wait_until


def _png(width: int = 1200, height: int = 800) -> bytes:
    image = pyvips.Image.xyz(width, height)[0].cast("uchar")
    data: bytes = image.pngsave_buffer()
    return data


def _upload(
    client: TestClient,
    person: Person,
    room_id: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    **form: Any,
) -> Any:
    return client.post(
        f"{CHAT}/rooms/{room_id}/attachments",
        files={"file": (name, data, content_type)},
        data=form,
        headers=person.headers,
    )


def _send(
    client: TestClient, person: Person, room_id: str, ids: list[str], body: str = "", cid: str = "a"
) -> Any:
    return client.post(
        f"{CHAT}/rooms/{room_id}/messages",
        json={"client_id": cid, "body": body, "attachment_ids": ids},
        headers=person.headers,
    )


def _private_room(
    client: TestClient, make_room: RoomFactory, owner: Person, *others: Person
) -> str:
    room_id: str = make_room(owner, "secret", "private")["id"]
    for other in others:
        invited = client.post(
            f"{CHAT}/rooms/{room_id}/members", json={"user_id": other.id}, headers=owner.headers
        )
        assert invited.status_code == 201, invited.text
    return room_id


def test_a_file_is_sent_and_downloaded_by_the_members_only(
    client: TestClient, alice: Person, bob: Person, eve: Person, make_room: RoomFactory
) -> None:
    room_id = _private_room(client, make_room, alice, bob)
    page = b"<html><script>alert(1)</script></html>"
    uploaded = _upload(client, alice, room_id, "..\\..\\evil.html", page, "text/html")
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()
    assert attachment["filename"] == "evil.html"
    assert attachment["content_type"] == "text/plain"  # from the bytes, not the claim
    assert attachment["size"] == len(page)
    assert attachment["status"] == "ready"
    assert attachment["message_id"] is None
    assert attachment["preview_url"] is None
    assert attachment["original_url"] is None
    url = attachment["url"]
    # Not sent yet: its uploader's only.
    assert client.get(url, headers=alice.headers).content == page
    assert client.get(url, headers=bob.headers).status_code == 404
    assert client.get(url, headers=eve.headers).status_code == 404

    sent = _send(client, alice, room_id, [attachment["id"]], body="see the file")
    assert sent.status_code == 201, sent.text
    message = sent.json()
    assert [a["id"] for a in message["attachments"]] == [attachment["id"]]
    assert message["attachments"][0]["message_id"] == message["id"]
    history = client.get(f"{CHAT}/rooms/{room_id}/messages", headers=bob.headers).json()
    assert history["items"][0]["attachments"][0]["url"] == url

    download = client.get(url, headers=bob.headers)
    assert download.status_code == 200
    assert download.content == page
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    meta = client.get(f"{CHAT}/attachments/{attachment['id']}", headers=bob.headers)
    assert meta.json()["message_id"] == message["id"]
    outsider_meta = client.get(f"{CHAT}/attachments/{attachment['id']}", headers=eve.headers)
    assert outsider_meta.status_code == 404
    assert error_of(client.get(url, headers=eve.headers))["code"] == "attachment_not_found"
    # An outsider cannot upload into the room either, nor send an attachment twice.
    assert _upload(client, eve, room_id, "x.txt", b"x").status_code == 404
    again = _send(client, alice, room_id, [attachment["id"]], body="again", cid="b")
    assert again.status_code == 422
    assert error_of(again)["code"] == "invalid_attachment"

    # The tombstone drops the attachment: nobody downloads it any more.
    deleted = client.delete(f"{CHAT}/messages/{message['id']}", headers=alice.headers)
    assert deleted.json()["attachments"] == []
    assert client.get(url, headers=bob.headers).status_code == 404
    assert client.get(url, headers=alice.headers).status_code == 404


def test_a_public_rooms_attachment_is_for_its_members(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room_id = make_room(alice)["id"]
    attachment = _upload(client, alice, room_id, "notes.txt", b"notes").json()
    assert _send(client, alice, room_id, [attachment["id"]]).status_code == 201
    # Bob reads the public room's history but is not in it.
    assert client.get(attachment["url"], headers=bob.headers).status_code == 404
    assert _upload(client, bob, room_id, "x.txt", b"x").status_code == 403
    assert client.post(f"{CHAT}/rooms/{room_id}/join", headers=bob.headers).status_code == 200
    assert client.get(attachment["url"], headers=bob.headers).content == b"notes"


def test_bad_files_are_refused(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, settings: Settings
) -> None:
    room_id = make_room(alice)["id"]
    too_big = _upload(
        client, alice, room_id, "big.txt", b"a" * (settings.chat_attachment_max_bytes + 1)
    )
    assert too_big.status_code == 413
    assert error_of(too_big)["code"] == "file_too_large"

    broken = _upload(client, alice, room_id, "graph.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert broken.status_code == 422
    assert error_of(broken)["code"] == "invalid_image"

    program = b"\x7fELF\x02\x01\x01\0" + bytes(range(256)) * 4
    disguised = _upload(client, alice, room_id, "cat.png", program, "image/png")
    assert disguised.status_code == 415
    assert error_of(disguised)["code"] == "type_mismatch"
    binary = _upload(client, alice, room_id, "tool", program)
    assert binary.status_code == 415
    assert error_of(binary)["code"] == "unsupported_type"
    pdf = _upload(client, alice, room_id, "report.pdf", b"%PDF-1.7\n...")
    assert pdf.status_code == 201
    assert pdf.json()["content_type"] == "application/pdf"
    missing = client.post(f"{CHAT}/rooms/{room_id}/attachments", headers=alice.headers)
    assert missing.status_code == 422

    # Sending: at most 10, each once, only your own unsent uploads to this room.
    ids = [pdf.json()["id"]]
    assert _send(client, alice, room_id, ids * 11).status_code == 422
    assert _send(client, alice, room_id, ids * 2).status_code == 422
    assert _send(client, alice, room_id, ["0" * 32]).status_code == 422
    assert client.post(f"{CHAT}/rooms/{room_id}/join", headers=bob.headers).status_code == 200
    assert _send(client, bob, room_id, ids).status_code == 422
    other_room = make_room(alice, "other")["id"]
    assert _send(client, alice, other_room, ids).status_code == 422
    empty = client.post(
        f"{CHAT}/rooms/{room_id}/messages",
        json={"client_id": "e", "body": " "},
        headers=alice.headers,
    )
    assert empty.status_code == 422
    # With a file the text may be empty.
    assert _send(client, alice, room_id, ids).status_code == 201

    archived = client.post(f"{CHAT}/rooms/{other_room}/archive", headers=alice.headers)
    assert archived.status_code == 200
    late = _upload(client, alice, other_room, "x.txt", b"x")
    assert late.status_code == 409


def test_an_image_gets_a_preview_and_a_compressed_copy(
    client: TestClient, alice: Person, make_room: RoomFactory, celery_worker: Any
) -> None:
    room_id = make_room(alice)["id"]
    original = _png()
    uploaded = _upload(client, alice, room_id, "graph.png", original, "image/png")
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["content_type"] == "image/png"
    assert body["status"] in ("processing", "ready")
    kept = _upload(client, alice, room_id, "kept.png", original, keep_original="true").json()

    def ready(attachment_id: str) -> dict[str, Any] | None:
        found = client.get(f"{CHAT}/attachments/{attachment_id}", headers=alice.headers).json()
        assert found["status"] != "failed", found
        return found if found["status"] == "ready" else None

    done = wait_until(lambda: ready(body["id"]), message="the attachment's images")
    preview = client.get(done["preview_url"], headers=alice.headers)
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/webp"
    image = pyvips.Image.new_from_buffer(preview.content, "")
    assert (image.width, image.height) == (640, 427)
    compressed = client.get(done["url"], headers=alice.headers)
    assert compressed.headers["content-type"] == "image/webp"
    assert 'filename="graph.webp"' in compressed.headers["content-disposition"]
    image = pyvips.Image.new_from_buffer(compressed.content, "")
    assert (image.width, image.height) == (1200, 800)
    # The original is not kept unless asked.
    assert done["original_url"] is None
    assert (
        client.get(f"{CHAT}/attachments/{body['id']}/original", headers=alice.headers).status_code
        == 404
    )

    kept_done = wait_until(lambda: ready(kept["id"]), message="the kept attachment's images")
    assert kept_done["original_url"] is not None
    first = client.get(kept_done["original_url"], headers=alice.headers)
    assert first.content == original
    assert first.headers["content-type"] == "image/png"
