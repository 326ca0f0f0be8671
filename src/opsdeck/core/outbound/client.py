"""OutboundClient: fetch a URL a user gave us, through the address guard, with redirects
followed by hand (each hop checked again), one deadline for the whole fetch and a body cap
enforced while the bytes arrive."""

from __future__ import annotations

import os
import ssl
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING

import httpcore
import httpx
import structlog

from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.network import DeadlineExceeded, GuardedBackend, deadline
from opsdeck.core.outbound.policy import AddressPolicy, IPNetwork, validate_url

if TYPE_CHECKING:
    from opsdeck.settings import Settings

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_TOTAL_TIMEOUT = 30.0
DEFAULT_MAX_REDIRECTS = 5
USER_AGENT = "OpsDeck (outbound fetch)"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Statuses that say "not now" rather than "no": worth another attempt later.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
# Credentials meant for one origin are not handed to the next one a redirect names.
_CROSS_ORIGIN_DROPPED = frozenset({"authorization", "cookie", "proxy-authorization"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})

log = structlog.get_logger("opsdeck.outbound")


@dataclass(frozen=True, slots=True)
class FetchResult:
    content: bytes
    url: str  # the final URL, after redirects
    status: int
    content_type: str | None  # as the server sent it; sniff the bytes, do not trust this
    redirects: tuple[str, ...] = ()  # the URLs that redirected, in order


class OutboundClient:
    """Fetches user-supplied URLs safely. One instance holds a connection pool: share it
    between threads and keep it for the life of the process (a copy inherited across a fork
    starts a fresh pool of its own)."""

    def __init__(
        self,
        *,
        allowed_networks: Iterable[str | IPNetwork] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        user_agent: str = USER_AGENT,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 20,
        max_keepalive_connections: int = 10,
        keepalive_expiry: float = 30.0,
    ) -> None:
        _require_positive(
            max_bytes=max_bytes, connect_timeout=connect_timeout, total_timeout=total_timeout
        )
        if max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")
        self.policy = AddressPolicy.from_networks(allowed_networks)
        self.max_bytes = max_bytes
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._pool_limits = (max_connections, max_keepalive_connections, keepalive_expiry)
        self._pid = os.getpid()
        self._pool = self._new_pool()

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundClient:
        return cls(
            allowed_networks=settings.fetch_allowed_networks,
            max_bytes=settings.fetch_max_bytes,
            connect_timeout=settings.fetch_connect_timeout_seconds,
            total_timeout=settings.fetch_total_timeout_seconds,
        )

    def _new_pool(self) -> httpcore.ConnectionPool:
        max_connections, max_keepalive, keepalive_expiry = self._pool_limits
        # No proxy, whatever the environment says: a proxy would make the connection (and the
        # name resolution) somewhere we cannot check.
        return httpcore.ConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=GuardedBackend(self.policy),
        )

    def _current_pool(self) -> httpcore.ConnectionPool:
        if self._pid != os.getpid():
            # Pooled sockets are shared with the parent after a fork; abandon them unclosed
            # (closing would tear down the parent's connections) and start afresh.
            self._pool = self._new_pool()
            self._pid = os.getpid()
        return self._pool

    def close(self) -> None:
        self._current_pool().close()

    def __enter__(self) -> OutboundClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def validate_url(self, url: str) -> str:
        """Syntax, scheme, and (for hosts written as addresses) this client's address policy."""
        return validate_url(url, policy=self.policy)

    def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = True,
        max_bytes: int | None = None,
        connect_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> FetchResult:
        """Fetch `url` and return its body; raise FetchError for anything short of a 2xx
        answer whose body fits in `max_bytes`."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        connect = self.connect_timeout if connect_timeout is None else connect_timeout
        total = self.total_timeout if total_timeout is None else total_timeout
        _require_positive(max_bytes=limit, connect_timeout=connect, total_timeout=total)

        try:
            current = validate_url(url, policy=self.policy)
        except FetchError as exc:
            raise self._failed(exc, url, []) from exc
        method = method.upper()
        defaults = {
            "User-Agent": self.user_agent,
            "Accept": "*/*",
            # Identity, so the cap counts the bytes we keep; a server that compresses anyway
            # is decoded under the same cap.
            "Accept-Encoding": "identity",
        }
        given = dict(headers or {})
        send_headers = {**_without(defaults, frozenset(k.lower() for k in given)), **given}
        visited: list[str] = []
        at = time.monotonic() + total
        with deadline(at):
            while True:
                try:
                    outcome = self._hop(
                        method,
                        current,
                        send_headers,
                        content,
                        limit,
                        connect,
                        at,
                        visited,
                        follow_redirects=follow_redirects,
                    )
                except FetchError as exc:
                    raise self._failed(exc, current, visited) from exc
                except (
                    httpcore.TimeoutException,
                    httpcore.NetworkError,
                    httpcore.ProtocolError,
                    httpcore.UnsupportedProtocol,
                ) as exc:
                    failure = _translate(exc, httpx.URL(current).host, connect, total, at)
                    raise self._failed(failure, current, visited) from exc
                if isinstance(outcome, FetchResult):
                    return outcome
                next_url, status = outcome
                if (status == 303 and method != "HEAD") or (
                    status in (301, 302) and method == "POST"
                ):
                    method, content = "GET", None
                    send_headers = _without(send_headers, _BODY_HEADERS)
                if _origin(next_url) != _origin(current):
                    send_headers = _without(send_headers, _CROSS_ORIGIN_DROPPED)
                visited.append(current)
                current = next_url

    def _hop(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        limit: int,
        connect: float,
        at: float,
        visited: list[str],
        *,
        follow_redirects: bool,
    ) -> FetchResult | tuple[str, int]:
        """One request: a FetchResult, or the next URL and the status that sent us there."""
        remaining = max(at - time.monotonic(), 0.001)
        prepared = httpx.Request(method, url, headers=headers, content=content)
        request = httpcore.Request(
            method=prepared.method,
            url=httpcore.URL(
                scheme=prepared.url.raw_scheme,
                host=prepared.url.raw_host,
                port=prepared.url.port,
                target=prepared.url.raw_path,
            ),
            headers=prepared.headers.raw,
            content=content,
            extensions={
                "timeout": {
                    "connect": min(connect, remaining),
                    "read": remaining,
                    "write": remaining,
                    "pool": remaining,
                }
            },
        )
        response = self._current_pool().handle_request(request)
        try:
            response_headers = httpx.Headers(response.headers)
            status = response.status
            location = response_headers.get("location")
            if follow_redirects and status in REDIRECT_STATUSES and location:
                if len(visited) >= self.max_redirects:
                    raise FetchError(
                        "too_many_redirects",
                        f"too many redirects: gave up after {self.max_redirects}",
                        retryable=False,
                    )
                return self._redirect_target(url, location), status
            if not 200 <= status < 300:
                raise _status_error(
                    status, response.extensions.get("reason_phrase"), response_headers
                )
            body = _read_body(response, response_headers, limit)
            return FetchResult(
                content=body,
                url=url,
                status=status,
                content_type=response_headers.get("content-type"),
                redirects=tuple(visited),
            )
        finally:
            response.close()

    def _redirect_target(self, url: str, location: str) -> str:
        try:
            target = str(httpx.URL(url).join(location))
        except (httpx.InvalidURL, ValueError) as exc:
            raise FetchError(
                "bad_url", f"the server redirected to an invalid URL: {exc}", url=location
            ) from exc
        try:
            return validate_url(target, policy=self.policy)
        except FetchError as exc:
            if exc.kind == "refused_address":
                _log_refusal(exc)
            raise FetchError(
                exc.kind, f"{exc.message} (in a redirect to {target})", url=target
            ) from exc

    def _failed(self, exc: FetchError, url: str, visited: list[str]) -> FetchError:
        message = exc.message
        if exc.url is None and visited and exc.kind in ("refused_address", "dns"):
            message = f"{message} (in a redirect to {url})"
        if exc.kind == "refused_address" and exc.url is None:
            _log_refusal(exc)
        return FetchError(
            exc.kind,
            message,
            retryable=exc.retryable,
            retry_after=exc.retry_after,
            status=exc.status,
            url=exc.url or url,
        )


def _log_refusal(exc: FetchError) -> None:
    # The reason names the host and the address, not the URL's path or query (tokens).
    log.warning("outbound_fetch_refused", reason=exc.message)


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be more than 0, not {value}")


def _without(headers: Mapping[str, str], names: frozenset[str]) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key.lower() not in names}


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _translate(
    exc: Exception, host: str, connect_timeout: float, total_timeout: float, at: float
) -> FetchError:
    if isinstance(exc, DeadlineExceeded) or (
        isinstance(exc, httpcore.TimeoutException) and time.monotonic() >= at
    ):
        return FetchError(
            "timeout",
            f"timed out: the fetch did not finish within {total_timeout:g} s "
            "(connecting, redirects and download together)",
        )
    if isinstance(exc, httpcore.ConnectTimeout):
        return FetchError(
            "timeout", f"timed out: could not connect to {host} within {connect_timeout:g} s"
        )
    if isinstance(exc, httpcore.PoolTimeout):
        return FetchError("timeout", "timed out: no free connection to use")
    if isinstance(exc, httpcore.TimeoutException):
        return FetchError("timeout", f"timed out: {host} stopped sending ({exc})")
    if isinstance(exc, httpcore.ConnectError):
        return FetchError("connect", f"could not connect to {host}: {exc}")
    if isinstance(exc, httpcore.NetworkError):
        return FetchError("connect", f"the connection to {host} broke: {exc}")
    if isinstance(exc, httpcore.RemoteProtocolError):
        return FetchError("protocol", f"{host} sent a malformed response or hung up early: {exc}")
    return FetchError("protocol", f"could not talk HTTP to {host}: {exc}", retryable=False)


def _status_error(status: int, reason: object, headers: httpx.Headers) -> FetchError:
    text = f"the server answered {_status_text(status, reason)}"
    if status in REDIRECT_STATUSES:
        text += " (a redirect, not followed here)" if "location" in headers else ""
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    retry_after = parse_retry_after(headers.get("retry-after")) if retryable else None
    if retry_after is not None:
        text += f"; it asked to retry after {retry_after:g} s"
    return FetchError(
        "http_status", text, retryable=retryable, retry_after=retry_after, status=status
    )


def _read_body(response: httpcore.Response, headers: httpx.Headers, limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise FetchError(
            "too_large",
            f"too large: the server announced {format_size(int(declared))}, "
            f"over the {format_size(limit)} limit",
            retryable=False,
        )
    encoding = headers.get("content-encoding", "").strip().lower()
    inflater: _Inflater | None = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding)
    elif encoding not in ("", "identity"):
        raise FetchError(
            "protocol",
            f"the server sent the body in an encoding we do not decode ({encoding})",
            retryable=False,
        )
    # Pieces joined once at the end: one allocation of the final size and one copy (growing
    # a bytearray and copying it out cost a 1 MiB image three times the CPU).
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_stream():
        part = chunk if inflater is None else inflater.decode(chunk, limit - size)
        parts.append(part)
        size += len(part)
        if size > limit:
            raise _too_large(limit)
    if inflater is not None:
        part = inflater.flush()
        parts.append(part)
        size += len(part)
        if size > limit:
            raise _too_large(limit)
    return b"".join(parts)


def _too_large(limit: int) -> FetchError:
    return FetchError(
        "too_large",
        f"too large: the body is over the {format_size(limit)} limit; stopped reading",
        retryable=False,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def format_size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _status_text(status: int, reason: object) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = reason.decode("latin-1", "replace") if isinstance(reason, bytes) else ""
    return f"{status} {phrase}".strip()


class _Inflater:
    """Decodes a gzip / deflate body in bounded steps, so a small compressed body cannot
    expand past the cap in memory before the cap is checked."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # 32 + MAX_WBITS accepts a gzip or a zlib header.
        wbits = zlib.MAX_WBITS | 32 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(wbits)
        self._started = False

    def decode(self, data: bytes, room: int) -> bytes:
        """At most room + 1 bytes: one more than fits tells the caller the cap was passed."""
        try:
            output = self._inflater.decompress(data, room + 1)
        except zlib.error as exc:
            if self.encoding != "deflate" or self._started:
                raise self._corrupt() from exc
            # Some servers send raw deflate without the zlib wrapper the standard asks for.
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                output = self._inflater.decompress(data, room + 1)
            except zlib.error as raw_exc:
                raise self._corrupt() from raw_exc
        self._started = True
        return output

    def flush(self) -> bytes:
        try:
            return self._inflater.flush()
        except zlib.error as exc:
            raise self._corrupt() from exc

    def _corrupt(self) -> FetchError:
        return FetchError(
            "protocol", f"the {self.encoding} response body is corrupt", retryable=False
        )
