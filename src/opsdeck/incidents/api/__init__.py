"""The incidents routers, one file per resource; `routers()` is what module.py mounts.

Routers with static paths (`/incidents/follow-ups`, `/incidents/postmortem-templates`) come
before the one with `/incidents/{number}`, which would otherwise take them."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter


def routers() -> Sequence[APIRouter]:
    from opsdeck.incidents.api import follow_ups, postmortems

    return (follow_ups.router, postmortems.router)
