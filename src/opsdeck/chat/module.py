"""The chat module in the registry (opsdeck/modules.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opsdeck.core.modules import Module

if TYPE_CHECKING:
    from fastapi import APIRouter

    from opsdeck.core.signals import SignalMap
    from opsdeck.core.sockets import SocketContext
    from opsdeck.settings import Settings

MULTIPART_OVERHEAD = 64 * 1024


def _routers() -> Sequence[APIRouter]:
    from opsdeck.chat.api import router
    from opsdeck.chat.api_attachments import router as attachments
    from opsdeck.chat.api_search import router as search
    from opsdeck.chat.api_war_rooms import router as war_rooms

    return (router, attachments, search, war_rooms)


def _body_limits(settings: Settings) -> Mapping[str, int]:
    from opsdeck.core.http import API_PREFIX

    return {
        f"{API_PREFIX}/chat/rooms/*/attachments": settings.chat_attachment_max_bytes
        + MULTIPART_OVERHEAD
    }


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
    body_limits=_body_limits,
    signals=_signals,
    socket_namespaces=_socket_namespaces,
)
