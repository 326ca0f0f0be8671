"""Accounts logic: users, sign-in, sessions and their tokens, two-factor authentication, personal
API tokens and clean-up. No HTTP here and no commits: the request or task boundary commits.

A failed sign-in leaves throttle counts and an audit entry behind that must outlive the error
answer. Functions that can fail that way return a `Refusal` instead of raising, so the caller
can commit first and raise `Refusal.error` after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Result, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsdeck.accounts import throttle, totp
from opsdeck.accounts.models import (
    ROLES,
    ApiToken,
    AuthSession,
    RecoveryCode,
    RefreshToken,
    User,
)
from opsdeck.accounts.policy import normalise_email, normalise_username, password_problem
from opsdeck.accounts.throttle import ThrottlePolicy
from opsdeck.audit.service import record
from opsdeck.core.db import utcnow
from opsdeck.core.deps import ClientContext
from opsdeck.core.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from opsdeck.core.security import (
    Passwords,
    decode_access_token,
    derive_key,
    digest,
    encode_access_token,
    keyed_digest,
    new_token,
)
from opsdeck.settings import Settings

# A public marker that tells personal tokens apart from JWTs, not a secret.
API_TOKEN_PREFIX = "opd_"  # noqa: S105  # nosec B105
# "opd_" and 8 characters of the token: enough to tell tokens apart in a list, useless alone.
API_TOKEN_DISPLAY_LENGTH = 12
# last_seen_at / last_used_at are kept to this resolution so reads do not write on every call.
ACTIVITY_RESOLUTION = timedelta(minutes=1)
MAX_DISPLAY_NAME_LENGTH = 100
AUDIT_ACTOR_LENGTH = 64

LOGIN_FAILED_MESSAGE = "Incorrect username or password."
OTP_REQUIRED_MESSAGE = "Enter the six-digit code from your authenticator app, or a recovery code."
OTP_INVALID_MESSAGE = "The code is incorrect, expired or already used."

AuthMethod = Literal["jwt", "api_token", "cookie"]
LoginChannel = Literal["token", "session"]


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A failed attempt whose bookkeeping is in the session: commit it, then raise `error`."""

    error: AppError


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True)
class BrowserLogin:
    auth_session: AuthSession
    cookie_value: str
    csrf_token: str


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, and through which credential."""

    user: User
    method: AuthMethod
    auth_session: AuthSession | None = None
    api_token: ApiToken | None = None


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    provisioning_uri: str


@dataclass(frozen=True)
class NewApiToken:
    api_token: ApiToken
    token: str


@dataclass(frozen=True)
class UserQuery:
    q: str | None = None
    role: str | None = None
    is_active: bool | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class PurgeCounts:
    sessions: int
    refresh_tokens: int
    throttle_rows: int


# -- users ---------------------------------------------------------------------------------


def create_user(
    session: Session,
    passwords: Passwords,
    *,
    username: str,
    email: str,
    password: str,
    display_name: str = "",
    role: str = "member",
    actor: User | None = None,
    actor_name: str | None = None,
    client: ClientContext | None = None,
) -> User:
    username = _normalised(normalise_username, username, "body.username")
    email = _normalised(normalise_email, email, "body.email")
    display_name = _valid_display_name(display_name)
    _check_role(role)
    check_password(password, username=username, email=email, field="body.password")
    _ensure_unique(session, username=username, email=email)
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        role=role,
        is_active=True,
        password_hash=passwords.hash(password),
    )
    _save_unique(session, user)
    record(
        session,
        "user.created",
        actor=actor,
        actor_name=actor_name,
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "role": user.role},
        client=client,
    )
    return user


def check_password(password: str, *, username: str, email: str, field: str) -> None:
    problem = password_problem(password, username=username, email=email)
    if problem is not None:
        raise ValidationFailed(
            f"The password is too weak: {problem}",
            code="weak_password",
            details=[{"field": field, "message": problem, "type": "weak_password"}],
        )


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id!r}.")
    return user


def get_active_user_by_username(session: Session, username: str) -> User | None:
    """For other modules' commands (`--as USER`): the active user of that name, or None."""
    return session.scalar(
        select(User).where(User.username == username.lower(), User.is_active.is_(True))
    )


def first_active_admin(session: Session) -> User | None:
    """The oldest active admin, or None (a command's default owner)."""
    return session.scalars(
        select(User)
        .where(User.role == "admin", User.is_active.is_(True))
        .order_by(User.created_at)
        .limit(1)
    ).first()


def list_users(session: Session, query: UserQuery) -> tuple[Sequence[User], int]:
    statement = select(User)
    if query.q and query.q.strip():
        needle = query.q.strip().lower()
        statement = statement.where(
            or_(
                User.username.contains(needle, autoescape=True),
                User.email.contains(needle, autoescape=True),
                func.lower(User.display_name).contains(needle, autoescape=True),
            )
        )
    if query.role is not None:
        statement = statement.where(User.role == query.role)
    if query.is_active is not None:
        statement = statement.where(User.is_active.is_(query.is_active))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    page = statement.order_by(User.username).limit(query.limit).offset(query.offset)
    return session.scalars(page).all(), total


def update_user(
    session: Session,
    user_id: str,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
    actor: User,
    client: ClientContext | None = None,
) -> User:
    """An administrator's change to another account (or their own). None leaves a field as is."""
    user = get_user(session, user_id)
    if role is not None:
        _check_role(role)
    if display_name is not None:
        display_name = _valid_display_name(display_name)
    deactivate = is_active is False and user.is_active
    if user.is_admin and user.is_active and (deactivate or role not in (None, "admin")):
        _ensure_another_active_admin(session, user)

    changes: list[tuple[str, dict[str, Any]]] = []
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        changes.append(("user.updated", {"fields": ["display_name"]}))
    if role is not None and role != user.role:
        changes.append(("user.role_changed", {"from": user.role, "to": role}))
        user.role = role
    if deactivate:
        user.is_active = False
        revoked = _sign_out_everywhere(session, user, reason="deactivated")
        changes.append(("user.deactivated", revoked))
    elif is_active is True and not user.is_active:
        user.is_active = True
        changes.append(("user.reactivated", {}))
    for action, details in changes:
        record(
            session,
            action,
            actor=actor,
            target_type="user",
            target_id=user.id,
            details=details,
            client=client,
        )
    session.flush()
    return user


def update_profile(
    session: Session,
    user: User,
    *,
    display_name: str | None = None,
    email: str | None = None,
    client: ClientContext | None = None,
) -> User:
    """The signed-in user's own change to their name or e-mail address."""
    changed: list[str] = []
    if display_name is not None:
        display_name = _valid_display_name(display_name)
        if display_name != user.display_name:
            user.display_name = display_name
            changed.append("display_name")
    if email is not None:
        email = _normalised(normalise_email, email, "body.email")
        if email != user.email:
            _ensure_unique(session, email=email, exclude_id=user.id)
            user.email = email
            changed.append("email")
    if changed:
        _save_unique(session, user)
        record(
            session,
            "user.updated",
            actor=user,
            target_type="user",
            target_id=user.id,
            details={"fields": changed},
            client=client,
        )
    return user


def change_password(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    principal: Principal,
    *,
    current_password: str,
    new_password: str,
    client: ClientContext | None = None,
) -> Refusal | None:
    """Set a new password and sign out every other session of the user."""
    user = principal.user
    check_password(
        new_password, username=user.username, email=user.email, field="body.new_password"
    )
    refusal = _reauthenticate(
        session,
        passwords,
        settings,
        user,
        password=current_password,
        reauth_field="body.current_password",
        purpose="password_change",
        client=client,
    )
    if refusal is not None:
        return refusal
    user.password_hash = passwords.hash(new_password)
    user.password_changed_at = utcnow()
    keep = principal.auth_session.id if principal.auth_session else None
    revoked = _revoke_sessions(session, user, reason="password_changed", keep_session_id=keep)
    record(
        session,
        "auth.password.changed",
        actor=user,
        target_type="user",
        target_id=user.id,
        details={"other_sessions_revoked": revoked},
        client=client,
    )
    return None


# -- sign-in -------------------------------------------------------------------------------


def authenticate(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    *,
    username: str,
    password: str,
    otp: str | None,
    channel: LoginChannel,
    client: ClientContext | None = None,
) -> User | Refusal:
    """Check a sign-in. Unknown user, wrong password and deactivated user give one answer, and
    the throttle is consulted before the password so a blocked guess reveals nothing."""
    now = utcnow()
    policy = ThrottlePolicy.from_settings(settings)
    limits = policy.limits(username, client.ip if client else None)
    attempt = _LoginAttempt(session, username, channel, client)

    wait = throttle.retry_after(session, limits, now)
    if wait is not None:
        attempt.audit_failure(None, "throttled")
        return Refusal(_too_many_attempts(wait))

    # Usernames cannot contain "@", so an identifier with one is an e-mail address.
    identifier = username.strip().lower()
    column = User.email if "@" in identifier else User.username
    user = session.scalar(select(User).where(column == identifier))
    # Verified even for an unknown user (against a dummy hash) so both take the same time.
    password_ok = passwords.verify(user.password_hash if user else None, password)
    if user is None or not password_ok or not user.is_active:
        reason = (
            "unknown_user" if user is None else "bad_password" if not password_ok else "inactive"
        )
        throttle.record_failure(session, policy, limits, now)
        attempt.audit_failure(user, reason)
        return Refusal(Unauthorized(LOGIN_FAILED_MESSAGE, code="invalid_credentials"))

    second_factor = None
    if user.totp_enabled:
        if not otp:
            # The password was right: not a failure, the client asks for the code next.
            return Refusal(Unauthorized(OTP_REQUIRED_MESSAGE, code="otp_required"))
        second_factor = _accept_second_factor(session, settings, user, otp, now, client)
        if second_factor is None:
            throttle.record_failure(session, policy, limits, now)
            attempt.audit_failure(user, "bad_otp")
            return Refusal(Unauthorized(OTP_INVALID_MESSAGE, code="invalid_otp"))

    throttle.clear(session, throttle.account_key(username))
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash(password)
    record(
        session,
        "auth.login.succeeded",
        actor=user,
        target_type="user",
        target_id=user.id,
        details={"channel": channel, "second_factor": second_factor},
        client=client,
    )
    return user


@dataclass(frozen=True)
class _LoginAttempt:
    session: Session
    username: str
    channel: LoginChannel
    client: ClientContext | None

    def audit_failure(self, user: User | None, reason: str) -> None:
        # The reason goes to the audit log only; the answer never tells them apart.
        record(
            self.session,
            "auth.login.failed",
            actor=user,
            actor_name=None if user else self.username.strip().lower()[:AUDIT_ACTOR_LENGTH],
            target_type="user" if user else None,
            target_id=user.id if user else None,
            details={"reason": reason, "channel": self.channel},
            client=self.client,
        )


def start_api_session(
    session: Session, settings: Settings, user: User, client: ClientContext | None = None
) -> IssuedTokens:
    """A bearer-token session: the refresh tokens it hands out form one family."""
    now = utcnow()
    auth = _new_auth_session(
        user,
        kind="api",
        expires_at=now + timedelta(days=settings.refresh_token_ttl_days),
        client=client,
    )
    session.add(auth)
    session.flush()
    return _issue_tokens(session, settings, auth, now)


def refresh_session(
    session: Session, settings: Settings, refresh_token: str, client: ClientContext | None = None
) -> IssuedTokens | Refusal:
    """Trade a refresh token for a new pair. A token is good once: presenting a spent one means
    two parties hold it, so the whole session is revoked."""
    now = utcnow()
    row = session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
    )
    if row is None:
        raise _invalid_refresh_token()
    auth = session.get_one(AuthSession, row.session_id)
    if row.used_at is not None:
        return _refresh_token_reused(session, auth, client, now)
    if row.expires_at <= now or not _usable(auth, now):
        raise _invalid_refresh_token()
    spent = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if _affected(spent) != 1:  # a concurrent request spent it first
        return _refresh_token_reused(session, auth, client, now)
    return _issue_tokens(session, settings, auth, now)


def start_browser_session(
    session: Session, settings: Settings, user: User, client: ClientContext | None = None
) -> BrowserLogin:
    cookie_value = new_token()
    auth = _new_auth_session(
        user,
        kind="browser",
        expires_at=utcnow() + timedelta(hours=settings.session_ttl_hours),
        client=client,
    )
    auth.token_hash = digest(cookie_value)
    session.add(auth)
    session.flush()
    return BrowserLogin(auth, cookie_value, csrf_token(settings, auth.id))


def csrf_token(settings: Settings, session_id: str) -> str:
    """Derived from the session rather than stored: nothing to keep in sync, and a page on
    another origin cannot compute it."""
    return keyed_digest(derive_key(settings.secret_bytes(), "csrf"), session_id)


def end_session(
    session: Session,
    auth: AuthSession,
    *,
    actor: User,
    reason: str = "logout",
    client: ClientContext | None = None,
) -> None:
    if auth.revoked_at is None:
        auth.revoked_at = utcnow()
        auth.revoked_reason = reason
    record(
        session,
        "auth.logout",
        actor=actor,
        target_type="auth_session",
        target_id=auth.id,
        details={"kind": auth.kind},
        client=client,
    )


def end_session_of_refresh_token(
    session: Session, user: User, refresh_token: str, client: ClientContext | None = None
) -> None:
    """Sign out the session a refresh token belongs to, if it is the caller's."""
    row = session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
    )
    if row is None:
        return
    auth = session.get_one(AuthSession, row.session_id)
    if auth.user_id == user.id and auth.revoked_at is None:
        end_session(session, auth, actor=user, client=client)


def replace_browser_session(session: Session, cookie_value: str) -> None:
    """Signing in again from a browser retires the session its old cookie named."""
    auth = _browser_session(session, cookie_value)
    if auth is not None and auth.revoked_at is None:
        auth.revoked_at = utcnow()
        auth.revoked_reason = "replaced"


# -- authenticating requests ---------------------------------------------------------------


def authenticate_bearer(session: Session, settings: Settings, token: str) -> Principal:
    if token.startswith(API_TOKEN_PREFIX):
        return _principal_from_api_token(session, token)
    return _principal_from_access_token(session, settings, token)


def authenticate_cookie(session: Session, cookie_value: str) -> Principal:
    now = utcnow()
    auth = _browser_session(session, cookie_value)
    if auth is None or not _usable(auth, now):
        raise Unauthorized("Your session has ended; sign in again.")
    _touch_session(auth, now)
    return Principal(auth.user, "cookie", auth_session=auth)


def _principal_from_access_token(session: Session, settings: Settings, token: str) -> Principal:
    claims = decode_access_token(derive_key(settings.secret_bytes(), "jwt"), token)
    if claims is None:
        raise Unauthorized("The access token is invalid or has expired.")
    now = utcnow()
    auth = session.get(AuthSession, claims.session_id)
    if (
        auth is None
        or auth.kind != "api"
        or auth.user_id != claims.user_id
        or not _usable(auth, now)
    ):
        raise Unauthorized("The session of this access token has ended; sign in again.")
    _touch_session(auth, now)
    return Principal(auth.user, "jwt", auth_session=auth)


def _principal_from_api_token(session: Session, token: str) -> Principal:
    now = utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
    if (
        row is None
        or row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
        or not row.user.is_active
    ):
        raise Unauthorized("The API token is invalid, expired or revoked.")
    if row.last_used_at is None or now - row.last_used_at >= ACTIVITY_RESOLUTION:
        row.last_used_at = now
    return Principal(row.user, "api_token", api_token=row)


# -- two-factor authentication -------------------------------------------------------------


def begin_totp_setup(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    user: User,
    *,
    password: str,
    client: ClientContext | None = None,
) -> TotpSetup | Refusal:
    """A new secret, pending until a code from it is confirmed, so a mistyped setup never
    locks anyone out."""
    _require_totp(user, enabled=False)
    refusal = _reauthenticate(
        session, passwords, settings, user, password=password, purpose="2fa_setup", client=client
    )
    if refusal is not None:
        return refusal
    secret = totp.new_secret()
    user.totp_pending_secret = secret
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
    secret = user.totp_pending_secret
    if secret is None:
        raise Conflict("Start two-factor setup first; there is no secret waiting to be confirmed.")
    counter = totp.matching_counter(secret, code, now=utcnow(), last_counter=None)
    if counter is None:
        raise Forbidden(
            f"{OTP_INVALID_MESSAGE} Check that your device's clock is right and enter the "
            "current code.",
            code="invalid_otp",
            details=[_field("body.code", OTP_INVALID_MESSAGE, "invalid_otp")],
        )
    user.totp_secret = secret
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
) -> Refusal | None:
    _require_totp(user, enabled=True)
    refusal = _reauthenticate(
        session,
        passwords,
        settings,
        user,
        password=password,
        code=code,
        purpose="2fa_disable",
        client=client,
    )
    if refusal is not None:
        return refusal
    user.totp_secret = None
    user.totp_pending_secret = None
    user.totp_enabled_at = None
    user.totp_last_counter = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    _audit_self(session, user, "auth.2fa.disabled", client)
    return None


def regenerate_recovery_codes(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    user: User,
    *,
    password: str,
    code: str,
    client: ClientContext | None = None,
) -> list[str] | Refusal:
    _require_totp(user, enabled=True)
    refusal = _reauthenticate(
        session,
        passwords,
        settings,
        user,
        password=password,
        code=code,
        purpose="2fa_recovery_codes",
        client=client,
    )
    if refusal is not None:
        return refusal
    codes = _replace_recovery_codes(session, settings, user)
    _audit_self(session, user, "auth.2fa.recovery_regenerated", client)
    return codes


def _require_totp(user: User, *, enabled: bool) -> None:
    if enabled and not user.totp_enabled:
        raise Conflict("Two-factor authentication is not turned on for this account.")
    if not enabled and user.totp_enabled:
        raise Conflict(
            "Two-factor authentication is already on; turn it off first to move it to a new device."
        )


def _accept_second_factor(
    session: Session,
    settings: Settings,
    user: User,
    code: str,
    now: datetime,
    client: ClientContext | None,
) -> Literal["totp", "recovery_code"] | None:
    """Spend a TOTP code or a recovery code; which kind was accepted, or None."""
    if user.totp_secret is None:
        return None
    if totp.looks_like_totp(code):
        return "totp" if _spend_totp(session, user, user.totp_secret, code, now) else None
    if _spend_recovery_code(session, settings, user, code, now):
        remaining = session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        _audit_self(session, user, "auth.2fa.recovery_used", client, {"remaining": remaining})
        return "recovery_code"
    return None


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
    return _affected(result) == 1


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
    return _affected(result) == 1


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


# -- personal API tokens -------------------------------------------------------------------


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


# -- maintenance ---------------------------------------------------------------------------


def purge_expired(session: Session, now: datetime, *, throttle_window: timedelta) -> PurgeCounts:
    """Delete sessions that can no longer be used (with their refresh tokens), expired refresh
    tokens and throttle counters past their window. Spent refresh tokens of live sessions stay:
    they are what detects a stolen one being replayed."""
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
        sessions=_affected(sessions),
        refresh_tokens=_affected(refresh_tokens),
        throttle_rows=throttle.purge_stale(session, now, throttle_window),
    )


# -- helpers -------------------------------------------------------------------------------


def _normalised(normalise: Callable[[str], str], value: str, field: str) -> str:
    try:
        return normalise(value)
    except ValueError as exc:
        name = field.rsplit(".", 1)[-1]
        raise ValidationFailed(
            f"Invalid {name}: {exc}", details=[_field(field, str(exc), "value_error")]
        ) from exc


def _valid_display_name(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_DISPLAY_NAME_LENGTH:
        message = f"Use at most {MAX_DISPLAY_NAME_LENGTH} characters."
        raise ValidationFailed(
            f"Invalid display_name: {message}",
            details=[_field("body.display_name", message, "string_too_long")],
        )
    return value


def _check_role(role: str) -> None:
    if role not in ROLES:
        message = f"Use one of: {', '.join(ROLES)}."
        raise ValidationFailed(
            f"Invalid role: {message}", details=[_field("body.role", message, "literal_error")]
        )


def _field(field: str, message: str, kind: str) -> dict[str, Any]:
    return {"field": field, "message": message, "type": kind}


def _ensure_unique(
    session: Session,
    *,
    username: str | None = None,
    email: str | None = None,
    exclude_id: str | None = None,
) -> None:
    others = select(User.id)
    if exclude_id is not None:
        others = others.where(User.id != exclude_id)
    if username is not None and session.scalar(others.where(User.username == username)):
        message = f"The username {username!r} is already taken."
        raise Conflict(message, details=[_field("body.username", message, "conflict")])
    if email is not None and session.scalar(others.where(User.email == email)):
        message = f"Another account already uses the e-mail address {email}."
        raise Conflict(message, details=[_field("body.email", message, "conflict")])


def _save_unique(session: Session, user: User) -> None:
    """Flush inside a savepoint: if a concurrent request took the name or address between the
    check and now, answer 409 and leave the rest of the transaction usable."""
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise Conflict("Another account already uses that username or e-mail address.") from exc


def _ensure_another_active_admin(session: Session, user: User) -> None:
    # Locking the admin rows serialises two admins demoting each other at the same moment.
    admins = session.scalars(
        select(User.id).where(User.role == "admin", User.is_active.is_(True)).with_for_update()
    ).all()
    if not any(admin_id != user.id for admin_id in admins):
        raise Conflict(
            f"{user.username} is the last active administrator; make another user an "
            "administrator first."
        )


def _sign_out_everywhere(session: Session, user: User, *, reason: str) -> dict[str, int]:
    sessions = _revoke_sessions(session, user, reason=reason)
    tokens = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return {"sessions_revoked": sessions, "api_tokens_revoked": _affected(tokens)}


def _revoke_sessions(
    session: Session, user: User, *, reason: str, keep_session_id: str | None = None
) -> int:
    statement = update(AuthSession).where(
        AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None)
    )
    if keep_session_id is not None:
        statement = statement.where(AuthSession.id != keep_session_id)
    result = session.execute(statement.values(revoked_at=utcnow(), revoked_reason=reason))
    return _affected(result)


def _reauthenticate(
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
) -> Refusal | None:
    """Proof of presence before a sensitive change. Throttled like a sign-in, so a stolen
    session cannot be used to guess the password."""
    now = utcnow()
    policy = ThrottlePolicy.from_settings(settings)
    limits = policy.limits(user.username, client.ip if client else None)
    wait = throttle.retry_after(session, limits, now)
    if wait is not None:
        return Refusal(_too_many_attempts(wait))
    error: AppError | None = None
    if not passwords.verify(user.password_hash, password):
        message = "The password is incorrect."
        error = Forbidden(
            message,
            code="invalid_password",
            details=[_field(reauth_field, message, "invalid_password")],
        )
    elif (
        code is not None
        and _accept_second_factor(session, settings, user, code, now, client) is None
    ):
        error = Forbidden(
            OTP_INVALID_MESSAGE,
            code="invalid_otp",
            details=[_field("body.code", OTP_INVALID_MESSAGE, "invalid_otp")],
        )
    if error is None:
        return None
    throttle.record_failure(session, policy, limits, now)
    _audit_self(
        session, user, "auth.reauth.failed", client, {"purpose": purpose, "reason": error.code}
    )
    return Refusal(error)


def _too_many_attempts(wait: int) -> TooManyRequests:
    return TooManyRequests(
        f"Too many failed attempts; try again in {wait} seconds.", retry_after=wait
    )


def _invalid_refresh_token() -> Unauthorized:
    return Unauthorized(
        "The refresh token is invalid or has expired; sign in again.", code="invalid_refresh_token"
    )


def _refresh_token_reused(
    session: Session, auth: AuthSession, client: ClientContext | None, now: datetime
) -> Refusal:
    if auth.revoked_at is None:
        auth.revoked_at = now
        auth.revoked_reason = "refresh_token_reused"
    record(
        session,
        "auth.refresh.reused",
        actor=auth.user,
        target_type="auth_session",
        target_id=auth.id,
        client=client,
    )
    return Refusal(
        Unauthorized(
            "This refresh token was already used, so the session it belongs to has been "
            "signed out as a precaution; sign in again.",
            code="refresh_token_reused",
        )
    )


def _new_auth_session(
    user: User, *, kind: str, expires_at: datetime, client: ClientContext | None
) -> AuthSession:
    return AuthSession(
        user_id=user.id,
        kind=kind,
        expires_at=expires_at,
        ip=client.ip[:45] if client and client.ip else None,
        user_agent=client.user_agent if client else None,
    )


def _issue_tokens(
    session: Session, settings: Settings, auth: AuthSession, now: datetime
) -> IssuedTokens:
    # Refresh tokens never outlive their session: the session's lifetime is absolute.
    refresh_token = new_token()
    session.add(
        RefreshToken(
            session_id=auth.id, token_hash=digest(refresh_token), expires_at=auth.expires_at
        )
    )
    session.flush()
    access_token = encode_access_token(
        derive_key(settings.secret_bytes(), "jwt"),
        user_id=auth.user_id,
        session_id=auth.id,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    return IssuedTokens(
        access_token=access_token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh_token,
        refresh_expires_in=int((auth.expires_at - now).total_seconds()),
    )


def _browser_session(session: Session, cookie_value: str) -> AuthSession | None:
    return session.scalar(
        select(AuthSession).where(
            AuthSession.token_hash == digest(cookie_value), AuthSession.kind == "browser"
        )
    )


def _usable(auth: AuthSession, now: datetime) -> bool:
    return auth.revoked_at is None and auth.expires_at > now and auth.user.is_active


def _touch_session(auth: AuthSession, now: datetime) -> None:
    if now - auth.last_seen_at >= ACTIVITY_RESOLUTION:
        auth.last_seen_at = now


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


def _affected(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount
