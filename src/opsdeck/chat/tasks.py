"""Chat jobs: the mention and direct message digest (service/digest.py), every minute."""

from __future__ import annotations

from opsdeck.chat.service import digest
from opsdeck.core.db import utcnow
from opsdeck.core.jobs import job
from opsdeck.core.queue import task_session
from opsdeck.settings import get_settings


@job("chat.queue_mention_digests", every=60.0)
def queue_mention_digests() -> int:
    """Mail the mentions and direct messages left unread past the delay (one digest each)."""
    with task_session() as session:
        return digest.queue_digests(session, get_settings(), utcnow())
