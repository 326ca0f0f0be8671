"""The Redis broker when kombu has detached a channel's transport from its connection (what
Celery's consumer does when Redis goes away): the channel still reaches Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.connection import Connection

import opsdeck.core.queue  # noqa: F401  (applies the kombu fix on import)
from tests.stack import RedisServer, TestStack, find_redis_server


@pytest.fixture
def redis_url(test_stack: TestStack, tmp_path: Path) -> Iterator[str]:
    """The stack's Redis; on the embedded stack, a private one of this test's own."""
    if test_stack.redis_url:
        yield test_stack.redis_url
        return
    binary = find_redis_server()
    assert binary is not None  # the test is defined only where there is one
    server = RedisServer(binary, tmp_path / "redis")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


# Where Redis exists: the stack's, or (embedded stack) a private one from the machine's
# redis-server, which .ci/run installs.
if find_redis_server() is not None:

    def test_a_message_is_acknowledged_on_its_channel_after_kombu_detached_the_transport(
        redis_url: str,
    ) -> None:
        name = f"detached-{uuid.uuid4().hex}"
        # kombu ships no type information.
        connect: Any = Connection
        with connect(redis_url) as producer:
            producer.SimpleQueue(name).put({"n": 1})
        connection: Any = connect(redis_url)
        queue = connection.SimpleQueue(name)
        message: Any = queue.get(timeout=5)
        channel: Any = message.channel
        check = redis.Redis.from_url(redis_url)
        assert check.hexists("unacked", message.delivery_tag)

        # What kombu does to a broken connection: Channel.close() drops the channel's pools and
        # Connection._do_close_transport() detaches the transport (transport.client = None).
        channel._disconnect_pools()
        connection._do_close_transport()

        message.ack()  # a late task's acknowledgement; kombu 5.7 raised AttributeError here

        assert not check.hexists("unacked", message.delivery_tag)
        check.close()
        queue.close()
