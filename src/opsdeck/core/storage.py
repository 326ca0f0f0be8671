"""The media store: content-addressed files under `<data dir>/media/objects`.

An object's key is the SHA-256 of its bytes, so identical outputs are stored once and a write
is idempotent: a task that runs twice stores nothing new. Files are written to a temporary name
and renamed into place, so a reader never sees half an object, even after a crash.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from opsdeck.settings import Settings

_KEY = re.compile(r"^[0-9a-f]{64}$")


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not an object key: {key!r}")
        return self.objects / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        target = self.path(key)
        if target.exists():
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True


def media_store(settings: Settings) -> MediaStore:
    """The media store of these settings; every caller (API, workers, CLI) shares one."""
    return _store_at(settings.media_dir.resolve())


@lru_cache(maxsize=8)
def _store_at(root: Path) -> MediaStore:
    return MediaStore(root)
