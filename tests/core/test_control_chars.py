"""NUL and other control characters are refused at the edge with a 422 naming the field, on
both databases alike. On PostgreSQL each of these requests answered 500 (`DataError: text
fields cannot contain NUL`), three of them without signing in; SQLite answered 401 or 404."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.core.control_chars import BIDI_CONTROLS, strip_bidi_controls
from opsdeck.images.models import ImageBatch


def _refused(response: Any, *fields: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == list(fields)
    assert all(d["type"] == "control_character" for d in error["details"])
    assert (
        "Control characters (such as NUL) are not allowed here." in error["details"][0]["message"]
    )


def test_signed_out_requests_with_nul_are_422_naming_the_field(client: TestClient) -> None:
    _refused(
        client.post(
            "/api/v1/auth/token",
            content=b"username=ab%00c&password=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        "body.username",
    )
    _refused(
        client.post("/api/v1/auth/session", json={"username": "ab\u0000c", "password": "x"}),
        "body.username",
    )
    _refused(client.get("/media/a%00b.jpg"), "path")


def test_signed_in_requests_with_controls_are_422_naming_each_field(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    _refused(
        client.get("/api/v1/users", params={"q": "ro\x00ot"}, headers=admin_headers), "query.q"
    )
    _refused(client.get("/api/v1/audit?actor=%1b%5b2J", headers=admin_headers), "query.actor")
    _refused(client.get("/api/v1/users/ab%00cd", headers=admin_headers), "path")
    _refused(
        client.patch(
            "/api/v1/users/me",
            json={"display_name": "Bob\u0007", "nested": {"list": ["ok", "x\u0000"]}},
            headers=admin_headers,
        ),
        "body.display_name",
        "body.nested.list[1]",
    )
    _refused(
        client.post("/api/v1/users/me/tokens", json={"\u0000": 1}, headers=admin_headers),
        "body.?",
    )


def test_text_with_tabs_and_line_breaks_still_passes(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    """Only the controls that make no sense are refused: a body may hold tab, LF and CR, and
    the request reaches the route whole after being read here."""
    response = client.patch(
        "/api/v1/users/me", json={"display_name": "Root\tAdmin"}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "Root\tAdmin"
    assert (
        client.get("/api/v1/users", params={"q": "root"}, headers=admin_headers).status_code == 200
    )


BIDI = [chr(c) for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def test_the_bidirectional_controls_are_the_twelve_of_unicode() -> None:
    assert set(BIDI) == BIDI_CONTROLS


@pytest.mark.parametrize("char", BIDI, ids=lambda c: f"U+{ord(c):04X}")
def test_bidirectional_controls_are_stripped(char: str) -> None:
    assert strip_bidi_controls(f"{char}invoice{char}_fdp.exe{char}") == "invoice_fdp.exe"


def test_other_text_is_kept_as_it_is() -> None:
    hebrew, arabic = "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627"
    family = "\U0001f468\u200d\U0001f469"  # the zero-width joiner is not a bidi control
    text = f"Blue mug {hebrew} {arabic} {family} \t\n"
    assert strip_bidi_controls(text) == text


CSV = b"S. No.,Product Name,Input Image Urls\r\n1,SKU1,http://127.0.0.1:9/a.jpg\r\n"


def _csv_upload(client: TestClient, headers: dict[str, str], **fields: str) -> Any:
    return client.post(
        "/api/v1/images/batches",
        headers=headers,
        files={"file": ("p.csv", CSV, "text/csv")},
        data=fields,
    )


def test_multipart_text_fields_with_controls_are_422_naming_each_field(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    """Like JSON and form fields: on PostgreSQL a NUL reaching a text column was a 500."""
    _refused(
        _csv_upload(
            client,
            admin_headers,
            webhook_url="https://hooks.example.com/a\x00b",
            operations='{"format": "\x1b[2Jwebp"}',
        ),
        "body.webhook_url",
        "body.operations",
    )
    # Before authentication, as at the edge.
    _refused(_csv_upload(client, {}, webhook_url="x\x07"), "body.webhook_url")
    # A part's name counts too (httpx would escape it: the body is written by hand).
    raw = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + CSV + b"\r\n"
        b'--b\r\nContent-Disposition: form-data; name="we\x1bhook"\r\n\r\nx\r\n--b--\r\n'
    )
    _refused(
        client.post(
            "/api/v1/images/batches",
            content=raw,
            headers={**admin_headers, "Content-Type": "multipart/form-data; boundary=b"},
        ),
        "body.we?hook",
    )
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(ImageBatch)) == 0
    db.commit()


def test_multipart_text_with_line_breaks_and_binary_files_pass(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = _csv_upload(client, admin_headers, operations='{\r\n\t"format": "webp"\n}')
    assert response.status_code == 202, response.text
    # File contents are binary and not looked into: a NUL in a CSV file is the CSV check's.
    binary = client.post(
        "/api/v1/images/batches",
        headers=admin_headers,
        files={"file": ("p.csv", CSV + b"2,SKU\x002,http://127.0.0.1:9/b.jpg\r\n", "text/csv")},
    )
    assert binary.status_code != 422 or all(
        d.get("type") != "control_character" for d in binary.json()["error"]["details"]
    )
