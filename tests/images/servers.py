"""A local HTTP server for the images tests: serves image bytes and scripted failures, and
records the webhook deliveries it receives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # The first `fail_first` requests get `fail_status` (with `fail_headers`) instead.
    fail_first: int = 0
    fail_status: int = 503
    fail_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


class LocalServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.deliveries: list[Delivery] = []
        self.hits: dict[str, int] = {}
        self.webhook_status = 200
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def serve(self, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
        self.routes[path] = Route(body=body, content_type=content_type)
        return self.url(path)

    def fail(self, path: str, status: int, headers: dict[str, str] | None = None) -> str:
        self.routes[path] = Route(status=status, body=b"nope", headers=headers or {})
        return self.url(path)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                with outer._lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    hit = outer.hits[self.path]
                route = outer.routes.get(self.path, Route(status=404, body=b"not found"))
                if hit <= route.fail_first:
                    route = Route(
                        status=route.fail_status, body=b"try later", headers=route.fail_headers
                    )
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(route.body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with outer._lock:
                    outer.deliveries.append(
                        Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = outer.webhook_status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    @contextmanager
    def running(self) -> Iterator[LocalServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)
