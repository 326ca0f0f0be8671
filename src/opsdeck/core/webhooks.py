"""Signed outbound webhooks, for every module that tells another system something happened.

`X-OpsDeck-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed by the
webhook secret (`OPSDECK_WEBHOOK_SECRET`); receivers recompute it over the raw body and refuse
old timestamps (replays). `X-OpsDeck-Delivery` names the delivery (the same on every retry of
it, so receivers can drop duplicates) and `X-OpsDeck-Event` the event.

    result = post_signed(settings, url, payload, delivery_id=delivery_id, event="batch.completed")
    if not result.succeeded:
        delay = retry_delay(attempts_so_far + 1)   # None: the schedule is spent, give up

The POST goes through core.outbound: the address policy (SSRF guard) on the URL and on every
address it resolves to, no redirects followed, a capped answer and one deadline. Recording
attempts and scheduling retries are the caller's (a task that raises core.jobs.RetryLater).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from opsdeck.core.outbound.client import OutboundClient
from opsdeck.core.outbound.errors import FetchError
from opsdeck.settings import Settings

SIGNATURE_HEADER = "X-OpsDeck-Signature"
DELIVERY_HEADER = "X-OpsDeck-Delivery"
EVENT_HEADER = "X-OpsDeck-Event"
# About an hour of retries: 30 s doubling to a 20-minute cap, with jitter.
RETRY_SCHEDULE_SECONDS = (30, 60, 120, 240, 480, 960, 1200, 1200)
# A receiver's answer is read (to finish the exchange) but not kept: a small cap is plenty.
MAX_RESPONSE_BYTES = 64 * 1024
# One delivery may take at most this long (or OPSDECK_FETCH_TOTAL_TIMEOUT_SECONDS if shorter).
MAX_DELIVERY_SECONDS = 15.0
# Receivers that accept signatures this far from their own clock, in seconds (see verify).
DEFAULT_TOLERANCE_SECONDS = 300


def encode_body(payload: dict[str, Any]) -> bytes:
    """The body a payload is sent as: compact JSON with sorted keys, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The `X-OpsDeck-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: bytes,
    body: bytes,
    header: str,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does; used by our tests and shown in the docs."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> float | None:
    """Seconds before retry number `attempt` (1-based), or None when the schedule is spent."""
    if attempt > len(RETRY_SCHEDULE_SECONDS):
        return None
    base = RETRY_SCHEDULE_SECONDS[attempt - 1]
    jitter = (rng or random.SystemRandom()).uniform(0.8, 1.2)
    return base * jitter


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one delivery attempt went. `status_code` is the receiver's HTTP status (None when
    no answer came); `error` says why it failed, for the people who own the receiver (None: a
    2xx answer); `retryable` is whether core.outbound thinks a later attempt can do better
    (timeouts, 5xx, 429...; not a refused address). The images module retries every failure."""

    status_code: int | None
    error: str | None = None
    retryable: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error is None


_clients: dict[tuple[Any, ...], OutboundClient] = {}
_clients_lock = threading.Lock()


def outbound_client(settings: Settings) -> OutboundClient:
    """The process's outbound client for these settings' policy (one connection pool each)."""
    key = (
        tuple(settings.fetch_allowed_networks),
        settings.fetch_max_bytes,
        settings.fetch_connect_timeout_seconds,
        settings.fetch_total_timeout_seconds,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = OutboundClient.from_settings(settings)
        return client


def signed_headers(
    secret: bytes, body: bytes, *, delivery_id: str, event: str, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of a signed delivery of `body`."""
    return {
        "Content-Type": "application/json",
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
        SIGNATURE_HEADER: sign(secret, body, int(time.time()) if timestamp is None else timestamp),
    }


def post_signed(
    settings: Settings,
    url: str,
    payload: dict[str, Any] | bytes,
    *,
    delivery_id: str,
    event: str,
    client: OutboundClient | None = None,
) -> DeliveryResult:
    """POST `payload` (a dict, sent as encode_body; or the body's bytes) to `url`, signed with
    the webhook secret. Never raises for the receiver's sake: a refused address, a timeout or a
    non-2xx answer come back as a failed DeliveryResult. `client`: an outbound client the
    caller already holds (default: outbound_client(settings))."""
    body = payload if isinstance(payload, bytes) else encode_body(payload)
    headers = signed_headers(
        settings.webhook_secret.get_secret_value().encode(),
        body,
        delivery_id=delivery_id,
        event=event,
    )
    try:
        response = (client or outbound_client(settings)).fetch(
            url,
            method="POST",
            content=body,
            headers=headers,
            follow_redirects=False,
            max_bytes=MAX_RESPONSE_BYTES,
            total_timeout=min(settings.fetch_total_timeout_seconds, MAX_DELIVERY_SECONDS),
        )
    except FetchError as exc:
        return DeliveryResult(status_code=exc.status, error=exc.message, retryable=exc.retryable)
    return DeliveryResult(status_code=response.status)
