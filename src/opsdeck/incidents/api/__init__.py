"""The incidents routers, one file per resource; `routers()` is what module.py mounts."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter


def routers() -> Sequence[APIRouter]:
    return ()
