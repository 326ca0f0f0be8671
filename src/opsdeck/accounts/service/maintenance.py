"""Clean-up run by the periodic `accounts.purge_expired` task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import AuthSession, RefreshToken
from opsdeck.core.db import affected_rows


@dataclass(frozen=True)
class PurgeCounts:
    sessions: int
    refresh_tokens: int


def purge_expired(session: Session, now: datetime) -> PurgeCounts:
    """Delete sessions that can no longer be used (with their refresh tokens) and expired
    refresh tokens. Spent refresh tokens of live sessions stay: they are what detects a stolen
    one being replayed."""
    dead = or_(AuthSession.expires_at <= now, AuthSession.revoked_at.is_not(None))
    refresh_tokens = session.execute(
        delete(RefreshToken)
        .where(
            or_(
                RefreshToken.expires_at <= now,
                RefreshToken.session_id.in_(select(AuthSession.id).where(dead)),
            )
        )
        .execution_options(synchronize_session=False)
    )
    sessions = session.execute(
        delete(AuthSession).where(dead).execution_options(synchronize_session=False)
    )
    return PurgeCounts(
        sessions=affected_rows(sessions), refresh_tokens=affected_rows(refresh_tokens)
    )
