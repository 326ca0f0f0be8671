"""Socket.IO in the web process: one `socketio.AsyncServer` for every module's namespaces,
wrapping the FastAPI app in the same ASGI application (docs/chat.md, "Scaling").

- `build_socket_server(settings)`: the server; with Redis configured (distributed mode) its
  client manager is python-socketio's Redis manager, so an emit reaches the clients of every
  web process.
- `SocketContext`: what a module's namespaces are built with (settings, the session factory, the
  hub).
- `SocketHub`: emits from code that does not run on the event loop (a REST route, after its
  transaction commits) onto the server, thread-safely; runs a module's background work
  (`on_start`) from the server's start to its stop.
- `in_transaction(factory, work)`: runs blocking database work of an event handler in a thread,
  in a unit of work of its own (commit on success, roll back on error).
- `origin_allowed(settings, environ)`: the Origin check of cookie-authenticated connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import socketio
import structlog
from sqlalchemy.orm import Session, sessionmaker

from opsdeck.core.db import READ_ONLY, transaction
from opsdeck.settings import Settings

T = TypeVar("T")
SOCKET_PATH = "socket.io"
log = structlog.get_logger("opsdeck.sockets")


def build_socket_server(settings: Settings) -> socketio.AsyncServer:
    manager = None if settings.embedded else socketio.AsyncRedisManager(settings.redis_url)
    return socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        # Origins are checked per namespace at connect: a cookie must come from an allowed
        # origin, a bearer token may come from anywhere (it is not sent by the browser on its
        # own). Refusing here would also refuse token clients of other origins.
        cors_allowed_origins="*",
        cors_credentials=True,
        # 1 MB: a message is at most 10 KB, anything larger is a probe.
        max_http_buffer_size=1_000_000,
        logger=False,
        engineio_logger=False,
        # Long-polling needs every request of a connection to reach the same process; without
        # it any process (or replica) serves any connection (docs/chat.md, "Scaling").
        transports=["websocket"] if settings.chat_websocket_only else ["polling", "websocket"],
    )


def asgi_app(server: socketio.AsyncServer, app: Any) -> socketio.ASGIApp:
    """`/socket.io/` goes to the Socket.IO server, everything else (lifespan included) to
    `app`."""
    return socketio.ASGIApp(server, other_asgi_app=app, socketio_path=SOCKET_PATH)


@dataclass
class SocketHub:
    """The web process's Socket.IO server and the event loop it runs on (bound at startup)."""

    server: socketio.AsyncServer
    loop: asyncio.AbstractEventLoop | None = field(default=None)
    # Started when the server starts (`bind`), stopped when it stops (`close`): a module's
    # background work (chat: the live-update relay, presence heartbeats).
    starters: list[Callable[[SocketHub], Callable[[], None]]] = field(default_factory=list)
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def on_start(self, starter: Callable[[SocketHub], Callable[[], None]]) -> None:
        """`starter(hub)` runs once the server's loop is bound; what it answers runs at stop."""
        self.starters.append(starter)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for starter in self.starters:
            self.stoppers.append(starter(self))

    def close(self) -> None:
        while self.stoppers:
            stop = self.stoppers.pop()
            try:
                stop()
            except Exception:
                log.exception("socket_hub_stop_failed")

    def emit_threadsafe(
        self, event: str, data: Any, *, room: str, namespace: str, skip_sid: str | None = None
    ) -> None:
        """Emit from any thread (a sync route after its commit). Nothing happens when the
        server is not running (an app under TestClient without startup)."""
        self.submit(
            lambda: self.server.emit(event, data, to=room, namespace=namespace, skip_sid=skip_sid)
        )

    def submit(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        future.add_done_callback(_log_failure)


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("socket_emit_failed", error=repr(future.exception()))


@dataclass(frozen=True)
class SocketContext:
    settings: Settings
    sessionmaker: sessionmaker[Session]
    hub: SocketHub


async def in_transaction(
    factory: sessionmaker[Session], work: Callable[[Session], T], *, read_only: bool = False
) -> T:
    """Run `work(session)` in a worker thread inside a unit of work of its own (`read_only`:
    work that never writes, which then does not queue for SQLite's write lock: core.db)."""

    def run() -> T:
        with transaction(factory) as session:
            if read_only:
                session.connection(execution_options=READ_ONLY)
            return work(session)

    return await asyncio.to_thread(run)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(settings: Settings, environ: Mapping[str, Any]) -> bool:
    """True when the connection's Origin is this app (its Host, or OPSDECK_PUBLIC_URL) or one
    of OPSDECK_CORS_ORIGINS. A missing Origin is refused: browsers always send it."""
    origin = str(environ.get("HTTP_ORIGIN") or "").lower()
    if not origin:
        return False
    allowed = {_origin_of(settings.public_base_url)}
    allowed.update(_origin_of(item) for item in settings.cors_origins)
    if origin in allowed:
        return True
    host = str(environ.get("HTTP_HOST") or "").lower()
    return bool(host) and urlsplit(origin).netloc == host
