"""The network layer under httpcore: every TCP connection is made here, to an address that was
resolved and checked here, so nothing between the check and the connect can resolve the name
again (DNS rebinding), and every socket wait is cut short at the fetch's overall deadline."""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from ipaddress import ip_address
from typing import Any

import httpcore

from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.policy import AddressPolicy, IPAddress

# The monotonic time by which the current fetch must be over. Set per call (not per
# connection) because pooled connections outlive the fetch that opened them.
_deadline: ContextVar[float | None] = ContextVar("opsdeck_outbound_deadline", default=None)

SocketAddress = tuple[Any, ...]


class DeadlineExceeded(httpcore.TimeoutException):
    """The fetch as a whole ran out of time (as opposed to one wait on the socket)."""


@contextmanager
def deadline(at: float) -> Iterator[None]:
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def clip_timeout(timeout: float | None) -> float | None:
    """The shorter of a socket wait and the time left before the deadline."""
    at = _deadline.get()
    if at is None:
        return timeout
    remaining = at - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("the time allowed for the whole fetch ran out")
    return remaining if timeout is None else min(timeout, remaining)


# getaddrinfo cannot be given a timeout: it runs here, and the fetch stops waiting for it at
# its deadline. A resolver stuck for longer keeps its thread until the system resolver gives
# up (resolv.conf's timeout x attempts); a handful of threads bound what such hosts can hold.
_RESOLVER_THREADS = 4
# The most a read of a response takes from the socket at once (see GuardedStream.read).
READ_BYTES = 256 * 1024
_resolver = ThreadPoolExecutor(_RESOLVER_THREADS, thread_name_prefix="opsdeck-resolve")


def _resolve_by_deadline(host: str, port: int) -> list[tuple[Any, ...]]:
    answer = _resolver.submit(
        socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    try:
        return answer.result(timeout=clip_timeout(None))
    except FutureTimeout:
        answer.cancel()
        raise DeadlineExceeded(f"resolving {host} took longer than the fetch may") from None


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend for outbound fetches: resolve, check every address, connect
    to a checked one. TLS still verifies the certificate against (and sends SNI for) the host
    name, because httpcore passes the origin's host to `start_tls`."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def resolve(self, host: str, port: int) -> list[tuple[socket.AddressFamily, SocketAddress]]:
        """Every address the host resolves to, after checking each of them; any refused
        address refuses the host, so an answer mixing public and private addresses fails."""
        flags = 0
        try:
            ip_address(host)
            flags = socket.AI_NUMERICHOST
        except ValueError:
            pass
        try:
            if flags:
                answers = socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=flags
                )
            else:
                answers = _resolve_by_deadline(host, port)
        except socket.gaierror as exc:
            raise FetchError(
                "dns",
                f"could not resolve {host}: {exc.strerror}",
                retryable=exc.errno == socket.EAI_AGAIN,
            ) from exc
        except (UnicodeError, OSError) as exc:
            raise FetchError("dns", f"could not resolve {host}: {exc}") from exc

        targets: list[tuple[socket.AddressFamily, SocketAddress]] = []
        checked: list[IPAddress] = []
        for family, _type, _proto, _name, sockaddr in answers:
            if family not in (socket.AF_INET, socket.AF_INET6):
                raise FetchError("refused_address", f"refused: {host} resolves to a non-IP address")
            address = ip_address(sockaddr[0])
            if address not in checked:
                checked.append(address)
                targets.append((family, sockaddr))
        if not targets:
            raise FetchError("dns", f"could not resolve {host}: no addresses", retryable=True)
        self.policy.check(host, checked)
        return targets

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        clip_timeout(timeout)
        options = list(socket_options or ())
        failure: Exception | None = None
        for family, sockaddr in self.resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            try:
                sock.settimeout(clip_timeout(timeout))
                for option in options:
                    sock.setsockopt(*option)
                if local_address is not None:
                    sock.bind((local_address, 0))
                sock.connect(sockaddr)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except TimeoutError as exc:
                sock.close()
                failure = httpcore.ConnectTimeout(f"no answer from {sockaddr[0]} port {port}")
                failure.__cause__ = exc
            except OSError as exc:
                sock.close()
                failure = httpcore.ConnectError(f"{sockaddr[0]} port {port}: {exc.strerror or exc}")
                failure.__cause__ = exc
            except BaseException:
                sock.close()
                raise
            else:
                return GuardedStream(sock)
        if failure is None:  # pragma: no cover - resolve() returns at least one target
            failure = httpcore.ConnectError(f"no address to connect to for {host}")
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise FetchError("bad_url", "refused: outbound fetches do not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class GuardedStream(httpcore.NetworkStream):
    """A plain or TLS socket whose every wait ends at the fetch's deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(clip_timeout(timeout))
            # httpcore asks for 64 KiB at a time, and every piece goes through h11 once: taking
            # what has arrived, up to READ_BYTES, reads a 1 MiB image in about 5 pieces instead
            # of 17 (a fetch's CPU 1.55 -> 1.3 ms, bench/images_pipeline.py). The body's size
            # cap is still checked after every piece (client._read_body).
            return self._sock.recv(max(max_bytes, READ_BYTES))
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("the server sent nothing for too long") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            while buffer:
                self._sock.settimeout(clip_timeout(timeout))
                sent = self._sock.send(buffer)
                buffer = buffer[sent:]
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("the server accepted nothing for too long") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        name = server_hostname or "the server"
        try:
            self._sock.settimeout(clip_timeout(timeout))
            tls_sock = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise FetchError(
                "tls",
                f"the TLS certificate of {name} was not accepted: {exc.verify_message}",
                retryable=False,
            ) from exc
        except ssl.SSLError as exc:
            self.close()
            raise FetchError(
                "tls",
                f"the TLS handshake with {name} failed: {exc.reason or exc}",
                # A server hanging up mid-handshake may do better next time; a refusal won't.
                retryable=isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError),
            ) from exc
        except TimeoutError as exc:
            self.close()
            raise httpcore.ConnectTimeout(f"the TLS handshake with {name} timed out") from exc
        except OSError as exc:
            self.close()
            raise httpcore.ConnectError(f"the TLS handshake with {name} broke: {exc}") from exc
        except BaseException:
            self.close()
            raise
        return GuardedStream(tls_sock)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            # An SSLSocket offers what callers ask of an SSLObject (ALPN, peer certificate).
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _is_readable(self._sock)
        return None


def _is_readable(sock: socket.socket) -> bool:
    """True when a read would not block: data, EOF, or a closed socket. httpcore asks this of
    an idle pooled connection to learn whether the server has hung up."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
