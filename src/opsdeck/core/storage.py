"""The media store: content-addressed files under `<data dir>/media/objects`.

An object's key is the SHA-256 of its bytes, so identical outputs are stored once and a write
is idempotent: a task that runs twice stores nothing new. Files are written to a temporary name
and renamed into place, so a reader never sees half an object.

`put` returns once the object is on disk (fsynced). A writer that stores several objects and
then records them somewhere else (the images worker: a few outputs, then one database
transaction) stores them with `put(data, sync=False)` and calls `sync(keys)` once before
recording them: the writeback of every file is started as it is written, so the fsyncs that
follow share one journal commit (ext4) instead of one each. Until then such an object may be
lost, or left truncated, by a power failure, so a `put` that finds its object present checks
it before trusting it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
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

    def put(self, data: bytes, *, sync: bool = True) -> str:
        """Store `data`; its key. `sync=False`: not yet durable, see `sync`."""
        key = hashlib.sha256(data).hexdigest()
        target = self.path(key)
        if _holds(target, data):
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())
                else:
                    # Start the writeback now, so the fsync in sync() finds it under way.
                    _start_writeback(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def sync(self, keys: Iterable[str]) -> None:
        """Make objects stored with `put(data, sync=False)` durable, as `put` leaves them: each
        file fsynced (their writeback started when they were written, so the first fsync's
        journal commit covers the others' blocks and renames). A key with no object (deleted
        since) is passed over: there is nothing of it to keep."""
        for key in dict.fromkeys(keys):
            try:
                _fsync_path(self.path(key))
            except FileNotFoundError:
                continue

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True


def _holds(target: Path, data: bytes) -> bool:
    """Whether `target` already holds exactly `data` (an object stored before); a file cut
    short or emptied by a power failure before its sync is not the object."""
    try:
        if target.stat().st_size != len(data):
            return False
        return target.read_bytes() == data
    except FileNotFoundError:
        return False


def _start_writeback(fd: int) -> None:
    # POSIX_FADV_DONTNEED starts writing the file's dirty pages out (Linux) without waiting.
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def media_store(settings: Settings) -> MediaStore:
    """The media store of these settings; every caller (API, workers, CLI) shares one."""
    return _store_for(settings.media_dir)


@lru_cache(maxsize=8)
def _store_for(media_dir: Path) -> MediaStore:
    # Resolved once per folder, not per call: resolve() asks the file system about every
    # component of the path, twice per image in a worker.
    return _store_at(media_dir.resolve())


@lru_cache(maxsize=8)
def _store_at(root: Path) -> MediaStore:
    return MediaStore(root)
