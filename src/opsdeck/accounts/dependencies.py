"""Who is calling: the authentication dependencies every module's routers use.

Resolution order (docs/api.md): `Authorization: Bearer <JWT>`, `Authorization: Bearer opd_...`,
then the `opsdeck_session` cookie. The first credential present decides; a bad one is a 401
even when another would have worked, so a request never runs as someone unexpected.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, OAuth2PasswordBearer

from opsdeck.accounts import service
from opsdeck.accounts.models import User
from opsdeck.accounts.service import Principal
from opsdeck.core.deps import SessionDep, get_settings_dep
from opsdeck.core.errors import Forbidden, Unauthorized
from opsdeck.core.http import API_PREFIX
from opsdeck.core.security import constant_time_equals
from opsdeck.settings import Settings

SESSION_COOKIE = "opsdeck_session"
CSRF_COOKIE = "opsdeck_csrf"
# "This browser signed in before" (accounts.throttle): sent to the sign-in endpoints only.
KNOWN_DEVICE_COOKIE = "opsdeck_device"
KNOWN_DEVICE_COOKIE_PATH = f"{API_PREFIX}/auth"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Declared for the OpenAPI schema (the docs' "Authorize" button); the checks are ours.
bearer_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    auto_error=False,
    description="An access token from POST /auth/token, or a personal API token (opd_...).",
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The browser session; unsafe methods also need the X-CSRF-Token header.",
)


def get_principal(
    request: Request,
    session: SessionDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    # The settings are read here rather than through SettingsDep: a sync dependency more is
    # a hop more through the thread pool on every authenticated request.
    settings = get_settings_dep(request)
    if "authorization" in request.headers:
        if not bearer:
            raise Unauthorized("Send the token as 'Authorization: Bearer <token>'.")
        return service.authenticate_bearer(session, settings, bearer)
    if cookie:
        principal = service.authenticate_cookie(session, cookie)
        if request.method in UNSAFE_METHODS:
            _check_csrf(request, settings, principal)
        return principal
    raise Unauthorized()


def _check_csrf(request: Request, settings: Settings, principal: Principal) -> None:
    # The cookie rides along on any request the browser makes, including ones a hostile page
    # triggers; the header proves the caller could read our pages, which that page cannot.
    sent = request.headers.get(CSRF_HEADER, "")
    auth = principal.auth_session
    if (
        auth is None
        or not sent
        or not constant_time_equals(sent, service.csrf_token(settings, auth.id))
    ):
        raise Forbidden(
            f"Missing or wrong {CSRF_HEADER} header; send the csrf_token of your session "
            "(from /auth/session or the opsdeck_csrf cookie).",
            code="csrf_failed",
        )


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


# The dependencies that only look at what get_principal found are `async`: FastAPI runs a
# sync one in its thread pool, a hop that costs more CPU than what they do.
async def get_current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("This needs the admin role.")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
