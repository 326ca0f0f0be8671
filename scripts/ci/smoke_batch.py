"""The smoke tests' batch check: sign in, submit a CSV batch to OpsDeck's web role, follow it
until the workers have processed it, then download every output and the output CSV.

    OPSDECK_SMOKE_PASSWORD=... python3 scripts/ci/smoke_batch.py BASE_URL IMAGES_URL TIMEOUT

BASE_URL is the web role; IMAGES_URL a server with gradient.png and blue.jpg that the workers
can reach; the admin user `smoke` must exist. Standard library only: it runs on the CI host's
python3 (image-smoke.sh and compose-smoke.sh), not in the project's virtual environment.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}


def ok(message: str) -> None:
    print(f"    ok: {message}", flush=True)


def call(
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> tuple[bytes, str]:
    """The body and Content-Type of a request that must answer `expect`; exits otherwise."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310  # nosec B310 - http URLs the script was given
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310
            status, body = response.status, response.read()
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, body, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    if status != expect:
        sys.exit(f"{method} {url}: {status}, expected {expect}: {body[:500]!r}")
    return body, kind


def sign_in(base: str, password: str) -> dict[str, str]:
    form = urllib.parse.urlencode({"username": "smoke", "password": password}).encode()
    body, _ = call(
        "POST",
        f"{base}/api/v1/auth/token",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    ok("token from /api/v1/auth/token")
    return {"Authorization": "Bearer " + json.loads(body)["access_token"]}


def submit(base: str, images: str, auth: dict[str, str]) -> str:
    rows = [
        ["S. No.", "Product Name", "Input Image Urls"],
        ["1", "SKU-GRADIENT", f"{images}/gradient.png,{images}/blue.jpg"],
        ["2", "SKU-BLUE", f"{images}/blue.jpg"],
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    boundary = uuid.uuid4().hex
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="products.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{buffer.getvalue()}\r\n--{boundary}--\r\n"
    ).encode()
    body, _ = call(
        "POST",
        f"{base}/api/v1/images/batches",
        data=payload,
        expect=202,
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    request_id: str = json.loads(body)["request_id"]
    ok(f"batch {request_id} accepted (202)")
    return request_id


def follow(base: str, request_id: str, auth: dict[str, str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body, _ = call("GET", f"{base}/api/v1/images/batches/{request_id}", headers=auth)
        batch: dict[str, Any] = json.loads(body)
        if batch["status"] not in ("pending", "processing"):
            return batch
        if time.monotonic() > deadline:
            sys.exit(
                f"batch still {batch['status']} after {timeout:.0f}s ({batch['processed_images']}"
                f"/{batch['total_images']} images): are the workers running?"
            )
        time.sleep(1)


def check_outputs(batch: dict[str, Any], auth: dict[str, str]) -> None:
    images = [image for product in batch["products"] for image in product["images"]]
    if batch["status"] != "completed" or len(images) != 3:
        sys.exit(f"batch ended {batch['status']}: " + json.dumps(images, indent=1))
    ok(f"batch completed, {batch['processed_images']}/{batch['total_images']} images")
    # Output URLs are OPSDECK_PUBLIC_URL's: fetched from here, through the published port.
    for image in images:
        if image["status"] != "succeeded" or not image["output_url"]:
            sys.exit(f"image not processed: {image}")
        data, kind = call("GET", image["output_url"])
        if not data.startswith(MAGIC[image["format"]]) or len(data) != image["bytes_out"]:
            sys.exit(f"{image['output_url']}: {len(data)} bytes of {kind}, not {image['format']}")
    ok(f"{len(images)} output images downloaded (PNG and JPEG, sizes match)")

    body, kind = call("GET", batch["output_csv_url"], headers=auth)
    table = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    if len(table) != 2 or "Output Image Urls" not in table[0]:
        sys.exit(f"unexpected output.csv ({kind}): {body[:500]!r}")
    urls = [url for row in table for url in row["Output Image Urls"].split(",") if url]
    listed = sorted(urls) == sorted(image["output_url"] for image in images)
    if not listed or any(row["Errors"] for row in table):
        sys.exit(f"output.csv does not list the outputs: {body[:500]!r}")
    ok(f"output.csv lists the {len(urls)} output URLs")


def main() -> None:
    base, images, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    auth = sign_in(base, os.environ["OPSDECK_SMOKE_PASSWORD"])
    request_id = submit(base, images, auth)
    check_outputs(follow(base, request_id, auth, timeout), auth)


if __name__ == "__main__":
    main()
