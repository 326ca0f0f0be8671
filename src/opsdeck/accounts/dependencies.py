"""Who is calling: the authentication dependencies every module's routers use.

Resolution order (docs/api.md): `Authorization: Bearer <JWT>`, `Authorization: Bearer opd_...`,
then the `opsdeck_session` cookie. The first credential present decides; a bad one is a 401
even when another would have worked, so a request never runs as someone unexpected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from opsdeck.accounts import service
from opsdeck.accounts.models import User
from opsdeck.accounts.service import Principal, Reader
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
    _refuse_missing(request, bearer, cookie)
    if bearer:
        return service.authenticate_bearer(session, settings, bearer)
    principal = service.authenticate_cookie(session, cookie or "")
    if request.method in UNSAFE_METHODS:
        _check_csrf(request, settings, principal)
    return principal


def _refuse_missing(request: Request, bearer: str | None, cookie: str | None) -> None:
    """The 401 of a request with no credential to check, or an Authorization header that is
    not a bearer token (which decides even when a cookie came too)."""
    if "authorization" in request.headers:
        if not bearer:
            raise Unauthorized("Send the token as 'Authorization: Bearer <token>'.")
    elif not cookie:
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


# -- reads in one hop ------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What a request presents to sign in, not checked yet: for a route that opens its own
    unit of work and checks them there with `read_as`, in the same thread-pool hop as its
    query (CurrentUser needs one hop for the session, one for get_principal, one for the route
    and one to end the session: four thread hand-offs per request)."""

    request: Request
    bearer: str | None
    cookie: str | None


# `async`: it only reads headers and cookies (and declares both schemes in the OpenAPI schema).
async def get_credentials(
    request: Request,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Credentials:
    # Refused here, before the route's query parameters are read: no credential is a 401
    # whatever else is wrong with the request, as with CurrentUser.
    _refuse_missing(request, bearer, cookie)
    return Credentials(request, bearer, cookie)


def read_as(session: Session, credentials: Credentials) -> Reader:
    """Who `credentials` sign in, for a route that only reads, with get_principal's rules and
    answers (the first credential present decides, a bad one is a 401, nothing cached). An
    API token is checked by one Core statement (service.read_api_token); a JWT or a browser
    session goes through get_principal (a cookie on a read needs no CSRF header there either)."""
    request, bearer = credentials.request, credentials.bearer
    if (
        "authorization" in request.headers
        and bearer
        and bearer.startswith(service.API_TOKEN_PREFIX)
    ):
        return service.read_api_token(session, bearer)
    return Reader.of(get_principal(request, session, bearer, credentials.cookie).user)


ReadCredentials = Annotated[Credentials, Depends(get_credentials)]
