"""Live updates: any process (a web request, a Celery worker) publishes a small "this changed"
event on a topic; every web process receives it and hands it to its Socket.IO layer, which
decides which connections get it (docs/chat.md, "Live updates").

    publish("incidents", "incidents:incident", {"number": 42, ...})

The process's settings are those `configure(settings)` was given (`core.queue.configure_celery`
calls it: the web app, the worker and the commands that send jobs all go through it); a process
that configured nothing publishes nothing.

Publishing never raises and never blocks for long: live updates are hints to refetch (the REST
answer stays the source of truth), so a lost one costs a client a stale view until its next
fetch, never data.

The channel between processes:

- Distributed mode: a Redis pub/sub channel (`opsdeck:live`) every web process subscribes to.
- Embedded mode: the web process receives what it publishes itself directly; another process
  (the Celery worker of `opsdeck serve`) writes each event as a small JSON file in
  `<data dir>/live/`, which every web process polls (LIVE_POLL_SECONDS) and reads once; files
  older than SPOOL_KEEP_SECONDS are removed. No broker, no table, nothing to configure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from opsdeck.core.redis import redis_client
from opsdeck.settings import Settings

CHANNEL = "opsdeck:live"
LIVE_POLL_SECONDS = 0.2
SPOOL_KEEP_SECONDS = 60.0
log = structlog.get_logger("opsdeck.live")

# (topic, event, payload), called on the relay's thread.
Receiver = Callable[[str, str, dict[str, Any]], None]

_receivers: list[Receiver] = []
_lock = threading.Lock()
_configured: list[Settings] = []


def configure(settings: Settings) -> None:
    """The settings `publish` uses in this process."""
    _configured[:] = [settings]


def spool_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "live"


def _encode(topic: str, event: str, payload: dict[str, Any]) -> bytes:
    return json.dumps({"topic": topic, "event": event, "payload": payload}, default=str).encode()


def _decode(raw: bytes) -> tuple[str, str, dict[str, Any]] | None:
    try:
        data = json.loads(raw)
        topic, event, payload = data["topic"], data["event"], data["payload"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(topic, str) or not isinstance(event, str) or not isinstance(payload, dict):
        return None
    return topic, event, payload


def publish(
    topic: str, event: str, payload: dict[str, Any], *, settings: Settings | None = None
) -> None:
    """Send `event` with `payload` on `topic` to every web process (call it after the commit
    of what it announces: `core.db.after_commit`)."""
    settings = settings or (_configured[0] if _configured else None)
    if settings is None:
        return
    try:
        if not settings.embedded:
            redis_client(settings.redis_url, timeout=1.0).publish(
                CHANNEL, _encode(topic, event, payload)
            )
            return
        with _lock:
            receivers = list(_receivers)
        if receivers:
            for receive in receivers:
                receive(topic, event, dict(payload))
            return
        folder = spool_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(_encode(topic, event, payload))
        temporary.rename(folder / f"{name}.json")
    except Exception:
        log.warning("live_publish_failed", topic=topic, live_event=event, exc_info=True)


class LiveRelay:
    """The receiving end in a web process: a thread handing every published event to
    `receive`."""

    def __init__(self, settings: Settings, receive: Receiver) -> None:
        self.settings = settings
        self.receive = receive
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        with _lock:
            _receivers.append(self.receive)
        if self.settings.embedded:
            folder = spool_dir(self.settings)
            folder.mkdir(parents=True, exist_ok=True)
            # What was there before this process started is not news to it.
            seen = {path.name for path in folder.glob("*.json")}
            self.thread = threading.Thread(
                target=self._spool_loop, args=(folder, seen), name="opsdeck-live", daemon=True
            )
        else:
            self.thread = threading.Thread(
                target=self._redis_loop, name="opsdeck-live", daemon=True
            )
        self.thread.start()

    def stop(self) -> None:
        with _lock:
            if self.receive in _receivers:
                _receivers.remove(self.receive)
        # The thread notices within a poll and exits (a daemon: nothing waits for it).
        self.stopping.set()

    def _deliver(self, raw: bytes) -> None:
        decoded = _decode(raw)
        if decoded is None:
            return
        try:
            self.receive(*decoded)
        except Exception:
            log.exception("live_delivery_failed", topic=decoded[0])

    def _redis_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                pubsub = redis_client(self.settings.redis_url, timeout=5.0).pubsub(
                    ignore_subscribe_messages=True
                )
                pubsub.subscribe(CHANNEL)
                try:
                    while not self.stopping.is_set():
                        message = pubsub.get_message(timeout=LIVE_POLL_SECONDS)
                        if message is not None and isinstance(message.get("data"), bytes):
                            self._deliver(message["data"])
                finally:
                    pubsub.close()
            except Exception:
                log.warning("live_relay_redis_failed", exc_info=True)
                self.stopping.wait(1.0)

    def _spool_loop(self, folder: Path, seen: set[str]) -> None:
        while not self.stopping.wait(LIVE_POLL_SECONDS):
            try:
                self._spool_pass(folder, seen)
            except Exception:
                log.warning("live_relay_spool_failed", exc_info=True)

    def _spool_pass(self, folder: Path, seen: set[str]) -> None:
        """Deliver the files not seen yet, in the order they were written; remove old ones
        (and forget them)."""
        cutoff = time.time_ns() - int(SPOOL_KEEP_SECONDS * 1e9)
        for path in sorted(folder.glob("*.json")):
            name = path.name
            if name not in seen:
                seen.add(name)
                with contextlib.suppress(FileNotFoundError):
                    self._deliver(path.read_bytes())
            stamp = name.split("-", 1)[0]
            if stamp.isdigit() and int(stamp) < cutoff:
                path.unlink(missing_ok=True)
                seen.discard(name)
