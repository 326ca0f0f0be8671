"""The registry: every module of the platform, in the order their routes and commands load.
Adding a module is a folder with its `module.py`, one line here, and a migration."""

from __future__ import annotations

import importlib

from opsdeck.accounts.module import module as accounts
from opsdeck.audit.module import module as audit
from opsdeck.chat.module import module as chat
from opsdeck.core import signals
from opsdeck.core.modules import Module
from opsdeck.images.module import module as images
from opsdeck.incidents.module import module as incidents

MODULES: tuple[Module, ...] = (accounts, audit, images, incidents, chat)
# Every module's signal handlers (core.signals), loaded the first time a signal is sent.
signals.use_registry(lambda: MODULES)

# Tables every module relies on that live in the shared kernel (the job outbox).
CORE_MODELS = ("opsdeck.core.jobs",)


def task_modules() -> tuple[str, ...]:
    return tuple(name for module in MODULES for name in module.task_modules)


def import_models() -> None:
    """Import every table definition, so Base.metadata is complete (Alembic, tests)."""
    for name in (*CORE_MODELS, *(module.models for module in MODULES if module.models)):
        importlib.import_module(name)
