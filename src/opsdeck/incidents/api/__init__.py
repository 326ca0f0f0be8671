"""The incidents routers, one file per resource; `routers()` is what module.py mounts."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter


def routers() -> Sequence[APIRouter]:
    # Static paths (/incidents/integrations...) before /incidents/{number}.
    from opsdeck.incidents.api import integrations

    return (integrations.router,)
