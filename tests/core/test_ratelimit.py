"""The general rate limiter: token buckets on the stack's own backend (Redis on the integration
stack, the process in embedded mode) and always in-process too, with the clock moved by hand."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.testclient import TestClient

from opsdeck.core.ratelimit import (
    KEY_PREFIX,
    MemoryBackend,
    RateLimit,
    RateLimiter,
    RedisBackend,
    bucket_key,
    rate_limit,
    rate_limiter,
)
from opsdeck.core.redis import redis_client
from opsdeck.settings import Settings
from tests.conftest import FakeClock, error_of
from tests.stack import free_port


@pytest.fixture(params=["memory", "stack"])
def limiter(request: pytest.FixtureRequest, settings: Settings) -> RateLimiter:
    """An in-process limiter, and the one the stack's settings give (Redis when it has one)."""
    clock = FakeClock()
    if request.param == "memory":
        return RateLimiter(MemoryBackend(), clock=clock)
    return RateLimiter(rate_limiter(settings).backend, clock=clock)


def _limit(capacity: int = 3, per_seconds: float = 60) -> RateLimit:
    # A scope of its own: tests never share a bucket.
    return RateLimit(f"test.{uuid.uuid4().hex[:8]}", capacity, per_seconds)


def _advance(limiter: RateLimiter, seconds: float) -> None:
    clock = limiter.clock
    assert isinstance(clock, FakeClock)
    clock.advance(seconds)


def test_a_burst_up_to_the_capacity_passes_then_hits_are_refused(limiter: RateLimiter) -> None:
    limit = _limit(capacity=3, per_seconds=60)

    decisions = [limiter.hit(limit, "alice") for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert [d.retry_after for d in decisions] == [0, 0, 0, 20]  # one token per 20 seconds


def test_tokens_refill_over_time_up_to_the_capacity(limiter: RateLimiter) -> None:
    limit = _limit(capacity=3, per_seconds=60)
    for _ in range(3):
        limiter.hit(limit, "alice")

    _advance(limiter, 19)
    refused = limiter.hit(limit, "alice")
    assert (refused.allowed, refused.retry_after) == (False, 1)
    _advance(limiter, 1)
    assert limiter.hit(limit, "alice").allowed
    assert not limiter.hit(limit, "alice").allowed

    _advance(limiter, 3600)  # an idle hour fills the bucket, no more
    assert [limiter.hit(limit, "alice").allowed for _ in range(4)] == [True, True, True, False]


def test_a_refused_hit_and_a_peek_take_nothing(limiter: RateLimiter) -> None:
    limit = _limit(capacity=2, per_seconds=10)
    assert limiter.peek(limit, "bob").allowed
    assert limiter.peek(limit, "bob").remaining == 2
    limiter.hit(limit, "bob")
    limiter.hit(limit, "bob")
    for _ in range(5):
        assert not limiter.hit(limit, "bob").allowed
    assert limiter.peek(limit, "bob").retry_after == 5

    _advance(limiter, 5)  # the refused hits did not push the refill back

    assert limiter.hit(limit, "bob").allowed


def test_keys_and_scopes_have_buckets_of_their_own(limiter: RateLimiter) -> None:
    first, second = _limit(capacity=1), _limit(capacity=1)
    assert limiter.hit(first, "carol").allowed
    assert not limiter.hit(first, "carol").allowed

    assert limiter.hit(first, "dave").allowed
    assert limiter.hit(second, "carol").allowed


def test_reset_fills_a_bucket_again(limiter: RateLimiter) -> None:
    limit = _limit(capacity=2)
    limiter.hit(limit, "erin")
    limiter.hit(limit, "erin")

    limiter.reset(limit, "erin")

    assert limiter.peek(limit, "erin").remaining == 2


def test_a_cost_takes_several_tokens_and_more_than_the_capacity_is_an_error(
    limiter: RateLimiter,
) -> None:
    limit = _limit(capacity=5, per_seconds=5)
    assert limiter.hit(limit, "frank", cost=4).remaining == 1
    refused = limiter.hit(limit, "frank", cost=2)
    assert (refused.allowed, refused.retry_after) == (False, 1)
    with pytest.raises(ValueError, match="capacity"):
        limiter.hit(limit, "frank", cost=6)


def test_concurrent_hits_never_take_more_than_the_bucket_holds(limiter: RateLimiter) -> None:
    limit = _limit(capacity=40, per_seconds=3600)
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(15):
            decision = limiter.hit(limit, "crowd")
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(allowed) == 120
    assert allowed.count(True) == 40


def test_a_long_key_is_hashed_into_a_short_bucket_name(limiter: RateLimiter) -> None:
    limit = _limit(capacity=1)
    long_key = "x" * 10_000

    assert limiter.hit(limit, long_key).allowed
    assert not limiter.hit(limit, long_key).allowed
    assert limiter.hit(limit, long_key[:-1] + "y").allowed
    assert len(bucket_key(limit, long_key)) < 120


def test_a_bucket_is_forgotten_once_it_would_be_full_again(settings: Settings) -> None:
    limit = _limit(capacity=4, per_seconds=8)
    backend = rate_limiter(settings).backend
    limiter = RateLimiter(backend, clock=FakeClock())
    limiter.hit(limit, "gina")
    limiter.hit(limit, "gina")

    if isinstance(backend, RedisBackend):
        # Two tokens short of full at half a token per second: four seconds, plus one of slack.
        ttl = redis_client(settings.redis_url).pttl(bucket_key(limit, "gina"))
        assert 4000 < ttl <= 5000
    else:
        assert isinstance(backend, MemoryBackend)
        small = RateLimiter(MemoryBackend(max_buckets=2), clock=FakeClock())
        small.hit(limit, "one")
        small.hit(limit, "two")
        _advance(small, 8)
        small.hit(limit, "three")  # full: the refilled buckets are dropped first
        assert set(small.backend._buckets) == {bucket_key(limit, "three")}  # type: ignore[attr-defined]


def test_the_settings_choose_the_backend_and_the_process_shares_it(settings: Settings) -> None:
    shared = rate_limiter(settings)

    assert rate_limiter(settings.model_copy()) is shared
    expected = RedisBackend if settings.redis_url else MemoryBackend
    assert isinstance(shared.backend, expected)
    assert isinstance(
        rate_limiter(settings.model_copy(update={"redis_url": ""})).backend, MemoryBackend
    )


def test_clear_forgets_every_bucket(limiter: RateLimiter) -> None:
    limit = _limit(capacity=1)
    limiter.hit(limit, "hank")

    limiter.clear()

    if isinstance(limiter.backend, RedisBackend):
        assert not list(limiter.backend._client.scan_iter(match=f"{KEY_PREFIX}*"))
    assert limiter.hit(limit, "hank").allowed


# -- the HTTP dependency ------------------------------------------------------------------------


def _caller(x_caller: Annotated[str | None, Header()] = None) -> str | None:
    return x_caller


@pytest.fixture
def limited_client(app: FastAPI) -> Iterator[TestClient]:
    router = APIRouter(prefix="/api/v1/ratelimit-tests")
    per_ip = RateLimit("test.http.ip", 2, 60)

    @router.get("/by-ip", dependencies=[Depends(rate_limit(per_ip))])
    def by_ip() -> dict[str, str]:
        return {"ok": "yes"}

    def per_caller(settings: Settings) -> RateLimit:
        return RateLimit("test.http.caller", settings.auth_max_failures_per_account // 10, 60)

    @router.get("/by-caller", dependencies=[Depends(rate_limit(per_caller, key=_caller))])
    def by_caller() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(router)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def test_the_dependency_answers_429_with_retry_after(
    limited_client: TestClient, clock: FakeClock
) -> None:
    url = "/api/v1/ratelimit-tests/by-ip"
    assert [limited_client.get(url).status_code for _ in range(2)] == [200, 200]

    refused = limited_client.get(url)

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert error_of(refused) == {
        "code": "too_many_requests",
        "message": "Too many requests; try again in 30 seconds.",
        "details": [],
    }
    clock.advance(30)
    assert limited_client.get(url).status_code == 200


def test_the_dependency_keys_by_what_its_key_dependency_says(
    limited_client: TestClient, clock: FakeClock
) -> None:
    url = "/api/v1/ratelimit-tests/by-caller"  # one per minute per caller (10 // 10)

    assert limited_client.get(url, headers={"X-Caller": "u1"}).status_code == 200
    assert limited_client.get(url, headers={"X-Caller": "u1"}).status_code == 429
    assert limited_client.get(url, headers={"X-Caller": "u2"}).status_code == 200
    # No key, no limit.
    assert [limited_client.get(url).status_code for _ in range(3)] == [200, 200, 200]


def test_an_unreachable_redis_lets_hits_through() -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RateLimiter(RedisBackend(redis_client(closed, timeout=0.5)), clock=FakeClock())
    limit = _limit(capacity=1)

    decisions = [limiter.hit(limit, "ivan") for _ in range(3)]

    assert all(d.allowed for d in decisions)


def test_redis_clients_are_one_per_url_and_timeout() -> None:
    url = "redis://127.0.0.1:1/0"  # never connected to: clients connect on first use

    assert redis_client(url) is redis_client(url)
    assert redis_client(url, timeout=1) is not redis_client(url)
    assert redis_client(url, timeout=1).connection_pool.connection_kwargs["socket_timeout"] == 1
    with pytest.raises(ValueError, match="no Redis URL"):
        redis_client("")


def test_hit_async_takes_from_the_same_bucket_and_never_blocks_the_loop_on_redis(
    limiter: RateLimiter,
) -> None:
    limit = _limit(capacity=3, per_seconds=60)
    threads: list[str] = []
    take = limiter.backend.take

    def spying_take(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return take(*args, **kwargs)

    async def hits() -> tuple[list[bool], str]:
        limiter.backend.take = spying_take  # type: ignore[method-assign]
        try:
            answers = [(await limiter.hit_async(limit, "alice")).allowed for _ in range(2)]
        finally:
            del limiter.backend.take
        return answers, threading.current_thread().name

    answers, loop_thread = asyncio.run(hits())
    assert answers == [True, True]
    # One bucket: the synchronous hit sees the asynchronous ones.
    assert [limiter.hit(limit, "alice").allowed for _ in range(2)] == [True, False]
    if isinstance(limiter.backend, RedisBackend):
        assert limiter.backend.blocking
        assert loop_thread not in threads  # the Redis calls ran in worker threads
    else:
        assert not limiter.backend.blocking
        assert threads == [loop_thread, loop_thread]  # answered on the spot
