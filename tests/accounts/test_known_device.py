"""Sign-in throttling that slows guessing down without locking the account's owner out: the
per-account, per-(account, address) and per-address counters, and the known-device cookie that
takes a browser which signed in before past them (issue 11; docs/api.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from opsdeck.app import create_app
from opsdeck.settings import Settings
from tests.accounts.conftest import audit_actions
from tests.conftest import API, STRONG_PASSWORD, UserFactory, bearer, error_of, login

NEW_PASSWORD = "a different long passphrase"
OFFICE = "203.0.113.7"
ELSEWHERE = "198.51.100.9"

Browser = Callable[[str], TestClient]


@pytest.fixture
def throttled(settings: Settings) -> Iterator[Callable[..., Browser]]:
    """`throttled(**settings)` gives `browser(address)`: a new client (its own cookie jar) of
    one app with those settings, seen as coming from `address`."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> Browser:
        app: FastAPI = create_app(settings.model_copy(update=overrides))

        def browser(address: str) -> TestClient:
            client = TestClient(app, base_url="http://testserver", client=(address, 50000))
            client.__enter__()
            clients.append(client)
            return client

        return browser

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


def session_login(
    client: TestClient, username: str, password: str = STRONG_PASSWORD
) -> httpx.Response:
    response: httpx.Response = client.post(
        f"{API}/auth/session", json={"username": username, "password": password}
    )
    return response


def test_an_office_behind_one_address_keeps_signing_in_from_its_known_browsers(
    throttled: Callable[..., Browser], make_user: UserFactory, db: Session
) -> None:
    browser = throttled(
        auth_max_failures_per_ip=3,
        auth_max_failures_per_account=10,
        auth_max_failures_per_account_ip=5,
    )
    make_user("alice")
    make_user("bob")
    alices_laptop = browser(OFFICE)
    assert session_login(alices_laptop, "alice").status_code == 200
    assert "opsdeck_device" in alices_laptop.cookies

    attacker = browser(OFFICE)  # the same NAT address, no cookie
    for name in ("alice", "bob", "carol"):
        assert session_login(attacker, name, "guess").status_code == 401
    refused = session_login(attacker, "dave", "guess")
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 900

    # The browser that signed in before is heard, with its right password...
    assert session_login(alices_laptop, "alice").status_code == 200
    # ...a browser never seen before is slowed down with everybody else at that address...
    assert session_login(browser(OFFICE), "bob").status_code == 429
    # ...and API clients are counted per account and per (account, address), not per address.
    assert login(browser(OFFICE), "bob").status_code == 200
    reasons = [e.details["reason"] for e in audit_actions(db, "auth.login.failed")]
    assert reasons.count("throttled") == 2


def test_an_account_under_attack_still_signs_in_from_its_known_browser(
    throttled: Callable[..., Browser], make_user: UserFactory
) -> None:
    browser = throttled(auth_max_failures_per_account=3, auth_max_failures_per_account_ip=3)
    make_user("alice")
    laptop = browser(OFFICE)
    assert session_login(laptop, "alice").status_code == 200

    attacker = browser(ELSEWHERE)
    for _ in range(3):
        assert login(attacker, "alice", "guess").status_code == 401

    assert login(attacker, "alice").status_code == 429  # the token endpoint, no cookie
    assert session_login(browser(OFFICE), "alice").status_code == 429  # a new browser
    assert session_login(laptop, "alice").status_code == 200  # the known one


def test_api_sign_ins_are_limited_per_account_and_per_account_and_address(
    throttled: Callable[..., Browser], make_user: UserFactory
) -> None:
    browser = throttled(
        auth_max_failures_per_ip=2,
        auth_max_failures_per_account=4,
        auth_max_failures_per_account_ip=2,
    )
    make_user("alice")
    make_user("bob")
    office, elsewhere = browser(OFFICE), browser(ELSEWHERE)
    for _ in range(2):
        assert login(office, "alice", "guess").status_code == 401
    assert login(office, "alice").status_code == 429  # (alice, office) is spent
    assert login(elsewhere, "alice", "guess").status_code == 401  # alice has two more
    assert login(elsewhere, "alice", "guess").status_code == 401
    blocked = login(elsewhere, "alice")  # alice's own counter is spent now
    assert blocked.status_code == 429
    assert error_of(blocked)["code"] == "too_many_requests"
    assert int(blocked.headers["retry-after"]) >= 1

    # Failures on other accounts from the office never refuse bob's right password there.
    for name in ("carol", "dave", "erin", "frank"):
        assert login(office, name, "guess").status_code == 401
    assert login(office, "bob").status_code == 200


def test_a_known_browser_has_a_failure_limit_of_its_own(
    throttled: Callable[..., Browser], make_user: UserFactory
) -> None:
    browser = throttled(auth_max_failures_per_account=10, auth_max_failures_per_account_ip=2)
    make_user("alice")
    laptop = browser(OFFICE)
    assert session_login(laptop, "alice").status_code == 200
    for _ in range(2):
        assert session_login(laptop, "alice", "guess").status_code == 401

    assert session_login(laptop, "alice").status_code == 429  # a stolen cookie guesses slowly
    assert session_login(browser(ELSEWHERE), "alice").status_code == 200  # not counted there


def test_a_known_device_cookie_helps_only_its_own_account(
    throttled: Callable[..., Browser], make_user: UserFactory
) -> None:
    browser = throttled(auth_max_failures_per_account=2)
    make_user("alice")
    make_user("bob")
    shared_pc = browser(OFFICE)
    assert session_login(shared_pc, "alice").status_code == 200
    for _ in range(2):
        assert login(browser(ELSEWHERE), "bob", "guess").status_code == 401

    assert session_login(shared_pc, "bob").status_code == 429


def test_a_tampered_known_device_cookie_is_ignored(
    throttled: Callable[..., Browser], make_user: UserFactory
) -> None:
    browser = throttled(auth_max_failures_per_account=2)
    make_user("alice")
    laptop = browser(OFFICE)
    assert session_login(laptop, "alice").status_code == 200
    cookie = laptop.cookies["opsdeck_device"]
    body, _, signature = cookie.partition(".")
    forged = f"{body}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    laptop.cookies.set("opsdeck_device", forged, domain="testserver.local", path="/api/v1/auth")
    for _ in range(2):
        assert login(browser(ELSEWHERE), "alice", "guess").status_code == 401

    assert session_login(laptop, "alice").status_code == 429


def test_changing_the_password_voids_the_known_device_cookies(
    throttled: Callable[..., Browser], make_user: UserFactory
) -> None:
    browser = throttled(auth_max_failures_per_account=2)
    make_user("alice")
    laptop, phone = browser(OFFICE), browser(ELSEWHERE)
    assert session_login(laptop, "alice").status_code == 200
    assert session_login(phone, "alice").status_code == 200
    token = login(browser(OFFICE), "alice").json()["access_token"]
    changed = laptop.post(
        f"{API}/users/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(token),
    )
    assert changed.status_code == 204, changed.text
    for _ in range(2):
        assert login(browser(ELSEWHERE), "alice", "guess").status_code == 401

    # The phone's cookie was made for the old password: it no longer lets it past.
    assert session_login(phone, "alice", NEW_PASSWORD).status_code == 429


def test_the_known_device_cookie_is_httponly_strict_scoped_and_bounded(
    throttled: Callable[..., Browser], make_user: UserFactory
) -> None:
    make_user("alice")
    plain = session_login(throttled(auth_known_device_days=7)(OFFICE), "alice")
    https = session_login(throttled(public_url="https://ops.example.com")(OFFICE), "alice")

    for response, secure in ((plain, False), (https, True)):
        assert response.status_code == 200
        header = next(
            value.lower()
            for value in response.headers.get_list("set-cookie")
            if value.startswith("opsdeck_device=")
        )
        assert "httponly" in header
        assert "samesite=strict" in header
        assert "path=/api/v1/auth" in header
        assert ("; secure" in header) is secure
    assert "max-age=604800" in next(
        v.lower() for v in plain.headers.get_list("set-cookie") if v.startswith("opsdeck_device=")
    )
