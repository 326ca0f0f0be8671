"""The per-host download cap, on the stack's own backend: Redis when the stack has it, lock
files in embedded mode (as in production)."""

from __future__ import annotations

import threading
import uuid

import pytest

from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.slots import HostSlots
from opsdeck.settings import Settings


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
