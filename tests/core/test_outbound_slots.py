"""The per-host download cap, on the stack's own backend: Redis when the stack has it, lock
files in embedded mode (as in production)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

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


def test_a_keeper_keeps_its_slot_between_fetches_of_one_host(settings: Settings) -> None:
    slots = _slots(settings, 1)
    host = f"{uuid.uuid4().hex}.example"
    taken: list[str] = []
    acquire = slots.acquire

    def counting(host: str, *, wait_seconds: float) -> Callable[[], None]:
        taken.append(host)
        return acquire(host, wait_seconds=wait_seconds)

    slots.acquire = counting  # type: ignore[method-assign]
    with slots.keeper() as keeper:
        for _ in range(3):
            with keeper.hold(host, wait_seconds=0):
                pass
            assert keeper.holding == host
        with keeper.hold(host.upper(), wait_seconds=0):
            pass
        assert taken == [host]
        # Between its fetches the slot still counts: the host's cap is never exceeded.
        with pytest.raises(FetchError), slots.hold(host, wait_seconds=0):
            pass
    with slots.hold(host, wait_seconds=0):  # given back at the end
        pass


def test_a_keeper_gives_its_slot_back_before_taking_another_hosts(settings: Settings) -> None:
    slots = _slots(settings, 1)
    first, second = f"a-{uuid.uuid4().hex}.example", f"b-{uuid.uuid4().hex}.example"
    keeper = slots.keeper()
    with keeper.hold(first, wait_seconds=0):
        pass
    # Taking the second host's slot gave the first one's back.
    with keeper.hold(second, wait_seconds=0), slots.hold(first, wait_seconds=0):
        pass
    # The first host busy elsewhere: the keeper waits holding nothing, then gives up.
    with slots.hold(first, wait_seconds=0):
        with pytest.raises(FetchError) as refused, keeper.hold(first, wait_seconds=0.05):
            pass
        assert refused.value.kind == "busy"
        assert keeper.holding is None
        with slots.hold(second, wait_seconds=0):
            pass
    keeper.release()
    keeper.release()  # twice is harmless


def test_a_keeper_takes_a_fresh_slot_within_a_quarter_of_the_lease(settings: Settings) -> None:
    slots = HostSlots(
        1,
        redis_url=settings.redis_url,
        lock_dir=settings.data_dir / "hostslots",
        poll_seconds=0.01,
        lease_seconds=0.2,
    )
    host = f"{uuid.uuid4().hex}.example"
    taken: list[str] = []
    acquire = slots.acquire

    def counting(host: str, *, wait_seconds: float) -> Callable[[], None]:
        taken.append(host)
        return acquire(host, wait_seconds=wait_seconds)

    slots.acquire = counting  # type: ignore[method-assign]
    with slots.keeper() as keeper:
        with keeper.hold(host, wait_seconds=0):
            pass
        time.sleep(0.06)
        with keeper.hold(host, wait_seconds=0):
            pass
    assert taken == [host, host]


def test_a_keeper_gives_its_slot_back_when_its_block_fails(settings: Settings) -> None:
    slots = _slots(settings, 1)
    host = f"{uuid.uuid4().hex}.example"
    with (
        pytest.raises(RuntimeError),
        slots.keeper() as keeper,
        keeper.hold(host, wait_seconds=0),
    ):
        raise RuntimeError("the fetch failed")
    with slots.hold(host, wait_seconds=0):
        pass
