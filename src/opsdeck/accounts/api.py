"""The auth and users endpoints (docs/api.md). Thin: parse, authorize, call the service, shape
the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Form, Query, Response, status

from opsdeck.accounts import service
from opsdeck.accounts.dependencies import (
    CSRF_COOKIE,
    KNOWN_DEVICE_COOKIE,
    KNOWN_DEVICE_COOKIE_PATH,
    SESSION_COOKIE,
    AdminUser,
    CurrentPrincipal,
    CurrentUser,
)
from opsdeck.accounts.models import AuthSession
from opsdeck.accounts.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenOut,
    DirectoryPage,
    DirectoryUser,
    LogoutIn,
    PasswordAndCode,
    PasswordChange,
    RecoveryCodesOut,
    RefreshIn,
    Role,
    SessionLogin,
    SessionOut,
    TokenPair,
    TotpConfirmIn,
    TotpSetupIn,
    TotpSetupOut,
    UserAdminUpdate,
    UserCreate,
    UserOut,
    UserPage,
    UserSelfUpdate,
)
from opsdeck.accounts.service import Principal
from opsdeck.core.deps import ClientDep, PasswordsDep, SessionDep, SettingsDep
from opsdeck.core.errors import Unauthorized, error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import PageParams, page_params
from opsdeck.core.params import HexIdConvertor as HexIdConvertor  # registers {name:hexid}
from opsdeck.settings import Settings


def no_store(response: Response) -> None:
    # Tokens, codes and account data must not linger in a browser or proxy cache.
    response.headers["Cache-Control"] = "no-store"


auth_router = APIRouter(
    prefix=f"{API_PREFIX}/auth", tags=["auth"], dependencies=[Depends(no_store)]
)
users_router = APIRouter(
    prefix=f"{API_PREFIX}/users", tags=["users"], dependencies=[Depends(no_store)]
)


def _token_pair(tokens: service.IssuedTokens) -> TokenPair:
    return TokenPair(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        refresh_expires_in=tokens.refresh_expires_in,
    )


# -- /auth ---------------------------------------------------------------------------------


@auth_router.post(
    "/token", name="auth-token", responses=error_responses(401, 422, 429), response_model=TokenPair
)
def issue_token(
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    client: ClientDep,
    username: Annotated[str, Form(min_length=1, max_length=254)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    otp: Annotated[str | None, Form(max_length=64, description="TOTP or recovery code")] = None,
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> TokenPair:
    """Sign in with the OAuth2 password flow; answers a bearer access token and a refresh
    token."""
    user = service.authenticate(
        session,
        passwords,
        settings,
        username=username,
        password=password,
        otp=otp.strip() if otp else None,
        channel="token",
        client=client,
    )
    return _token_pair(service.start_api_session(session, settings, user, client))


@auth_router.post(
    "/refresh", name="auth-refresh", responses=error_responses(401, 422), response_model=TokenPair
)
def refresh_token(
    body: RefreshIn, session: SessionDep, settings: SettingsDep, client: ClientDep
) -> TokenPair:
    """Trade a refresh token for a new pair; the old refresh token is spent."""
    return _token_pair(service.refresh_session(session, settings, body.refresh_token, client))


@auth_router.post(
    "/logout",
    name="auth-logout",
    responses=error_responses(401, 403, 422),
    status_code=status.HTTP_204_NO_CONTENT,
)
def logout(
    principal: CurrentPrincipal,
    session: SessionDep,
    client: ClientDep,
    body: LogoutIn | None = None,
) -> None:
    """End the caller's session (and the one `refresh_token` belongs to, if given)."""
    if principal.auth_session is not None:
        service.end_session(session, principal.auth_session, actor=principal.user, client=client)
    if body is not None and body.refresh_token:
        service.end_session_of_refresh_token(session, principal.user, body.refresh_token, client)


@auth_router.post(
    "/session",
    name="auth-session-create",
    responses=error_responses(401, 422, 429),
    response_model=SessionOut,
)
def create_session(
    body: SessionLogin,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    client: ClientDep,
    previous_cookie: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
    known_device: Annotated[str | None, Cookie(alias=KNOWN_DEVICE_COOKIE)] = None,
) -> SessionOut:
    """Sign a browser in: sets the HttpOnly session cookie, the readable CSRF cookie and the
    HttpOnly known-device cookie (a browser that signed in before is not locked out by failed
    attempts of others on the account or from its address)."""
    user = service.authenticate(
        session,
        passwords,
        settings,
        username=body.username,
        password=body.password,
        otp=body.otp,
        channel="session",
        client=client,
        known_device=known_device,
    )
    if previous_cookie:
        service.replace_browser_session(session, previous_cookie)
    login = service.start_browser_session(session, settings, user, client)
    _set_session_cookies(response, settings, login)
    response.set_cookie(
        KNOWN_DEVICE_COOKIE,
        service.known_device_cookie(settings, user),
        max_age=settings.auth_known_device_days * 86_400,
        path=KNOWN_DEVICE_COOKIE_PATH,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return SessionOut(
        user=UserOut.model_validate(user),
        csrf_token=login.csrf_token,
        expires_at=login.auth_session.expires_at,
    )


@auth_router.get(
    "/session", name="auth-session-read", responses=error_responses(401), response_model=SessionOut
)
def read_session(principal: CurrentPrincipal, settings: SettingsDep) -> SessionOut:
    """The browser session's user and CSRF token (e.g. after a page reload)."""
    auth = _browser_session_of(principal)
    return SessionOut(
        user=UserOut.model_validate(principal.user),
        csrf_token=service.csrf_token(settings, auth.id),
        expires_at=auth.expires_at,
    )


@auth_router.delete(
    "/session",
    name="auth-session-delete",
    responses=error_responses(401, 403),
    status_code=status.HTTP_204_NO_CONTENT,
)
def delete_session(
    principal: CurrentPrincipal,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    client: ClientDep,
) -> None:
    """Sign the browser out and clear its cookies."""
    auth = _browser_session_of(principal)
    service.end_session(session, auth, actor=principal.user, client=client)
    _clear_session_cookies(response, settings)


def _browser_session_of(principal: Principal) -> AuthSession:
    if principal.method != "cookie" or principal.auth_session is None:
        raise Unauthorized("This endpoint works with the browser session cookie only.")
    return principal.auth_session


def _set_session_cookies(
    response: Response, settings: Settings, login: service.BrowserLogin
) -> None:
    max_age = settings.session_ttl_hours * 3600
    response.set_cookie(
        SESSION_COOKIE,
        login.cookie_value,
        max_age=max_age,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    # Readable by our own scripts (to echo it in X-CSRF-Token), never sent cross-site.
    response.set_cookie(
        CSRF_COOKIE,
        login.csrf_token,
        max_age=max_age,
        path="/",
        secure=settings.secure_cookies,
        httponly=False,
        samesite="strict",
    )


def _clear_session_cookies(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=settings.secure_cookies, httponly=True, samesite="lax"
    )
    response.delete_cookie(CSRF_COOKIE, path="/", secure=settings.secure_cookies, samesite="strict")


# -- /users/me -----------------------------------------------------------------------------


@users_router.get("/me", name="users-me", responses=error_responses(401), response_model=UserOut)
def read_me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@users_router.patch(
    "/me",
    name="users-update-me",
    responses=error_responses(401, 403, 409, 422),
    response_model=UserOut,
)
def update_me(
    body: UserSelfUpdate, user: CurrentUser, session: SessionDep, client: ClientDep
) -> UserOut:
    service.update_profile(
        session, user, display_name=body.display_name, email=body.email, client=client
    )
    return UserOut.model_validate(user)


@users_router.post(
    "/me/password",
    name="users-change-password",
    responses=error_responses(401, 403, 422, 429),
    status_code=status.HTTP_204_NO_CONTENT,
)
def change_password(
    body: PasswordChange,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    client: ClientDep,
) -> None:
    """Set a new password; every other session of the user is signed out."""
    service.change_password(
        session,
        passwords,
        settings,
        principal,
        current_password=body.current_password,
        new_password=body.new_password,
        client=client,
    )


@users_router.post(
    "/me/2fa/setup",
    name="users-2fa-setup",
    responses=error_responses(401, 403, 409, 422, 429),
    response_model=TotpSetupOut,
)
def setup_2fa(
    body: TotpSetupIn,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    client: ClientDep,
) -> TotpSetupOut:
    """Start 2FA: a new secret for the authenticator app, pending until confirmed."""
    setup = service.begin_totp_setup(
        session, passwords, settings, user, password=body.password, client=client
    )
    return TotpSetupOut(secret=setup.secret, provisioning_uri=setup.provisioning_uri)


@users_router.post(
    "/me/2fa/confirm",
    name="users-2fa-confirm",
    responses=error_responses(401, 403, 409, 422),
    response_model=RecoveryCodesOut,
)
def confirm_2fa(
    body: TotpConfirmIn,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    client: ClientDep,
) -> RecoveryCodesOut:
    """Turn 2FA on with a code from the pending secret; answers the recovery codes, once."""
    codes = service.confirm_totp(session, settings, user, code=body.code, client=client)
    return RecoveryCodesOut(recovery_codes=codes)


@users_router.post(
    "/me/2fa/disable",
    name="users-2fa-disable",
    responses=error_responses(401, 403, 409, 422, 429),
    status_code=status.HTTP_204_NO_CONTENT,
)
def disable_2fa(
    body: PasswordAndCode,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    client: ClientDep,
) -> None:
    service.disable_totp(
        session, passwords, settings, user, password=body.password, code=body.code, client=client
    )


@users_router.post(
    "/me/2fa/recovery-codes",
    name="users-2fa-recovery-codes",
    responses=error_responses(401, 403, 409, 422, 429),
    response_model=RecoveryCodesOut,
)
def regenerate_recovery_codes(
    body: PasswordAndCode,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    client: ClientDep,
) -> RecoveryCodesOut:
    """A new set of recovery codes; the previous set stops working."""
    codes = service.regenerate_recovery_codes(
        session, passwords, settings, user, password=body.password, code=body.code, client=client
    )
    return RecoveryCodesOut(recovery_codes=codes)


@users_router.get(
    "/me/tokens",
    name="users-list-tokens",
    responses=error_responses(401),
    response_model=list[ApiTokenOut],
)
def list_tokens(user: CurrentUser, session: SessionDep) -> list[ApiTokenOut]:
    return [ApiTokenOut.model_validate(row) for row in service.list_api_tokens(session, user)]


@users_router.post(
    "/me/tokens",
    name="users-create-token",
    responses=error_responses(401, 403, 422),
    response_model=ApiTokenCreated,
    status_code=status.HTTP_201_CREATED,
)
def create_token(
    body: ApiTokenCreate, user: CurrentUser, session: SessionDep, client: ClientDep
) -> ApiTokenCreated:
    """A personal API token; its value is in this answer only."""
    created = service.create_api_token(
        session, user, name=body.name, expires_in_days=body.expires_in_days, client=client
    )
    out = ApiTokenOut.model_validate(created.api_token)
    return ApiTokenCreated(**out.model_dump(), token=created.token)


@users_router.delete(
    "/me/tokens/{token_id}",
    name="users-revoke-token",
    responses=error_responses(401, 403, 404, 422),
    status_code=status.HTTP_204_NO_CONTENT,
)
def revoke_token(token_id: str, user: CurrentUser, session: SessionDep, client: ClientDep) -> None:
    service.revoke_api_token(session, user, token_id, client=client)


# -- /users (administration) ---------------------------------------------------------------


@users_router.get(
    "/directory",
    name="users-directory",
    responses=error_responses(401, 422),
    response_model=DirectoryPage,
    summary="Find people by username or name (anyone signed in)",
)
def user_directory(
    _user: CurrentUser,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params(service.USER_SORTS))],
    q: Annotated[
        str | None, Query(max_length=100, description="Part of a username or display name")
    ] = None,
) -> DirectoryPage:
    users = service.user_directory(session, q, page)
    return DirectoryPage(
        items=[DirectoryUser.model_validate(user) for user in users.items],
        next_cursor=users.next_cursor,
    )


@users_router.get(
    "", name="users-list", responses=error_responses(401, 403, 422), response_model=UserPage
)
def list_users(
    _admin: AdminUser,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params(service.USER_SORTS))],
    q: Annotated[
        str | None, Query(max_length=100, description="Part of a username, e-mail or name")
    ] = None,
    role: Role | None = None,
    is_active: bool | None = None,
) -> UserPage:
    query = service.UserQuery(q=q, role=role, is_active=is_active)
    users = service.list_users(session, query, page)
    return UserPage(
        items=[UserOut.model_validate(user) for user in users.items], next_cursor=users.next_cursor
    )


@users_router.post(
    "",
    name="users-create",
    responses=error_responses(401, 403, 409, 422),
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
)
def create_user(
    body: UserCreate,
    admin: AdminUser,
    session: SessionDep,
    passwords: PasswordsDep,
    client: ClientDep,
) -> UserOut:
    user = service.create_user(
        session,
        passwords,
        username=body.username,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        role=body.role,
        actor=admin,
        client=client,
    )
    return UserOut.model_validate(user)


@users_router.get(
    "/{user_id:hexid}",
    name="users-get",
    responses=error_responses(401, 403, 404, 422),
    response_model=UserOut,
)
def get_user(user_id: str, _admin: AdminUser, session: SessionDep) -> UserOut:
    return UserOut.model_validate(service.get_user(session, user_id))


@users_router.patch(
    "/{user_id:hexid}",
    name="users-update",
    responses=error_responses(401, 403, 404, 409, 422),
    response_model=UserOut,
)
def update_user(
    user_id: str,
    body: UserAdminUpdate,
    admin: AdminUser,
    session: SessionDep,
    client: ClientDep,
) -> UserOut:
    """Change a user's role, active flag or name. Deactivation signs them out everywhere and
    voids their API tokens; the last active admin cannot be demoted or deactivated (409)."""
    user = service.update_user(
        session,
        user_id,
        role=body.role,
        is_active=body.is_active,
        display_name=body.display_name,
        actor=admin,
        client=client,
    )
    return UserOut.model_validate(user)
