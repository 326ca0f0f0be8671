"""Two `opsdeck web` processes on one database and one Redis (what `--workers 2` or two
replicas are): a client on each sees the other's messages in order, a user's sends take from
one rate-limit bucket whichever process they reach, a kick on one process
unsubscribes the kicked user's connections on the other, signing out disconnects the session's
sockets everywhere, and the people of a process that dies go offline.

On the integration stack the processes use its PostgreSQL and Redis; on the embedded stack
(no Redis in it) they use its SQLite database and a private Redis this module starts."""

from __future__ import annotations

import queue
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.chat.conftest import CHAT, WAIT, ChatClient, Person, RoomFactory
from tests.conftest import API
from tests.stack import (
    ManagedProcess,
    RedisServer,
    TestStack,
    find_redis_server,
    start_web,
    wait_until,
)

# Short, so a dead process's connections expire within the test (heartbeats every 0.5 s).
PRESENCE_TTL = 1.5
# Sends per user: a burst of 12 refilled over ten minutes, so no token comes back meanwhile.
SEND_BURST = 12
SEND_WINDOW = 600
NS = "/chat"


@dataclass
class Cluster:
    redis_url: str
    urls: list[str]
    processes: list[ManagedProcess]
    start: Any


@pytest.fixture(scope="module")
def redis_url(test_stack: TestStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if test_stack.redis_url:
        yield test_stack.redis_url
        return
    binary = find_redis_server()
    assert binary is not None, "redis-server is needed for the multi-process test"
    server = RedisServer(binary, tmp_path_factory.mktemp("chat-redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(
    base_settings: Any,
    metrics_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
) -> Iterator[Cluster]:
    started: list[ManagedProcess] = []

    def start(name: str) -> str:
        url, process = start_web(
            name,
            settings=base_settings,
            metrics_dir=metrics_dir,
            workdir=tmp_path_factory.mktemp(name),
            env_overrides={
                "OPSDECK_REDIS_URL": redis_url,
                "OPSDECK_CHAT_PRESENCE_TTL_SECONDS": str(PRESENCE_TTL),
                "OPSDECK_CHAT_SEND_BURST": str(SEND_BURST),
                "OPSDECK_CHAT_SEND_WINDOW_SECONDS": str(SEND_WINDOW),
            },
        )
        started.append(process)
        return url

    urls = [start("web-a"), start("web-b")]
    try:
        yield Cluster(redis_url, urls, started, start)
    finally:
        for process in started:
            process.stop()


def _client(url: str, person: Person) -> ChatClient:
    chat = ChatClient()
    chat.sio.connect(
        url,
        namespaces=[NS],
        transports=["websocket"],
        auth={"token": person.headers["Authorization"].removeprefix("Bearer ")},
        wait_timeout=WAIT,
    )
    return chat


@pytest.fixture
def clients() -> Iterator[list[ChatClient]]:
    made: list[ChatClient] = []
    yield made
    for chat in made:
        chat.close()


def _try_send(chat: ChatClient, room_id: str, body: str) -> Any:
    return chat.call(
        "message:send", {"room_id": room_id, "client_id": uuid.uuid4().hex, "body": body}
    )


def _send(chat: ChatClient, room_id: str, body: str) -> Any:
    ack = _try_send(chat, room_id, body)
    assert ack["ok"] is True, ack
    return ack


def test_a_client_on_each_process_sees_the_others_messages_in_order(
    cluster: Cluster,
    clients: list[ChatClient],
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
) -> None:
    room = make_room(alice)
    a = _client(cluster.urls[0], alice)
    b = _client(cluster.urls[1], bob)
    clients += [a, b]
    for chat in (a, b):
        assert chat.call("room:join", {"room_id": room["id"]})["ok"] is True

    for index in range(10):
        _send(a, room["id"], f"a-{index}")
    assert [b.next("message:new")["body"] for _ in range(10)] == [f"a-{i}" for i in range(10)]
    for index in range(10):
        _send(b, room["id"], f"b-{index}")
    got = [a.next("message:new") for _ in range(20)]
    # Alice sees her own ten first (her process), then bob's ten, in sequence order.
    assert [m["seq"] for m in got] == list(range(1, 21))
    assert [m["body"] for m in got[10:]] == [f"b-{i}" for i in range(10)]
    # Bob's unread count reached him from alice's process.
    assert b.next("unread")["room_id"] == room["id"]


def test_the_send_limit_is_one_bucket_for_every_process(
    cluster: Cluster,
    clients: list[ChatClient],
    alice: Person,
    make_room: RoomFactory,
) -> None:
    room = make_room(alice)
    a = _client(cluster.urls[0], alice)
    b = _client(cluster.urls[1], alice)
    clients += [a, b]
    # Alternating between the processes: each sees half the sends, the bucket sees them all.
    answers = [_try_send((a, b)[index % 2], room["id"], f"m{index}") for index in range(14)]
    assert [answer["ok"] for answer in answers] == [True] * SEND_BURST + [False, False]
    assert {answer["error"]["code"] for answer in answers[SEND_BURST:]} == {"rate_limited"}
    # REST takes from the same bucket.
    refused = httpx.post(
        f"{cluster.urls[1]}{CHAT}/rooms/{room['id']}/messages",
        json={"client_id": "rest", "body": "one more"},
        headers=alice.headers,
        timeout=WAIT,
    )
    assert refused.status_code == 429


def test_a_kick_on_one_process_unsubscribes_the_connections_on_the_other(
    cluster: Cluster,
    clients: list[ChatClient],
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
) -> None:
    room = make_room(alice)
    a = _client(cluster.urls[0], alice)
    b = _client(cluster.urls[1], bob)
    clients += [a, b]
    assert a.call("room:join", {"room_id": room["id"]})["ok"] is True
    assert b.call("room:join", {"room_id": room["id"]})["ok"] is True

    kicked = httpx.delete(
        f"{cluster.urls[0]}{CHAT}/rooms/{room['id']}/members/{bob.id}",
        headers=alice.headers,
        timeout=WAIT,
    )
    assert kicked.status_code == 204
    assert b.next("room:removed") == {"room_id": room["id"]}
    # Bob's connection on the other process no longer gets the room's messages.
    _send(a, room["id"], "after the kick")
    assert a.next("message:new")["body"] == "after the kick"
    with pytest.raises(queue.Empty):
        b.events["message:new"].get(timeout=2.0)


def test_signing_out_disconnects_the_sessions_sockets_on_every_process(
    cluster: Cluster, clients: list[ChatClient], bob: Person, alice: Person
) -> None:
    on_a = _client(cluster.urls[0], bob)
    on_b = _client(cluster.urls[1], bob)
    other = _client(cluster.urls[1], alice)
    clients += [on_a, on_b, other]
    out = httpx.post(f"{cluster.urls[0]}{API}/auth/logout", headers=bob.headers, timeout=WAIT)
    assert out.status_code == 204

    wait_until(
        lambda: not on_a.sio.connected and not on_b.sio.connected,
        timeout=30,
        message="bob's sockets to be disconnected",
    )
    assert other.sio.connected  # alice's session goes on
    again = ChatClient()
    clients.append(again)
    with pytest.raises(socketio.exceptions.ConnectionError):
        again.sio.connect(
            cluster.urls[1],
            namespaces=[NS],
            transports=["websocket"],
            auth={"token": bob.headers["Authorization"].removeprefix("Bearer ")},
            wait_timeout=WAIT,
        )


def test_the_people_of_a_process_that_dies_go_offline(
    cluster: Cluster,
    clients: list[ChatClient],
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
) -> None:
    room = make_room(alice)
    httpx.post(f"{cluster.urls[0]}{CHAT}/rooms/{room['id']}/join", headers=bob.headers)
    doomed_url = cluster.start("web-doomed")
    doomed = cluster.processes[-1]
    watcher = _client(cluster.urls[0], alice)
    clients.append(watcher)
    assert watcher.next("presence")["user"]["id"] == alice.id
    victim = ChatClient()
    victim.sio.connect(
        doomed_url,
        namespaces=[NS],
        transports=["websocket"],
        auth={"token": bob.headers["Authorization"].removeprefix("Bearer ")},
        wait_timeout=WAIT,
    )
    clients.append(victim)
    assert watcher.next("presence") == {
        "user": {"id": bob.id, "username": "bob"},
        "status": "online",
    }
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(timeout=WAIT)
    # Nobody said goodbye: bob's entries expire, and a live process announces it.
    assert watcher.events["presence"].get(timeout=30) == {
        "user": {"id": bob.id, "username": "bob"},
        "status": "offline",
    }
    answer = httpx.get(
        f"{cluster.urls[1]}{CHAT}/presence", params={"user_id": bob.id}, headers=alice.headers
    )
    assert answer.json() == {"items": [{"user_id": bob.id, "status": "offline"}]}
