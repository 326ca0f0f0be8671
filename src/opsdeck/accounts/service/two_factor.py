"""Two-factor authentication: setting TOTP up and down, recovery codes, spending a code at
sign-in, and the proof of presence (password, and code) a sensitive change asks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from opsdeck.accounts import totp
from opsdeck.accounts.models import RecoveryCode, User
from opsdeck.accounts.throttle import Attempt, LoginThrottle, too_many_attempts
from opsdeck.audit.service import record
from opsdeck.core.db import affected_rows, keep_on_refusal, utcnow
from opsdeck.core.deps import ClientContext
from opsdeck.core.errors import AppError, Conflict, ErrorDetail, Forbidden
from opsdeck.core.security import Passwords, SecretBox, derive_key
from opsdeck.settings import Settings

OTP_REQUIRED_MESSAGE = "Enter the six-digit code from your authenticator app, or a recovery code."
OTP_INVALID_MESSAGE = "The code is incorrect, expired or already used."

SecondFactor = Literal["totp", "recovery_code"]
TOTP_BOX_PURPOSE = "totp-secret"


def totp_box(settings: Settings) -> SecretBox:
    """The key TOTP seeds are sealed with at rest (docs/operations.md, "Secrets at rest")."""
    return _box(settings.secret_bytes(), tuple(settings.previous_secret_bytes()))


@lru_cache(maxsize=4)
def _box(current: bytes, previous: tuple[bytes, ...]) -> SecretBox:
    return SecretBox(current, previous, purpose=TOTP_BOX_PURPOSE)


def _seal(settings: Settings, user: User, secret: str) -> str:
    return totp_box(settings).seal(secret, bound_to=user.id)


def _open(settings: Settings, user: User, sealed: str) -> str:
    return totp_box(settings).open(sealed, bound_to=user.id)


def reseal_totp_secrets(session: Session, settings: Settings) -> int:
    """Seal every TOTP seed with the current key (plain ones written before encryption at
    rest, and those sealed with a previous key); how many rows changed. `opsdeck keys
    rotate` runs it; a seed no configured key opens stops it with SecretBoxError."""
    box = totp_box(settings)
    changed = 0
    users = session.scalars(
        select(User).where(
            or_(User.totp_secret.is_not(None), User.totp_pending_secret.is_not(None))
        )
    )
    for user in users:
        for column in ("totp_secret", "totp_pending_secret"):
            value = getattr(user, column)
            if value is not None and box.needs_reseal(value):
                setattr(user, column, box.seal(box.open(value, bound_to=user.id), bound_to=user.id))
                changed += 1
    session.flush()
    return changed


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    provisioning_uri: str


def begin_totp_setup(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    user: User,
    *,
    password: str,
    client: ClientContext | None = None,
) -> TotpSetup:
    """A new secret, pending until a code from it is confirmed, so a mistyped setup never
    locks anyone out."""
    _require_totp(user, enabled=False)
    reauthenticate(
        session, passwords, settings, user, password=password, purpose="2fa_setup", client=client
    )
    secret = totp.new_secret()
    user.totp_pending_secret = _seal(settings, user, secret)
    return TotpSetup(secret, totp.provisioning_uri(secret, user.username))


def confirm_totp(
    session: Session,
    settings: Settings,
    user: User,
    *,
    code: str,
    client: ClientContext | None = None,
) -> list[str]:
    """Turn 2FA on with the pending secret; returns the recovery codes, shown once."""
    _require_totp(user, enabled=False)
    pending = user.totp_pending_secret
    if pending is None:
        raise Conflict("Start two-factor setup first; there is no secret waiting to be confirmed.")
    secret = _open(settings, user, pending)
    counter = totp.matching_counter(secret, code, now=utcnow(), last_counter=None)
    if counter is None:
        raise Forbidden(
            f"{OTP_INVALID_MESSAGE} Check that your device's clock is right and enter the "
            "current code.",
            code="invalid_otp",
            details=[
                ErrorDetail(field="body.code", message=OTP_INVALID_MESSAGE, type="invalid_otp")
            ],
        )
    user.totp_secret = pending
    user.totp_pending_secret = None
    user.totp_enabled_at = utcnow()
    user.totp_last_counter = counter
    codes = _replace_recovery_codes(session, settings, user)
    _audit_self(session, user, "auth.2fa.enabled", client)
    return codes


def disable_totp(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    user: User,
    *,
    password: str,
    code: str,
    client: ClientContext | None = None,
) -> None:
    _require_totp(user, enabled=True)
    reauthenticate(
        session,
        passwords,
        settings,
        user,
        password=password,
        code=code,
        purpose="2fa_disable",
        client=client,
    )
    user.totp_secret = None
    user.totp_pending_secret = None
    user.totp_enabled_at = None
    user.totp_last_counter = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    _audit_self(session, user, "auth.2fa.disabled", client)


def regenerate_recovery_codes(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    user: User,
    *,
    password: str,
    code: str,
    client: ClientContext | None = None,
) -> list[str]:
    _require_totp(user, enabled=True)
    reauthenticate(
        session,
        passwords,
        settings,
        user,
        password=password,
        code=code,
        purpose="2fa_recovery_codes",
        client=client,
    )
    codes = _replace_recovery_codes(session, settings, user)
    _audit_self(session, user, "auth.2fa.recovery_regenerated", client)
    return codes


def reauthenticate(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    user: User,
    *,
    password: str,
    purpose: str,
    code: str | None = None,
    reauth_field: str = "body.password",
    client: ClientContext | None = None,
) -> None:
    """Proof of presence before a sensitive change; raises when it fails. Throttled like a
    sign-in, so a stolen session cannot be used to guess the password."""
    now = utcnow()
    throttle = LoginThrottle.from_settings(settings)
    ip = client.ip if client else None
    # Counted like an API sign-in (per account and per account and address): the caller
    # already holds a session, so the address's own counter would only add collateral.
    attempt = Attempt(user.username, ip)
    wait = throttle.retry_after(attempt)
    if wait is not None:
        raise too_many_attempts(wait)
    error: AppError | None = None
    if not passwords.verify(user.password_hash, password):
        message = "The password is incorrect."
        error = Forbidden(
            message,
            code="invalid_password",
            details=[ErrorDetail(field=reauth_field, message=message, type="invalid_password")],
        )
    elif (
        code is not None
        and accept_second_factor(session, settings, user, code, now, client) is None
    ):
        error = Forbidden(
            OTP_INVALID_MESSAGE,
            code="invalid_otp",
            details=[
                ErrorDetail(field="body.code", message=OTP_INVALID_MESSAGE, type="invalid_otp")
            ],
        )
    if error is None:
        return
    throttle.record_failure(attempt)
    details = {"purpose": purpose, "reason": error.code}
    user_id = user.id
    keep_on_refusal(
        session,
        lambda s: _audit_self(s, s.get_one(User, user_id), "auth.reauth.failed", client, details),
    )
    raise error


def accept_second_factor(
    session: Session,
    settings: Settings,
    user: User,
    code: str,
    now: datetime,
    client: ClientContext | None = None,
) -> SecondFactor | None:
    """Spend a TOTP code or a recovery code; which kind was accepted, or None."""
    if user.totp_secret is None:
        return None
    if totp.looks_like_totp(code):
        secret = _open(settings, user, user.totp_secret)
        return "totp" if _spend_totp(session, user, secret, code, now) else None
    if _spend_recovery_code(session, settings, user, code, now):
        remaining = session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        _audit_self(session, user, "auth.2fa.recovery_used", client, {"remaining": remaining})
        return "recovery_code"
    return None


def _require_totp(user: User, *, enabled: bool) -> None:
    if enabled and not user.totp_enabled:
        raise Conflict("Two-factor authentication is not turned on for this account.")
    if not enabled and user.totp_enabled:
        raise Conflict(
            "Two-factor authentication is already on; turn it off first to move it to a new device."
        )


def _spend_totp(session: Session, user: User, secret: str, code: str, now: datetime) -> bool:
    counter = totp.matching_counter(secret, code, now=now, last_counter=user.totp_last_counter)
    if counter is None:
        return False
    # Conditional, so of two requests racing with the same code only one gets it.
    result = session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_counter.is_(None), User.totp_last_counter < counter),
        )
        .values(totp_last_counter=counter)
    )
    return affected_rows(result) == 1


def _spend_recovery_code(
    session: Session, settings: Settings, user: User, code: str, now: datetime
) -> bool:
    code_hash = totp.recovery_code_digest(_recovery_key(settings), code)
    result = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == code_hash,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return affected_rows(result) == 1


def _replace_recovery_codes(session: Session, settings: Settings, user: User) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = totp.new_recovery_codes()
    key = _recovery_key(settings)
    session.add_all(
        RecoveryCode(user_id=user.id, code_hash=totp.recovery_code_digest(key, code))
        for code in codes
    )
    session.flush()
    return codes


def _recovery_key(settings: Settings) -> bytes:
    return derive_key(settings.secret_bytes(), "recovery")


def _audit_self(
    session: Session,
    user: User,
    action: str,
    client: ClientContext | None,
    details: dict[str, Any] | None = None,
) -> None:
    record(
        session,
        action,
        actor=user,
        target_type="user",
        target_id=user.id,
        details=details,
        client=client,
    )
