"""Signing in (password, then a second factor), the sessions it opens (bearer-token sessions
with rotating refresh tokens, browser sessions with a cookie and a CSRF token), signing out,
and authenticating each request by its credential."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from opsdeck.accounts.models import ApiToken, AuthSession, RefreshToken, Role, User
from opsdeck.accounts.service.api_tokens import API_TOKEN_PREFIX
from opsdeck.accounts.service.two_factor import (
    OTP_INVALID_MESSAGE,
    OTP_REQUIRED_MESSAGE,
    accept_second_factor,
)
from opsdeck.accounts.throttle import (
    Attempt,
    LoginThrottle,
    issue_known_device,
    known_device_nonce,
    too_many_attempts,
)
from opsdeck.audit.service import record
from opsdeck.core.db import affected_rows, keep_on_refusal, utcnow
from opsdeck.core.deps import ClientContext
from opsdeck.core.errors import Unauthorized
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

LOGIN_FAILED_MESSAGE = "Incorrect username or password."
AUDIT_ACTOR_LENGTH = 64
# last_seen_at / last_used_at are kept to this resolution so reads do not write on every call.
ACTIVITY_RESOLUTION = timedelta(minutes=1)

AuthMethod = Literal["jwt", "api_token", "cookie"]
LoginChannel = Literal["token", "session"]


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
    known_device: str | None = None,
) -> User:
    """Check a sign-in; raises when it fails. Unknown user, wrong password and deactivated
    user give one answer, and the throttle is consulted before the password so a blocked guess
    reveals nothing. Every failure leaves an audit entry (`keep_on_refusal`).

    `known_device` is the browser's known-device cookie (`issue_known_device`): valid for this
    account, it takes the attempt past the account's and the address's failure counters (it
    has its own). Browser sign-ins (`channel="session"`) are also counted per client address;
    API sign-ins per account and per (account, address) only."""
    now = utcnow()
    throttle = LoginThrottle.from_settings(settings)
    ip = client.ip if client else None
    audit = _LoginAttempt(username, channel, client)

    # Usernames cannot contain "@", so an identifier with one is an e-mail address.
    identifier = username.strip().lower()
    column = User.email if "@" in identifier else User.username
    user = session.scalar(select(User).where(column == identifier))
    device = (
        known_device_nonce(
            settings, known_device, user_id=user.id, password_hash=user.password_hash
        )
        if user is not None and channel == "session"
        else None
    )
    attempt = Attempt(username, ip, device=device, per_address=channel == "session")

    wait = throttle.retry_after(attempt)
    if wait is not None:
        audit.audit_failure(session, None, "throttled")
        raise too_many_attempts(wait)

    # Verified even for an unknown user (against a dummy hash) so both take the same time.
    password_ok = passwords.verify(user.password_hash if user else None, password)
    if user is None or not password_ok or not user.is_active:
        reason = (
            "unknown_user" if user is None else "bad_password" if not password_ok else "inactive"
        )
        throttle.record_failure(attempt)
        audit.audit_failure(session, user, reason)
        raise Unauthorized(LOGIN_FAILED_MESSAGE, code="invalid_credentials")

    second_factor = None
    if user.totp_enabled:
        if not otp:
            # The password was right: not a failure, the client asks for the code next.
            raise Unauthorized(OTP_REQUIRED_MESSAGE, code="otp_required")
        second_factor = accept_second_factor(session, settings, user, otp, now, client)
        if second_factor is None:
            throttle.record_failure(attempt)
            audit.audit_failure(session, user, "bad_otp")
            raise Unauthorized(OTP_INVALID_MESSAGE, code="invalid_otp")

    throttle.forget(attempt)
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
    username: str
    channel: LoginChannel
    client: ClientContext | None

    def audit_failure(self, session: Session, user: User | None, reason: str) -> None:
        """Keep an audit entry of the failure however the request ends."""
        user_id = user.id if user else None
        keep_on_refusal(session, lambda s: self._record(s, user_id, reason))

    def _record(self, session: Session, user_id: str | None, reason: str) -> None:
        # The reason goes to the audit log only; the answer never tells them apart.
        user = session.get_one(User, user_id) if user_id else None
        record(
            session,
            "auth.login.failed",
            actor=user,
            actor_name=None if user else self.username.strip().lower()[:AUDIT_ACTOR_LENGTH],
            target_type="user" if user else None,
            target_id=user_id,
            details={"reason": reason, "channel": self.channel},
            client=self.client,
        )


def known_device_cookie(settings: Settings, user: User) -> str:
    """The known-device cookie's value for a browser `user` has just signed in with (after
    any rehash of the password, whose fingerprint it carries)."""
    return issue_known_device(settings, user_id=user.id, password_hash=user.password_hash)


# -- sessions ------------------------------------------------------------------------------


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
) -> IssuedTokens:
    """Trade a refresh token for a new pair. A token is good once: presenting a spent one means
    two parties hold it, so the whole session is revoked (and stays revoked: the refusal keeps
    it)."""
    now = utcnow()
    row = session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
    )
    if row is None:
        raise _invalid_refresh_token()
    auth = session.get_one(AuthSession, row.session_id)
    if row.used_at is not None:
        raise _refresh_token_reused(session, auth, client, now)
    if row.expires_at <= now or not _usable(auth, now):
        raise _invalid_refresh_token()
    spent = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if affected_rows(spent) != 1:  # a concurrent request spent it first
        raise _refresh_token_reused(session, auth, client, now)
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


def revoke_sessions(
    session: Session, user: User, *, reason: str, keep_session_id: str | None = None
) -> int:
    """Sign `user` out everywhere but `keep_session_id`; how many sessions were live."""
    statement = update(AuthSession).where(
        AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None)
    )
    if keep_session_id is not None:
        statement = statement.where(AuthSession.id != keep_session_id)
    result = session.execute(statement.values(revoked_at=utcnow(), revoked_reason=reason))
    return affected_rows(result)


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


def _invalid_refresh_token() -> Unauthorized:
    return Unauthorized(
        "The refresh token is invalid or has expired; sign in again.", code="invalid_refresh_token"
    )


def _refresh_token_reused(
    session: Session, auth: AuthSession, client: ClientContext | None, now: datetime
) -> Unauthorized:
    """The refusal of a replayed refresh token; its session's revocation is kept."""
    auth_id = auth.id

    def revoke(s: Session) -> None:
        kept = s.get_one(AuthSession, auth_id)
        if kept.revoked_at is None:
            kept.revoked_at = now
            kept.revoked_reason = "refresh_token_reused"
        record(
            s,
            "auth.refresh.reused",
            actor=kept.user,
            target_type="auth_session",
            target_id=kept.id,
            client=client,
        )

    keep_on_refusal(session, revoke)
    return Unauthorized(
        "This refresh token was already used, so the session it belongs to has been "
        "signed out as a precaution; sign in again.",
        code="refresh_token_reused",
    )


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


# Built once: building and keying the statement cost more CPU than running it, on every
# request an API token signs (the token's hash is bound per request).
_API_TOKEN_BY_HASH = select(ApiToken).where(ApiToken.token_hash == bindparam("token_hash"))


def _principal_from_api_token(session: Session, token: str) -> Principal:
    now = utcnow()
    row = session.scalar(_API_TOKEN_BY_HASH, {"token_hash": digest(token)})
    if row is None:
        raise _unusable_api_token()
    _check_api_token(row.revoked_at, row.expires_at, row.user.is_active, now)
    if _activity_due(row.last_used_at, now):
        row.last_used_at = now
    return Principal(row.user, "api_token", api_token=row)


def _unusable_api_token() -> Unauthorized:
    return Unauthorized("The API token is invalid, expired or revoked.")


def _check_api_token(
    revoked_at: datetime | None, expires_at: datetime | None, user_active: bool, now: datetime
) -> None:
    """The one rule of a usable API token (authenticate_bearer and read_api_token)."""
    if revoked_at is not None or (expires_at is not None and expires_at <= now) or not user_active:
        raise _unusable_api_token()


def _activity_due(last: datetime | None, now: datetime) -> bool:
    """Whether a last-used / last-seen time is due to be written again (at most once per
    ACTIVITY_RESOLUTION)."""
    return last is None or now - last >= ACTIVITY_RESOLUTION


@dataclass(frozen=True)
class Reader:
    """Who a request that only reads acts for: the signed-in user's id, name and role, not its
    ORM object (read_api_token). What the modules' `Actor` protocols ask of a user."""

    id: str
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @classmethod
    def of(cls, user: User) -> Reader:
        return cls(user.id, user.username, user.role)


_TOKENS = cast(Table, ApiToken.__table__)
_USERS = cast(Table, User.__table__)
# The columns an API token's check needs, with its user's, in one statement built once.
_READER_BY_API_TOKEN = (
    select(
        _TOKENS.c.id,
        _TOKENS.c.last_used_at,
        _TOKENS.c.expires_at,
        _TOKENS.c.revoked_at,
        _USERS.c.id.label("user_id"),
        _USERS.c.username,
        _USERS.c.role,
        _USERS.c.is_active,
    )
    .join_from(_TOKENS, _USERS, _USERS.c.id == _TOKENS.c.user_id)
    .where(_TOKENS.c.token_hash == bindparam("token_hash"))
)
_API_TOKEN_USED = (
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("token_id"))
    .values(last_used_at=bindparam("at"))
)


def read_api_token(session: Session, token: str) -> Reader:
    """The user API token `token` signs a read for, with the checks of authenticate_bearer
    (unknown, revoked or expired token, disabled user: a 401), read at every request, never
    cached; `last_used_at` is written at most once per ACTIVITY_RESOLUTION, as there.

    A Core statement of the columns the checks and a Reader need: loading the token and its user
    as ORM objects (23 columns into the identity map) was about a quarter of the web CPU of the
    incidents API's hot reads (docs/benchmarks.md, "Incidents API")."""
    now = utcnow()
    row = session.execute(_READER_BY_API_TOKEN, {"token_hash": digest(token)}).one_or_none()
    if row is None:
        raise _unusable_api_token()
    _check_api_token(row.revoked_at, row.expires_at, row.is_active, now)
    if _activity_due(row.last_used_at, now):
        session.execute(_API_TOKEN_USED, {"token_id": row.id, "at": now})
    return Reader(row.user_id, row.username, row.role)


def _browser_session(session: Session, cookie_value: str) -> AuthSession | None:
    return session.scalar(
        select(AuthSession).where(
            AuthSession.token_hash == digest(cookie_value), AuthSession.kind == "browser"
        )
    )


def _usable(auth: AuthSession, now: datetime) -> bool:
    return auth.revoked_at is None and auth.expires_at > now and auth.user.is_active


def _touch_session(auth: AuthSession, now: datetime) -> None:
    if _activity_due(auth.last_seen_at, now):
        auth.last_seen_at = now
