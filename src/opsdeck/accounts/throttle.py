"""Failed sign-in counters, kept in the database so every web process sees the same ones.

A key (`account:<username>` or `ip:<address>`) collects failures in a fixed window; reaching
the limit blocks the key for one window from that failure. Attempts made while blocked are
refused before the password is checked and are not counted, so a block ends on time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from opsdeck.accounts.models import AuthThrottle
from opsdeck.settings import Settings

# Room for the prefix inside the 200-character key column.
MAX_KEY_VALUE_LENGTH = 180


@dataclass(frozen=True)
class ThrottlePolicy:
    window: timedelta
    max_failures_per_account: int
    max_failures_per_ip: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        return cls(
            window=timedelta(seconds=settings.auth_window_seconds),
            max_failures_per_account=settings.auth_max_failures_per_account,
            max_failures_per_ip=settings.auth_max_failures_per_ip,
        )

    def limits(self, username: str, ip: str | None) -> dict[str, int]:
        """The keys one attempt counts against, each with its failure limit."""
        limits = {account_key(username): self.max_failures_per_account}
        if ip:
            limits[f"ip:{ip[:MAX_KEY_VALUE_LENGTH]}"] = self.max_failures_per_ip
        return limits


def account_key(username: str) -> str:
    # The submitted name, not a user id: unknown usernames are throttled exactly like real ones.
    return f"account:{username.strip().lower()[:MAX_KEY_VALUE_LENGTH]}"


def retry_after(session: Session, keys: Iterable[str], now: datetime) -> int | None:
    """Seconds until every key is unblocked, or None when none of them is blocked."""
    blocked_until = session.scalars(
        select(AuthThrottle.blocked_until).where(
            AuthThrottle.key.in_(list(keys)), AuthThrottle.blocked_until > now
        )
    ).all()
    latest = max((until for until in blocked_until if until is not None), default=None)
    if latest is None:
        return None
    return max(1, math.ceil((latest - now).total_seconds()))


def record_failure(
    session: Session, policy: ThrottlePolicy, limits: dict[str, int], now: datetime
) -> None:
    for key, limit in limits.items():
        row = _locked_row(session, key, now)
        if row.window_started_at + policy.window <= now:
            row.failures = 0
            row.window_started_at = now
            row.blocked_until = None
        row.failures += 1
        if row.failures >= limit:
            row.blocked_until = now + policy.window
    session.flush()


def clear(session: Session, key: str) -> None:
    session.execute(delete(AuthThrottle).where(AuthThrottle.key == key))


def purge_stale(session: Session, now: datetime, window: timedelta) -> int:
    """Delete counters whose window and block are both over: they would be reset anyway."""
    result = session.execute(
        delete(AuthThrottle).where(
            AuthThrottle.window_started_at <= now - window,
            or_(AuthThrottle.blocked_until.is_(None), AuthThrottle.blocked_until <= now),
        )
    )
    return cast(CursorResult[Any], result).rowcount


def _locked_row(session: Session, key: str, now: datetime) -> AuthThrottle:
    """The counter row for `key`, created if missing and locked until the transaction ends, so
    two processes counting the same key at once neither collide on insert nor lose a count."""
    values = {"key": key, "failures": 0, "window_started_at": now}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(AuthThrottle).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(AuthThrottle).values(values).on_conflict_do_nothing())
    elif session.get(AuthThrottle, key) is None:
        session.add(AuthThrottle(**values))
        session.flush()
    return session.scalars(
        select(AuthThrottle)
        .where(AuthThrottle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
