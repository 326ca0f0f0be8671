"""What an outbound fetch may reach: URL syntax and the address policy.

The address policy is an explicit table rather than `ipaddress`'s `is_global` alone: the
standard library's answers changed between Python releases (IPv4-mapped addresses, parts of
2001::/23) and it calls multicast "global". The table decides and names the reason; `is_global`
is kept only as a backstop for whatever the table does not list.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

import httpx

from opsdeck.core.outbound.errors import FetchError

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ALLOWED_SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048

_METADATA = "the cloud metadata service address (link-local)"

# First match wins, so the specific entries come before the ranges that contain them.
_IPV4_REFUSED: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.169.254/32", _METADATA),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a special-purpose (IETF protocol) address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved (6to4 relay anycast) address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

_IPV6_REFUSED: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(cidr), reason)
    for cidr, reason in (
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        ("::/96", "an IPv4-compatible (deprecated) address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001:2::/48", "a benchmarking address"),
        ("2001:10::/28", "a reserved (ORCHID) address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fd00:ec2::254/128", "the cloud metadata service address (unique local)"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local (deprecated) address"),
        ("ff00::/8", "a multicast address"),
    )
)

_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_TEREDO = IPv6Network("2001::/32")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_GLOBAL_UNICAST = IPv6Network("2000::/3")

# A DNS label: letters, digits, hyphens (and underscores, which real names carry), 1-63 long.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LEGACY_IPV4 = re.compile(r"^[0-9a-fx.]+$")
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")


def parse_network(value: str | IPNetwork) -> IPNetwork:
    """A CIDR string as a network; host bits set is an error, so a typo cannot widen a range."""
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    text = value.strip()
    try:
        return ip_network(text, strict=True)
    except ValueError as exc:
        try:
            suggestion = ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not a network in CIDR form, e.g. 10.0.0.0/8") from exc
        raise ValueError(
            f"{text!r} has host bits set; did you mean {suggestion.with_prefixlen}?"
        ) from exc


@dataclass(frozen=True)
class AddressPolicy:
    """Refuses every address that is not public unicast, unless an allowed network holds it."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_networks(cls, networks: Iterable[str | IPNetwork]) -> AddressPolicy:
        return cls(tuple(parse_network(network) for network in networks))

    def is_allowed_on_purpose(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)

    def refusal(self, address: IPAddress) -> str | None:
        """None when the address may be reached, else why not ("a private address")."""
        if self.is_allowed_on_purpose(address):
            return None
        if isinstance(address, IPv4Address):
            return self._ipv4_refusal(address)
        return self._ipv6_refusal(address)

    def check(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Raise unless every address the host resolved to may be reached."""
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise FetchError("refused_address", refusal_message(host, address, reason))

    def _ipv4_refusal(self, address: IPv4Address) -> str | None:
        for network, reason in _IPV4_REFUSED:
            if address in network:
                return reason
        if not address.is_global:
            return "a reserved address"
        return None

    def _ipv6_refusal(self, address: IPv6Address) -> str | None:
        if address.scope_id:
            return "an address with a zone identifier"
        if address in _IPV4_MAPPED:
            # The same host as the IPv4 address it wraps, so it gets the IPv4 verdict.
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
            reason = self.refusal(embedded)
            return None if reason is None else f"an IPv4-mapped form of {embedded}, {reason}"
        if address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
            reason = self.refusal(embedded)
            return None if reason is None else f"a NAT64 form of {embedded}, {reason}"
        if address in _SIX_TO_FOUR:
            embedded = IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
            reason = self.refusal(embedded)
            if reason is not None:
                return f"a 6to4 address embedding {embedded}, {reason}"
        if address in _TEREDO:
            return self._teredo_refusal(address)
        for network, reason in _IPV6_REFUSED:
            if address in network:
                return reason
        if address not in _GLOBAL_UNICAST:
            return "a reserved address"
        if not address.is_global:
            return "a reserved address"
        return None

    def _teredo_refusal(self, address: IPv6Address) -> str:
        server, client = (
            IPv4Address((int(address) >> 64) & 0xFFFFFFFF),
            IPv4Address(~int(address) & 0xFFFFFFFF),
        )
        for embedded in (server, client):
            reason = self.refusal(embedded)
            if reason is not None:
                return f"a Teredo address embedding {embedded}, {reason}"
        # Even with public ends, a Teredo address tunnels through a relay we cannot vet.
        return "a Teredo tunnel address"


def refusal_message(host: str, address: IPAddress, reason: str) -> str:
    if _same_address(host, address):
        return f"refused: {address} is {reason}"
    return f"refused: {host} resolves to {address}, {reason}"


def _same_address(host: str, address: IPAddress) -> bool:
    try:
        return ip_address(host.strip("[]")) == address
    except ValueError:
        return False


_ADDRESS_CHARACTERS = frozenset("0123456789abcdefABCDEFxX.")


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names without DNS: an IP literal, or a legacy IPv4 spelling such
    as `2130706433`, `0x7f.1` or `127.1`, which resolvers turn into an address locally."""
    if ":" not in host and not _ADDRESS_CHARACTERS.issuperset(host):
        return None  # a letter past f (or x): a host name, not an address in any spelling
    try:
        return ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


# The common case, already in the form httpx would print it: a lower-case http(s) scheme and
# host name, no user info or fragment, a port only when it is not the scheme's default (written
# without leading zeros), and a path and query made only of characters httpx leaves alone (no
# dot segments, every % followed by two hex digits). Such a URL is its own normalised form, so
# the parse (the bulk of the cost of checking a 1,000-row CSV) can be skipped; anything else
# takes httpx's parser. tests/core/test_outbound_policy.py checks the two paths agree on
# generated URLs.
_PLAIN_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(?P<port>[1-9][0-9]{0,4}))?"
    r"(?:[/?](?:[A-Za-z0-9\-_~!$&'()*+,;=:@/?|^]|%[0-9A-Fa-f]{2}|\.(?![./?]|$))*)?"
)
_DOT_SEGMENT = re.compile(r"/\.\.?(?:[/?]|$)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _plain_url(text: str) -> tuple[str, str] | None:
    """(scheme, host) when `text` is a URL in its normalised form (see _PLAIN_URL)."""
    match = _PLAIN_URL.fullmatch(text)
    if match is None or _DOT_SEGMENT.search(text):
        return None
    port = match["port"]
    if port is not None and (int(port) > 65535 or int(port) == _DEFAULT_PORTS[match["scheme"]]):
        return None  # httpx refuses the one and drops the other: its parser says which
    return match["scheme"], match["host"]


def validate_url(url: str, *, policy: AddressPolicy | None = None) -> str:
    """Check a URL's syntax without any network access and return it normalised.

    With a policy, a host written as an address is checked too, so a CSV naming
    `http://10.0.0.5/a.jpg` is refused when it is uploaded rather than when it is fetched.
    Raises FetchError(kind="bad_url" or "refused_address").
    """
    if not isinstance(url, str):
        raise FetchError("bad_url", "not a valid URL: expected text")
    text = url.strip()
    if not text:
        raise FetchError("bad_url", "not a valid URL: it is empty")
    if len(text) > MAX_URL_LENGTH:
        raise FetchError("bad_url", f"not a valid URL: longer than {MAX_URL_LENGTH} characters")
    if _UNSAFE_CHARACTERS.search(text):
        raise FetchError("bad_url", "not a valid URL: it contains a space or a control character")
    plain = _plain_url(text)
    if plain is not None:
        return _check_host(plain[1], policy, text)
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise FetchError("bad_url", f"not a valid URL: {exc}") from exc
    if not parsed.scheme:
        raise FetchError("bad_url", "not a valid URL: it must start with http:// or https://")
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise FetchError(
            "bad_url",
            f"not accepted: only http and https URLs can be fetched, not {parsed.scheme}:",
        )
    if parsed.userinfo:
        raise FetchError(
            "bad_url",
            "not accepted: URLs carrying a user name or password (user:password@) are refused",
        )
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise FetchError("bad_url", "not a valid URL: it names no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise FetchError("bad_url", f"not a valid URL: {parsed.port} is not a TCP port")
    return _check_host(host, policy, str(parsed))


def _check_host(host: str, policy: AddressPolicy | None, normalised: str) -> str:
    address = _checked_host(host)
    if policy is not None and address is not None:
        reason = policy.refusal(address)
        if reason is not None:
            raise FetchError("refused_address", refusal_message(host, address, reason))
    return normalised


# A CSV names the same few hosts again and again: each host is parsed once (an IP literal's
# parse was about a fifth of checking a 1,000-row CSV's URLs). A host it rejects raises, and
# lru_cache keeps no exception: only good hosts are remembered.
@lru_cache(maxsize=1024)
def _checked_host(host: str) -> IPAddress | None:
    if ":" in host:
        if "%" in host:
            raise FetchError(
                "bad_url", "not accepted: IPv6 addresses with a zone identifier are refused"
            )
        try:
            return IPv6Address(host)
        except ValueError as exc:
            raise FetchError("bad_url", f"not a valid URL: {host!r} is not an address") from exc
    address = literal_address(host)
    if address is not None:
        return address
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise FetchError("bad_url", f"not a valid URL: {host!r} is not a valid host name")
    return None
