"""Personal API tokens: long-lived bearer credentials a user makes for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from opsdeck.accounts.models import ApiToken, User
from opsdeck.audit.service import record
from opsdeck.core.db import affected_rows, utcnow
from opsdeck.core.deps import ClientContext
from opsdeck.core.errors import NotFound
from opsdeck.core.security import digest, new_token

# A public marker that tells personal tokens apart from JWTs, not a secret.
API_TOKEN_PREFIX = "opd_"  # noqa: S105  # nosec B105
# "opd_" and 8 characters of the token: enough to tell tokens apart in a list, useless alone.
API_TOKEN_DISPLAY_LENGTH = 12


@dataclass(frozen=True)
class NewApiToken:
    api_token: ApiToken
    token: str


def create_api_token(
    session: Session,
    user: User,
    *,
    name: str,
    expires_in_days: int | None = None,
    client: ClientContext | None = None,
) -> NewApiToken:
    token = new_token(API_TOKEN_PREFIX, 32)
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    row = ApiToken(
        user_id=user.id,
        name=name.strip()[:100],
        token_prefix=token[:API_TOKEN_DISPLAY_LENGTH],
        token_hash=digest(token),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    _audit_token(session, user, "auth.token.created", row, client)
    return NewApiToken(row, token)


def list_api_tokens(session: Session, user: User) -> Sequence[ApiToken]:
    return session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    ).all()


def revoke_api_token(
    session: Session, user: User, token_id: str, *, client: ClientContext | None = None
) -> None:
    row = session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if row is None:
        raise NotFound(f"You have no API token with id {token_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        _audit_token(session, user, "auth.token.revoked", row, client)


def revoke_all_api_tokens(session: Session, user: User) -> int:
    """Void every token of `user` (deactivation); how many were live."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return affected_rows(result)


def _audit_token(
    session: Session, user: User, action: str, row: ApiToken, client: ClientContext | None
) -> None:
    record(
        session,
        action,
        actor=user,
        target_type="api_token",
        target_id=row.id,
        details={"name": row.name, "token_prefix": row.token_prefix},
        client=client,
    )
