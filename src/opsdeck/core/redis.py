"""The one way to get a Redis client: one per URL (and timeout) per process, so every user of
Redis shares one connection pool instead of opening its own."""

from __future__ import annotations

from functools import cache

import redis

DEFAULT_TIMEOUT_SECONDS = 5.0


def redis_client(url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> redis.Redis[bytes]:
    """A client for `url` whose connects and commands give up after `timeout` seconds. Cached:
    the same arguments give the same client. Its pool notices a fork (Celery's prefork
    workers) and opens fresh connections in the child."""
    if not url:
        raise ValueError("no Redis URL: Redis is used in distributed mode only")
    return _client(url, timeout)


@cache
def _client(url: str, timeout: float) -> redis.Redis[bytes]:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
