"""The outbound guard without the network: the address policy for every refused range (IPv4,
IPv6 and IPv4 wrapped in IPv6), the allow-list, URL validation at the edge, the settings that
feed the guard, and the small parsers the fetcher relies on."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opsdeck.core.outbound import (
    DEFAULT_MAX_BYTES,
    AddressPolicy,
    FetchError,
    OutboundClient,
    parse_network,
    parse_retry_after,
    validate_url,
)
from opsdeck.core.outbound import policy as policy_module
from opsdeck.settings import Settings

DEFAULT_POLICY = AddressPolicy()


def _v6_embedding(prefix: str, v4: str) -> str:
    """`prefix` (a /96) with the IPv4 address in its last 32 bits."""
    return str(IPv6Address(int(IPv6Address(prefix)) | int(IPv4Address(v4))))


def _six_to_four(v4: str) -> str:
    return str(IPv6Address((0x2002 << 112) | (int(IPv4Address(v4)) << 80) | 1))


def _teredo(server: str, client: str) -> str:
    value = (0x20010000 << 96) | (int(IPv4Address(server)) << 64)
    value |= 0x8000 << 48 | 0xFFFF << 32  # flags and obfuscated port: any value will do
    value |= ~int(IPv4Address(client)) & 0xFFFFFFFF
    return str(IPv6Address(value))


# (address, words the reason must contain)
REFUSED_IPV4 = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.5", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("254.1.2.3", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
    ("0.1.2.3", "unspecified"),
    ("192.0.0.8", "special-purpose"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.254", "benchmarking"),
    ("192.88.99.1", "reserved"),
]

REFUSED_IPV6 = [
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fd00:ec2::254", "metadata"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::101", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
    ("2001:10::1", "ORCHID"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("4000::1", "reserved"),
    ("::ffff:0:0", "IPv4-mapped"),  # ::ffff:0.0.0.0
    # IPv4-mapped: the same host as the IPv4 address it wraps.
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, a loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, a private"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254, the cloud metadata"),
    ("::ffff:100.64.0.1", "carrier-grade NAT"),
    # IPv4-compatible (deprecated): refused whatever it embeds.
    ("::127.0.0.1", "IPv4-compatible"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    # 6to4 embeds the IPv4 address in bits 16-48.
    (_six_to_four("127.0.0.1"), "6to4 address embedding 127.0.0.1, a loopback"),
    (_six_to_four("10.1.2.3"), "6to4 address embedding 10.1.2.3, a private"),
    (_six_to_four("192.168.0.1"), "6to4 address embedding 192.168.0.1"),
    (_six_to_four("169.254.169.254"), "embedding 169.254.169.254, the cloud metadata"),
    # NAT64 (well-known prefix) embeds it in the last 32 bits.
    (_v6_embedding("64:ff9b::", "127.0.0.1"), "NAT64 form of 127.0.0.1, a loopback"),
    (_v6_embedding("64:ff9b::", "10.0.0.1"), "NAT64 form of 10.0.0.1, a private"),
    (_v6_embedding("64:ff9b::", "169.254.169.254"), "NAT64 form of 169.254.169.254"),
    # Teredo embeds the server (bits 32-64) and the inverted client (last 32 bits).
    (_teredo("10.0.0.1", "8.8.8.8"), "Teredo address embedding 10.0.0.1, a private"),
    (_teredo("8.8.8.8", "127.0.0.1"), "Teredo address embedding 127.0.0.1, a loopback"),
    (_teredo("8.8.8.8", "192.168.1.20"), "Teredo address embedding 192.168.1.20"),
    (_teredo("8.8.8.8", "1.1.1.1"), "Teredo tunnel address"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.255",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81b::200e",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    _v6_embedding("64:ff9b::", "8.8.8.8"),
    _six_to_four("8.8.8.8"),
]


@pytest.mark.parametrize(("address", "reason"), REFUSED_IPV4 + REFUSED_IPV6)
def test_refused_addresses_name_their_range(address: str, reason: str) -> None:
    refusal = DEFAULT_POLICY.refusal(ip_address(address))

    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT_POLICY.refusal(ip_address(address)) is None


def test_the_embedding_helpers_agree_with_the_standard_library() -> None:
    assert IPv6Address(_six_to_four("10.1.2.3")).sixtofour == IPv4Address("10.1.2.3")
    assert IPv6Address(_teredo("8.8.8.8", "10.0.0.1")).teredo == (
        IPv4Address("8.8.8.8"),
        IPv4Address("10.0.0.1"),
    )
    assert IPv6Address(_v6_embedding("::ffff:0:0", "10.0.0.1")).ipv4_mapped == IPv4Address(
        "10.0.0.1"
    )


def test_zone_identifiers_are_refused() -> None:
    refusal = DEFAULT_POLICY.refusal(IPv6Address("fe80::1%eth0"))

    assert refusal is not None


# -- the allow-list ----------------------------------------------------------------------------


def test_an_allowed_network_opens_its_range_and_nothing_else() -> None:
    policy = AddressPolicy.from_networks(["127.0.0.0/8"])

    assert policy.refusal(ip_address("127.0.0.1")) is None
    assert policy.refusal(ip_address("127.10.20.30")) is None
    assert policy.refusal(ip_address("10.0.0.1")) == "a private address"
    assert policy.refusal(ip_address("169.254.169.254")) is not None
    assert policy.refusal(ip_address("::1")) == "the loopback address"


def test_an_allowed_ipv4_network_covers_its_ipv4_mapped_form() -> None:
    policy = AddressPolicy.from_networks(["10.20.0.0/16"])

    assert policy.refusal(ip_address("::ffff:10.20.1.2")) is None
    assert policy.refusal(ip_address("::ffff:10.21.1.2")) is not None


def test_an_allowed_ipv6_network() -> None:
    policy = AddressPolicy.from_networks(["fd00:1234::/32"])

    assert policy.refusal(ip_address("fd00:1234::5")) is None
    assert policy.refusal(ip_address("fd00:1235::5")) is not None


def test_check_refuses_a_host_when_any_address_is_refused() -> None:
    policy = AddressPolicy.from_networks(["127.0.0.0/8"])
    policy.check("images.test", [ip_address("127.0.0.1"), ip_address("127.0.0.2")])

    for answers in (["127.0.0.1", "10.0.0.5"], ["10.0.0.5", "127.0.0.1"]):
        with pytest.raises(FetchError) as caught:
            policy.check("mixed.test", [ip_address(a) for a in answers])
        assert caught.value.kind == "refused_address"
        assert caught.value.message == (
            "refused: mixed.test resolves to 10.0.0.5, a private address"
        )
        assert not caught.value.retryable


def test_check_message_for_a_literal_address() -> None:
    with pytest.raises(FetchError) as caught:
        DEFAULT_POLICY.check("10.0.0.5", [ip_address("10.0.0.5")])

    assert caught.value.message == "refused: 10.0.0.5 is a private address"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("not-a-network", "not a network in CIDR form"),
        ("10.0.0.0/33", "not a network in CIDR form"),
    ],
)
def test_bad_networks_are_explained(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_network(value)


def test_a_single_address_is_a_network_of_one() -> None:
    assert str(parse_network(" 10.0.0.5 ")) == "10.0.0.5/32"


# -- validate_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a.jpg", "https://example.com/a.jpg"),
        ("  HTTP://Example.COM/a.jpg  ", "http://example.com/a.jpg"),
        ("https://example.com:8443/p?q=1&r=2", "https://example.com:8443/p?q=1&r=2"),
        ("https://bücher.example/a.png", "https://xn--bcher-kva.example/a.png"),
        ("http://[2606:4700:4700::1111]/x", "http://[2606:4700:4700::1111]/x"),
        ("http://93.184.216.34/a.jpg", "http://93.184.216.34/a.jpg"),
        ("https://cdn_1.example.com/a.jpg", "https://cdn_1.example.com/a.jpg"),
        ("https://example.com./a.jpg", "https://example.com./a.jpg"),
    ],
)
def test_valid_urls_are_normalised(url: str, expected: str) -> None:
    assert validate_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https URLs can be fetched, not file:"),
        ("ftp://example.com/a.jpg", "not ftp:"),
        ("gopher://127.0.0.1:70/_stats", "not gopher:"),
        ("javascript:alert(1)", "not javascript:"),
        ("data:image/png;base64,iVBORw0KGgo=", "not data:"),
        ("dict://127.0.0.1:11211/stat", "not dict:"),
        ("example.com/a.jpg", "must start with http:// or https://"),
        ("//example.com/a.jpg", "must start with http:// or https://"),
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("http://", "names no host"),
        ("http:///a.jpg", "names no host"),
        ("http://exa mple.com/a.jpg", "space or a control character"),
        ("http://example.com/a\tb.jpg", "space or a control character"),
        ("http://example.com/\r\nX-Injected: 1", "space or a control character"),
        ("http://example.com:0/a.jpg", "0 is not a TCP port"),
        ("http://example.com:99999/a.jpg", "not a TCP port"),
        ("http://[fe80::1%25eth0]/", "zone identifier"),
        ("http://exa%41mple.com/", "not a valid host name"),
        ("http://-bad-.example.com/", "not a valid host name"),
        ("http://example.com/" + "a" * 2100, "longer than 2048 characters"),
    ],
)
def test_invalid_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(FetchError) as caught:
        validate_url(url)

    assert caught.value.kind == "bad_url"
    assert message in caught.value.message
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@example.com/a.jpg",
        "https://user@example.com/a.jpg",
        "http://:secret@example.com/a.jpg",
        "http://user%40corp:p%3Ass@example.com/",
    ],
)
def test_credentials_in_urls_are_refused(url: str) -> None:
    with pytest.raises(FetchError) as caught:
        validate_url(url)

    assert caught.value.kind == "bad_url"
    assert "user name or password" in caught.value.message


def _outcome(url: str) -> tuple[str, str]:
    try:
        return "ok", validate_url(url, policy=DEFAULT_POLICY)
    except FetchError as exc:
        return exc.kind, exc.message


_URL_PIECES = [
    "a",
    "Z",
    "0",
    "9",
    ".",
    "..",
    "/",
    "/.",
    "/..",
    "?",
    "#",
    "%",
    "%2F",
    "%zz",
    "-",
    "_",
    "~",
    ":",
    "@",
    "[",
    "]",
    "{",
    "}",
    '"',
    "<",
    "|",
    "^",
    "`",
    "'",
    "=",
    "&",
    "+",
    ";",
    "é",
    " ",
    "\\",
    "\t",
]
_URL_TEXT = st.builds(
    lambda scheme, host, port, lead, tail: scheme + host + port + lead + "".join(tail),
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "//"]),
    st.sampled_from(
        [
            "example.com",
            "cdn-1.example.com",
            "a",
            "Example.com",
            "127.0.0.1",
            "0x7f.1",
            "2130706433",
            "10.0.0.5",
            "a..b",
            "-a.com",
            "a.com.",
            "[::1]",
            "b\u00fccher.de",
            "",
        ]
    ),
    st.sampled_from(
        ["", "", "", ":80", ":443", ":8080", ":0", ":x", ":65535", ":65536", ":99999", ":0080"]
    ),
    st.sampled_from(["/", "/", "/p/", "?", "", "#"]),
    st.lists(st.sampled_from(_URL_PIECES), max_size=5),
)


@hypothesis_settings(max_examples=3000, deadline=None)
@given(
    url=st.one_of(
        # mostly-plain URLs with one or two odd characters, where a wrong shortcut would show
        st.builds(
            lambda base, tail: base + "".join(tail),
            st.sampled_from(["http://example.com/", "https://cdn-1.example.com/p/", "http://a?"]),
            st.lists(st.sampled_from(_URL_PIECES), max_size=4),
        ),
        _URL_TEXT,
        st.text(max_size=40),
    )
)
@example(url="https://cdn.example.com/p/1/a.jpg?w=1&h=2")
@example(url="http://example.com/a/../b.jpg")
@example(url="http://example.com/a%zz")
@example(url="http://2130706433/a.jpg")
@example(url="http://127.0.0.1:34691/missing/1-2-0.jpg")
@example(url="https://cdn.example.com:443/a.jpg")
@example(url="http://example.com:65536/a.jpg")
def test_the_plain_url_shortcut_agrees_with_the_full_parser(url: str) -> None:
    """validate_url skips httpx's parser for URLs already in normal form; whatever the input,
    the answer (normalised URL, or refusal kind and message) is the parser's answer."""
    shortcut = _outcome(url)
    original = policy_module._plain_url
    policy_module._plain_url = lambda text: None
    try:
        full = _outcome(url)
    finally:
        policy_module._plain_url = original

    assert shortcut == full


def test_the_plain_url_shortcut_takes_the_common_case() -> None:
    assert policy_module._plain_url("https://cdn.example.com/p/1/a-b_c.jpg?w=1") == (
        "https",
        "cdn.example.com",
    )
    assert policy_module._plain_url("http://127.0.0.1:34691/missing/1.jpg") == (
        "http",
        "127.0.0.1",
    )
    for not_plain in (
        "HTTP://a.com/",
        "http://a.com:80/",
        "https://a.com:443/",
        "http://a.com:65536/",
        "http://a.com:080/",
        "http://a.com/x#f",
        "http://a.com/./x",
    ):
        assert policy_module._plain_url(not_plain) is None


def test_validate_url_without_a_policy_does_not_judge_addresses() -> None:
    assert validate_url("http://10.0.0.5/a.jpg") == "http://10.0.0.5/a.jpg"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.5/a.jpg", "refused: 10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata"),
        ("http://[::1]:8080/", "refused: ::1 is the loopback address"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1"),
        # Legacy IPv4 spellings a resolver turns into 127.0.0.1 without asking DNS.
        ("http://2130706433/", "refused: 2130706433 resolves to 127.0.0.1, a loopback"),
        ("http://0x7f.1/", "0x7f.1 resolves to 127.0.0.1"),
        ("http://127.1/", "127.1 resolves to 127.0.0.1"),
        ("http://017700000001/", "resolves to 127.0.0.1"),
    ],
)
def test_validate_url_with_a_policy_refuses_literal_addresses(url: str, message: str) -> None:
    with pytest.raises(FetchError) as caught:
        validate_url(url, policy=DEFAULT_POLICY)

    assert caught.value.kind == "refused_address"
    assert message in caught.value.message


def test_client_validate_url_uses_its_allow_list() -> None:
    client = OutboundClient(allowed_networks=["127.0.0.0/8"])
    try:
        assert client.validate_url("http://127.0.0.1:8080/a") == "http://127.0.0.1:8080/a"
        with pytest.raises(FetchError, match="private"):
            client.validate_url("http://10.0.0.1/a")
    finally:
        client.close()


# -- FetchError, Retry-After, sizes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        ("bad_url", False),
        ("refused_address", False),
        ("too_large", False),
        ("too_many_redirects", False),
        ("tls", False),
        ("http_status", False),
        ("timeout", True),
        ("connect", True),
        ("protocol", True),
    ],
)
def test_fetch_error_default_retryability(kind: str, retryable: bool) -> None:
    assert FetchError(kind, "x").retryable is retryable  # type: ignore[arg-type]


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("Mon, 01 Jan 2024 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None


def test_client_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        OutboundClient(max_bytes=0)
    with pytest.raises(ValueError, match="total_timeout"):
        OutboundClient(total_timeout=-1)


# -- settings ----------------------------------------------------------------------------------


def test_fetch_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPSDECK_FETCH_ALLOWED_NETWORKS",
        "OPSDECK_FETCH_MAX_BYTES",
        "OPSDECK_FETCH_CONNECT_TIMEOUT_SECONDS",
        "OPSDECK_FETCH_TOTAL_TIMEOUT_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)

    assert settings.fetch_allowed_networks == []
    assert settings.fetch_max_bytes == DEFAULT_MAX_BYTES == 25 * 1024 * 1024
    assert settings.fetch_connect_timeout_seconds == 5
    assert settings.fetch_total_timeout_seconds == 30


def test_allowed_networks_come_from_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSDECK_FETCH_ALLOWED_NETWORKS", " 127.0.0.0/8, 10.20.0.0/16 ,fd00::/8")
    monkeypatch.setenv("OPSDECK_FETCH_MAX_BYTES", "1048576")
    settings = Settings(_env_file=None)

    assert settings.fetch_allowed_networks == ["127.0.0.0/8", "10.20.0.0/16", "fd00::/8"]
    client = OutboundClient.from_settings(settings)
    try:
        assert client.max_bytes == 1048576
        assert client.policy.refusal(ip_address("10.20.3.4")) is None
        assert client.policy.refusal(ip_address("10.21.3.4")) == "a private address"
    finally:
        client.close()


@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/8,nonsense"])
def test_bad_allowed_networks_stop_startup_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OPSDECK_FETCH_ALLOWED_NETWORKS", value)

    with pytest.raises(ValidationError, match="not a network in CIDR form"):
        Settings(_env_file=None)
