"""A cap on concurrent fetches per host, shared by every worker process, so one slow host cannot
hold every worker while the other hosts' images wait.

With Redis the slots are members of a sorted set per host, scored by a lease expiry (a worker
that dies frees its slot when the lease runs out). Without Redis (embedded mode, one machine)
they are `flock`ed files, which the kernel frees the moment their process dies.

A task fetching several images in a row (a chunk) keeps its slot from one image of a host to
the next (`keeper`) instead of giving it back and taking it again around each download: two
Redis round trips (or file locks) per run of images instead of two per image. The slot then
covers the processing between downloads too, so the cap stays a cap (never more downloads at
once than slots), and a keeper holds one slot at most and none while it waits for another.

A Redis blink costs no image and freezes no host: a slot that cannot be taken because Redis
does not answer is not waited for (the fetch goes ahead uncounted: the cap is politeness, the
image is the user's), and a slot that cannot be given back is remembered and given back by the
next call that reaches Redis, instead of being held for its whole lease.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import redis
import structlog

from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.redis import redis_client

log = structlog.get_logger("opsdeck.outbound")

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class HostSlots:
    def __init__(
        self,
        limit: int,
        *,
        redis_url: str = "",
        lock_dir: Path | None = None,
        lease_seconds: float = 120.0,
        poll_seconds: float = 0.05,
        redis_timeout: float = 2.0,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not redis_url and lock_dir is None:
            raise ValueError("give redis_url or lock_dir")
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._redis = redis_client(redis_url, timeout=redis_timeout) if redis_url else None
        # (key, token) of slots whose release did not reach Redis.
        self._unreleased: list[tuple[str, str]] = []
        self._unreleased_lock = threading.Lock()
        self._acquire_script: Any = self._redis.register_script(_ACQUIRE) if self._redis else None
        self._lock_dir = lock_dir

    @contextmanager
    def hold(self, host: str, *, wait_seconds: float) -> Iterator[None]:
        """Hold one of `host`'s slots for the block; FetchError("busy", retryable) when none
        frees up within `wait_seconds`, so the task is retried later instead of waiting."""
        release = self.acquire(host, wait_seconds=wait_seconds)
        try:
            yield
        finally:
            release()

    def keeper(self) -> SlotKeeper:
        """A holder of one slot at a time across several fetches; `release()` it when done."""
        return SlotKeeper(self)

    def acquire(self, host: str, *, wait_seconds: float) -> Callable[[], None]:
        """One of `host`'s slots, as `hold` takes it; the function to give it back."""
        deadline = time.monotonic() + wait_seconds
        release = self._try(host)
        while release is None:
            if time.monotonic() >= deadline:
                raise FetchError(
                    "busy",
                    f"{host} already has {self.limit} downloads in progress; trying again later",
                    retryable=True,
                )
            time.sleep(self.poll_seconds)
            release = self._try(host)
        return cast(Callable[[], None], release)

    def _try(self, host: str) -> Any:
        if self._redis is not None:
            return self._try_redis(self._redis, host)
        if self._lock_dir is not None:
            return self._try_files(self._lock_dir, host)
        return None

    def _try_redis(self, client: redis.Redis[bytes], host: str) -> Any:
        key = slot_key(host)
        token = uuid.uuid4().hex
        now = time.time()
        try:
            self._release_leftovers(client)
            won = self._acquire_script(
                keys=[key],
                args=[
                    now,
                    self.limit,
                    now + self.lease_seconds,
                    token,
                    int(self.lease_seconds * 1000) + 1000,
                ],
            )
        except redis.RedisError as exc:
            log.warning("host_slot_unavailable", host=host, error=str(exc))
            return _nothing_to_release
        if not won:
            return None
        return lambda: self._release(client, key, token)

    def _release(self, client: redis.Redis[bytes], key: str, token: str) -> None:
        try:
            client.zrem(key, token)
        except redis.RedisError as exc:
            log.warning("host_slot_release_deferred", key=key, error=str(exc))
            with self._unreleased_lock:
                self._unreleased.append((key, token))

    def _release_leftovers(self, client: redis.Redis[bytes]) -> None:
        with self._unreleased_lock:
            leftovers, self._unreleased = self._unreleased, []
        if not leftovers:
            return
        try:
            with client.pipeline(transaction=False) as pipe:
                for key, token in leftovers:
                    pipe.zrem(key, token)
                pipe.execute()
        except redis.RedisError:
            with self._unreleased_lock:
                self._unreleased.extend(leftovers)
            raise
        log.info("host_slots_released_late", slots=len(leftovers))

    def _try_files(self, lock_dir: Path, host: str) -> Any:
        lock_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(host.lower().encode()).hexdigest()[:32]
        for slot in range(self.limit):
            handle: IO[bytes] = open(lock_dir / f"{name}.{slot}", "ab")  # noqa: SIM115
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return lambda handle=handle: _unlock(handle)
        return None


class SlotKeeper:
    """One slot at a time, kept from one fetch to the next while they go to the same host.

    `hold(host)` reuses the slot held for `host`, or gives back the one held for another host
    before waiting for `host`'s (so a keeper never holds a slot while it waits, and two
    keepers cannot block each other). A slot is taken afresh once it has been held for a
    quarter of its lease, so a long run of images never outlives the lease. Not thread-safe:
    one keeper per task; as a context manager, released at its end."""

    def __init__(self, slots: HostSlots) -> None:
        self._slots = slots
        self._host: str | None = None
        self._since = 0.0
        self._release: Callable[[], None] | None = None

    @contextmanager
    def hold(self, host: str, *, wait_seconds: float) -> Iterator[None]:
        """Hold `host`'s slot for the block and after it, until `release()` or another host."""
        key = host.lower()
        if self._host != key or time.monotonic() - self._since > self._slots.lease_seconds / 4:
            self.release()
            self._release = self._slots.acquire(host, wait_seconds=wait_seconds)
            self._host, self._since = key, time.monotonic()
        yield

    @property
    def holding(self) -> str | None:
        """The host whose slot is held, if any."""
        return self._host

    def release(self) -> None:
        release, self._release, self._host = self._release, None, None
        if release is not None:
            release()

    def __enter__(self) -> SlotKeeper:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def slot_key(host: str) -> str:
    """The Redis sorted set holding `host`'s slots."""
    return f"opsdeck:hostslots:{host.lower()}"


def _nothing_to_release() -> None:
    pass


def _unlock(handle: IO[bytes]) -> None:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
