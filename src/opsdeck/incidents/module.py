"""The incidents module in the registry (opsdeck/modules.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opsdeck.core.modules import Module

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter
    from sqlalchemy.orm import Session

    from opsdeck.settings import Settings

# The largest body an incident route takes (alert payloads included). It is above the
# platform's default on purpose: a too-long description (say 1 MB) then reaches validation and
# gets a 422 naming the field and its limit, instead of a bare 413.
MAX_BODY_BYTES = 2 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024


def _routers() -> Sequence[APIRouter]:
    from opsdeck.incidents.api import routers

    return routers()


def _cli() -> click.Group:
    from opsdeck.incidents.commands import incidents

    return incidents


def _body_limits(settings: Settings) -> Mapping[str, int]:
    from opsdeck.core.http import API_PREFIX

    return {
        f"{API_PREFIX}/incidents": MAX_BODY_BYTES,
        f"{API_PREFIX}/incidents/*/attachments": settings.max_file_size + MULTIPART_OVERHEAD,
    }


def _demo_seed(session: Session, _settings: Settings) -> Mapping[str, int]:
    from opsdeck.incidents.service.demo import seed_demo

    return seed_demo(session)


module = Module(
    name="incidents",
    models="opsdeck.incidents.models",
    task_modules=("opsdeck.incidents.tasks",),
    routers=_routers,
    cli=_cli,
    body_limits=_body_limits,
    demo_seed=_demo_seed,
)
