"""Celery tasks of the accounts module: thin wrappers around the service."""

from __future__ import annotations

from dataclasses import asdict

import structlog

from opsdeck.accounts import service
from opsdeck.core.db import utcnow
from opsdeck.core.jobs import job
from opsdeck.core.queue import task_session

log = structlog.get_logger("opsdeck.accounts")


@job("accounts.purge_expired", every=3600.0)
def purge_expired() -> dict[str, int]:
    """Delete dead sessions and expired refresh tokens. Idempotent: a second run finds nothing
    left to delete."""
    with task_session() as session:
        counts = service.purge_expired(session, utcnow())
    log.info("accounts_purged", **asdict(counts))
    return asdict(counts)
