"""The chat module in the registry (opsdeck/modules.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsdeck.core.modules import Module

if TYPE_CHECKING:
    from fastapi import APIRouter

    from opsdeck.core.sockets import SocketContext


def _routers() -> Sequence[APIRouter]:
    from opsdeck.chat.api import router

    return (router,)


def _socket_namespaces(context: SocketContext) -> Sequence[Any]:
    from opsdeck.chat.events import namespaces

    return namespaces(context)


module = Module(
    name="chat",
    models="opsdeck.chat.models",
    routers=_routers,
    socket_namespaces=_socket_namespaces,
)
