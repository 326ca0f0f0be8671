"""The per-host download cap, on the stack's own backend: Redis when the stack has it, lock
files in embedded mode (as in production)."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.slots import HostSlots
from opsdeck.settings import Settings
from tests.stack import current_stack


def _slots(settings: Settings, limit: int) -> HostSlots:
    return HostSlots(
        limit,
        redis_url=settings.redis_url,
        lock_dir=settings.data_dir / "hostslots",
        poll_seconds=0.01,
    )


def test_a_host_gets_at_most_its_limit_and_freed_slots_are_reused(settings: Settings) -> None:
    slots = _slots(settings, 2)
    host = f"{uuid.uuid4().hex}.example"
    with slots.hold(host, wait_seconds=0), slots.hold(host, wait_seconds=0):
        with pytest.raises(FetchError) as refused, slots.hold(host, wait_seconds=0.05):
            pass
        assert refused.value.kind == "busy"
        assert refused.value.retryable
        assert host in refused.value.message
        # Another host is not held up by this one.
        with slots.hold(f"other-{host}", wait_seconds=0):
            pass
    with slots.hold(host, wait_seconds=0):
        pass


def test_a_waiting_fetch_gets_the_slot_when_it_frees(settings: Settings) -> None:
    slots = _slots(settings, 1)
    host = f"{uuid.uuid4().hex}.example"
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with slots.hold(host, wait_seconds=0):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    threading.Timer(0.2, release.set).start()
    with slots.hold(host, wait_seconds=10):
        pass
    thread.join(10)


def test_limit_must_be_positive(settings: Settings) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HostSlots(0, lock_dir=settings.data_dir)
    with pytest.raises(ValueError, match="redis_url or lock_dir"):
        HostSlots(1)


if current_stack().redis is not None:
    # A Redis blink, made with CLIENT PAUSE: Redis keeps its data but answers nobody for a while,
    # as during a restart with append-only persistence or a failover.

    def test_a_redis_blink_fails_no_fetch_and_holds_no_slot_past_it(settings: Settings) -> None:
        slots = HostSlots(
            1,
            redis_url=settings.redis_url,
            lock_dir=settings.data_dir / "hostslots",
            poll_seconds=0.01,
            redis_timeout=0.3,
        )
        admin = redis.Redis.from_url(settings.redis_url)
        host = f"{uuid.uuid4().hex}.example"
        key = f"opsdeck:hostslots:{host}"
        fetched = []
        with slots.hold(host, wait_seconds=0):
            admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
            # Taking a slot meets the silent Redis: the fetch goes ahead rather than failing.
            with slots.hold(f"other-{host}", wait_seconds=0):
                fetched.append("other")
        # Giving the first slot back met the silent Redis too: no error for the fetch.
        fetched.append(host)
        assert fetched == ["other", host]
        assert admin.zcard(key) == 1  # (waits for the pause to end) the slot is still taken
        # The next call that reaches Redis gives it back first: the host's only slot is free
        # at once, not when its lease runs out.
        with slots.hold(host, wait_seconds=0):
            assert admin.zcard(key) == 1
        assert admin.zcard(key) == 0
        admin.close()
