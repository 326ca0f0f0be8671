"""The media store's write paths (core.storage), as the images worker uses them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsdeck.core import storage
from opsdeck.core.storage import MediaStore


def test_put_stores_an_object_once_under_its_hash(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    key = store.put(b"one")
    assert store.path(key).read_bytes() == b"one"
    assert store.put(b"one") == key
    assert [p.name for p in store.path(key).parent.iterdir()] == [key]  # no leftover temporary


def test_objects_put_without_sync_are_readable_at_once_and_synced_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MediaStore(tmp_path)
    synced: list[Path] = []
    real_fsync_path = storage._fsync_path

    def fsync_path(path: Path) -> None:
        real_fsync_path(path)
        synced.append(path)

    monkeypatch.setattr(storage, "_fsync_path", fsync_path)
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    keys = [store.put(data, sync=False) for data in (b"a", b"b", b"a")]
    assert fsyncs == []  # nothing waited for yet
    assert [store.path(key).read_bytes() for key in keys] == [b"a", b"b", b"a"]

    store.sync([*keys, "f" * 64])  # a key with no object is passed over
    assert synced == [store.path(key) for key in keys[:2]]  # each file once
    assert len(fsyncs) == len(synced)

    fsyncs.clear()
    store.put(b"c")  # the default: durable when put returns
    assert len(fsyncs) == 1


def test_put_replaces_an_object_a_crash_left_short(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    key = store.put(b"the whole object", sync=False)
    # What a power failure before sync() can leave: the name, not (all of) the bytes.
    store.path(key).write_bytes(b"")
    assert store.put(b"the whole object") == key
    assert store.path(key).read_bytes() == b"the whole object"
    store.path(key).write_bytes(b"the wrong object")  # same size, other bytes
    store.put(b"the whole object")
    assert store.path(key).read_bytes() == b"the whole object"
