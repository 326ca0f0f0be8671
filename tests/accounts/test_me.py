"""The signed-in user's own account: profile, password and personal API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import ApiToken
from tests.accounts.conftest import audit_actions, reload_user
from tests.conftest import (
    API,
    STRONG_PASSWORD,
    UserFactory,
    access_token,
    bearer,
    error_of,
    fields_of,
    login,
)

ME = f"{API}/users/me"
NEW_PASSWORD = "another long passphrase"


# -- profile -------------------------------------------------------------------------------


def test_update_my_name_and_email(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    response = client.patch(
        ME, json={"display_name": " Mal ", "email": "MAL@example.org"}, headers=member_headers
    )

    assert response.status_code == 200
    assert (response.json()["display_name"], response.json()["email"]) == ("Mal", "mal@example.org")
    assert audit_actions(db, "user.updated")[-1].details == {"fields": ["display_name", "email"]}


def test_bidirectional_controls_are_taken_out_of_display_names(
    client: TestClient,
    db: Session,
    member: Any,
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    # U+202E would show "Mal\u202eetirovaf" as "Malfavorite", reversed after the override.
    mine = client.patch(
        ME, json={"display_name": " \u202eMal\u2066lory\u2069\u200f "}, headers=member_headers
    )
    created = client.post(
        f"{API}/users",
        json={
            "username": "trudy",
            "email": "trudy@example.com",
            "password": NEW_PASSWORD,
            "display_name": "\u202dTrudy\u061c",
        },
        headers=admin_headers,
    )

    assert mine.status_code == 200
    assert mine.json()["display_name"] == "Mallory"
    assert created.status_code == 201
    assert created.json()["display_name"] == "Trudy"


def test_i_cannot_change_my_own_role(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    response = client.patch(ME, json={"role": "admin"}, headers=member_headers)

    assert response.status_code == 422
    assert fields_of(response) == {"body.role"}
    assert reload_user(db, member.id).role == "member"


def test_taken_or_invalid_email_is_refused(
    client: TestClient, db: Session, member: Any, admin: Any, member_headers: dict[str, str]
) -> None:
    taken = client.patch(ME, json={"email": admin.email.upper()}, headers=member_headers)
    invalid = client.patch(ME, json={"email": "no-at-sign"}, headers=member_headers)

    assert taken.status_code == 409
    assert fields_of(taken) == {"body.email"}
    assert invalid.status_code == 422
    assert fields_of(invalid) == {"body.email"}
    assert reload_user(db, member.id).email == "mallory@example.com"


# -- password ------------------------------------------------------------------------------


def test_change_password_signs_out_other_sessions_only(
    client: TestClient, db: Session, member: Any
) -> None:
    current = access_token(client, "mallory")
    other = access_token(client, "mallory")

    response = client.post(
        f"{ME}/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(current),
    )

    assert response.status_code == 204
    assert client.get(ME, headers=bearer(current)).status_code == 200
    assert client.get(ME, headers=bearer(other)).status_code == 401
    assert login(client, "mallory").status_code == 401
    assert login(client, "mallory", NEW_PASSWORD).status_code == 200
    changed = audit_actions(db, "auth.password.changed")
    assert [e.details for e in changed] == [{"other_sessions_revoked": 1}]
    assert NEW_PASSWORD not in str(changed[0].details)


def test_change_password_needs_the_current_one(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{ME}/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=member_headers,
    )

    assert response.status_code == 403
    assert error_of(response)["code"] == "invalid_password"
    assert fields_of(response) == {"body.current_password"}
    assert login(client, "mallory").status_code == 200


def test_change_password_guesses_are_throttled(client_with: Any, member: Any) -> None:
    client = client_with(auth_max_failures_per_account=2)
    headers = bearer(access_token(client, "mallory"))
    body = {"current_password": "guess-guess", "new_password": NEW_PASSWORD}
    for _ in range(2):
        assert client.post(f"{ME}/password", json=body, headers=headers).status_code == 403

    blocked = client.post(
        f"{ME}/password", json={**body, "current_password": STRONG_PASSWORD}, headers=headers
    )

    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers
    assert login(client, "mallory", NEW_PASSWORD).status_code != 200


def test_new_password_must_follow_the_policy(
    client: TestClient, member: Any, member_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{ME}/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "mallory@example.com"},
        headers=member_headers,
    )

    assert response.status_code == 422
    assert error_of(response)["code"] == "weak_password"
    assert fields_of(response) == {"body.new_password"}
    assert login(client, "mallory").status_code == 200


# -- personal API tokens -------------------------------------------------------------------


def test_api_token_is_shown_once_and_works(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    created = client.post(
        f"{ME}/tokens", json={"name": " deploy bot ", "expires_in_days": 30}, headers=member_headers
    )

    assert created.status_code == 201
    body = created.json()
    token = body["token"]
    assert token.startswith("opd_")
    assert body["token_prefix"] == token[:12]
    assert body["name"] == "deploy bot"
    assert body["expires_at"] is not None
    assert client.get(ME, headers=bearer(token)).json()["username"] == "mallory"
    listed = client.get(f"{ME}/tokens", headers=member_headers).json()
    assert [t["id"] for t in listed] == [body["id"]]
    assert "token" not in listed[0]
    assert db.scalars(select(ApiToken.token_hash)).one() != token
    assert db.scalars(select(ApiToken)).one().last_used_at is not None
    assert audit_actions(db, "auth.token.created")[-1].details == {
        "name": "deploy bot",
        "token_prefix": token[:12],
    }


def test_revoked_api_token_stops_working(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    body = client.post(f"{ME}/tokens", json={"name": "ci"}, headers=member_headers).json()

    response = client.delete(f"{ME}/tokens/{body['id']}", headers=member_headers)

    assert response.status_code == 204
    refused = client.get(ME, headers=bearer(body["token"]))
    assert refused.status_code == 401
    assert error_of(refused)["message"] == "The API token is invalid, expired or revoked."
    listed = client.get(f"{ME}/tokens", headers=member_headers).json()
    assert listed[0]["revoked_at"] is not None
    assert len(audit_actions(db, "auth.token.revoked")) == 1


def test_expired_api_token_is_refused(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    body = client.post(
        f"{ME}/tokens", json={"name": "short", "expires_in_days": 1}, headers=member_headers
    ).json()
    row = db.get_one(ApiToken, body["id"])
    assert row.expires_at is not None
    row.expires_at -= timedelta(days=2)
    db.commit()

    assert client.get(ME, headers=bearer(body["token"])).status_code == 401


def test_i_cannot_revoke_someone_elses_token(
    client: TestClient, make_user: UserFactory, member_headers: dict[str, str]
) -> None:
    other = make_user("other")
    other_headers = bearer(access_token(client, other.username))
    token = client.post(f"{ME}/tokens", json={"name": "theirs"}, headers=other_headers).json()

    response = client.delete(f"{ME}/tokens/{token['id']}", headers=member_headers)

    assert response.status_code == 404
    assert client.get(ME, headers=bearer(token["token"])).status_code == 200


def test_api_token_fields_are_validated(
    client: TestClient, db: Session, member_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{ME}/tokens", json={"name": "   ", "expires_in_days": 0}, headers=member_headers
    )

    assert response.status_code == 422
    assert fields_of(response) == {"body.name", "body.expires_in_days"}
    # A boolean or a numeric string is no number of days (found by the fuzz gate: `true` was 1).
    for days in (True, "30"):
        response = client.post(
            f"{ME}/tokens", json={"name": "bot", "expires_in_days": days}, headers=member_headers
        )
        assert response.status_code == 422, days
        assert fields_of(response) == {"body.expires_in_days"}
    assert db.scalars(select(ApiToken)).all() == []
