"""Uploaded files: reading one within a size limit (the one way every module's upload route
reads one, refusing with 413 `file_too_large`, naming the file and the limit, as soon as it
passes), cleaning its name, telling its type from its bytes, and the headers a download is
served with."""

from __future__ import annotations

import re
import unicodedata

from fastapi import UploadFile

from opsdeck.core.errors import PayloadTooLarge

READ_CHUNK = 1024 * 1024
GENERIC_TYPE = "application/octet-stream"
# A stored file is served as a download with the type detected from its bytes, never sniffed
# by the browser, so an uploaded HTML or SVG file cannot run in the application's origin.
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"}
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"]+')
# How much of a file `sniff_content_type` reads to call it text.
_TEXT_SNIFF_BYTES = 8192
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def clean_name(name: str | None) -> str:
    """A file name fit for a header and a list: no directories, no controls, at most 255."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", _UNSAFE_NAME.sub("_", base)).strip(" .")
    return base[:255] or "attachment"


def sniff_content_type(data: bytes) -> str:
    """The type of a file that is not an image, from its magic bytes: PDF, ZIP (also the
    office formats), gzip, or UTF-8 text without control characters; anything else is
    `application/octet-stream`. (Images are told by the images module, which can decode them.)"""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "application/zip"
    if data.startswith(b"\x1f\x8b"):
        return "application/gzip"
    head = data[:_TEXT_SNIFF_BYTES]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 3 or len(data) <= len(head):
            return GENERIC_TYPE
        text = head[: exc.start].decode("utf-8")
    if not data or _TEXT_CONTROLS.search(text):
        return GENERIC_TYPE
    return "text/plain"


def too_large(name: str | None, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{name or 'The file'} is larger than the {limit:,}-byte limit.",
        code="file_too_large",
        details=[{"file": name, "limit_bytes": limit}],
    )


async def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The file's bytes, refused with 413 as soon as it passes `max_bytes`."""
    if file.size is not None and file.size > max_bytes:
        raise too_large(file.filename, max_bytes)
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise too_large(file.filename, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
