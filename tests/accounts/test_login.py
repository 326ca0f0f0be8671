"""POST /auth/token: the password sign-in, its uniform failure answer, throttling and audit."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from opsdeck.audit.service import verify_chain
from opsdeck.core.security import Passwords
from tests.accounts.conftest import ClientFactory, audit_actions, reload_user
from tests.conftest import (
    API,
    STRONG_PASSWORD,
    FakeClock,
    UserFactory,
    bearer,
    error_of,
    fields_of,
    login,
)


def test_sign_in_returns_a_working_token_pair(client: TestClient, member: Any) -> None:
    response = login(client, "mallory")

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 30 * 24 * 3600
    assert response.headers["cache-control"] == "no-store"
    me = client.get(f"{API}/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "id": member.id,
        "username": "mallory",
        "email": "mallory@example.com",
        "display_name": "Mallory Member",
        "role": "member",
        "is_active": True,
        "totp_enabled": False,
        "created_at": me.json()["created_at"],
    }


def test_username_is_case_insensitive(client: TestClient, member: Any) -> None:
    assert login(client, "  MALLORY ").status_code == 200


def test_the_email_address_signs_in_too(client: TestClient, member: Any) -> None:
    # The sign-in page asks for "username or e-mail".
    assert login(client, " Mallory@Example.com").status_code == 200
    assert login(client, "nobody@example.com").json()["error"]["code"] == "invalid_credentials"


def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: TestClient, member: Any
) -> None:
    wrong_password = login(client, "mallory", "not the password at all")
    unknown_user = login(client, "nobody-here", "not the password at all")

    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert error_of(response) == {
            "code": "invalid_credentials",
            "message": "Incorrect username or password.",
            "details": [],
        }
    assert wrong_password.content == unknown_user.content
    assert wrong_password.headers["www-authenticate"] == unknown_user.headers["www-authenticate"]


def test_deactivated_user_gets_the_same_answer_as_a_wrong_password(
    client: TestClient, member: Any, admin_headers: dict[str, str]
) -> None:
    deactivate = client.patch(
        f"{API}/users/{member.id}", json={"is_active": False}, headers=admin_headers
    )
    assert deactivate.status_code == 200

    response = login(client, "mallory")

    assert response.status_code == 401
    assert response.content == login(client, "mallory", "a wrong password").content


def test_login_audit_records_success_and_each_failure_reason(
    client: TestClient, db: Session, member: Any
) -> None:
    login(client, "mallory")
    login(client, "mallory", "a wrong password")
    login(client, "ghost", "a wrong password")

    succeeded = audit_actions(db, "auth.login.succeeded")
    failed = audit_actions(db, "auth.login.failed")
    assert [(e.actor_id, e.details["channel"]) for e in succeeded] == [(member.id, "token")]
    assert [(e.actor, e.details["reason"]) for e in failed] == [
        ("mallory", "bad_password"),
        ("ghost", "unknown_user"),
    ]
    assert all(e.ip == "testclient" for e in failed)
    # Nothing secret reaches the log.
    assert "a wrong password" not in str([e.details for e in failed])
    assert verify_chain(db).ok


def test_missing_form_fields_are_named(client: TestClient) -> None:
    response = client.post(f"{API}/auth/token", data={"username": "mallory"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"
    assert fields_of(response) == {"body.password"}


def test_password_is_rehashed_when_the_parameters_change(
    app: FastAPI, client: TestClient, db: Session, member: Any
) -> None:
    older = Passwords(time_cost=3, memory_kib=19_456, parallelism=1)
    row = reload_user(db, member.id)
    row.password_hash = older.hash(STRONG_PASSWORD)
    db.commit()
    passwords: Passwords = app.state.passwords
    assert passwords.needs_rehash(row.password_hash)

    assert login(client, "mallory").status_code == 200

    rehashed = reload_user(db, member.id).password_hash
    assert not passwords.needs_rehash(rehashed)
    assert passwords.verify(rehashed, STRONG_PASSWORD)


# -- throttling ----------------------------------------------------------------------------


def test_too_many_failures_for_an_account_answer_429_before_checking_the_password(
    client_with: ClientFactory, db: Session, make_user: UserFactory
) -> None:
    client = client_with(auth_max_failures_per_account=3, auth_window_seconds=600)
    make_user("victim")
    for _ in range(3):
        assert login(client, "victim", "guess").status_code == 401

    blocked = login(client, "victim")  # even the right password

    assert blocked.status_code == 429
    assert error_of(blocked)["code"] == "too_many_requests"
    assert "try again in" in error_of(blocked)["message"]
    assert 1 <= int(blocked.headers["retry-after"]) <= 600
    reasons = [e.details["reason"] for e in audit_actions(db, "auth.login.failed")]
    assert reasons == ["bad_password"] * 3 + ["throttled"]


def test_unknown_usernames_are_throttled_the_same_way(client_with: ClientFactory) -> None:
    client = client_with(auth_max_failures_per_account=3)
    for _ in range(3):
        assert login(client, "nosuchuser", "guess").status_code == 401

    blocked = login(client, "NoSuchUser", "guess")

    assert blocked.status_code == 429
    assert error_of(blocked)["code"] == "too_many_requests"
    assert int(blocked.headers["retry-after"]) >= 1


def test_too_many_browser_failures_from_one_address_slow_down_unknown_browsers(
    client_with: ClientFactory, make_user: UserFactory
) -> None:
    # Per address for browsers only, and never for one that signed in before
    # (tests/accounts/test_known_device.py); API sign-ins are counted per account and per
    # (account, address).
    client = client_with(auth_max_failures_per_account=10, auth_max_failures_per_ip=3)
    make_user("bystander")
    for name in ("a-one", "a-two", "a-three"):
        response = client.post(f"{API}/auth/session", json={"username": name, "password": "guess"})
        assert response.status_code == 401

    blocked = client.post(
        f"{API}/auth/session", json={"username": "bystander", "password": STRONG_PASSWORD}
    )

    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers
    assert login(client, "bystander").status_code == 200


def test_a_successful_sign_in_clears_the_account_counter(
    client_with: ClientFactory, make_user: UserFactory
) -> None:
    client = client_with(auth_max_failures_per_account=3, auth_max_failures_per_ip=100)
    make_user("forgetful")
    for _ in range(2):
        login(client, "forgetful", "guess")
    assert login(client, "forgetful").status_code == 200

    for _ in range(2):
        assert login(client, "forgetful", "guess").status_code == 401
    assert login(client, "forgetful").status_code == 200


def test_the_block_ends_when_the_window_has_passed(
    client_with: ClientFactory, make_user: UserFactory, clock: FakeClock
) -> None:
    client = client_with(auth_max_failures_per_account=2, auth_window_seconds=600)
    make_user("patient")
    for _ in range(2):
        login(client, "patient", "guess")
    blocked = login(client, "patient")
    assert blocked.status_code == 429

    clock.advance(int(blocked.headers["retry-after"]) - 1)
    assert login(client, "patient").status_code == 429
    clock.advance(1)
    assert login(client, "patient").status_code == 200


def test_a_block_lasts_at_most_a_window_and_failures_refill_over_it(
    client_with: ClientFactory, make_user: UserFactory, clock: FakeClock
) -> None:
    client = client_with(auth_max_failures_per_account=3, auth_window_seconds=600)
    make_user("steady")
    for _ in range(3):
        assert login(client, "steady", "guess").status_code == 401
    blocked = login(client, "steady", "guess")
    assert blocked.status_code == 429
    # Three failures per 600 seconds: one more is heard every 200 seconds.
    assert int(blocked.headers["retry-after"]) == 200

    clock.advance(200)
    assert login(client, "steady", "guess").status_code == 401
    assert login(client, "steady", "guess").status_code == 429
    clock.advance(600)
    for _ in range(3):
        assert login(client, "steady", "guess").status_code == 401
    assert login(client, "steady", "guess").status_code == 429


def test_the_counters_are_shared_by_every_app_on_the_same_backend(
    client_with: ClientFactory, make_user: UserFactory
) -> None:
    # Two apps stand for two web processes (in distributed mode: two machines).
    first = client_with(auth_max_failures_per_account=2)
    second = client_with(auth_max_failures_per_account=2)
    make_user("roaming")
    assert login(first, "roaming", "guess").status_code == 401
    assert login(second, "roaming", "guess").status_code == 401

    assert login(first, "roaming").status_code == 429
