"""The browser session: cookies, CSRF on unsafe methods, reading and ending the session."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import ApiToken, AuthSession
from tests.accounts.conftest import audit_actions
from tests.conftest import API, access_token, bearer, browser_login, error_of, fields_of

ME = f"{API}/users/me"
TOKENS = f"{API}/users/me/tokens"


def _set_cookie_headers(response: Any) -> dict[str, str]:
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        cookies[name] = header
    return cookies


def test_session_login_sets_the_cookies_and_returns_the_csrf_token(
    client: TestClient, member: Any
) -> None:
    response = client.post(
        f"{API}/auth/session",
        json={"username": "mallory", "password": "correct horse battery staple"},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == "mallory"
    assert len(body["csrf_token"]) == 64
    cookies = _set_cookie_headers(response)
    session_cookie = cookies["opsdeck_session"].lower()
    csrf_cookie = cookies["opsdeck_csrf"].lower()
    assert "httponly" in session_cookie
    assert "samesite=lax" in session_cookie
    assert "path=/" in session_cookie
    assert f"max-age={12 * 3600}" in session_cookie
    assert "secure" not in session_cookie  # plain-HTTP test server, secure_cookies is off
    assert "httponly" not in csrf_cookie
    assert "samesite=strict" in csrf_cookie
    assert client.cookies["opsdeck_csrf"] == body["csrf_token"]


def test_secure_flag_follows_the_setting(client_with: Any, member: Any) -> None:
    secure_client = client_with(cookie_secure=True)

    response = secure_client.post(
        f"{API}/auth/session",
        json={"username": "mallory", "password": "correct horse battery staple"},
    )

    for header in _set_cookie_headers(response).values():
        assert "; secure" in header.lower()


def test_session_login_failures_match_the_token_endpoint(client: TestClient, member: Any) -> None:
    wrong = client.post(
        f"{API}/auth/session", json={"username": "mallory", "password": "nope-nope"}
    )
    unknown = client.post(f"{API}/auth/session", json={"username": "who", "password": "nope-nope"})

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert error_of(wrong)["code"] == "invalid_credentials"
    assert "opsdeck_session" not in client.cookies


def test_session_login_body_is_validated(client: TestClient) -> None:
    response = client.post(f"{API}/auth/session", json={"username": "", "pasword": "typo"})

    assert response.status_code == 422
    assert fields_of(response) == {"body.username", "body.password", "body.pasword"}


def test_cookie_authenticates_safe_requests_without_csrf(client: TestClient, member: Any) -> None:
    browser_login(client, "mallory")

    assert client.get(ME).json()["username"] == "mallory"
    session = client.get(f"{API}/auth/session")
    assert session.status_code == 200
    assert session.json()["csrf_token"] == client.cookies["opsdeck_csrf"]


def test_cookie_post_without_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, db: Session, member: Any
) -> None:
    browser_login(client, "mallory")

    response = client.post(TOKENS, json={"name": "ci"})

    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"
    assert "X-CSRF-Token" in error_of(response)["message"]
    assert db.scalars(select(ApiToken)).all() == []


def test_cookie_post_with_a_wrong_csrf_token_is_refused(client: TestClient, member: Any) -> None:
    browser_login(client, "mallory")

    response = client.post(TOKENS, json={"name": "ci"}, headers={"X-CSRF-Token": "0" * 64})

    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"


def test_csrf_token_of_another_session_is_refused(
    client: TestClient, member: Any, admin: Any
) -> None:
    other = browser_login(client, admin.username)["csrf_token"]
    client.cookies.clear()
    browser_login(client, "mallory")

    response = client.patch(ME, json={"display_name": "X"}, headers={"X-CSRF-Token": other})

    assert response.status_code == 403


def test_cookie_post_with_the_right_csrf_token_passes(client: TestClient, member: Any) -> None:
    csrf = browser_login(client, "mallory")["csrf_token"]

    response = client.post(TOKENS, json={"name": "ci"}, headers={"X-CSRF-Token": csrf})

    assert response.status_code == 201
    patched = client.patch(ME, json={"display_name": "M."}, headers={"X-CSRF-Token": csrf})
    assert patched.json()["display_name"] == "M."


def test_bearer_requests_need_no_csrf_token(client: TestClient, member_headers: Any) -> None:
    response = client.post(TOKENS, json={"name": "ci"}, headers=member_headers)

    assert response.status_code == 201


def test_deleting_the_session_signs_out_and_clears_cookies(
    client: TestClient, db: Session, member: Any
) -> None:
    body = browser_login(client, "mallory")
    old_cookie = client.cookies["opsdeck_session"]

    missing_csrf = client.delete(f"{API}/auth/session")
    assert missing_csrf.status_code == 403
    response = client.delete(f"{API}/auth/session", headers={"X-CSRF-Token": body["csrf_token"]})

    assert response.status_code == 204
    cleared = _set_cookie_headers(response)
    assert "max-age=0" in cleared["opsdeck_session"].lower()
    assert "max-age=0" in cleared["opsdeck_csrf"].lower()
    assert "opsdeck_session" not in client.cookies
    client.cookies.set("opsdeck_session", old_cookie)
    refused = client.get(ME)
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "not_authenticated"
    assert [e.details["kind"] for e in audit_actions(db, "auth.logout")] == ["browser"]


def test_signing_in_again_retires_the_previous_browser_session(
    client: TestClient, db: Session, member: Any
) -> None:
    browser_login(client, "mallory")
    first = client.cookies["opsdeck_session"]
    browser_login(client, "mallory")

    client.cookies.set("opsdeck_session", first)

    assert client.get(ME).status_code == 401
    reasons = sorted(str(s.revoked_reason) for s in db.scalars(select(AuthSession)))
    assert reasons == ["None", "replaced"]


def test_session_endpoints_need_the_cookie(client: TestClient, member_headers: Any) -> None:
    response = client.get(f"{API}/auth/session", headers=member_headers)

    assert response.status_code == 401
    assert "cookie" in error_of(response)["message"]


def test_bearer_wins_over_the_cookie(client: TestClient, member: Any, admin: Any) -> None:
    browser_login(client, "mallory")
    admin_token = access_token(client, admin.username)

    assert client.get(ME, headers=bearer(admin_token)).json()["username"] == admin.username
