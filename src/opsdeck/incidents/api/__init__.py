"""The incidents routers, one file per resource; `routers()` is what module.py mounts.

Routers with fixed paths under /incidents (categories, stats, follow-ups,
postmortem-templates, ...) come before the one with `/incidents/{number}`, so a fixed path is
never read as an incident number."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter


def routers() -> Sequence[APIRouter]:
    from opsdeck.incidents.api import (
        attachments,
        catalog,
        follow_ups,
        incidents,
        integrations,
        notifications,
        postmortems,
        reports,
        webhooks,
    )

    return (
        notifications.router,
        webhooks.router,
        integrations.router,
        catalog.router,
        reports.router,
        follow_ups.router,
        postmortems.router,
        incidents.router,
        attachments.router,
    )
