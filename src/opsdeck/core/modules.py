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
    from sqlalchemy.orm import Session

    from opsdeck.core.signals import SignalMap
    from opsdeck.core.sockets import SocketContext
    from opsdeck.settings import Settings

# `opsdeck seed demo` calls each module's seeder, in registry order (accounts' users come
# before the incidents that name them), each in a transaction of its own that the command
# commits. A seeder adds the module's example data and returns what it created, as
# {"what": count}; it is idempotent: when its data is there already it adds nothing and
# returns zeros (or {}). It may print (click.echo) what only it can say, such as the demo
# users' password. The command refuses to run in production before calling any.
DemoSeeder = Callable[["Session", "Settings"], Mapping[str, int]]


def _nothing() -> Sequence[Any]:
    return ()


def _no_limits(_settings: Settings) -> Mapping[str, int]:
    return {}


def _no_signals() -> SignalMap:
    return {}


def _no_namespaces(_context: SocketContext) -> Sequence[Any]:
    return ()


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
    # Socket.IO namespaces (python-socketio AsyncNamespace objects), for real-time modules,
    # built with the web process's settings, session factory and hub (core.sockets).
    socket_namespaces: Callable[[SocketContext], Sequence[Any]] = _no_namespaces
    # The signals of other modules it reacts to: {signal name: (handler, ...)} (core.signals).
    signals: Callable[[], SignalMap] = _no_signals
    # Its example data for `opsdeck seed demo` (see DemoSeeder above), when it has some.
    demo_seed: DemoSeeder | None = None
