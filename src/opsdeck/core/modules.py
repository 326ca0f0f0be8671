"""What a module brings to the platform, described once in its `module.py` and listed in
`opsdeck/modules.py`. The app, the CLI, the Celery app and Alembic read it; none of them names
a module. Loaders are functions so that reading the registry imports nothing heavy (the CLI
builds its help without importing FastAPI routers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from opsdeck.settings import Settings


def _nothing() -> Sequence[Any]:
    return ()


def _no_limits(_settings: Settings) -> Mapping[str, int]:
    return {}


@dataclass(frozen=True)
class Module:
    name: str
    # The module's tables (imported so Base.metadata is complete for Alembic and the tests).
    models: str | None = None
    # Modules declaring Celery tasks (core.jobs.job), periodic ones included.
    task_modules: tuple[str, ...] = ()
    routers: Callable[[], Sequence[APIRouter]] = _nothing
    # Its command groups, when it has commands (added under each group's own name: accounts
    # brings `opsdeck users ...` and `opsdeck keys ...`).
    cli: Callable[[], click.Group | Sequence[click.Group]] | None = None
    # Request paths that may carry more than OPSDECK_MAX_REQUEST_BYTES: {path: max bytes}.
    body_limits: Callable[[Settings], Mapping[str, int]] = _no_limits
    # Socket.IO namespaces (python-socketio Namespace objects), for real-time modules.
    socket_namespaces: Callable[[], Sequence[Any]] = _nothing
