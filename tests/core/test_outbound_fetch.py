"""The outbound fetcher against real HTTP servers on loopback addresses.

DNS is outside our walls, so every name here is answered by a fake resolver; and every
connection a test makes is checked to be to a loopback address, so a bug in the guard fails
the test instead of sending traffic anywhere else."""

from __future__ import annotations

import datetime as dt
import gzip
import http.server
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opsdeck.core.outbound import FetchError, FetchResult, OutboundClient
from tests.stack import free_port

LOOPBACK = ["127.0.0.0/8"]
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
CHUNK = b"\0" * 65536
WAIT = 10.0  # how long a test waits for a server thread; never reached when things work


# -- the connection tripwire and the fake resolver ---------------------------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every outgoing connection in these tests, and a hard stop for any that is not loopback."""
    attempts: list[tuple[Any, ...]] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        if isinstance(address, tuple):
            host = str(address[0]).split("%")[0]
            if not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"a test tried to connect to {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@dataclass
class FakeDNS:
    """Names the tests resolve; each answer is a list of addresses, or a list of such lists
    to give a different answer on each call (the last one repeats)."""

    answers: dict[str, list[str] | list[list[str]]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    # Names whose resolution hangs until the event is set (a slow or unreachable DNS
    # server), and the names whose resolution has returned.
    stalls: dict[str, threading.Event] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)

    def resolve(self, host: str) -> list[str]:
        self.calls.append(host)
        if host in self.stalls:
            self.stalls[host].wait(timeout=30)
        self.resolved.append(host)
        if host in self.failures:
            raise socket.gaierror(self.failures[host], "Temporary failure in name resolution")
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answer = self.answers[host]
        if answer and isinstance(answer[0], list):
            turns = [a for a in answer if isinstance(a, list)]
            return turns[min(self.calls.count(host), len(turns)) - 1]
        return [a for a in answer if isinstance(a, str)]


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            answers = []
            for address in fake.resolve(host):
                info = real_getaddrinfo(
                    address, port, family, type, proto, flags | socket.AI_NUMERICHOST
                )
                answers.extend(info)
            return answers
        return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake


# -- the test server ---------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int]


class TestServer:
    """A threaded HTTP/1.1 server with the routes below; it records what it was sent."""

    __test__ = False

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None):
        self.requests: list[Seen] = []
        self.release = threading.Event()  # ends every slow or stalled handler
        self.done = threading.Event()  # set when a /big handler has finished writing
        self.sent = 0  # bytes of body the last /big handler managed to write
        self.connections = 0
        self.sni: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.route(self)

            def do_POST(self) -> None:
                outer.route(self)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            block_on_close = False
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            def server_bind(self) -> None:
                # HTTPServer.server_bind looks its own name up in DNS; skip that.
                socketserver.TCPServer.server_bind(self)
                self.server_name, self.server_port = host, self.server_address[1]

            def get_request(self) -> tuple[socket.socket, Any]:
                outer.connections += 1
                return super().get_request()

        self.httpd = Server((host, port), Handler)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: outer.sni.append(name)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, path: str, host: str | None = None, scheme: str = "http") -> str:
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{name}:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- routes --------------------------------------------------------------------------------

    def route(self, h: http.server.BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        self.requests.append(
            Seen(h.command, h.path, dict(h.headers.items()), body, h.client_address[:2])
        )
        name = parts.path.strip("/").split("/")[0]
        handler: Callable[[http.server.BaseHTTPRequestHandler, str, dict[str, str]], None]
        handler = getattr(self, f"r_{name.replace('-', '_')}", self.r_missing)
        handler(h, parts.path, query)

    @staticmethod
    def reply(
        h: http.server.BaseHTTPRequestHandler,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def r_image(self, h: Any, path: str, q: dict[str, str]) -> None:
        self.reply(h, 200, IMAGE, {"Content-Type": q.get("type", "image/png")})

    def r_missing(self, h: Any, path: str, q: dict[str, str]) -> None:
        self.reply(h, 404, b"no such image")

    def r_status(self, h: Any, path: str, q: dict[str, str]) -> None:
        headers = {"Retry-After": q["retry_after"]} if "retry_after" in q else {}
        self.reply(h, int(path.split("/")[2]), b"status", headers)

    def r_chain(self, h: Any, path: str, q: dict[str, str]) -> None:
        left = int(path.split("/")[2])
        location = "/image" if left == 0 else f"/chain/{left - 1}"
        self.reply(h, 302, b"", {"Location": location})

    def r_to(self, h: Any, path: str, q: dict[str, str]) -> None:
        self.reply(h, int(q.get("status", "302")), b"", {"Location": q["url"]})

    def r_echo(self, h: Any, path: str, q: dict[str, str]) -> None:
        seen = self.requests[-1]
        data = {"method": seen.method, "body": seen.body.decode(), "headers": seen.headers}
        self.reply(h, 200, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def r_big(self, h: Any, path: str, q: dict[str, str]) -> None:
        size = int(q["size"])
        h.send_response(200)
        if q.get("length") == "yes":
            h.send_header("Content-Length", str(size))
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        sent = 0
        try:
            while sent < size:
                h.wfile.write(CHUNK)
                sent += len(CHUNK)
        except OSError:
            pass
        finally:
            self.sent = sent
            self.done.set()

    def r_slow(self, h: Any, path: str, q: dict[str, str]) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000000")
        h.end_headers()
        try:
            while not self.release.wait(0.05):
                h.wfile.write(b"x")
        except OSError:
            pass

    def r_stall(self, h: Any, path: str, q: dict[str, str]) -> None:
        self.release.wait(WAIT)
        h.close_connection = True

    def r_hangup(self, h: Any, path: str, q: dict[str, str]) -> None:
        h.close_connection = True

    def r_garbage(self, h: Any, path: str, q: dict[str, str]) -> None:
        h.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")
        h.close_connection = True

    def r_encoded(self, h: Any, path: str, q: dict[str, str]) -> None:
        size = int(q.get("size", "0"))
        payload = b"\0" * size if size else IMAGE
        encoding = q["encoding"]
        if encoding == "gzip":
            body = gzip.compress(payload)
        elif encoding == "deflate":
            body = zlib.compress(payload)
        elif encoding == "raw-deflate":
            squeezer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body, encoding = squeezer.compress(payload) + squeezer.flush(), "deflate"
        else:
            body = payload
        self.reply(h, 200, body, {"Content-Encoding": encoding})


@pytest.fixture
def server() -> Iterator[TestServer]:
    running = TestServer()
    yield running
    running.close()


@pytest.fixture
def client() -> Iterator[OutboundClient]:
    with OutboundClient(allowed_networks=LOOPBACK) as running:
        yield running


def _fails(client: OutboundClient, url: str, **options: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        client.fetch(url, **options)
    return caught.value


# -- success -----------------------------------------------------------------------------------


def test_fetch_returns_bytes_final_url_status_and_content_type(
    client: OutboundClient, server: TestServer
) -> None:
    result = client.fetch(server.url("/image?type=image/png"))

    assert result == FetchResult(
        content=IMAGE,
        url=server.url("/image?type=image/png"),
        status=200,
        content_type="image/png",
    )
    (seen,) = server.requests
    assert seen.headers["Accept-Encoding"] == "identity"
    assert "OpsDeck" in seen.headers["User-Agent"]


def test_a_name_resolving_to_an_allowed_address(
    client: OutboundClient, server: TestServer, dns: FakeDNS
) -> None:
    dns.answers["images.test"] = ["127.0.0.1"]

    result = client.fetch(server.url("/image", host="images.test"))

    assert result.content == IMAGE
    assert server.requests[0].headers["Host"] == f"images.test:{server.port}"


def test_ipv6_loopback_when_allowed() -> None:
    v6 = TestServer(host="::1")
    try:
        with OutboundClient(allowed_networks=["::1/128"]) as client:
            assert client.fetch(v6.url("/image")).content == IMAGE
    finally:
        v6.close()


def test_connections_are_reused_for_one_host(client: OutboundClient, server: TestServer) -> None:
    for _ in range(5):
        client.fetch(server.url("/image"))

    assert len(server.requests) == 5
    assert server.connections == 1
    assert len({seen.client for seen in server.requests}) == 1


def test_one_client_serves_many_threads(client: OutboundClient, server: TestServer) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(client.fetch(server.url("/image")).content)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert errors == []
    assert results == [IMAGE] * 40
    assert server.connections <= 8


def test_a_client_inherited_across_a_fork_opens_its_own_connections(
    client: OutboundClient, server: TestServer
) -> None:
    client.fetch(server.url("/image"))
    client._pid = -1  # what a forked child sees: a pool that belongs to another process

    client.fetch(server.url("/image"))

    assert server.connections == 2


def test_post_with_headers_and_body(client: OutboundClient, server: TestServer) -> None:
    result = client.fetch(
        server.url("/echo"),
        method="POST",
        content=b'{"event": "batch.completed"}',
        headers={"Content-Type": "application/json", "X-OpsDeck-Signature": "t=1,v1=ab"},
    )

    echoed = json.loads(result.content)
    assert echoed["method"] == "POST"
    assert echoed["body"] == '{"event": "batch.completed"}'
    assert echoed["headers"]["X-OpsDeck-Signature"] == "t=1,v1=ab"


def test_caller_headers_replace_the_defaults_whatever_their_case(
    client: OutboundClient, server: TestServer
) -> None:
    client.fetch(server.url("/image"), headers={"user-agent": "webhook-sender/1"})

    (seen,) = server.requests
    assert [v for k, v in seen.headers.items() if k.lower() == "user-agent"] == ["webhook-sender/1"]


# -- HTTP statuses -----------------------------------------------------------------------------


def test_404_is_not_retryable(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/missing"))

    assert error.kind == "http_status"
    assert error.status == 404
    assert error.message == "the server answered 404 Not Found"
    assert not error.retryable
    assert error.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 403, 410, 451])
def test_other_4xx_are_not_retryable(
    client: OutboundClient, server: TestServer, status: int
) -> None:
    error = _fails(client, server.url(f"/status/{status}"))

    assert (error.kind, error.status, error.retryable) == ("http_status", status, False)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_are_retryable(client: OutboundClient, server: TestServer, status: int) -> None:
    error = _fails(client, server.url(f"/status/{status}"))

    assert (error.kind, error.status, error.retryable) == ("http_status", status, True)
    assert error.message.startswith(f"the server answered {status} ")


def test_429_with_retry_after_is_retryable(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/status/429?retry_after=30"))

    assert error.kind == "http_status"
    assert error.retryable
    assert error.retry_after == 30.0
    assert error.message == (
        "the server answered 429 Too Many Requests; it asked to retry after 30 s"
    )


def test_503_with_a_retry_after_date(client: OutboundClient, server: TestServer) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    stamp = later.strftime("%a, %d %b %Y %H:%M:%S GMT").replace(" ", "%20").replace(",", "%2C")

    error = _fails(client, server.url(f"/status/503?retry_after={stamp}"))

    assert error.retryable
    assert error.retry_after is not None
    assert 3000 < error.retry_after <= 3600


# -- redirects ---------------------------------------------------------------------------------


def test_a_chain_of_five_redirects_is_followed(client: OutboundClient, server: TestServer) -> None:
    result = client.fetch(server.url("/chain/4"))

    assert result.content == IMAGE
    assert result.url == server.url("/image")
    assert result.redirects == tuple(server.url(f"/chain/{n}") for n in (4, 3, 2, 1, 0))


def test_more_than_five_redirects_fail(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/chain/5"))

    assert error.kind == "too_many_redirects"
    assert not error.retryable
    assert "gave up after 5" in error.message
    assert len(server.requests) == 6  # the sixth redirect is never followed


def test_max_redirects_is_configurable(server: TestServer) -> None:
    with OutboundClient(allowed_networks=LOOPBACK, max_redirects=0) as client:
        assert _fails(client, server.url("/chain/0")).kind == "too_many_redirects"


def test_relative_redirect(client: OutboundClient, server: TestServer) -> None:
    result = client.fetch(server.url("/to?url=image%3Ftype%3Dimage/gif&status=301"))

    assert result.url == server.url("/image?type=image/gif")
    assert result.content_type == "image/gif"


def test_redirects_can_be_refused_by_the_caller(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/chain/0"), follow_redirects=False)

    assert error.kind == "http_status"
    assert error.status == 302
    assert "a redirect, not followed here" in error.message


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "refused: 169.254.169.254 is the cloud metadata service address",
        ),
        ("http://10.0.0.1/admin", "refused: 10.0.0.1 is a private address"),
        ("http://[fd00:ec2::254]/", "refused: fd00:ec2::254 is the cloud metadata"),
        ("http://[::ffff:10.0.0.1]/", "IPv4-mapped form of 10.0.0.1, a private address"),
        ("http://0x0a.0.0.1/", "0x0a.0.0.1 resolves to 10.0.0.1, a private address"),
    ],
)
def test_a_redirect_to_a_refused_address_fails_before_connecting(
    client: OutboundClient,
    server: TestServer,
    loopback_only: list[tuple[Any, ...]],
    target: str,
    message: str,
) -> None:
    error = _fails(client, server.url(f"/to?url={target}"))

    assert error.kind == "refused_address"
    assert not error.retryable
    assert message in error.message
    assert "in a redirect to" in error.message
    assert len(server.requests) == 1
    assert all(address[0] == "127.0.0.1" for address in loopback_only)


def test_a_redirect_to_a_name_resolving_to_a_private_address(
    client: OutboundClient,
    server: TestServer,
    dns: FakeDNS,
    loopback_only: list[tuple[Any, ...]],
) -> None:
    dns.answers["internal.test"] = ["10.0.0.7"]

    error = _fails(client, server.url("/to?url=http://internal.test/secret"))

    assert error.kind == "refused_address"
    assert error.message == (
        "refused: internal.test resolves to 10.0.0.7, a private address "
        "(in a redirect to http://internal.test/secret)"
    )
    assert error.url == "http://internal.test/secret"
    assert dns.calls == ["internal.test"]
    assert len(loopback_only) == 1  # the first hop only


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://example.com/a"]
)
def test_a_redirect_to_another_scheme_fails(
    client: OutboundClient, server: TestServer, target: str
) -> None:
    error = _fails(client, server.url(f"/to?url={target}"))

    assert error.kind == "bad_url"
    assert "only http and https" in error.message


def test_a_redirect_carrying_credentials_fails(client: OutboundClient, server: TestServer) -> None:
    target = server.url("/image").replace("http://", "http://user:pw@")

    error = _fails(client, server.url(f"/to?url={target}"))

    assert error.kind == "bad_url"
    assert "user name or password" in error.message


def test_see_other_turns_a_post_into_a_get(client: OutboundClient, server: TestServer) -> None:
    result = client.fetch(
        server.url("/to?url=/echo&status=303"),
        method="POST",
        content=b"payload",
        headers={"Content-Type": "text/plain"},
    )

    echoed = json.loads(result.content)
    assert (echoed["method"], echoed["body"]) == ("GET", "")
    assert "Content-Type" not in echoed["headers"]


def test_a_307_keeps_the_method_and_body(client: OutboundClient, server: TestServer) -> None:
    result = client.fetch(server.url("/to?url=/echo&status=307"), method="POST", content=b"hi")

    assert json.loads(result.content)[("method")] == "POST"
    assert json.loads(result.content)["body"] == "hi"


def test_credentials_are_not_handed_to_another_origin(
    client: OutboundClient, server: TestServer, dns: FakeDNS
) -> None:
    dns.answers["a.test"] = ["127.0.0.1"]
    dns.answers["b.test"] = ["127.0.0.1"]
    target = server.url("/echo", host="b.test")

    result = client.fetch(
        server.url(f"/to?url={target}", host="a.test"),
        headers={"Authorization": "Bearer secret", "X-Trace": "kept"},
    )

    echoed = json.loads(result.content)["headers"]
    assert "Authorization" not in echoed
    assert echoed["X-Trace"] == "kept"
    assert server.requests[0].headers["Authorization"] == "Bearer secret"


# -- DNS and the address check -----------------------------------------------------------------


def test_without_an_allow_list_loopback_is_refused(server: TestServer) -> None:
    with OutboundClient() as client:
        error = _fails(client, server.url("/image"))

    assert error.kind == "refused_address"
    assert error.message == "refused: 127.0.0.1 is a loopback address"
    assert server.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1", "10.0.0.5"],
        ["10.0.0.5", "127.0.0.1"],
        ["127.0.0.1", "169.254.169.254"],
        ["127.0.0.1", "::ffff:10.0.0.5"],
        ["127.0.0.1", "fd00::5"],
    ],
)
def test_a_dns_answer_mixing_allowed_and_refused_addresses_fails(
    client: OutboundClient,
    server: TestServer,
    dns: FakeDNS,
    loopback_only: list[tuple[Any, ...]],
    answer: list[str],
) -> None:
    dns.answers["mixed.test"] = answer
    refused = ipaddress.ip_address(next(a for a in answer if a != "127.0.0.1"))

    error = _fails(client, server.url("/image", host="mixed.test"))

    assert error.kind == "refused_address"
    assert error.message.startswith(f"refused: mixed.test resolves to {refused}")
    assert loopback_only == []
    assert server.requests == []


def test_a_name_resolving_to_a_private_address_is_refused(
    client: OutboundClient, dns: FakeDNS, loopback_only: list[tuple[Any, ...]]
) -> None:
    dns.answers["intranet.test"] = ["192.168.1.10"]

    error = _fails(client, "https://intranet.test/logo.png")

    assert error.message == "refused: intranet.test resolves to 192.168.1.10, a private address"
    assert loopback_only == []


def test_dns_rebinding_cannot_move_the_connection(
    dns: FakeDNS, loopback_only: list[tuple[Any, ...]]
) -> None:
    """The name answers 127.0.0.1 (allowed) the first time and 127.0.0.2 (not allowed here)
    after that. A guard that checked one answer and let the HTTP library resolve again would
    connect to the second; the connection must go to the address that was checked."""
    good = TestServer("127.0.0.1")
    evil = TestServer("127.0.0.2", port=good.port)
    try:
        dns.answers["rebind.test"] = [["127.0.0.1"], ["127.0.0.2"]]
        with OutboundClient(allowed_networks=["127.0.0.1/32"]) as client:
            result = client.fetch(good.url("/image", host="rebind.test"))

            assert evil.connections == 0
            assert result.content == IMAGE
            assert dns.calls == ["rebind.test"]
            assert [address[0] for address in loopback_only] == ["127.0.0.1"]
            assert len(good.requests) == 1

        with OutboundClient(allowed_networks=["127.0.0.1/32"]) as client:
            error = _fails(client, good.url("/image", host="rebind.test"))

        assert error.message == "refused: rebind.test resolves to 127.0.0.2, a loopback address"
        assert evil.requests == []
        assert evil.connections == 0
    finally:
        good.close()
        evil.close()


def test_unknown_names_fail_without_retry(client: OutboundClient) -> None:
    error = _fails(client, "http://nowhere.test/a.jpg")

    assert error.kind == "dns"
    assert error.message == "could not resolve nowhere.test: Name or service not known"
    assert not error.retryable


def test_a_temporary_dns_failure_is_retryable(client: OutboundClient, dns: FakeDNS) -> None:
    dns.failures["flaky.test"] = socket.EAI_AGAIN

    error = _fails(client, "http://flaky.test/a.jpg")

    assert error.kind == "dns"
    assert error.retryable


def test_proxies_from_the_environment_are_not_used(
    monkeypatch: pytest.MonkeyPatch, client: OutboundClient, server: TestServer
) -> None:
    proxy = TestServer()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "")

        assert client.fetch(server.url("/image")).content == IMAGE
        assert _fails(client, "http://10.0.0.1/").kind == "refused_address"
        with OutboundClient(allowed_networks=LOOPBACK) as fresh:
            assert fresh.fetch(server.url("/image")).content == IMAGE
        assert proxy.requests == []
        assert proxy.connections == 0
    finally:
        proxy.close()


# -- bad URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/a.jpg",
        "gopher://127.0.0.1:70/_stats",
        "javascript:alert(document.cookie)",
    ],
)
def test_bad_schemes_are_refused_without_traffic(
    client: OutboundClient, loopback_only: list[tuple[Any, ...]], url: str
) -> None:
    error = _fails(client, url)

    assert error.kind == "bad_url"
    assert not error.retryable
    assert loopback_only == []


def test_credentials_in_the_url_are_refused(
    client: OutboundClient, server: TestServer, loopback_only: list[tuple[Any, ...]]
) -> None:
    error = _fails(client, server.url("/image").replace("http://", "http://admin:hunter2@"))

    assert error.kind == "bad_url"
    assert error.message == (
        "not accepted: URLs carrying a user name or password (user:password@) are refused"
    )
    assert loopback_only == []


# -- size cap ----------------------------------------------------------------------------------

BIG = 256 * 1024 * 1024
CAP = 256 * 1024


@pytest.mark.parametrize("length", ["yes", "no"])
def test_a_body_over_the_cap_stops_the_download(
    client: OutboundClient, server: TestServer, length: str
) -> None:
    error = _fails(client, server.url(f"/big?size={BIG}&length={length}"), max_bytes=CAP)

    assert error.kind == "too_large"
    assert not error.retryable
    if length == "yes":
        assert error.message == ("too large: the server announced 256 MiB, over the 256 KiB limit")
    else:
        assert error.message == ("too large: the body is over the 256 KiB limit; stopped reading")
    # The client hung up: the server could not push the whole body (only what fits in the
    # socket buffers on the way).
    assert server.done.wait(WAIT)
    assert server.sent < BIG // 4


def test_a_body_exactly_at_the_cap_is_accepted(client: OutboundClient, server: TestServer) -> None:
    result = client.fetch(server.url(f"/big?size={CAP}&length=no"), max_bytes=CAP)

    assert len(result.content) == CAP


def test_the_default_cap_comes_from_the_client(server: TestServer) -> None:
    with OutboundClient(allowed_networks=LOOPBACK, max_bytes=1000) as client:
        assert _fails(client, server.url("/image")).kind == "too_large"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_a_compressed_body_is_decoded(
    client: OutboundClient, server: TestServer, encoding: str
) -> None:
    assert client.fetch(server.url(f"/encoded?encoding={encoding}")).content == IMAGE


def test_a_compression_bomb_is_stopped_at_the_cap(
    client: OutboundClient, server: TestServer
) -> None:
    size = 64 * 1024 * 1024  # 64 MiB of zeros: about 64 KiB on the wire
    error = _fails(client, server.url(f"/encoded?encoding=gzip&size={size}"), max_bytes=CAP)

    assert error.kind == "too_large"


def test_an_encoding_we_cannot_decode(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/encoded?encoding=br"))

    assert error.kind == "protocol"
    assert "(br)" in error.message
    assert not error.retryable


# -- time limits and broken servers -------------------------------------------------------------


def test_a_slow_body_hits_the_total_deadline(client: OutboundClient, server: TestServer) -> None:
    """The server sends a byte every 50 ms, so no single wait times out; only the deadline
    over the whole fetch can end it."""
    error = _fails(client, server.url("/slow"), total_timeout=0.3)

    assert error.kind == "timeout"
    assert error.retryable
    assert "did not finish within 0.3 s" in error.message


def test_a_server_that_never_answers_hits_the_deadline(
    client: OutboundClient, server: TestServer
) -> None:
    error = _fails(client, server.url("/stall"), total_timeout=0.2)

    assert error.kind == "timeout"
    assert error.retryable


def test_a_slow_resolver_hits_the_deadline(
    client: OutboundClient, server: TestServer, dns: FakeDNS
) -> None:
    """getaddrinfo takes no timeout; a resolver that hangs must not hold a fetch (nor a
    worker) past the fetch's deadline: the fetch gives up while the lookup still hangs."""
    dns.answers["slow-dns.test"] = ["127.0.0.1"]
    dns.stalls["slow-dns.test"] = stall = threading.Event()
    try:
        error = _fails(client, server.url("/image", host="slow-dns.test"), total_timeout=0.3)
        assert dns.resolved == []  # given up on, not waited for
    finally:
        stall.set()

    assert error.kind == "timeout"
    assert error.retryable
    assert "did not finish within 0.3 s" in error.message
    assert server.requests == []


def test_the_deadline_covers_redirects(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/to?url=/slow"), total_timeout=1.0)

    assert error.kind == "timeout"
    assert len(server.requests) == 2


def test_a_closed_port_is_a_retryable_connect_error(client: OutboundClient) -> None:
    error = _fails(client, f"http://127.0.0.1:{free_port()}/a.jpg")

    assert error.kind == "connect"
    assert error.retryable
    assert "could not connect to 127.0.0.1" in error.message


def test_a_connect_timeout_is_retryable(
    monkeypatch: pytest.MonkeyPatch, client: OutboundClient, server: TestServer
) -> None:
    def unanswered(self: socket.socket, address: Any) -> None:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket.socket, "connect", unanswered)

    error = _fails(client, server.url("/image"), connect_timeout=0.5)

    assert error.kind == "timeout"
    assert error.retryable
    assert error.message == "timed out: could not connect to 127.0.0.1 within 0.5 s"


def test_a_server_hanging_up_is_retryable(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/hangup"))

    assert error.kind == "protocol"
    assert error.retryable


def test_a_garbled_response(client: OutboundClient, server: TestServer) -> None:
    error = _fails(client, server.url("/garbage"))

    assert error.kind == "protocol"


# -- TLS ---------------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A private CA and a certificate for images.test (a DNS name only, no IP address)."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpsDeck test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = folder / "server.pem"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file)
    return Certificates(ca_file, context)


@pytest.fixture
def tls_server(certificates: Certificates, dns: FakeDNS) -> Iterator[TestServer]:
    dns.answers["images.test"] = ["127.0.0.1"]
    dns.answers["other.test"] = ["127.0.0.1"]
    running = TestServer(tls=certificates.server_context)
    yield running
    running.close()


def test_tls_verifies_the_host_name_while_connecting_to_the_checked_address(
    certificates: Certificates, tls_server: TestServer, loopback_only: list[tuple[Any, ...]]
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificates.ca_file))
    with OutboundClient(allowed_networks=LOOPBACK, ssl_context=trusted) as client:
        result = client.fetch(tls_server.url("/image", host="images.test", scheme="https"))

    assert result.content == IMAGE
    assert tls_server.sni == ["images.test"]
    assert [address[0] for address in loopback_only] == ["127.0.0.1"]


def test_tls_refuses_a_certificate_for_another_name(
    certificates: Certificates, tls_server: TestServer
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificates.ca_file))
    with OutboundClient(allowed_networks=LOOPBACK, ssl_context=trusted) as client:
        error = _fails(client, tls_server.url("/image", host="other.test", scheme="https"))

    assert error.kind == "tls"
    assert not error.retryable
    assert "the TLS certificate of other.test was not accepted" in error.message
    assert tls_server.requests == []


def test_tls_refuses_an_untrusted_certificate(tls_server: TestServer) -> None:
    with OutboundClient(allowed_networks=LOOPBACK) as client:
        error = _fails(client, tls_server.url("/image", host="images.test", scheme="https"))

    assert error.kind == "tls"
    assert "not accepted" in error.message
    assert tls_server.requests == []


def test_https_to_a_server_that_does_not_speak_tls(server: TestServer) -> None:
    with OutboundClient(allowed_networks=LOOPBACK) as client:
        error = _fails(client, server.url("/image", scheme="https"))

    assert error.kind == "tls"
    assert error.message.startswith("the TLS handshake with 127.0.0.1 failed")
