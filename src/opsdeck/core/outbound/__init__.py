"""Outbound HTTP for URLs users give us (image sources, webhook targets), guarded against SSRF.

    client = OutboundClient.from_settings(settings)      # one per process; thread-safe
    result = client.fetch("https://example.com/a.jpg")   # FetchResult, or raises FetchError
    validate_url(cell)                                   # syntax only, no network: at the edge

Every address a host resolves to is checked (loopback, private, link-local, metadata, CGNAT,
multicast, reserved, and IPv4 wrapped in IPv6 are refused unless an allowed network holds them),
and the connection goes to the address that was checked. Redirects are followed by hand and
checked again; one deadline covers the whole fetch; the body is capped while it streams.
"""

from opsdeck.core.outbound.client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_TOTAL_TIMEOUT,
    FetchResult,
    OutboundClient,
    parse_retry_after,
)
from opsdeck.core.outbound.errors import FETCH_ERROR_KINDS, FetchError, FetchErrorKind
from opsdeck.core.outbound.network import GuardedBackend
from opsdeck.core.outbound.policy import (
    ALLOWED_SCHEMES,
    AddressPolicy,
    IPAddress,
    IPNetwork,
    parse_network,
    validate_url,
)

__all__ = [
    "ALLOWED_SCHEMES",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_TOTAL_TIMEOUT",
    "FETCH_ERROR_KINDS",
    "AddressPolicy",
    "FetchError",
    "FetchErrorKind",
    "FetchResult",
    "GuardedBackend",
    "IPAddress",
    "IPNetwork",
    "OutboundClient",
    "parse_network",
    "parse_retry_after",
    "validate_url",
]
