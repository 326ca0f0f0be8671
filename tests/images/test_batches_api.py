"""The images API at the edge: what a request is answered with, and that a refused request
stores nothing. The worker side is in test_pipeline.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.images.models import ImageBatch, ImageItem, ImageProduct
from tests.conftest import UserFactory, make_settings, sign_in

API = "/api/v1/images"
# Port 9 on loopback refuses connections: if a worker is running it retries these for a while,
# so a batch made here stays unfinished for the length of a test.
CSV = (
    b"S. No.,Product Name,Input Image Urls\r\n"
    b'1,SKU1,"http://127.0.0.1:9/a.jpg, http://127.0.0.1:9/b.jpg"\r\n'
    b"2,=SKU2,http://127.0.0.1:9/c.png\r\n"
)


@pytest.fixture
def alice(client: TestClient, make_user: UserFactory) -> dict[str, str]:
    make_user("alice")
    return sign_in(client, "alice")


def _upload(client: TestClient, headers: dict[str, str], data: bytes = CSV, **fields: str) -> Any:
    return client.post(
        f"{API}/batches", headers=headers, files={"file": ("p.csv", data, "text/csv")}, data=fields
    )


def _stored(db: Session) -> tuple[int, int, int]:
    counts = (
        db.scalar(select(func.count()).select_from(ImageBatch)) or 0,
        db.scalar(select(func.count()).select_from(ImageProduct)) or 0,
        db.scalar(select(func.count()).select_from(ImageItem)) or 0,
    )
    db.commit()  # ends the read: on SQLite it holds the write lock
    return counts


def test_csv_batch_is_accepted_at_once(
    client: TestClient, alice: dict[str, str], db: Session
) -> None:
    response = _upload(client, alice)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["total_images"] == 3
    assert body["processed_images"] == 0
    assert response.headers["location"] == f"{API}/batches/{body['request_id']}"
    assert body["output_csv_url"].endswith(f"{API}/batches/{body['request_id']}/output.csv")
    assert _stored(db) == (1, 2, 3)

    detail = client.get(f"{API}/batches/{body['request_id']}", headers=alice).json()
    assert detail["operations"] == {
        "quality": 50,
        "format": "keep",
        "max_width": None,
        "max_height": None,
        "animated": False,
    }
    assert [p["serial_number"] for p in detail["products"]] == ["1", "2"]
    assert [i["input_url"] for i in detail["products"][0]["images"]] == [
        "http://127.0.0.1:9/a.jpg",
        "http://127.0.0.1:9/b.jpg",
    ]
    # A worker may already have picked them up (the integration stack runs one).
    assert {i["status"] for p in detail["products"] for i in p["images"]} <= {
        "pending",
        "processing",
    }


def test_semicolon_and_tab_csvs_are_accepted_and_their_output_uses_commas(
    client: TestClient, alice: dict[str, str]
) -> None:
    for separator in (";", "\t"):
        header = separator.join(["\ufeffS. No.", "Product Name", "Input Image Urls"])
        row = separator.join(
            ["1", "Café, 250 g", "http://127.0.0.1:9/a.jpg,http://127.0.0.1:9/b.jpg"]
        )
        data = f"{header}\r\n{row}\r\n"
        response = _upload(client, alice, data=data.encode())

        assert response.status_code == 202, response.text
        assert response.json()["total_images"] == 2
        request_id = response.json()["request_id"]
        output = client.get(f"{API}/batches/{request_id}/output.csv", headers=alice)
        assert output.status_code == 200
        lines = output.content.decode("utf-8-sig").splitlines()
        assert lines[0] == "S. No.,Product Name,Input Image Urls,Output Image Urls,Errors"
        assert lines[1].startswith('1,"Café, 250 g",')


def test_output_csv_before_processing_keeps_rows_and_neutralises_formulas(
    client: TestClient, alice: dict[str, str]
) -> None:
    request_id = _upload(client, alice).json()["request_id"]

    response = client.get(f"{API}/batches/{request_id}/output.csv", headers=alice)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "S. No.,Product Name,Input Image Urls,Output Image Urls,Errors"
    assert lines[2].startswith("2,'=SKU2,")
    # Two inputs, no output yet: both positions kept, empty; no errors.
    assert lines[1].endswith(',",",')


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "csv_empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 415, "csv_not_text"),
        (b"Serial,Name,Urls\n1,a,https://x.example/a.jpg\n", 422, "csv_missing_columns"),
        (b"S. No.,Product Name,Input Image Urls\n1,a,\n", 422, "csv_invalid"),
        (b"S. No.,Product Name,Input Image Urls\n1,a,ftp://x.example/a.jpg\n", 422, "csv_invalid"),
        (b"S. No.,Product Name,Input Image Urls\n1,caf\xe9,https://x.example/a.jpg\n", 422, None),
    ],
)
def test_refused_csv_stores_nothing(
    client: TestClient,
    alice: dict[str, str],
    db: Session,
    data: bytes,
    status: int,
    code: str | None,
) -> None:
    response = _upload(client, alice, data)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    if code:
        assert error["code"] == code
    assert error["message"]
    assert _stored(db) == (0, 0, 0)


def test_private_and_metadata_addresses_are_refused_at_upload_naming_row_and_url(
    client: TestClient, alice: dict[str, str], db: Session
) -> None:
    csv = (
        b"S. No.,Product Name,Input Image Urls\n"
        b"1,a,https://img.example.com/ok.jpg\n"
        b"2,b,http://169.254.169.254/latest/meta-data\n"
        b'3,c,"http://10.0.0.5/x.jpg,http://[::ffff:192.168.0.1]/y.jpg"\n'
    )
    response = _upload(client, alice, csv)

    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [(d["row"], d["value"]) for d in details] == [
        (3, "http://169.254.169.254/latest/meta-data"),
        (4, "http://10.0.0.5/x.jpg"),
        (4, "http://[::ffff:192.168.0.1]/y.jpg"),
    ]
    assert "metadata" in details[0]["message"]
    assert "private" in details[1]["message"]
    assert _stored(db) == (0, 0, 0)


def test_bad_operations_and_webhook_url_are_named(
    client: TestClient, alice: dict[str, str], db: Session
) -> None:
    bad_ops = _upload(client, alice, operations='{"quality": 0}')
    assert bad_ops.status_code == 422
    assert "quality" in str(bad_ops.json()["error"]["details"])

    not_json = _upload(client, alice, operations="{quality")
    assert not_json.status_code == 422

    bad_hook = _upload(client, alice, webhook_url="file:///etc/passwd")
    assert bad_hook.status_code == 422
    assert bad_hook.json()["error"]["details"][0]["field"] == "body.webhook_url"

    private_hook = _upload(client, alice, webhook_url="http://192.168.1.10/hook")
    assert private_hook.status_code == 422
    assert _stored(db) == (0, 0, 0)


@pytest.fixture
def small_client(base_settings: Any) -> Iterator[TestClient]:
    from opsdeck.app import create_app

    settings = make_settings(base_settings.data_dir, max_file_size=2048)
    with TestClient(create_app(settings)) as client:
        yield client


def test_file_over_the_limit_is_413(
    small_client: TestClient, make_user: UserFactory, db: Session
) -> None:
    make_user("alice")
    headers = sign_in(small_client, "alice")
    big = CSV + b"".join(
        f"{n},p{n},https://img.example.com/{n}.jpg\n".encode() for n in range(3, 200)
    )

    response = _upload(small_client, headers, big)

    assert response.status_code == 413
    assert response.json()["error"]["code"] in {"file_too_large", "payload_too_large"}
    assert _stored(db) == (0, 0, 0)


def test_batches_are_private_to_their_owner_and_admins(
    client: TestClient, alice: dict[str, str], make_user: UserFactory
) -> None:
    request_id = _upload(client, alice).json()["request_id"]
    make_user("bob")
    make_user("root", role="admin")
    bob, root = sign_in(client, "bob"), sign_in(client, "root")

    assert client.get(f"{API}/batches/{request_id}", headers=bob).status_code == 404
    assert client.get(f"{API}/batches/{request_id}/output.csv", headers=bob).status_code == 404
    assert client.post(f"{API}/batches/{request_id}/cancel", headers=bob).status_code == 404
    assert client.get(f"{API}/batches", headers=bob).json()["items"] == []
    assert client.get(f"{API}/batches/{request_id}", headers=root).status_code == 200
    assert [
        b["request_id"] for b in client.get(f"{API}/batches", headers=root).json()["items"]
    ] == [request_id]
    assert client.get(f"{API}/batches").status_code == 401


def test_list_is_newest_first_and_keyset_paged(client: TestClient, alice: dict[str, str]) -> None:
    ids = [_upload(client, alice).json()["request_id"] for _ in range(3)]

    first = client.get(f"{API}/batches", params={"limit": 2}, headers=alice).json()
    assert [b["request_id"] for b in first["items"]] == [ids[2], ids[1]]
    rest = client.get(
        f"{API}/batches", params={"limit": 2, "cursor": first["next_cursor"]}, headers=alice
    ).json()
    assert [b["request_id"] for b in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None
    oldest = client.get(f"{API}/batches", params={"sort": "created_at"}, headers=alice).json()
    assert [b["request_id"] for b in oldest["items"]] == ids
    old_first = client.get(
        f"{API}/batches", params={"sort": "created_at", "limit": 1}, headers=alice
    ).json()
    # A cursor carries its order: without `sort` the next page goes on in it; with another
    # `sort` it is refused.
    goes_on = client.get(
        f"{API}/batches", params={"cursor": old_first["next_cursor"]}, headers=alice
    ).json()
    assert [b["request_id"] for b in goes_on["items"]] == ids[1:]
    crossed = client.get(
        f"{API}/batches",
        params={"cursor": old_first["next_cursor"], "sort": "-created_at"},
        headers=alice,
    )
    assert crossed.status_code == 422

    for params, field in [
        ({"cursor": "!!"}, "query.cursor"),
        ({"limit": 101}, "query.limit"),
        ({"limit": 10**30}, "query.limit"),
        ({"sort": "status"}, "query.sort"),
    ]:
        bad = client.get(f"{API}/batches", params=params, headers=alice)
        assert bad.status_code == 422, params
        assert [d["field"] for d in bad.json()["error"]["details"]] == [field]


def test_a_huge_products_offset_is_a_422(client: TestClient, alice: dict[str, str]) -> None:
    request_id = _upload(client, alice).json()["request_id"]

    response = client.get(
        f"{API}/batches/{request_id}", params={"products_offset": 10**20}, headers=alice
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "query.products_offset"


def test_cancel_then_cancel_again_is_a_conflict(client: TestClient, alice: dict[str, str]) -> None:
    request_id = _upload(client, alice).json()["request_id"]

    cancelled = client.post(f"{API}/batches/{request_id}/cancel", headers=alice)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"{API}/batches/{request_id}/cancel", headers=alice)
    assert again.status_code == 409
    retry = client.post(f"{API}/batches/{request_id}/retry", headers=alice)
    assert retry.status_code == 409


def test_uploads_refuse_non_images_and_store_nothing(
    client: TestClient, alice: dict[str, str], db: Session, images: Any, app: FastAPI
) -> None:
    files = [
        ("files", ("a.jpg", images.jpeg_bytes(), "image/jpeg")),
        ("files", ("evil.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg")),
    ]
    objects = app.state.settings.media_dir / "objects"

    def stored_files() -> set[Any]:
        return {p for p in objects.rglob("*") if p.is_file()} if objects.exists() else set()

    before = stored_files()
    response = client.post(f"{API}/uploads", headers=alice, files=files)

    assert response.status_code == 415
    assert response.json()["error"]["details"][0]["file"] == "evil.jpg"
    assert _stored(db) == (0, 0, 0)
    assert stored_files() == before


def test_uploads_are_accepted(client: TestClient, alice: dict[str, str], images: Any) -> None:
    files = [
        ("files", ("a.jpg", images.jpeg_bytes(), "image/jpeg")),
        ("files", ("b.png", images.png_bytes(), "image/png")),
    ]
    response = client.post(
        f"{API}/uploads", headers=alice, files=files, data={"operations": '{"format": "webp"}'}
    )

    assert response.status_code == 202, response.text
    detail = client.get(f"{API}/batches/{response.json()['request_id']}", headers=alice).json()
    assert detail["source"] == "upload"
    assert [p["product_name"] for p in detail["products"]] == ["a.jpg", "b.png"]
    assert detail["operations"]["format"] == "webp"


def test_unknown_media_is_404(client: TestClient) -> None:
    assert client.get("/media/nope.jpg").status_code == 404
    assert client.get(f"/media/{'x' * 300}.jpg").status_code == 404


def test_batch_detail_pages_its_products_in_input_order(
    client: TestClient, alice: dict[str, str]
) -> None:
    rows = "".join(
        f'{n},P{n},"https://img.example.com/{n}-a.jpg,https://img.example.com/{n}-b.jpg"\n'
        if n == 3
        else f"{n},P{n},https://img.example.com/{n}.jpg\n"
        for n in range(1, 6)
    )
    request_id = _upload(
        client, alice, f"S. No.,Product Name,Input Image Urls\n{rows}".encode()
    ).json()["request_id"]
    url = f"{API}/batches/{request_id}"

    everything = client.get(url, headers=alice).json()
    page = client.get(url, headers=alice, params={"products_offset": 2, "products_limit": 2})
    counts_only = client.get(url, headers=alice, params={"products_limit": 0}).json()
    past_the_end = client.get(url, headers=alice, params={"products_offset": 9}).json()
    too_many = client.get(url, headers=alice, params={"products_limit": 1001})

    assert [p["serial_number"] for p in everything["products"]] == ["1", "2", "3", "4", "5"]
    assert (everything["products_total"], everything["products_offset"]) == (5, 0)
    assert page.status_code == 200
    body = page.json()
    assert (body["products_total"], body["products_offset"]) == (5, 2)
    assert [p["serial_number"] for p in body["products"]] == ["3", "4"]
    assert [i["input_url"] for i in body["products"][0]["images"]] == [
        "https://img.example.com/3-a.jpg",
        "https://img.example.com/3-b.jpg",
    ]
    assert body["total_images"] == 6
    assert counts_only["products"] == []
    assert counts_only["products_total"] == 5
    assert counts_only["total_images"] == 6
    assert past_the_end["products"] == []
    assert past_the_end["products_total"] == 5
    assert too_many.status_code == 422
