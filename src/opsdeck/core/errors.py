"""Errors a user can see, and the one place that turns every error into the JSON error shape.

Shape: {"error": {"code": "...", "message": "...", "details": [ErrorDetail, ...]}}

Services refuse a request by raising an `AppError` subclass; the handlers below answer it. A
refused request that must still leave something behind (a failed sign-in in the audit log)
says so with `opsdeck.core.db.keep_on_refusal` before raising. Routers declare the error
answers they can give with `responses=error_responses(401, 403, ...)`, so the OpenAPI document
(and the generated client) knows the shape.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, cast

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

log = structlog.get_logger("opsdeck.errors")


class ErrorDetail(BaseModel):
    """One problem of a refused request. `message` is always there; the other fields say where
    the problem is, and only the ones that apply are sent."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="What is wrong, in words a person can act on.")
    field: str | None = Field(
        default=None,
        description="Where in the request, as a dotted path: body.email, query.limit, "
        "path.user_id, operations.quality.",
    )
    type: str | None = Field(
        default=None,
        description="A machine-readable kind of problem: pydantic's error type "
        "(missing, string_too_long, ...) or ours (weak_password, conflict, ...).",
    )
    row: int | None = Field(
        default=None, description="Line number in an uploaded CSV file (the first line is 1)."
    )
    column: str | None = Field(default=None, description="Column of an uploaded CSV file.")
    value: str | None = Field(
        default=None, description="The offending value, shortened to 300 characters."
    )
    file: str | None = Field(default=None, description="Name of an uploaded file.")
    limit_bytes: int | None = Field(default=None, description="A size limit that was exceeded.")


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. invalid_credentials.")
    message: str
    details: list[ErrorDetail]


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorInfo


DetailItem = ErrorDetail | Mapping[str, Any]


def conform_details(
    details: Sequence[DetailItem] | None, *, default_message: str
) -> list[dict[str, Any]]:
    """Check every item against `ErrorDetail` and return it as the JSON object it will be sent
    as: the fields that were given, nothing else. An item without a message of its own repeats
    the error's. An unknown field is a programming error and raises `ValueError` at once."""
    conformed: list[dict[str, Any]] = []
    for item in details or ():
        if isinstance(item, ErrorDetail):
            detail = item
        else:
            detail = ErrorDetail.model_validate({"message": default_message, **item})
        conformed.append(detail.model_dump(exclude_unset=True))
    return conformed


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[DetailItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = conform_details(details, default_message=message)
        self.headers = headers or {}


class BadRequest(AppError):
    pass


class ValidationFailed(AppError):
    status_code = 422
    code = "validation_error"


class Unauthorized(AppError):
    status_code = 401
    code = "not_authenticated"

    def __init__(self, message: str = "Authentication required.", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, retry_after))})
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def error_body(
    code: str, message: str, details: Sequence[DetailItem] | None = None
) -> dict[str, Any]:
    conformed = conform_details(details, default_message=message)
    return {"error": {"code": code, "message": message, "details": conformed}}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route or router: each status answered with `ErrorBody`."""
    return {
        status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
        for status in status_codes
    }


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Sequence[DetailItem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(error_body(code, message, details)),
        status_code=status_code,
        headers=headers,
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    exc = cast(AppError, exc)  # registered for AppError only
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    details = [
        ErrorDetail(
            field=_field_path(err.get("loc", ())),
            message=err.get("msg", ""),
            type=err.get("type"),
        )
        for err in exc.errors()
    ]
    fields = ", ".join(str(d.field) for d in details[:5])
    return error_response(422, "validation_error", f"Invalid request: check {fields}.", details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return error_response(exc.status_code, code, message, headers=headers or None)


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at the request's path. Starlette's 405 names
    the methods of the first route whose path matches only, and one path is often served by
    several routes (GET and POST /api/v1/images/batches are two)."""
    # Asked of each route through Starlette's own matching (FastAPI groups included routers
    # in route objects of its own): which of the methods would some route take in full?
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return [
        method
        for method in _HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


# How long a client is asked to wait when the database does not answer: a restart or a
# failover takes seconds, and the pool reconnects by itself (tests/core/test_health.py).
DATABASE_RETRY_AFTER_SECONDS = 5


def is_database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` (or an error it was raised from) says the database did not answer: the
    server stopped, restarted or cannot be reached, a connection died under us, the pool had
    none to give, a lock was not granted in time. Such an error is transient: the request may be
    tried again (503), a job runs again later (core.jobs), nothing is anybody's failure."""
    for _ in range(5):  # an explicit `raise ... from` chain, not any context
        if exc is None:
            return False
        if isinstance(exc, OperationalError) and isinstance(exc.orig, sqlite3.Error):
            return _sqlite_unavailable(exc.orig)
        if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        exc = exc.__cause__
    return False


# SQLite says "OperationalError" for a mistake in a statement too (no such table, a syntax
# error); these result codes are the ones of a database that cannot serve right now.
_SQLITE_UNAVAILABLE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
)


def _sqlite_unavailable(error: sqlite3.Error) -> bool:
    name = str(getattr(error, "sqlite_errorname", ""))
    if name:
        return name.startswith(_SQLITE_UNAVAILABLE)
    return "locked" in str(error)  # before Python 3.11 only the message says it


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Any other database error: a 503 when it says the database did not answer (a connection
    invalidated mid-query), a 500 otherwise."""
    if is_database_unavailable(exc):
        return await _database_unavailable(request, exc)
    return await _unhandled_error(request, exc)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """The database did not answer (stopped, restarting, unreachable, out of connections): a
    503 the client may retry, not a 500; nothing was committed."""
    log.warning("database_unavailable", exc_type=type(exc).__name__, error=str(exc)[:500])
    return error_response(
        503,
        "database_unavailable",
        "The database is not answering right now; nothing was saved. Try again shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _unhandled_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", exc_type=type(exc).__name__)
    return error_response(
        500, "internal_error", "Something went wrong on our side; it has been logged."
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # OperationalError is DB-API's class for a server that went away or cannot serve; a pool
    # with no connection to give within its timeout is the same from the client's side.
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unhandled_error)
