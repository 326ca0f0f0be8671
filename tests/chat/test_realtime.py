"""Real time on /chat against a real `opsdeck web`: reactions, unread counts pushed after every
message, presence over several tabs, live updates of other modules (incidents, image batches)
with their visibility rules, and a flood of joins answered with error acks."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as websocket_connect

from opsdeck.chat.events import EVENT_LIMIT
from tests.chat.conftest import CHAT, NS, WAIT, ChatClient, Connect, Person, RoomFactory
from tests.conftest import API
from tests.images.servers import LocalServer, Route

QUIET = 1.0  # how long "nothing arrives" is watched


def _quiet(chat: ChatClient, name: str) -> None:
    with pytest.raises(queue.Empty):
        chat.events[name].get(timeout=QUIET)


def _join(server: str, person: Person, room_id: str) -> None:
    joined = httpx.post(f"{server}{CHAT}/rooms/{room_id}/join", headers=person.headers)
    assert joined.status_code == 200, joined.text


def test_reactions_reach_the_room_from_the_socket_and_rest(
    server: str, connect: Connect, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    a, b = connect(alice), connect(bob)
    for chat in (a, b):
        assert chat.call("room:join", {"room_id": room["id"]})["ok"] is True
    sent = a.call("message:send", {"room_id": room["id"], "client_id": "m-1", "body": "shipped"})

    ack = b.call("reaction:toggle", {"id": sent["id"], "emoji": "🚀"})
    assert ack == {
        "ok": True,
        "id": sent["id"],
        "reactions": [{"emoji": "🚀", "count": 1, "user_ids": [bob.id]}],
    }
    event = a.next("reaction")
    assert event == {
        "room_id": room["id"],
        "id": sent["id"],
        "seq": 1,
        "emoji": "🚀",
        "user": {"id": bob.id, "username": "bob"},
        "added": True,
        "reactions": [{"emoji": "🚀", "count": 1, "user_ids": [bob.id]}],
    }
    assert b.next("reaction")["added"] is True  # the reacting connection too

    toggled = httpx.post(
        f"{server}{CHAT}/messages/{sent['id']}/reactions",
        json={"emoji": "🚀"},
        headers=bob.headers,
    )
    assert toggled.status_code == 200
    assert toggled.json()["reactions"] == []
    removed = a.next("reaction")
    assert (removed["added"], removed["reactions"]) == (False, [])

    for bad in ({"id": sent["id"], "emoji": "nice"}, {"id": sent["id"]}, "🚀"):
        refused = b.call("reaction:toggle", bad)
        assert refused["ok"] is False
        assert refused["error"]["code"] in {"invalid_emoji", "invalid_payload"}
    assert b.call("reaction:toggle", {"id": "0" * 32, "emoji": "👍"})["error"]["code"] == (
        "message_not_found"
    )


def test_every_new_message_pushes_unread_counts_to_the_other_members(
    server: str, connect: Connect, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    _join(server, bob, room["id"])
    a, b = connect(alice), connect(bob)
    # Bob has not subscribed to the room on this connection: his unread count still arrives.
    posted = httpx.post(
        f"{server}{CHAT}/rooms/{room['id']}/messages",
        json={"client_id": "rest-1", "body": "over REST"},
        headers=alice.headers,
    )
    assert posted.status_code == 201
    assert b.next("unread") == {
        "room_id": room["id"],
        "unread": 1,
        "mentions": 0,
        "last_read_seq": 0,
    }
    a.call("message:send", {"room_id": room["id"], "client_id": "sock-1", "body": "socket"})
    assert b.next("unread")["unread"] == 2
    _quiet(a, "unread")  # never the sender's


NOBODY = "0" * 32  # an id nobody has


def test_presence_over_tabs_and_devices(
    server: str, connect: Connect, alice: Person, bob: Person, eve: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    _join(server, bob, room["id"])
    watcher = connect(bob)
    outsider = connect(eve)
    # Everybody hears of themselves (their other tabs follow along).
    assert watcher.next("presence")["user"]["id"] == bob.id
    assert outsider.next("presence")["user"]["id"] == eve.id
    tab = connect(alice)
    online = {"user": {"id": alice.id, "username": "alice"}, "status": "online"}
    assert watcher.next("presence") == online
    phone = connect(alice)
    assert tab.call("presence", {"status": "away"}) == {"ok": True}
    _quiet(watcher, "presence")  # the phone is still online

    def statuses() -> dict[str, str]:
        answer = httpx.get(
            f"{server}{CHAT}/presence",
            params={"user_id": [alice.id, eve.id, NOBODY]},
            headers=bob.headers,
        )
        assert answer.status_code == 200, answer.text
        return {item["user_id"]: item["status"] for item in answer.json()["items"]}

    assert statuses() == {alice.id: "online", eve.id: "online", NOBODY: "offline"}
    assert phone.call("presence", {"status": "away"}) == {"ok": True}
    assert watcher.next("presence") == {**online, "status": "away"}
    members = httpx.get(f"{server}{CHAT}/rooms/{room['id']}/members", headers=bob.headers).json()
    assert {m["user"]["username"]: m["presence"] for m in members} == {
        "alice": "away",
        "bob": "online",
    }
    assert phone.call("presence", {"status": "online"}) == {"ok": True}
    assert watcher.next("presence")["status"] == "online"
    bad = phone.call("presence", {"status": "offline"})
    assert bad["error"]["code"] == "invalid_payload"

    tab.close()
    _quiet(watcher, "presence")
    phone.close()
    assert watcher.next("presence") == {**online, "status": "offline"}
    assert statuses()[alice.id] == "offline"
    # Eve shares no conversation with alice: she hears nothing of her.
    _quiet(outsider, "presence")


def _declare(server: str, person: Person, title: str, visibility: str = "public") -> int:
    made = httpx.post(
        f"{server}{API}/incidents",
        json={"title": title, "severity": "SEV2", "visibility": visibility},
        headers=person.headers,
        timeout=WAIT,
    )
    assert made.status_code == 201, made.text
    number: int = made.json()["number"]
    return number


def test_live_incident_updates_follow_visibility(
    server: str, connect: Connect, alice: Person, bob: Person, eve: Person
) -> None:
    a, b, e = connect(alice), connect(bob), connect(eve)
    for chat in (a, b, e):
        assert chat.call("live:subscribe", {"topic": "incidents"}) == {
            "ok": True,
            "topic": "incidents",
        }
    public = _declare(server, bob, "disk full")
    for chat in (a, b, e):
        got = chat.next("incidents:incident")
        assert (got["number"], got["change"], got["severity"]) == (public, "created", "SEV2")
        assert isinstance(got["status"], str)
        assert got["updated_at"]
        assert "restricted" not in got

    secret = _declare(server, alice, "breach", "restricted")
    assert a.next("incidents:incident")["number"] == secret
    _quiet(e, "incidents:incident")
    _quiet(b, "incidents:incident")

    refused = e.call("live:subscribe", {"topic": f"incidents:{secret}"})
    assert refused == {
        "ok": False,
        "error": {"code": "not_found", "message": refused["error"]["message"]},
    }
    for topic in ("incidents:999999", "chat", "incidents:0", "images:batch:nope", "x" * 200):
        answer = e.call("live:subscribe", {"topic": topic})
        assert answer["ok"] is False
        assert answer["error"]["code"] in {"not_found", "invalid_payload"}

    # One incident's topic: a comment on it reaches its follower once unsubscribed from all.
    assert b.call("live:unsubscribe", {"topic": "incidents"}) == {"ok": True, "topic": "incidents"}
    assert b.call("live:subscribe", {"topic": f"incidents:{public}"})["ok"] is True
    commented = httpx.post(
        f"{server}{API}/incidents/{public}/comments",
        json={"body": "cleaned up"},
        headers=alice.headers,
        timeout=WAIT,
    )
    assert commented.status_code == 201, commented.text
    got = b.next("incidents:incident")
    assert (got["number"], got["change"]) == (public, "comment")
    assert b.call("live:unsubscribe", {"topic": f"incidents:{public}"})["ok"] is True
    _declare(server, alice, "another one")
    _quiet(b, "incidents:incident")


def test_live_image_batch_progress_reaches_its_owner_from_the_worker(
    server: str,
    connect: Connect,
    alice: Person,
    eve: Person,
    celery_worker: Any,
) -> None:
    with LocalServer().running() as images:
        images.routes["/slow.jpg"] = Route(status=404, delay=1.5)
        body = f"S. No.,Product Name,Input Image Urls\n1,Mug,{images.url('/slow.jpg')}\n"
        created = httpx.post(
            f"{server}{API}/images/batches",
            files={"file": ("p.csv", body.encode(), "text/csv")},
            headers=alice.headers,
            timeout=WAIT,
        )
        assert created.status_code == 202, created.text
        batch_id = created.json()["request_id"]
        owner, outsider = connect(alice), connect(eve)
        topic = f"images:batch:{batch_id}"
        assert owner.call("live:subscribe", {"topic": topic}) == {"ok": True, "topic": topic}
        assert outsider.call("live:subscribe", {"topic": topic})["error"]["code"] == "not_found"
        event = owner.next("images:batch")
        while event["status"] not in {"failed", "completed", "completed_with_errors"}:
            event = owner.next("images:batch")
        assert (event["id"], event["status"]) == (batch_id, "failed")
        assert event["updated_at"]


def test_a_flood_of_joins_is_answered_with_error_acks(
    server: str, connect: Connect, alice: Person, make_room: RoomFactory
) -> None:
    """Every event of a flood is answered; past the bucket, with `rate_limited`. Exactly as many
    are served as the token bucket allows over the flood's duration, however slow the machine
    (the bound is computed from the time the flood took, not from a speed)."""
    room = make_room(alice)
    flood = connect(alice)
    answers: list[Any] = []
    done = threading.Event()
    total = 1_500

    def keep(answer: Any) -> None:
        answers.append(answer)
        if len(answers) == total:
            done.set()

    started = time.monotonic()
    for _ in range(total):
        flood.sio.emit("room:join", {"room_id": room["id"]}, namespace=NS, callback=keep)
    # A liveness bound (a loaded CI machine answers slowly), not a speed target.
    assert done.wait(600), f"{len(answers)} answers of {total}"
    took = time.monotonic() - started
    codes = {a["error"]["code"] for a in answers if not a["ok"]}
    assert codes == {"rate_limited"}
    # The bucket (EVENT_LIMIT: a burst of 100, refilled at 10 a second) served no more.
    limit = EVENT_LIMIT.capacity + EVENT_LIMIT.refill_per_second * took
    served = sum(1 for a in answers if a["ok"])
    assert 1 <= served <= limit + 1, (served, took)
    # The connection, and the server, are still there.
    assert flood.sio.connected
    other = connect(alice)
    assert other.call("typing", {"room_id": room["id"]})["ok"] in {True, False}
    assert httpx.get(f"{server}/health").status_code == 200


def test_the_connect_ack_comes_before_any_event(server: str, alice: Person) -> None:
    """The Socket.IO protocol: the answer to a namespace CONNECT is that namespace's first
    packet. The user's own `presence` (sent to their connections too) comes after it, never
    before: a strict client refuses an event ahead of its connect ack."""
    url = server.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    token = alice.headers["Authorization"].removeprefix("Bearer ")
    with websocket_connect(url) as ws:
        assert str(ws.recv(timeout=WAIT)).startswith("0{")  # Engine.IO open
        ws.send("40/chat," + json.dumps({"token": token}))
        first = str(ws.recv(timeout=WAIT))
        assert first.startswith("40/chat,{"), first
        then = str(ws.recv(timeout=WAIT))
        assert then.startswith('42/chat,["presence"'), then
        assert json.loads(then.removeprefix("42/chat,"))[1]["status"] == "online"
