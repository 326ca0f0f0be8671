"""A cache of computed incident stats (GET /incidents/stats), with an exact freshness rule.

What a cached answer is keyed by: the caller's visibility scope (`all` for an admin, who sees
every incident; the user's id otherwise, since each member's restricted incidents differ) and
the period as asked (`since` and `until` as given; a missing `until` is "now").

When it may answer (stats.cached_incident_stats):
- only while nothing changed since it was computed: every request reads a change marker, the
  newest timeline event's id (`max(incident_events.id)`, one index probe). Every change the
  stats can see appends a timeline event in the change's transaction: declaring, a status
  change (with its stamps), severity, visibility, commander, assignees, watchers (the
  participants who see a restricted incident). An answer stored with another marker is not
  used;
- and for at most `incidents_stats_cache_seconds` (default 30) after it was computed. Sequence
  ids are handed out when a row is inserted, not when its transaction commits, so a change
  whose id is below the marker can become visible after an answer was computed with that
  marker; the age limit bounds how long such an answer can be served. It is also what lets a
  request without `until` reuse an answer computed at T for "now" until T + the limit: the
  answer then says `until` = T, what it covers.

Where: Redis when `redis_url` is set (shared by every web process; under
`opsdeck:incidents:stats:`, expiring with the age limit), otherwise this process (a small
bounded dict); either way as the JSON body the API sends. A Redis error is logged and the
request computes as if there were no cache.
Requests of one process asking for the same answer while it is being computed wait for it
(StatsCache.computing) rather than compute it again each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Protocol

import redis
import structlog

from opsdeck.core.db import utcnow
from opsdeck.core.redis import redis_client
from opsdeck.incidents.schemas import IncidentStats
from opsdeck.settings import Settings

log = structlog.get_logger("opsdeck.incidents.stats_cache")
KEY_PREFIX = "opsdeck:incidents:stats:"
VALUE_VERSION = b"v1"
# Answers kept in one process when there is no Redis (embedded: one web process).
MEMORY_ENTRIES = 512
# A Redis that does not answer costs a request at most this long before it computes.
REDIS_TIMEOUT_SECONDS = 1.0
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Entry:
    """A computed answer, as the JSON body the API sends (a cached answer is sent as it is,
    neither parsed nor validated again): the change marker read before computing it, and
    when."""

    marker: int | None
    computed_at: datetime
    body: bytes

    @classmethod
    def of(cls, marker: int | None, computed_at: datetime, stats: IncidentStats) -> Entry:
        return cls(marker, computed_at, stats.model_dump_json().encode())


class Store(Protocol):
    def get(self, key: str) -> Entry | None: ...

    def put(self, key: str, entry: Entry, ttl_seconds: int) -> None: ...

    def clear(self) -> None: ...


class MemoryStore:
    """This process's answers, the least recently stored dropped first. Thread-safe."""

    def __init__(self, max_entries: int = MEMORY_ENTRIES) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get(self, key: str) -> Entry | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, entry: Entry, ttl_seconds: int) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RedisStore:
    """Answers in Redis, shared by every process: one GET or one SET EX per use. A value is
    `v1|<marker>|<computed at, ISO 8601>|<the answer's JSON>` (`-`: no marker, no event yet)."""

    def __init__(self, client: redis.Redis[bytes]) -> None:
        self._client = client

    def get(self, key: str) -> Entry | None:
        raw = self._client.get(key)
        if raw is None:
            return None
        parts = raw.split(b"|", 3)
        if len(parts) != 4 or parts[0] != VALUE_VERSION:
            return None  # written by another version: computed again and overwritten
        try:
            marker = None if parts[1] == b"-" else int(parts[1])
            computed_at = datetime.fromisoformat(parts[2].decode())
        except ValueError:
            return None
        return Entry(marker, computed_at, parts[3])

    def put(self, key: str, entry: Entry, ttl_seconds: int) -> None:
        marker = b"-" if entry.marker is None else str(entry.marker).encode()
        value = b"|".join(
            (VALUE_VERSION, marker, entry.computed_at.isoformat().encode(), entry.body)
        )
        self._client.set(key, value, ex=max(1, ttl_seconds))

    def clear(self) -> None:
        for key in self._client.scan_iter(match=f"{KEY_PREFIX}*", count=1000):
            self._client.delete(key)


class StatsCache:
    """Answers of GET /incidents/stats kept for `ttl_seconds` at most (0: nothing is kept).
    `clock` is the time of the requests (tests move it)."""

    def __init__(self, store: Store, ttl_seconds: int, *, clock: Clock = utcnow) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._guard = threading.Lock()
        self._computing: dict[str, tuple[threading.Lock, int]] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0

    def get(self, key: str, marker: int | None, now: datetime) -> Entry | None:
        """The answer stored under `key` if it was computed with `marker` less than the age
        limit before `now`; None otherwise, and when the store cannot be read."""
        if not self.enabled:
            return None
        try:
            entry = self.store.get(key)
        except redis.RedisError as exc:
            log.warning("incident_stats_cache_unavailable", error=str(exc)[:200])
            return None
        if entry is None or entry.marker != marker:
            return None
        # Computed after `now` (by the request this one waited for in `computing`): fresher.
        if (now - entry.computed_at).total_seconds() >= self.ttl_seconds:
            return None
        return entry

    @contextmanager
    def computing(self, key: str) -> Iterator[None]:
        """One computation of `key` at a time in this process: when an answer expires under
        load, the requests asking for it at that moment wait for the first one's (and read it
        with `get`) instead of each computing it again."""
        with self._guard:
            lock, users = self._computing.get(key, (threading.Lock(), 0))
            self._computing[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._computing[key]
                if users == 1:
                    del self._computing[key]
                else:
                    self._computing[key] = (lock, users - 1)

    def put(self, key: str, entry: Entry) -> None:
        if not self.enabled:
            return
        try:
            self.store.put(key, entry, self.ttl_seconds)
        except redis.RedisError as exc:
            log.warning("incident_stats_cache_unavailable", error=str(exc)[:200])

    def clear(self) -> None:
        """Forget every answer (tests; an operator who wants fresh figures at once)."""
        try:
            self.store.clear()
        except redis.RedisError as exc:
            log.warning("incident_stats_cache_unavailable", error=str(exc)[:200])


def cache_key(scope: str, since: datetime | None, until: datetime | None) -> str:
    """The key of an answer: the visibility scope and the period as asked (a missing bound as
    such: a missing `until` is "now")."""
    start = since.isoformat() if since is not None else "-"
    end = until.isoformat() if until is not None else "now"
    return f"{KEY_PREFIX}{scope}:{start}:{end}"


def open_key(scope: str) -> str:
    """The key of a scope's open incidents by severity (the part of an answer that does not
    depend on the period, shared by every period the scope asks)."""
    return f"{KEY_PREFIX}{scope}:open"


def stats_cache(settings: Settings) -> StatsCache:
    """This process's cache for `settings`: in Redis when `redis_url` is set, otherwise in
    the process. Cached, so every request of the process shares it."""
    return _cache(settings.redis_url, settings.incidents_stats_cache_seconds)


@cache
def _cache(redis_url: str, ttl_seconds: int) -> StatsCache:
    if redis_url:
        return StatsCache(
            RedisStore(redis_client(redis_url, timeout=REDIS_TIMEOUT_SECONDS)), ttl_seconds
        )
    return StatsCache(MemoryStore(), ttl_seconds)


__all__ = [
    "KEY_PREFIX",
    "Entry",
    "MemoryStore",
    "RedisStore",
    "StatsCache",
    "cache_key",
    "open_key",
    "stats_cache",
]
