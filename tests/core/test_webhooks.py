"""core.webhooks: the signature a receiver checks, the retry schedule, and signed POSTs to a
real local receiver through the outbound client (SSRF guard included)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsdeck.core import webhooks
from opsdeck.core.webhooks import (
    RETRY_SCHEDULE_SECONDS,
    encode_body,
    post_signed,
    retry_delay,
    sign,
    verify,
)
from opsdeck.settings import Settings
from tests.conftest import make_settings

SECRET = b"a-webhook-secret-for-these-tests-0123456789"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP receiver: records every POST, answers `status` (after `delay` seconds)."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 204
    delay: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if state.delay:
                time.sleep(state.delay)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def hook_settings(tmp_path: Path) -> Settings:
    """Test settings: loopback opened on purpose (the receiver listens there)."""
    return make_settings(tmp_path, webhook_secret=SECRET.decode())


def test_signature_round_trip() -> None:
    body = encode_body({"b": 1, "a": "é"})
    assert body == b'{"a":"\\u00e9","b":1}'  # sorted, compact, ASCII
    now = int(time.time())
    header = sign(SECRET, body, now)
    assert header.startswith(f"t={now},v1=")
    assert verify(SECRET, body, header, now=now)
    assert verify(SECRET, body, header, now=now + 299)
    assert not verify(b"another secret", body, header, now=now)


def test_a_tampered_body_or_header_fails() -> None:
    now = int(time.time())
    body = encode_body({"amount": 1})
    header = sign(SECRET, body, now)
    assert not verify(SECRET, encode_body({"amount": 2}), header, now=now)
    # The timestamp is signed too: moving it (to pass the age check) breaks the signature.
    assert not verify(SECRET, body, header.replace(f"t={now}", f"t={now + 1}"), now=now)
    for garbage in ("", "v1=abc", "t=abc,v1=abc", "t=1", f"t={now}"):
        assert not verify(SECRET, body, garbage, now=now)


def test_an_old_or_future_timestamp_fails() -> None:
    body = b"{}"
    then = int(time.time()) - 301
    header = sign(SECRET, body, then)
    assert not verify(SECRET, body, header, now=then + 301)
    assert verify(SECRET, body, header, now=then + 301, tolerance=600)
    assert not verify(SECRET, body, header, now=then - 301)


def test_retry_schedule_grows_with_jitter_then_ends() -> None:
    rng = random.Random(7)
    delays = [
        retry_delay(attempt, rng=rng) for attempt in range(1, len(RETRY_SCHEDULE_SECONDS) + 1)
    ]
    for delay, base in zip(delays, RETRY_SCHEDULE_SECONDS, strict=True):
        assert delay is not None
        assert base * 0.8 <= delay <= base * 1.2
    assert retry_delay(len(RETRY_SCHEDULE_SECONDS) + 1) is None
    assert retry_delay(100) is None
    # About an hour in all.
    assert 3000 <= sum(RETRY_SCHEDULE_SECONDS) <= 6000


def test_post_signed_delivers_a_verifiable_request(
    hook_settings: Settings, receiver: Receiver
) -> None:
    payload = {"event": "incident.created", "number": 7}
    result = post_signed(
        hook_settings,
        f"{receiver.url}/hooks/in",
        payload,
        delivery_id="dlv-1",
        event="incident.created",
    )

    assert result.succeeded
    assert (result.status_code, result.error) == (204, None)
    [got] = receiver.received
    assert got.path == "/hooks/in"
    assert got.body == encode_body(payload)
    assert json.loads(got.body) == payload
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-opsdeck-delivery"] == "dlv-1"
    assert got.headers["x-opsdeck-event"] == "incident.created"
    assert verify(SECRET, got.body, got.headers["x-opsdeck-signature"], now=int(time.time()))


def test_post_signed_sends_bytes_as_they_are(hook_settings: Settings, receiver: Receiver) -> None:
    body = b'{"already":"encoded"}'
    result = post_signed(hook_settings, receiver.url, body, delivery_id="d", event="e.x")
    assert result.succeeded
    assert receiver.received[0].body == body
    signature = receiver.received[0].headers["x-opsdeck-signature"]
    assert verify(SECRET, body, signature, now=int(time.time()))


def test_a_non_2xx_answer_is_a_failure_to_retry(
    hook_settings: Settings, receiver: Receiver
) -> None:
    receiver.status = 503
    result = post_signed(hook_settings, receiver.url, {}, delivery_id="d", event="e")
    assert not result.succeeded
    assert result.status_code == 503
    assert result.error
    assert "503" in result.error
    assert result.retryable

    receiver.status = 400
    refused = post_signed(hook_settings, receiver.url, {}, delivery_id="d", event="e")
    assert (refused.succeeded, refused.status_code, refused.retryable) == (False, 400, False)


def test_redirects_are_not_followed(hook_settings: Settings, receiver: Receiver) -> None:
    receiver.status = 307
    result = post_signed(hook_settings, receiver.url, {}, delivery_id="d", event="e")
    assert not result.succeeded
    assert result.status_code == 307
    assert len(receiver.received) == 1


def test_the_address_guard_refuses_loopback_by_default(tmp_path: Path, receiver: Receiver) -> None:
    settings = make_settings(tmp_path, fetch_allowed_networks=[])
    result = post_signed(settings, receiver.url, {}, delivery_id="d", event="e")
    assert not result.succeeded
    assert result.status_code is None
    assert not result.retryable
    assert result.error
    assert "127.0.0.1" in result.error
    assert receiver.received == []


def test_a_slow_receiver_times_out(tmp_path: Path, receiver: Receiver) -> None:
    settings = make_settings(tmp_path, fetch_total_timeout_seconds=0.5)
    receiver.delay = 3.0
    result = post_signed(settings, receiver.url, {}, delivery_id="d", event="e")
    assert not result.succeeded
    assert result.status_code is None
    assert result.retryable


def test_a_client_per_policy_is_kept_for_the_process(tmp_path: Path) -> None:
    first = make_settings(tmp_path / "a")
    same = make_settings(tmp_path / "b")
    other = make_settings(tmp_path / "c", fetch_allowed_networks=[])
    assert webhooks.outbound_client(first) is webhooks.outbound_client(same)
    assert webhooks.outbound_client(first) is not webhooks.outbound_client(other)
