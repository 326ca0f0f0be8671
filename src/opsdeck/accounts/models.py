"""Accounts tables: users, sessions and their refresh-token families, API tokens and 2FA
recovery codes. (Failed sign-ins are counted by the rate limiter, outside the database.)"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from opsdeck.core.db import Base, new_id, utcnow


class Role(StrEnum):
    """Stored as a plain string column; the API schemas and the generated client use this."""

    ADMIN = "admin"
    MEMBER = "member"


ROLES: tuple[str, ...] = tuple(Role)
_ROLE_CHECK = f"role IN ({', '.join(repr(role.value) for role in Role)})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_ROLE_CHECK, name="role"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16), default=Role.MEMBER)
    is_active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Sealed at rest (core.security.SecretBox, bound to the user's id): `v1.<key id>.<data>`.
    totp_secret: Mapped[str | None] = mapped_column(String(255), default=None)
    totp_pending_secret: Mapped[str | None] = mapped_column(String(255), default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # Time step of the last accepted TOTP code: a code at or before it is a replay.
    totp_last_counter: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret is not None


class AuthSession(Base):
    """A signed-in session: a browser cookie (`kind='browser'`) or a bearer-token login
    (`kind='api'`) whose refresh tokens form one family. Revoking it ends both at once."""

    __tablename__ = "auth_sessions"
    __table_args__ = (CheckConstraint("kind IN ('browser', 'api')", name="kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Only browser sessions have one: the SHA-256 of the cookie value.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    ip: Mapped[str | None] = mapped_column(String(45), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(255), default=None)

    user: Mapped[User] = relationship(lazy="joined")


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiToken(Base):
    """A personal API token; only its SHA-256 is stored, the value is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="joined")


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(default=None)
