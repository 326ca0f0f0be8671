"""The chat module in the registry (opsdeck/modules.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsdeck.core.modules import Module

if TYPE_CHECKING:
    from fastapi import APIRouter

    from opsdeck.core.signals import SignalMap
    from opsdeck.core.sockets import SocketContext


def _routers() -> Sequence[APIRouter]:
    from opsdeck.chat.api import router
    from opsdeck.chat.api_war_rooms import router as war_rooms

    return (router, war_rooms)


def _signals() -> SignalMap:
    """An incident's war room follows the incident (archived when it closes)."""
    from opsdeck.chat import service
    from opsdeck.incidents.service import CHANGED_SIGNAL

    return {CHANGED_SIGNAL: (service.on_incident_changed,)}


def _socket_namespaces(context: SocketContext) -> Sequence[Any]:
    from opsdeck.chat.events import namespaces

    return namespaces(context)


module = Module(
    name="chat",
    models="opsdeck.chat.models",
    task_modules=("opsdeck.chat.tasks",),
    routers=_routers,
    signals=_signals,
    socket_namespaces=_socket_namespaces,
)
