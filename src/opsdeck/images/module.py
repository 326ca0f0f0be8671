"""The images module in the registry (opsdeck/modules.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opsdeck.core.modules import Module

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from opsdeck.settings import Settings

# Uploads: a CSV up to OPSDECK_MAX_FILE_SIZE, and up to this many image files of that size.
UPLOAD_FILES_PER_REQUEST = 20
MULTIPART_OVERHEAD = 64 * 1024


def _routers() -> Sequence[APIRouter]:
    from opsdeck.images.api import media_router, router

    return (router, media_router)


def _cli() -> click.Group:
    from opsdeck.images.commands import images

    return images


def _body_limits(settings: Settings) -> Mapping[str, int]:
    from opsdeck.core.http import API_PREFIX

    return {
        f"{API_PREFIX}/images/batches": settings.max_file_size + MULTIPART_OVERHEAD,
        f"{API_PREFIX}/images/uploads": settings.max_file_size * UPLOAD_FILES_PER_REQUEST
        + MULTIPART_OVERHEAD,
    }


module = Module(
    name="images",
    models="opsdeck.images.models",
    task_modules=("opsdeck.images.tasks",),
    routers=_routers,
    cli=_cli,
    body_limits=_body_limits,
)
