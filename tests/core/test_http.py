"""The HTTP edge every module shares: security headers, CORS, body limits, the error shape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsdeck.core.http import BodySizeLimitMiddleware
from opsdeck.core.observability import REQUEST_ID_HEADER
from opsdeck.settings import Settings
from tests.core.conftest import TEST_PREFIX, AppFactory, JsonLog, Probe

TRUSTED_ORIGIN = "https://ops.example.com"
OTHER_ORIGIN = "https://evil.example.net"


def _assert_security_headers(headers: httpx.Headers) -> None:
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["x-frame-options"] == "DENY"


# -- security headers -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/api/v1/openapi.json", "/api/docs"])
def test_security_headers_on_every_response(kernel_client: TestClient, path: str) -> None:
    response = kernel_client.get(path)

    assert response.status_code == 200
    _assert_security_headers(response.headers)
    assert "strict-transport-security" not in response.headers


def test_api_responses_forbid_every_source(kernel_client: TestClient) -> None:
    csp = kernel_client.get("/health").headers["content-security-policy"]

    assert "default-src 'none'" in csp


def test_web_app_pages_allow_only_their_own_scripts(kernel_client: TestClient) -> None:
    csp = kernel_client.get("/api/docs").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))

    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/no-such-thing"), ("DELETE", "/health"), ("GET", f"{TEST_PREFIX}/boom")],
)
def test_security_headers_and_request_id_on_errors_too(
    kernel_client: TestClient, json_log: JsonLog, method: str, path: str
) -> None:
    response = kernel_client.request(method, path)

    assert response.status_code >= 400
    _assert_security_headers(response.headers)
    assert response.headers[REQUEST_ID_HEADER]


def test_hsts_only_over_https(kernel_app: tuple[FastAPI, Probe]) -> None:
    app, _ = kernel_app
    with TestClient(app, base_url="https://opsdeck.example.com") as secure:
        over_https = secure.get("/health")
    with TestClient(app, base_url="http://opsdeck.example.com") as plain:
        over_http = plain.get("/health")

    assert over_https.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "strict-transport-security" not in over_http.headers


# -- CORS -------------------------------------------------------------------------------------


def _preflight(client: TestClient, origin: str) -> httpx.Response:
    response: httpx.Response = client.options(
        f"{TEST_PREFIX}/echo",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, X-CSRF-Token",
        },
    )
    return response


def test_cors_is_closed_by_default(kernel_client: TestClient) -> None:
    preflight = _preflight(kernel_client, TRUSTED_ORIGIN)
    simple = kernel_client.get("/health", headers={"Origin": TRUSTED_ORIGIN})

    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


@pytest.fixture
def cors_client(app_with: AppFactory) -> Iterator[TestClient]:
    app = app_with(cors_origins=TRUSTED_ORIGIN)  # as the environment variable gives it
    with TestClient(app) as client:
        yield client


def test_cors_preflight_from_a_configured_origin(cors_client: TestClient) -> None:
    response = _preflight(cors_client, TRUSTED_ORIGIN)

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == TRUSTED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-csrf-token" in response.headers["access-control-allow-headers"].lower()


def test_cors_simple_request_from_a_configured_origin_exposes_the_request_id(
    cors_client: TestClient,
) -> None:
    response = cors_client.get("/health", headers={"Origin": TRUSTED_ORIGIN})

    assert response.headers["access-control-allow-origin"] == TRUSTED_ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
    assert "retry-after" in exposed


@pytest.mark.parametrize("path", ["boom", "boom-database"])
def test_a_500_carries_no_cors_headers(app_with: AppFactory, path: str) -> None:
    app = app_with(cors_origins=TRUSTED_ORIGIN)
    with TestClient(app, raise_server_exceptions=False) as client:
        fine = client.get("/health", headers={"Origin": TRUSTED_ORIGIN})
        crashed = client.get(f"{TEST_PREFIX}/{path}", headers={"Origin": TRUSTED_ORIGIN})

    assert fine.headers["access-control-allow-origin"] == TRUSTED_ORIGIN
    assert crashed.status_code == 500
    assert crashed.json()["error"]["code"] == "internal_error"
    # A cross-origin page cannot read what went wrong on the server.
    assert not [name for name in crashed.headers if name.startswith("access-control-")]
    assert crashed.headers[REQUEST_ID_HEADER]


def test_cors_refuses_other_origins_even_when_open(cors_client: TestClient) -> None:
    preflight = _preflight(cors_client, OTHER_ORIGIN)
    simple = cors_client.get("/health", headers={"Origin": OTHER_ORIGIN})

    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


# -- body size limit ---------------------------------------------------------------------------


def _assert_too_large(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": "payload_too_large",
            "message": (
                f"The request body is larger than the {limit:,}-byte limit for this endpoint."
            ),
            "details": [
                {
                    "message": (
                        f"The request body is larger than the {limit:,}-byte limit for this "
                        "endpoint."
                    ),
                    "limit_bytes": limit,
                }
            ],
        }
    }
    assert response.headers[REQUEST_ID_HEADER]
    _assert_security_headers(response.headers)


def test_a_body_at_the_limit_is_accepted(
    kernel_client: TestClient, probe: Probe, settings: Settings
) -> None:
    response = kernel_client.post(f"{TEST_PREFIX}/echo", content=b"x" * settings.max_request_bytes)

    assert response.status_code == 200
    assert response.json() == {"received_bytes": settings.max_request_bytes}
    assert probe.bodies_read == [settings.max_request_bytes]


def test_a_declared_content_length_over_the_limit_is_refused_unread(
    kernel_client: TestClient, probe: Probe, settings: Settings
) -> None:
    limit = settings.max_request_bytes
    response = kernel_client.post(f"{TEST_PREFIX}/echo", content=b"x" * (limit + 1))

    _assert_too_large(response, limit)
    assert probe.bodies_read == []


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        (f"{TEST_PREFIX}/echo", "application/octet-stream"),  # reads the raw body
        (f"{TEST_PREFIX}/widgets", "application/json"),  # a validated JSON body
        ("/api/v1/auth/token", "application/x-www-form-urlencoded"),  # the login form
    ],
)
def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(
    kernel_client: TestClient, probe: Probe, settings: Settings, path: str, content_type: str
) -> None:
    limit = settings.max_request_bytes
    chunk = b"y" * 65_536
    chunks = limit // len(chunk) + 2

    def body() -> Iterator[bytes]:
        for _ in range(chunks):
            yield chunk

    response = kernel_client.post(path, content=body(), headers={"Content-Type": content_type})

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    _assert_too_large(response, limit)
    assert probe.bodies_read == []


def _asgi_post(app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}

    async def call() -> None:
        await app(scope, receive, send)

    asyncio.run(call())
    return statuses[0]


async def _read_body(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_upload_paths_can_have_a_larger_limit_than_the_rest() -> None:
    limited = BodySizeLimitMiddleware(
        _read_body, default_limit=1024, limits={"/api/v1/uploads": 8192}
    )
    body = b"u" * 4096
    length = [(b"content-length", b"4096")]

    assert _asgi_post(limited, "/api/v1/uploads/images", length, body) == 204
    assert _asgi_post(limited, "/api/v1/uploads/images", [], body) == 204
    assert _asgi_post(limited, "/api/v1/incidents", length, body) == 413
    assert _asgi_post(limited, "/api/v1/incidents", [], body) == 413


def test_the_longest_matching_prefix_decides_and_a_star_matches_one_segment() -> None:
    limited = BodySizeLimitMiddleware(
        _read_body,
        default_limit=1024,
        limits={"/api/v1/things": 2048, "/api/v1/things/*/files": 8192},
    )
    body = b"u" * 4096
    length = [(b"content-length", b"4096")]

    assert _asgi_post(limited, "/api/v1/things/12/files", length, body) == 204
    assert _asgi_post(limited, "/api/v1/things/12/files", [], body) == 204
    assert _asgi_post(limited, "/api/v1/things/12/notes", length, body) == 413
    assert _asgi_post(limited, "/api/v1/things/12/notes", length[:0], b"u" * 2000) == 204
    assert _asgi_post(limited, "/api/v1/things//files", length, body) == 413
    assert _asgi_post(limited, "/api/v1/other", length[:0], b"u" * 2000) == 413


def test_a_malformed_content_length_is_refused_unread() -> None:
    limited = BodySizeLimitMiddleware(_read_body, default_limit=1024, limits={})

    assert _asgi_post(limited, "/api/v1/x", [(b"content-length", b"12abc")], b"") == 413
    assert _asgi_post(limited, "/api/v1/x", [(b"content-length", b"-1")], b"") == 413


def test_a_raised_limit_applies(app_with: AppFactory) -> None:
    app = app_with(max_request_bytes=4096)
    with TestClient(app) as small:
        refused = small.post(f"{TEST_PREFIX}/echo", content=b"z" * 4097)
        accepted = small.post(f"{TEST_PREFIX}/echo", content=b"z" * 4096)

    _assert_too_large(refused, 4096)
    assert accepted.status_code == 200


# -- the error shape ----------------------------------------------------------------------------


def test_unknown_api_path_is_a_json_404(kernel_client: TestClient) -> None:
    response = kernel_client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not Found", "details": []}
    }


def test_wrong_method_is_a_json_405_naming_the_allowed_ones(kernel_client: TestClient) -> None:
    response = kernel_client.delete("/health")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET"


def test_a_405_names_every_method_of_every_route_at_the_path(kernel_client: TestClient) -> None:
    # GET and POST /api/v1/images/batches are two routes; Starlette's 405 named the first's only.
    response = kernel_client.delete("/api/v1/images/batches")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, POST"


def test_validation_errors_name_every_field_by_its_path(kernel_client: TestClient) -> None:
    response = kernel_client.post(
        f"{TEST_PREFIX}/widgets", json={"name": "", "size": "big", "tags": ["ok", 5]}
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    fields = [d["field"] for d in error["details"]]
    assert fields == ["body.name", "body.size", "body.tags.1"]
    assert error["message"] == "Invalid request: check body.name, body.size, body.tags.1."
    assert all(d["message"] and d["type"] for d in error["details"])


def test_validation_errors_in_path_and_query(kernel_client: TestClient) -> None:
    response = kernel_client.get(f"{TEST_PREFIX}/widgets/seven", params={"verbose": "perhaps"})

    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["path.widget_id", "query.verbose"]


def test_malformed_json_is_a_422_not_a_crash(kernel_client: TestClient) -> None:
    response = kernel_client.post(
        f"{TEST_PREFIX}/widgets",
        content=b'{"name": "w", "size": ',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_a_crash_is_a_500_that_leaks_nothing_and_is_logged_with_its_request_id(
    kernel_client: TestClient, json_log: JsonLog
) -> None:
    response = kernel_client.get(f"{TEST_PREFIX}/boom", headers={REQUEST_ID_HEADER: "crash-1"})

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "Something went wrong on our side; it has been logged.",
            "details": [],
        }
    }
    for secret in ("hunter2", "Traceback", "RuntimeError", "core_tests", ".py"):
        assert secret not in response.text
    assert response.headers[REQUEST_ID_HEADER] == "crash-1"
    [logged] = json_log.find(event="unhandled_error")
    assert logged["request_id"] == "crash-1"
    assert logged["level"] == "error"
    assert logged["exc_type"] == "RuntimeError"
    assert "hunter2" in logged["exception"]  # the operator sees what the user must not
    [access] = json_log.find(event="request", request_id="crash-1")
    assert access["status"] == 500
