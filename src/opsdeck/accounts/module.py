"""The accounts module in the registry (opsdeck/modules.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opsdeck.core.modules import Module

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter
    from sqlalchemy.orm import Session

    from opsdeck.settings import Settings


def _routers() -> Sequence[APIRouter]:
    from opsdeck.accounts.api import auth_router, users_router

    return (auth_router, users_router)


def _cli() -> Sequence[click.Group]:
    from opsdeck.accounts.commands import keys, users

    return (users, keys)


def _demo_seed(session: Session, settings: Settings) -> Mapping[str, int]:
    from opsdeck.accounts.commands import demo_seed

    return demo_seed(session, settings)


module = Module(
    name="accounts",
    models="opsdeck.accounts.models",
    task_modules=("opsdeck.accounts.tasks",),
    routers=_routers,
    cli=_cli,
    demo_seed=_demo_seed,
)
