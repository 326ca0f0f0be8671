"""ASGI middleware shared by every module: correlation ids, access logs and request metrics,
security headers, and request body limits."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsdeck.core.errors import error_body, error_response
from opsdeck.core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from opsdeck.core.observability import (
    REQUEST_ID_HEADER,
    accept_request_id,
    bind_request_id,
    clear_request_id,
)

# Module routers carry the full prefix themselves (`APIRouter(prefix=f"{API_PREFIX}/...")`)
# rather than getting it from include_router: the matched route's own path is then the full
# template, which metrics and access logs label requests with.
API_PREFIX = "/api/v1"

access_log = structlog.get_logger("opsdeck.access")
error_log = structlog.get_logger("opsdeck.errors")
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side; it has been logged."

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' ws: wss:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    # Unmatched paths are folded into one label so scanners cannot blow up cardinality.
    return str(path) if path else "<unmatched>"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = accept_request_id(incoming)
        bind_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if response_started:
                    raise
                # Answered here rather than by Starlette's outermost error handler, which runs
                # after the request id is unbound and outside the security-headers middleware.
                error_log.exception("unhandled_error", exc_type=type(exc).__name__)
                response = error_response(
                    500,
                    "internal_error",
                    INTERNAL_ERROR_MESSAGE,
                    headers=security_headers(scope),
                )
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            access_log.info(
                "request",
                method=method,
                path=scope.get("path"),
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                client=(scope.get("client") or ("", 0))[0],
            )
            clear_request_id()


def security_headers(scope: Scope) -> dict[str, str]:
    path: str = scope.get("path", "")
    csp = API_CSP if path.startswith(("/api/v1", "/metrics", "/health", "/ready")) else APP_CSP
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if scope.get("scheme") == "https":
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


class ServerErrorsUnsharedMiddleware:
    """Takes the CORS headers off a 500, whatever answered it: a cross-origin page may read
    the API's answers, but not what went wrong on the server. Installed just outside
    CORSMiddleware (a 503 keeps them: its Retry-After is meant for the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_unshared(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 500:
                headers = MutableHeaders(scope=message)
                for name in [n for n in headers if n.startswith("access-control-")]:
                    del headers[name]
            await send(message)

        await self.app(scope, receive, send_unshared)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = security_headers(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413, by Content-Length up front and by counting bytes
    for chunked uploads. `limits` maps a path prefix to another limit (file uploads); a `*`
    segment in it matches any one segment (`/api/v1/incidents/*/attachments`), and the longest
    matching prefix wins, so a module's general limit and an upload route's can coexist."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: Mapping[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        # Longest first: the most specific prefix decides.
        self.limits = sorted(
            ((tuple(prefix.split("/")), limit) for prefix, limit in limits.items()),
            key=lambda item: len("/".join(item[0])),
            reverse=True,
        )

    def limit_for(self, path: str) -> int:
        segments = path.split("/")
        for prefix, limit in self.limits:
            if _matches_prefix(segments, prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await _send_too_large(send, limit)
                    return
        received = 0
        refused = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                # The framework turned our signal into an answer of its own (FastAPI: 400
                # "There was an error parsing the body"); the limit is what stopped it.
                if message["type"] == "http.response.start" and not response_started:
                    response_started = True
                    await _send_too_large(send, limit)
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _send_too_large(send, limit)
        except Exception:
            # Frameworks may wrap our signal; the limit was still what stopped the request.
            if refused and not response_started:
                await _send_too_large(send, limit)
                return
            raise


class _BodyTooLarge(Exception):
    pass


def _matches_prefix(segments: list[str], prefix: tuple[str, ...]) -> bool:
    """Whether a path (split on "/") starts with `prefix`; `*` matches one whole segment, and
    the last segment of the prefix may be the start of the path's segment."""
    if len(segments) < len(prefix):
        return False
    last = len(prefix) - 1
    for index, wanted in enumerate(prefix):
        got = segments[index]
        if wanted == "*" and got:
            continue
        if got == wanted or (index == last and got.startswith(wanted)):
            continue
        return False
    return True


async def _send_too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body(
            "payload_too_large",
            f"The request body is larger than the {limit:,}-byte limit for this endpoint.",
            [{"limit_bytes": limit}],
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
