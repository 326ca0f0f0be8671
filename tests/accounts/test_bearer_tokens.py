"""Access tokens (JWT), rotating refresh tokens and logout."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import AuthSession, RefreshToken
from opsdeck.audit.service import verify_chain
from opsdeck.core.security import derive_key, encode_access_token
from opsdeck.settings import Settings
from tests.accounts.conftest import audit_actions
from tests.conftest import API, bearer, browser_login, error_of, fields_of, login

ME = f"{API}/users/me"


def _pair(client: TestClient, username: str = "mallory") -> dict[str, Any]:
    response = login(client, username)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _refresh(client: TestClient, refresh_token: str) -> Any:
    return client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})


INVALID_ACCESS_TOKEN = "The access token is invalid or has expired."
SESSION_ENDED = "The session of this access token has ended; sign in again."


def _assert_unauthenticated(response: Any, message: str | None = None) -> None:
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    if message is not None:
        assert error_of(response)["message"] == message


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- access tokens -------------------------------------------------------------------------


def test_no_credentials_is_401(client: TestClient) -> None:
    response = client.get(ME)

    _assert_unauthenticated(response)
    assert error_of(response)["message"] == "Authentication required."


def test_expired_access_token_is_refused(
    client: TestClient, settings: Settings, member: Any
) -> None:
    pair = _pair(client)
    session_id = jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]
    expired = encode_access_token(
        derive_key(settings.secret_bytes(), "jwt"),
        user_id=member.id,
        session_id=session_id,
        ttl_seconds=-60,
    )

    response = client.get(ME, headers=bearer(expired))

    _assert_unauthenticated(response, INVALID_ACCESS_TOKEN)
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200


def test_tampered_access_token_is_refused(client: TestClient, member: Any, admin: Any) -> None:
    token = _pair(client)["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = admin.id  # try to become the admin with mallory's signature

    response = client.get(ME, headers=bearer(f"{header}.{_b64(claims)}.{signature}"))

    _assert_unauthenticated(response, INVALID_ACCESS_TOKEN)
    assert client.get(ME, headers=bearer(token)).json()["username"] == "mallory"


def test_access_token_signed_with_another_key_is_refused(client: TestClient, member: Any) -> None:
    pair = _pair(client)
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, b"not-the-server-key-but-long-enough!!", algorithm="HS256")

    _assert_unauthenticated(client.get(ME, headers=bearer(forged)), INVALID_ACCESS_TOKEN)


def test_unsigned_alg_none_token_is_refused(client: TestClient, member: Any) -> None:
    claims = jwt.decode(_pair(client)["access_token"], options={"verify_signature": False})
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."

    _assert_unauthenticated(client.get(ME, headers=bearer(unsigned)), INVALID_ACCESS_TOKEN)


def test_non_bearer_authorization_is_refused_even_with_a_valid_cookie(
    client: TestClient, member: Any
) -> None:
    browser_login(client, "mallory")
    assert client.get(ME).status_code == 200

    response = client.get(ME, headers={"Authorization": "Basic bWFsbG9yeTp4"})

    _assert_unauthenticated(response)
    assert "Bearer" in error_of(response)["message"]


def test_garbage_bearer_token_is_refused(client: TestClient) -> None:
    _assert_unauthenticated(client.get(ME, headers=bearer("not-a-jwt")), INVALID_ACCESS_TOKEN)


# -- refresh tokens ------------------------------------------------------------------------


def test_refresh_rotates_the_pair(client: TestClient, member: Any) -> None:
    first = _pair(client)

    response = _refresh(client, first["refresh_token"])

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200
    assert _refresh(client, second["refresh_token"]).status_code == 200


def test_reused_refresh_token_revokes_the_whole_session(
    client: TestClient, db: Session, member: Any
) -> None:
    first = _pair(client)
    second = _refresh(client, first["refresh_token"]).json()

    reused = _refresh(client, first["refresh_token"])

    assert reused.status_code == 401
    assert error_of(reused)["code"] == "refresh_token_reused"
    assert "sign in again" in error_of(reused)["message"]
    # Both the newer refresh token and the session's access tokens stop working.
    newer = _refresh(client, second["refresh_token"])
    assert newer.status_code == 401
    assert error_of(newer)["code"] == "invalid_refresh_token"
    _assert_unauthenticated(client.get(ME, headers=bearer(second["access_token"])), SESSION_ENDED)
    _assert_unauthenticated(client.get(ME, headers=bearer(first["access_token"])), SESSION_ENDED)
    auth = db.scalars(select(AuthSession)).one()
    assert auth.revoked_reason == "refresh_token_reused"
    entries = audit_actions(db, "auth.refresh.reused")
    assert [(e.actor_id, e.target_id) for e in entries[:1]] == [(member.id, auth.id)]
    assert verify_chain(db).ok


def test_reuse_in_one_session_leaves_other_sessions_alone(client: TestClient, member: Any) -> None:
    stolen = _pair(client)
    other = _pair(client)
    _refresh(client, stolen["refresh_token"])

    assert _refresh(client, stolen["refresh_token"]).status_code == 401

    assert client.get(ME, headers=bearer(other["access_token"])).status_code == 200
    assert _refresh(client, other["refresh_token"]).status_code == 200


def test_unknown_refresh_token_is_refused(client: TestClient) -> None:
    response = _refresh(client, "made-up-token")

    assert response.status_code == 401
    assert error_of(response) == {
        "code": "invalid_refresh_token",
        "message": "The refresh token is invalid or has expired; sign in again.",
        "details": [],
    }


def test_refresh_body_is_validated(client: TestClient) -> None:
    missing = client.post(f"{API}/auth/refresh", json={})
    broken = client.post(
        f"{API}/auth/refresh", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert missing.status_code == 422
    assert fields_of(missing) == {"body.refresh_token"}
    assert broken.status_code == 422
    assert error_of(broken)["code"] == "validation_error"


def test_expired_refresh_token_is_refused_and_unspent(
    client: TestClient, db: Session, member: Any
) -> None:
    pair = _pair(client)
    row = db.scalars(select(RefreshToken)).one()
    row.expires_at -= timedelta(days=31)
    db.commit()

    response = _refresh(client, pair["refresh_token"])

    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_refresh_token"
    db.expire_all()
    assert db.scalars(select(RefreshToken)).one().used_at is None


# -- logout --------------------------------------------------------------------------------


def test_logout_ends_the_session_and_its_refresh_tokens(
    client: TestClient, db: Session, member: Any
) -> None:
    pair = _pair(client)

    response = client.post(f"{API}/auth/logout", headers=bearer(pair["access_token"]))

    assert response.status_code == 204
    _assert_unauthenticated(client.get(ME, headers=bearer(pair["access_token"])), SESSION_ENDED)
    assert _refresh(client, pair["refresh_token"]).status_code == 401
    assert [e.actor_id for e in audit_actions(db, "auth.logout")] == [member.id]


def test_logout_with_a_refresh_token_ends_that_session_too(client: TestClient, member: Any) -> None:
    current = _pair(client)
    other = _pair(client)

    response = client.post(
        f"{API}/auth/logout",
        json={"refresh_token": other["refresh_token"]},
        headers=bearer(current["access_token"]),
    )

    assert response.status_code == 204
    assert _refresh(client, other["refresh_token"]).status_code == 401
    _assert_unauthenticated(client.get(ME, headers=bearer(other["access_token"])))


def test_logout_cannot_end_someone_elses_session(
    client: TestClient, member: Any, admin: Any
) -> None:
    victim = _pair(client, admin.username)
    attacker = _pair(client, "mallory")

    client.post(
        f"{API}/auth/logout",
        json={"refresh_token": victim["refresh_token"]},
        headers=bearer(attacker["access_token"]),
    )

    assert client.get(ME, headers=bearer(victim["access_token"])).status_code == 200


def test_a_token_name_is_checked_against_its_length_as_sent(
    client: TestClient, member_headers: dict[str, str]
) -> None:
    url = "/api/v1/users/me/tokens"
    too_long = client.post(url, json={"name": " " + "*" * 100}, headers=member_headers)
    assert too_long.status_code == 422
    blank = client.post(url, json={"name": "   "}, headers=member_headers)
    assert blank.status_code == 422
    trimmed = client.post(url, json={"name": "  ci  "}, headers=member_headers)
    assert trimmed.status_code == 201
    assert trimmed.json()["name"] == "ci"
