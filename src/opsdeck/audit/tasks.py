"""Audit jobs: the periodic signed checkpoint (see checkpoints.py)."""

from __future__ import annotations

from opsdeck.audit import checkpoints
from opsdeck.core.jobs import job
from opsdeck.core.queue import task_session
from opsdeck.settings import get_settings

CHECKPOINT_EVERY_SECONDS = 600.0


@job("audit.checkpoint", every=CHECKPOINT_EVERY_SECONDS)
def checkpoint() -> int:
    """Write a checkpoint; the id of the newest entry it covers."""
    with task_session() as session:
        return checkpoints.write(session, get_settings()).last_id
