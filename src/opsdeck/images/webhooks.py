"""Signed webhook deliveries for finished batches.

`X-OpsDeck-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed by the
webhook secret; receivers recompute it over the raw body and refuse old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

SIGNATURE_HEADER = "X-OpsDeck-Signature"
DELIVERY_HEADER = "X-OpsDeck-Delivery"
EVENT = "batch.completed"
# About an hour of retries: 30 s doubling to a 20-minute cap, with jitter.
RETRY_SCHEDULE_SECONDS = (30, 60, 120, 240, 480, 960, 1200, 1200)


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, now: int, tolerance: int = 300) -> bool:
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
