"""core.live in embedded mode: a web process hands its own events over directly, and another
process's (the worker's) reach every web process once, through the spool folder. Also: an
unconfigured process publishes nothing, and websocket-only Socket.IO."""

from __future__ import annotations

import queue
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opsdeck.core import live
from opsdeck.core.sockets import build_socket_server
from tests.conftest import make_settings

WORKER = """
import sys
from pathlib import Path
from opsdeck.core import live
from opsdeck.settings import Settings

settings = Settings(
    _env_file=None, environment="test", data_dir=Path(sys.argv[1]), redis_url="",
    secret_key="s" * 48, webhook_secret="w" * 48,
)
for n in range(3):
    live.publish("images:batch:x", "images:batch", {"n": n}, settings=settings)
"""

Box = queue.Queue[tuple[str, str, dict[str, Any]]]


def _keeper(box: Box) -> live.Receiver:
    return lambda topic, event, payload: box.put((topic, event, payload))


def test_events_reach_every_web_process_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url="")
    boxes: list[Box] = [queue.Queue(), queue.Queue()]
    # An event of before the relays started is not news to them.
    subprocess.run([sys.executable, "-c", WORKER, str(tmp_path)], check=True, timeout=60)
    relays = [live.LiveRelay(settings, _keeper(box)) for box in boxes]
    for relay in relays:
        relay.start()
    try:
        live.publish("t", "direct", {"n": 1}, settings=settings)
        for box in boxes:
            assert box.get(timeout=5) == ("t", "direct", {"n": 1})
        # From another process: through the spool, in order, once each.
        subprocess.run([sys.executable, "-c", WORKER, str(tmp_path)], check=True, timeout=60)
        for box in boxes:
            got = [box.get(timeout=10) for _ in range(3)]
            assert got == [("images:batch:x", "images:batch", {"n": n}) for n in range(3)]
            with pytest.raises(queue.Empty):
                box.get(timeout=3 * live.LIVE_POLL_SECONDS)
    finally:
        for relay in relays:
            relay.stop()


def test_an_unconfigured_process_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "_configured", [])
    monkeypatch.chdir(tmp_path)
    live.publish("t", "e", {})  # nothing to do, nothing raised
    assert list(tmp_path.iterdir()) == []


def test_websocket_only_refuses_long_polling(tmp_path: Path) -> None:
    both = build_socket_server(make_settings(tmp_path, redis_url=""))
    assert both.eio.transports == ["polling", "websocket"]
    only = build_socket_server(make_settings(tmp_path, redis_url="", chat_websocket_only=True))
    assert only.eio.transports == ["websocket"]
