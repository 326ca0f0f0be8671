"""The audit module in the registry (opsdeck/modules.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsdeck.core.modules import Module

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter


def _routers() -> Sequence[APIRouter]:
    from opsdeck.audit.api import router

    return (router,)


def _cli() -> click.Group:
    from opsdeck.audit.commands import audit

    return audit


module = Module(
    name="audit",
    models="opsdeck.audit.models",
    task_modules=("opsdeck.audit.tasks",),
    routers=_routers,
    cli=_cli,
)
