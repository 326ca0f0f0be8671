"""Rate limits for any endpoint or event: token buckets keyed by (scope, key).

A `RateLimit` names a scope ("auth.account", "chat.message") and a rate: a bucket holds up to
`capacity` tokens and refills at `capacity` tokens per `per_seconds`, so a burst of `capacity`
passes and then `capacity` per `per_seconds` on average. The key says whose bucket: a user id,
a submitted username, a client address.

    limiter = rate_limiter(settings)
    decision = limiter.hit(SEND_MESSAGE, user.id)        # takes a token if there is one
    if not decision.allowed: ... decision.retry_after ...

    @router.post("/things", dependencies=[Depends(rate_limit(CREATE_THING))])   # 429 itself

In distributed mode the buckets live in Redis (one atomic script per hit; a bucket's key
expires once it would be full again), shared by every process. In embedded mode they live in
the process, behind a lock. Time comes from the limiter's clock, so tests move it by hand.

When Redis cannot be reached the limiter lets hits through and logs `rate_limit_unavailable`:
a Redis outage must not also lock every user out of signing in.

On an event loop (Socket.IO handlers) use `await limiter.hit_async(...)`: the same decision,
but a Redis round trip runs in a worker thread instead of blocking every connection of the
process; the in-process buckets of embedded mode are answered on the spot. Code already in a
worker thread (a handler's database work) calls `hit` there.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Protocol

import redis
import structlog
from fastapi import Depends, Request

from opsdeck.core.errors import TooManyRequests
from opsdeck.core.redis import redis_client
from opsdeck.settings import Settings

log = structlog.get_logger("opsdeck.ratelimit")
KEY_PREFIX = "opsdeck:ratelimit:"
# Longer keys are hashed, so a huge submitted username cannot make a huge Redis key.
MAX_KEY_LENGTH = 200
Clock = Callable[[], float]
# Clock arithmetic on epoch seconds is off by ~1e-7 s; a bucket that is full to within this many
# tokens counts as full, so a hit exactly one refill interval later is not refused by rounding.
TOKEN_EPSILON = 1e-6


@dataclass(frozen=True)
class RateLimit:
    """`capacity` hits at once, refilled at `capacity` hits per `per_seconds`."""

    scope: str
    capacity: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_seconds <= 0:
            raise ValueError("a rate limit needs capacity >= 1 and per_seconds > 0")

    @property
    def refill_per_second(self) -> float:
        return self.capacity / self.per_seconds


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Whole seconds until the hit would be allowed: 0 when it is, at least 1 when it is not.
    retry_after: int
    # Whole tokens left in the bucket after this hit.
    remaining: int


@dataclass(frozen=True)
class _Outcome:
    allowed: bool
    tokens: float
    wait_seconds: float


class Backend(Protocol):
    # True when `take` waits on the network (Redis): callers on an event loop run it in a
    # thread.
    blocking: bool

    def take(
        self, key: str, limit: RateLimit, *, cost: int, now: float, consume: bool
    ) -> _Outcome: ...

    def reset(self, key: str) -> None: ...

    def clear(self) -> None: ...


def _refill(tokens: float, stamp: float, limit: RateLimit, now: float) -> float:
    elapsed = max(0.0, now - stamp)
    return min(float(limit.capacity), tokens + elapsed * limit.refill_per_second)


class MemoryBackend:
    """Buckets in this process, for embedded mode (one web process). Thread-safe."""

    blocking = False

    def __init__(self, *, max_buckets: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float, RateLimit]] = {}
        self._lock = threading.Lock()
        self._max_buckets = max_buckets

    def take(self, key: str, limit: RateLimit, *, cost: int, now: float, consume: bool) -> _Outcome:
        with self._lock:
            tokens, stamp, _ = self._buckets.get(key, (float(limit.capacity), now, limit))
            tokens = _refill(tokens, stamp, limit, now)
            allowed = tokens + TOKEN_EPSILON >= cost
            if allowed and consume:
                tokens = max(0.0, tokens - cost)
                if len(self._buckets) >= self._max_buckets:
                    self._drop_full(now)
                self._buckets[key] = (tokens, max(stamp, now), limit)
            wait = 0.0 if allowed else (cost - tokens) / limit.refill_per_second
            return _Outcome(allowed, tokens, wait)

    def reset(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _drop_full(self, now: float) -> None:
        # A full bucket is the same as no bucket: forgetting it changes no answer.
        full = [
            key
            for key, (tokens, stamp, limit) in self._buckets.items()
            if _refill(tokens, stamp, limit, now) >= limit.capacity
        ]
        for key in full:
            del self._buckets[key]


_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local consume = ARGV[5] == '1'
local epsilon = tonumber(ARGV[6])
local function exact(number)
  return string.format('%.17g', number)
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
end
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
if tokens + epsilon >= cost then
  allowed = 1
  if consume then
    tokens = math.max(0, tokens - cost)
    redis.call('HSET', KEYS[1], 'tokens', exact(tokens), 'stamp', exact(math.max(stamp, now)))
    redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
  end
end
local wait = 0
if allowed == 0 then
  wait = (cost - tokens) / rate
end
return {allowed, exact(tokens), exact(wait)}
"""


class RedisBackend:
    """Buckets in Redis, shared by every process; each hit is one atomic script."""

    blocking = True

    def __init__(self, client: redis.Redis[bytes]) -> None:
        self._client = client
        self._take: Any = client.register_script(_TAKE)

    def take(self, key: str, limit: RateLimit, *, cost: int, now: float, consume: bool) -> _Outcome:
        allowed, tokens, wait = self._take(
            keys=[key],
            args=[
                limit.capacity,
                repr(limit.refill_per_second),
                repr(now),
                cost,
                int(consume),
                repr(TOKEN_EPSILON),
            ],
        )
        return _Outcome(bool(allowed), float(tokens), float(wait))

    def reset(self, key: str) -> None:
        self._client.delete(key)

    def clear(self) -> None:
        for key in self._client.scan_iter(match=f"{KEY_PREFIX}*", count=1000):
            self._client.delete(key)


class RateLimiter:
    def __init__(self, backend: Backend, *, clock: Clock = time.time) -> None:
        self.backend = backend
        self.clock = clock

    def hit(self, limit: RateLimit, key: str, *, cost: int = 1) -> Decision:
        """Take `cost` tokens from the bucket if it has them. A refused hit takes nothing."""
        return self._take(limit, key, cost=cost, consume=True)

    async def hit_async(self, limit: RateLimit, key: str, *, cost: int = 1) -> Decision:
        """`hit` for code on an event loop: a blocking backend (Redis) is called from a worker
        thread, so one connection's rate limit never stalls the others of the process."""
        if self.backend.blocking:
            return await asyncio.to_thread(self.hit, limit, key, cost=cost)
        return self.hit(limit, key, cost=cost)

    def peek(self, limit: RateLimit, key: str, *, cost: int = 1) -> Decision:
        """Whether a hit would be allowed now, taking nothing (check first, count failures
        only: the login throttle)."""
        return self._take(limit, key, cost=cost, consume=False)

    def reset(self, limit: RateLimit, key: str) -> None:
        """Fill the bucket again (a successful sign-in forgets the account's failures)."""
        self.backend.reset(bucket_key(limit, key))

    def clear(self) -> None:
        """Forget every bucket of every scope (tests; an operator lifting every block)."""
        self.backend.clear()

    def _take(self, limit: RateLimit, key: str, *, cost: int, consume: bool) -> Decision:
        if not 1 <= cost <= limit.capacity:
            raise ValueError(f"cost must be from 1 to the capacity ({limit.capacity})")
        try:
            outcome = self.backend.take(
                bucket_key(limit, key), limit, cost=cost, now=self.clock(), consume=consume
            )
        except redis.RedisError as exc:
            log.warning("rate_limit_unavailable", scope=limit.scope, error=str(exc)[:200])
            return Decision(True, 0, limit.capacity - cost)
        retry_after = 0 if outcome.allowed else max(1, math.ceil(outcome.wait_seconds))
        return Decision(outcome.allowed, retry_after, max(0, math.floor(outcome.tokens)))


def bucket_key(limit: RateLimit, key: str) -> str:
    if len(key) > MAX_KEY_LENGTH:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{KEY_PREFIX}{limit.scope}:{key}"


def rate_limiter(settings: Settings) -> RateLimiter:
    """This process's limiter for `settings`: Redis-backed in distributed mode, in-process in
    embedded mode. Cached, so every caller in the process shares the buckets."""
    return _limiter(settings.redis_url)


@cache
def _limiter(redis_url: str) -> RateLimiter:
    if redis_url:
        return RateLimiter(RedisBackend(redis_client(redis_url)))
    return RateLimiter(MemoryBackend())


# -- HTTP ----------------------------------------------------------------------------------


def get_rate_limiter(request: Request) -> RateLimiter:
    settings: Settings = request.app.state.settings
    return rate_limiter(settings)


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


def client_ip(request: Request) -> str | None:
    """The caller's address (behind a trusted proxy, the one it forwarded)."""
    return request.client.host if request.client else None


LimitSource = RateLimit | Callable[[Settings], RateLimit]


def too_many_requests(retry_after: int) -> TooManyRequests:
    return TooManyRequests(
        f"Too many requests; try again in {retry_after} seconds.", retry_after=retry_after
    )


def rate_limit(
    limit: LimitSource, *, key: Callable[..., str | None] = client_ip
) -> Callable[..., None]:
    """A FastAPI dependency that spends one token per request and answers 429 with
    Retry-After when the bucket is empty. `limit` may be a function of the settings. `key` is
    itself a dependency naming the bucket: the client address by default; pass one that
    returns the user id (e.g. from `CurrentUser`) to limit per user. A request whose key is
    None is not limited."""

    def dependency(request: Request, limiter: RateLimiter, subject: str | None) -> None:
        if subject is None:
            return
        resolved = limit if isinstance(limit, RateLimit) else limit(request.app.state.settings)
        decision = limiter.hit(resolved, subject)
        if not decision.allowed:
            raise too_many_requests(decision.retry_after)

    # Spelled out rather than annotated: `key` is only known here, and FastAPI reads
    # string annotations (this module's `from __future__ import annotations`) as globals.
    keyword = inspect.Parameter.KEYWORD_ONLY
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", keyword, annotation=Request),
            inspect.Parameter("limiter", keyword, annotation=RateLimiterDep),
            inspect.Parameter("subject", keyword, annotation=Annotated[str | None, Depends(key)]),
        ]
    )
    return dependency
