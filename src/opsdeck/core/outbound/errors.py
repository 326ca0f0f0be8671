"""The one error an outbound fetch raises, with what a caller needs to decide on a retry."""

from __future__ import annotations

from typing import Literal, get_args

FetchErrorKind = Literal[
    "bad_url",
    "refused_address",
    "dns",
    "connect",
    "timeout",
    "tls",
    "protocol",
    "too_large",
    "http_status",
    "too_many_redirects",
    "busy",
]
FETCH_ERROR_KINDS: frozenset[str] = frozenset(get_args(FetchErrorKind))

# Kinds that may succeed on a later attempt. A DNS failure is retryable only when the resolver
# said "try again" and an HTTP status only for 5xx / 408 / 425 / 429; those pass `retryable`.
_RETRYABLE_KINDS: frozenset[str] = frozenset({"connect", "timeout", "protocol"})


class FetchError(Exception):
    """Why a URL could not be fetched.

    `message` is written for the person who supplied the URL; `retryable` says whether trying
    again later can help; `retry_after` is the delay in seconds the server asked for, if any.
    """

    def __init__(
        self,
        kind: FetchErrorKind,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: FetchErrorKind = kind
        self.message = message
        self.retryable = kind in _RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after = retry_after
        self.status = status
        self.url = url

    def __repr__(self) -> str:
        return (
            f"FetchError(kind={self.kind!r}, message={self.message!r}, "
            f"retryable={self.retryable}, retry_after={self.retry_after}, status={self.status})"
        )
