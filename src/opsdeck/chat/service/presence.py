"""Presence: online, away or offline, over every tab and device of a person.

Each Socket.IO connection has a presence entry (`online`, or `away` when its tab is hidden)
that expires `chat_presence_ttl_seconds` after it was last refreshed; the web process that holds
the connection refreshes it every third of that (a heartbeat). A person is `online` when any
of their connections is, `away` when connected only by away ones, `offline` otherwise. So when a
process dies its connections expire on their own and their people go offline.

- Distributed mode: Redis. One hash per user (connection -> "status expiry"), and a sorted set of
  users by their latest expiry, which every web process sweeps: the first process that removes a
  user whose connections all expired announces them offline (ZREM answers 1 once).
- Embedded mode: the same in the web process's memory (one web process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from opsdeck.chat.models import Member, PresenceStatus
from opsdeck.core.redis import redis_client
from opsdeck.settings import Settings

Presence = PresenceStatus

PREFIX = "opsdeck:chat:presence"
USERS_KEY = f"{PREFIX}:users"


def combine(statuses: Iterable[str]) -> Presence:
    seen = set(statuses)
    if Presence.ONLINE in seen:
        return Presence.ONLINE
    if Presence.AWAY in seen:
        return Presence.AWAY
    return Presence.OFFLINE


class PresenceStore(Protocol):
    def touch(self, user_id: str, connection_id: str, status: Presence) -> Presence:
        """Set (or refresh) one connection's entry; the user's presence after it."""

    def refresh(self, entries: Iterable[tuple[str, str, Presence]]) -> None:
        """`touch` for many connections at once, (user id, connection id, status) each, when
        nobody needs the presence after it (the heartbeat): one round trip for them all."""

    def drop(self, user_id: str, connection_id: str) -> Presence:
        """Remove one connection's entry; the user's presence after it."""

    def statuses(self, user_ids: Sequence[str]) -> dict[str, Presence]: ...

    def sweep(self) -> list[str]:
        """The users whose connections all expired since the last sweep (each reported once,
        by one process)."""


def _parse(raw: str, now: float) -> str | None:
    status, _, expires = raw.partition(" ")
    try:
        return status if float(expires) > now else None
    except ValueError:
        return None


class RedisPresence:
    def __init__(self, url: str, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.client = redis_client(url)
        self.ttl = ttl
        self.clock = clock

    def _key(self, user_id: str) -> str:
        return f"{PREFIX}:user:{user_id}"

    def _live(self, user_id: str, now: float) -> list[str]:
        raw = self.client.hgetall(self._key(user_id))
        live: list[str] = []
        dead: list[bytes] = []
        for field, value in raw.items():
            status = _parse(value.decode(), now)
            if status is None:
                dead.append(field)
            else:
                live.append(status)
        if dead:
            self.client.hdel(self._key(user_id), *dead)
        return live

    def touch(self, user_id: str, connection_id: str, status: Presence) -> Presence:
        self.refresh([(user_id, connection_id, status)])
        return combine(self._live(user_id, self.clock()))

    def refresh(self, entries: Iterable[tuple[str, str, Presence]]) -> None:
        now = self.clock()
        expires = now + self.ttl
        pipe = self.client.pipeline(transaction=False)
        users: set[str] = set()
        for user_id, connection_id, status in entries:
            pipe.hset(self._key(user_id), connection_id, f"{status.value} {expires}")
            users.add(user_id)
        for user_id in users:
            pipe.expire(self._key(user_id), int(self.ttl) + 5)
        if users:
            pipe.zadd(USERS_KEY, dict.fromkeys(users, expires), gt=True)
            pipe.execute()

    def drop(self, user_id: str, connection_id: str) -> Presence:
        self.client.hdel(self._key(user_id), connection_id)
        return combine(self._live(user_id, self.clock()))

    def statuses(self, user_ids: Sequence[str]) -> dict[str, Presence]:
        now = self.clock()
        pipe = self.client.pipeline()
        for user_id in user_ids:
            pipe.hvals(self._key(user_id))
        answers = pipe.execute()
        result: dict[str, Presence] = {}
        for user_id, values in zip(user_ids, answers, strict=True):
            live = [s for s in (_parse(v.decode(), now) for v in values) if s is not None]
            result[user_id] = combine(live)
        return result

    def sweep(self) -> list[str]:
        now = self.clock()
        gone: list[str] = []
        for raw in self.client.zrangebyscore(USERS_KEY, "-inf", now, start=0, num=500):
            user_id = raw.decode()
            if self._live(user_id, now):
                continue  # refreshed meanwhile (its score is about to move up)
            if self.client.zrem(USERS_KEY, user_id):
                gone.append(user_id)
        return gone


class MemoryPresence:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self.entries: dict[str, dict[str, tuple[str, float]]] = {}
        self.lock = threading.Lock()

    def _live(self, user_id: str, now: float) -> list[str]:
        entries = self.entries.get(user_id, {})
        for connection_id in [c for c, (_s, exp) in entries.items() if exp <= now]:
            del entries[connection_id]
        return [status for status, _exp in entries.values()]

    def touch(self, user_id: str, connection_id: str, status: Presence) -> Presence:
        self.refresh([(user_id, connection_id, status)])
        with self.lock:
            return combine(self._live(user_id, self.clock()))

    def refresh(self, entries: Iterable[tuple[str, str, Presence]]) -> None:
        with self.lock:
            expires = self.clock() + self.ttl
            for user_id, connection_id, status in entries:
                self.entries.setdefault(user_id, {})[connection_id] = (status.value, expires)

    def drop(self, user_id: str, connection_id: str) -> Presence:
        with self.lock:
            self.entries.get(user_id, {}).pop(connection_id, None)
            return combine(self._live(user_id, self.clock()))

    def statuses(self, user_ids: Sequence[str]) -> dict[str, Presence]:
        with self.lock:
            now = self.clock()
            return {user_id: combine(self._live(user_id, now)) for user_id in user_ids}

    def sweep(self) -> list[str]:
        with self.lock:
            now = self.clock()
            gone = [
                user_id
                for user_id, entries in self.entries.items()
                if entries and not self._live(user_id, now)
            ]
            for user_id in gone:
                del self.entries[user_id]
            return gone


@lru_cache(maxsize=8)
def _store(embedded: bool, redis_url: str, ttl: float) -> PresenceStore:
    if embedded:
        return MemoryPresence(ttl)
    return RedisPresence(redis_url, ttl)


def presence_store(settings: Settings) -> PresenceStore:
    """The process's presence store for these settings."""
    return _store(settings.embedded, settings.redis_url, settings.chat_presence_ttl_seconds)


def presence_of(settings: Settings, user_ids: Sequence[str]) -> dict[str, Presence]:
    """Each user's presence (offline for anybody not connected)."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    return presence_store(settings).statuses(ids)


def sharing_user_ids(session: Session, user_id: str) -> list[str]:
    """The people who share a conversation with `user_id` (them included), who are told
    about their presence."""
    mine = aliased(Member)
    theirs = aliased(Member)
    return list(
        session.scalars(
            select(theirs.user_id)
            .join(mine, mine.conversation_id == theirs.conversation_id)
            .where(mine.user_id == user_id, mine.banned.is_(False), theirs.banned.is_(False))
            .distinct()
        )
    )
