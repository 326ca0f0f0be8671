"""Attachments: stored in the media store, downloaded only by who sees the incident, served
as downloads with the detected type; images get a preview from the real images pipeline."""

from __future__ import annotations

from typing import Any

import pyvips
from fastapi.testclient import TestClient

from tests.conftest import fields_of
from tests.incidents.conftest import INCIDENTS, Declare
from tests.stack import wait_until


def _png(width: int = 1200, height: int = 800) -> bytes:
    image = pyvips.Image.xyz(width, height)[0].cast("uchar")
    data: bytes = image.pngsave_buffer()
    return data


def test_a_file_is_attached_listed_and_downloaded_as_an_attachment(
    client: TestClient,
    member_headers: dict[str, str],
    outsider_headers: dict[str, str],
    declare: Declare,
) -> None:
    number = declare(member_headers, visibility="restricted")["number"]
    page = b"<html><script>alert(1)</script></html>"
    response = client.post(
        f"{INCIDENTS}/{number}/attachments",
        files={"file": ("..\\..\\evil.html", page, "text/html")},
        headers=member_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "evil.html"
    assert body["content_type"] == "application/octet-stream"
    assert body["size"] == len(page)
    assert body["preview"] == "none"
    listed = client.get(f"{INCIDENTS}/{number}/attachments", headers=member_headers).json()
    assert [a["id"] for a in listed] == [body["id"]]
    download = client.get(body["download_url"], headers=member_headers)
    assert download.status_code == 200
    assert download.content == page
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    # The outsider sees nothing of a restricted incident's files.
    assert client.get(body["download_url"], headers=outsider_headers).status_code == 404
    assert (
        client.get(f"{INCIDENTS}/{number}/attachments", headers=outsider_headers).status_code == 404
    )
    refused = client.post(
        f"{INCIDENTS}/{number}/attachments",
        files={"file": ("x.txt", b"x", "text/plain")},
        headers=outsider_headers,
    )
    assert refused.status_code == 404
    events = client.get(f"{INCIDENTS}/{number}/timeline", headers=member_headers).json()["items"]
    assert events[-1]["kind"] == "attachment_added"
    assert events[-1]["new_value"] == "evil.html"


def test_only_the_uploader_or_an_admin_removes_an_attachment(
    client: TestClient,
    member_headers: dict[str, str],
    outsider_headers: dict[str, str],
    admin_headers: dict[str, str],
    declare: Declare,
) -> None:
    number = declare(member_headers)["number"]
    body = client.post(
        f"{INCIDENTS}/{number}/attachments",
        files={"file": ("notes.txt", b"notes", "text/plain")},
        headers=member_headers,
    ).json()
    url = body["download_url"]
    assert client.delete(url, headers=outsider_headers).status_code == 403
    assert client.delete(url, headers=admin_headers).status_code == 204
    assert client.get(url, headers=member_headers).status_code == 404
    assert client.get(f"{INCIDENTS}/{number}/attachments", headers=member_headers).json() == []


def test_a_file_over_the_limit_is_a_413_naming_the_file(
    client: TestClient, member_headers: dict[str, str], declare: Declare, settings: Any
) -> None:
    number = declare(member_headers)["number"]
    response = client.post(
        f"{INCIDENTS}/{number}/attachments",
        files={
            "file": ("big.bin", b"\0" * (settings.max_file_size + 1), "application/octet-stream")
        },
        headers=member_headers,
    )
    assert response.status_code == 413
    assert client.get(f"{INCIDENTS}/{number}/attachments", headers=member_headers).json() == []
    missing = client.post(f"{INCIDENTS}/{number}/attachments", headers=member_headers)
    assert missing.status_code == 422
    assert fields_of(missing) == {"body.file"}


def test_an_image_gets_a_preview_from_the_images_pipeline(
    client: TestClient, member_headers: dict[str, str], declare: Declare, celery_worker: Any
) -> None:
    number = declare(member_headers)["number"]
    body = client.post(
        f"{INCIDENTS}/{number}/attachments",
        files={"file": ("graph.png", _png(), "image/png")},
        headers=member_headers,
    ).json()
    assert body["content_type"] == "image/png"
    assert body["preview"] in ("pending", "ready")

    def ready() -> dict[str, Any] | None:
        items = client.get(f"{INCIDENTS}/{number}/attachments", headers=member_headers).json()
        return items[0] if items[0]["preview"] == "ready" else None

    done = wait_until(ready, message="the attachment's preview")
    preview = client.get(done["preview_url"], headers=member_headers)
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/webp"
    image = pyvips.Image.new_from_buffer(preview.content, "")
    assert (image.width, image.height) == (640, 427)
