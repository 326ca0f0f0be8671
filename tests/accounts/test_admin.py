"""Administration of users: list and search, create, read, update, deactivate."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import User
from opsdeck.audit.service import verify_chain
from tests.accounts.conftest import audit_actions, reload_user
from tests.conftest import (
    API,
    STRONG_PASSWORD,
    UserFactory,
    access_token,
    bearer,
    browser_login,
    error_of,
    fields_of,
    login,
)

USERS = f"{API}/users"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", "/users/{id}"),
        ("PATCH", "/users/{id}"),
        ("GET", "/audit"),
        ("GET", "/audit/verify"),
    ],
)
def test_members_are_refused_on_admin_endpoints(
    client: TestClient,
    db: Session,
    member: Any,
    member_headers: dict[str, str],
    method: str,
    path: str,
) -> None:
    body = {"role": "admin"} if method == "PATCH" else None
    if method == "POST":
        body = {"username": "sneaky", "email": "s@example.com", "password": STRONG_PASSWORD}
    url = API + path.format(id=member.id)

    response = client.request(method, url, json=body, headers=member_headers)

    assert response.status_code == 403
    assert error_of(response) == {
        "code": "forbidden",
        "message": "This needs the admin role.",
        "details": [],
    }
    assert reload_user(db, member.id).role == "member"
    assert db.scalar(select(User).where(User.username == "sneaky")) is None


def test_anonymous_callers_get_401_on_admin_endpoints(client: TestClient) -> None:
    response = client.get(USERS)

    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


def test_admin_creates_a_user_who_can_sign_in(
    client: TestClient, db: Session, admin: Any, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        USERS,
        json={
            "username": "  NewHire ",
            "email": "New.Hire@Example.COM",
            "password": "a perfectly fine passphrase",
            "display_name": "  New Hire ",
        },
        headers=admin_headers,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "newhire"
    assert body["email"] == "new.hire@example.com"
    assert body["display_name"] == "New Hire"
    assert body["role"] == "member"
    assert "password" not in str(body).lower()
    assert login(client, "newhire", "a perfectly fine passphrase").status_code == 200
    created = audit_actions(db, "user.created")[-1]
    assert (created.actor_id, created.target_id) == (admin.id, body["id"])
    assert created.details == {"username": "newhire", "role": "member"}


def test_duplicate_username_or_email_is_a_conflict(
    client: TestClient, db: Session, member: Any, admin_headers: dict[str, str]
) -> None:
    same_name = client.post(
        USERS,
        json={"username": "MALLORY", "email": "other@example.com", "password": STRONG_PASSWORD},
        headers=admin_headers,
    )
    same_email = client.post(
        USERS,
        json={"username": "other", "email": "Mallory@Example.com", "password": STRONG_PASSWORD},
        headers=admin_headers,
    )

    assert same_name.status_code == 409
    assert error_of(same_name)["message"] == "The username 'mallory' is already taken."
    assert fields_of(same_name) == {"body.username"}
    assert same_email.status_code == 409
    assert "mallory@example.com" in error_of(same_email)["message"]
    assert fields_of(same_email) == {"body.email"}
    assert db.scalar(select(User).where(User.username == "other")) is None


def test_invalid_fields_are_named_and_nothing_is_created(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        USERS,
        json={
            "username": "-x",
            "email": "not-an-address",
            "password": STRONG_PASSWORD,
            "role": "root",
            "extra": 1,
        },
        headers=admin_headers,
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert fields_of(response) == {"body.username", "body.email", "body.role", "body.extra"}
    username_detail = next(d for d in error["details"] if d["field"] == "body.username")
    assert "3 to 64 characters" in username_detail["message"]
    assert db.scalars(select(User.username)).all() == ["root"]


def test_invalid_json_is_422(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = client.post(
        USERS,
        content=b'{"username": "x",',
        headers={**admin_headers, "content-type": "application/json"},
    )

    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"
    assert error_of(response)["details"][0]["type"] == "json_invalid"


def test_list_searches_filters_and_pages(
    client: TestClient, make_user: UserFactory, admin_headers: dict[str, str]
) -> None:
    make_user("carol", display_name="Carol Danvers")
    make_user("dave", email="dave@corp.example")
    make_user("erin", display_name="Erin 100%_off")

    def names(**params: Any) -> list[str]:
        response = client.get(USERS, params=params, headers=admin_headers)
        assert response.status_code == 200
        page = response.json()
        assert page["next_cursor"] is None
        return [u["username"] for u in page["items"]]

    assert names() == ["carol", "dave", "erin", "root"]
    assert names(q="DANVERS") == ["carol"]
    assert names(q="corp.example") == ["dave"]
    assert names(q="0%_o") == ["erin"]  # wildcards are matched literally
    assert names(q="%") == ["erin"]
    assert names(role="admin") == ["root"]
    assert names(sort="-username") == ["root", "erin", "dave", "carol"]
    assert names(sort="created_at") == ["root", "carol", "dave", "erin"]
    bad = client.get(USERS, params={"limit": 0, "role": "god"}, headers=admin_headers)
    assert bad.status_code == 422
    assert fields_of(bad) == {"query.limit", "query.role"}


def test_users_list_is_keyset_paged_with_the_filters_kept(
    client: TestClient, make_user: UserFactory, admin_headers: dict[str, str]
) -> None:
    for name in ("carol", "dave", "erin", "frank", "grace"):
        make_user(name)

    def walk(**params: Any) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            response = client.get(USERS, params=query, headers=admin_headers)
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append([u["username"] for u in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages

    assert walk() == [["carol", "dave"], ["erin", "frank"], ["grace", "root"]]
    assert walk(role="member", sort="-username") == [
        ["grace", "frank"],
        ["erin", "dave"],
        ["carol"],
    ]

    bad = client.get(USERS, params={"cursor": "not-a-cursor"}, headers=admin_headers)
    assert bad.status_code == 422
    assert fields_of(bad) == {"query.cursor"}
    too_many = client.get(USERS, params={"limit": 201, "sort": "age"}, headers=admin_headers)
    assert too_many.status_code == 422
    assert fields_of(too_many) == {"query.limit", "query.sort"}


def test_get_user_and_unknown_id(
    client: TestClient, member: Any, admin_headers: dict[str, str]
) -> None:
    assert client.get(f"{USERS}/{member.id}", headers=admin_headers).json()["id"] == member.id

    missing = client.get(f"{USERS}/nope", headers=admin_headers)

    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"


def test_promote_and_rename_are_audited(
    client: TestClient, db: Session, member: Any, admin: Any, admin_headers: dict[str, str]
) -> None:
    response = client.patch(
        f"{USERS}/{member.id}",
        json={"role": "admin", "display_name": "Mal"},
        headers=admin_headers,
    )

    assert response.status_code == 200
    assert (response.json()["role"], response.json()["display_name"]) == ("admin", "Mal")
    entries = audit_actions(db, "user.")[-2:]
    assert [(e.action, e.details) for e in entries] == [
        ("user.updated", {"fields": ["display_name"]}),
        ("user.role_changed", {"from": "member", "to": "admin"}),
    ]
    assert all(e.actor_id == admin.id and e.target_id == member.id for e in entries)


def test_deactivation_stops_every_credential_at_once(
    client: TestClient, db: Session, member: Any, admin_headers: dict[str, str]
) -> None:
    token = access_token(client, "mallory")
    api_token = client.post(
        f"{USERS}/me/tokens", json={"name": "script"}, headers=bearer(token)
    ).json()["token"]
    browser_login(client, "mallory")
    cookie = client.cookies["opsdeck_session"]
    client.cookies.clear()

    response = client.patch(
        f"{USERS}/{member.id}", json={"is_active": False}, headers=admin_headers
    )

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    for headers in (bearer(token), bearer(api_token)):
        refused = client.get(f"{USERS}/me", headers=headers)
        assert refused.status_code == 401
        assert error_of(refused)["code"] == "not_authenticated"
    client.cookies.set("opsdeck_session", cookie)
    assert client.get(f"{USERS}/me").status_code == 401
    client.cookies.clear()
    deactivated = audit_actions(db, "user.deactivated")[-1]
    assert deactivated.details == {"sessions_revoked": 2, "api_tokens_revoked": 1}


def test_reactivation_does_not_revive_old_credentials(
    client: TestClient, member: Any, admin_headers: dict[str, str]
) -> None:
    token = access_token(client, "mallory")
    client.patch(f"{USERS}/{member.id}", json={"is_active": False}, headers=admin_headers)

    response = client.patch(f"{USERS}/{member.id}", json={"is_active": True}, headers=admin_headers)

    assert response.json()["is_active"] is True
    assert client.get(f"{USERS}/me", headers=bearer(token)).status_code == 401
    assert login(client, "mallory").status_code == 200


def test_the_last_admin_cannot_demote_or_deactivate_themselves(
    client: TestClient, db: Session, admin: Any, admin_headers: dict[str, str]
) -> None:
    demote = client.patch(f"{USERS}/{admin.id}", json={"role": "member"}, headers=admin_headers)
    deactivate = client.patch(
        f"{USERS}/{admin.id}", json={"is_active": False}, headers=admin_headers
    )

    for response in (demote, deactivate):
        assert response.status_code == 409
        assert error_of(response)["code"] == "conflict"
        assert "last active administrator" in error_of(response)["message"]
    user = reload_user(db, admin.id)
    assert (user.role, user.is_active) == ("admin", True)
    assert audit_actions(db, "user.role_changed") == []


def test_an_admin_cannot_deactivate_their_own_account_even_with_another_admin(
    client: TestClient,
    db: Session,
    make_user: UserFactory,
    admin: Any,
    admin_headers: dict[str, str],
) -> None:
    make_user("second", role="admin")

    response = client.patch(f"{USERS}/{admin.id}", json={"is_active": False}, headers=admin_headers)

    assert response.status_code == 409
    assert error_of(response)["code"] == "cannot_deactivate_self"
    assert "your own account" in error_of(response)["message"]
    assert reload_user(db, admin.id).is_active is True
    assert audit_actions(db, "user.deactivated") == []
    assert client.get(f"{USERS}/me", headers=admin_headers).status_code == 200


@pytest.mark.parametrize("value", [0, 1, "false", "true", "no", None])
def test_is_active_takes_booleans_only(
    client: TestClient, db: Session, member: Any, admin_headers: dict[str, str], value: Any
) -> None:
    response = client.patch(
        f"{USERS}/{member.id}", json={"is_active": value}, headers=admin_headers
    )

    if value is None:  # null: leave as it is
        assert response.status_code == 200
    else:
        assert response.status_code == 422
        assert [d["field"] for d in error_of(response)["details"]] == ["body.is_active"]
    assert reload_user(db, member.id).is_active is True


def test_an_admin_can_step_down_when_another_admin_remains(
    client: TestClient, make_user: UserFactory, admin: Any, admin_headers: dict[str, str]
) -> None:
    make_user("second", role="admin")

    response = client.patch(f"{USERS}/{admin.id}", json={"role": "member"}, headers=admin_headers)

    assert response.status_code == 200
    assert response.json()["role"] == "member"
    # The change applies to the very next request.
    assert client.get(USERS, headers=admin_headers).status_code == 403


def test_an_inactive_admin_does_not_count_as_the_remaining_admin(
    client: TestClient, make_user: UserFactory, admin: Any, admin_headers: dict[str, str]
) -> None:
    other = make_user("dormant", role="admin")
    assert (
        client.patch(f"{USERS}/{other.id}", json={"is_active": False}, headers=admin_headers)
    ).status_code == 200

    response = client.patch(f"{USERS}/{admin.id}", json={"role": "member"}, headers=admin_headers)

    assert response.status_code == 409


def test_admin_actions_keep_the_audit_chain_intact(
    client: TestClient, db: Session, member: Any, admin_headers: dict[str, str]
) -> None:
    client.patch(f"{USERS}/{member.id}", json={"display_name": "A"}, headers=admin_headers)
    client.patch(f"{USERS}/{member.id}", json={"is_active": False}, headers=admin_headers)
    verify = client.get(f"{API}/audit/verify", headers=admin_headers)

    assert verify.status_code == 200
    assert verify.json()["ok"] is True
    assert verify_chain(db).ok
