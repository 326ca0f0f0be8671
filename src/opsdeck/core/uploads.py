"""Reading an uploaded file within a size limit: the one way every module's upload route reads
one, refusing with 413 (`file_too_large`, naming the file and the limit) as soon as it passes."""

from __future__ import annotations

from fastapi import UploadFile

from opsdeck.core.errors import PayloadTooLarge

READ_CHUNK = 1024 * 1024


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
