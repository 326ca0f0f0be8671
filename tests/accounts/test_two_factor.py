"""TOTP two-factor authentication: setup, confirmation, sign-in, replay, recovery codes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import RecoveryCode
from opsdeck.accounts.service.two_factor import (
    accept_second_factor,
    reseal_totp_secrets,
    totp_box,
)
from opsdeck.audit.service import verify_chain
from opsdeck.core.db import utcnow
from opsdeck.core.security import SecretBoxError
from opsdeck.settings import Settings
from tests.accounts.conftest import audit_actions, end_read, next_totp, reload_user
from tests.conftest import API, STRONG_PASSWORD, error_of, fields_of, login

TWO_FA = f"{API}/users/me/2fa"


@pytest.fixture
def enrolled(client: TestClient, member: Any, member_headers: dict[str, str]) -> dict[str, Any]:
    """Mallory with 2FA on: her secret and recovery codes."""
    setup = client.post(
        f"{TWO_FA}/setup", json={"password": STRONG_PASSWORD}, headers=member_headers
    )
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    confirm = client.post(
        f"{TWO_FA}/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=member_headers
    )
    assert confirm.status_code == 200
    return {"secret": secret, "codes": confirm.json()["recovery_codes"]}


def test_setup_returns_a_secret_pending_until_confirmed(
    settings: Settings,
    client: TestClient,
    db: Session,
    member: Any,
    member_headers: dict[str, str],
) -> None:
    response = client.post(
        f"{TWO_FA}/setup", json={"password": STRONG_PASSWORD}, headers=member_headers
    )

    assert response.status_code == 200
    body = response.json()
    uri = urlparse(body["provisioning_uri"])
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    assert parse_qs(uri.query)["issuer"] == ["OpsDeck"]
    assert parse_qs(uri.query)["secret"] == [body["secret"]]
    user = reload_user(db, member.id)
    # Sealed at rest, bound to its user.
    pending = user.totp_pending_secret
    assert pending is not None
    assert body["secret"] not in pending
    assert totp_box(settings).open(pending, bound_to=member.id) == body["secret"]
    assert not user.totp_enabled
    assert login(client, "mallory").status_code == 200  # not on until confirmed


def test_setup_needs_the_password(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{TWO_FA}/setup", json={"password": "wrong-one"}, headers=member_headers
    )

    assert response.status_code == 403
    assert error_of(response)["code"] == "invalid_password"
    assert fields_of(response) == {"body.password"}
    assert reload_user(db, member.id).totp_pending_secret is None
    # The failure is kept even though the request failed.
    assert [e.details for e in audit_actions(db, "auth.reauth.failed")] == [
        {"purpose": "2fa_setup", "reason": "invalid_password"}
    ]


def test_confirm_with_a_wrong_code_leaves_2fa_off(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    client.post(f"{TWO_FA}/setup", json={"password": STRONG_PASSWORD}, headers=member_headers)

    response = client.post(f"{TWO_FA}/confirm", json={"code": "000000"}, headers=member_headers)

    assert response.status_code == 403
    assert error_of(response)["code"] == "invalid_otp"
    assert not reload_user(db, member.id).totp_enabled


def test_confirm_without_setup_is_a_conflict(
    client: TestClient, member_headers: dict[str, str]
) -> None:
    response = client.post(f"{TWO_FA}/confirm", json={"code": "123456"}, headers=member_headers)

    assert response.status_code == 409
    assert "setup" in error_of(response)["message"]


def test_confirm_turns_2fa_on_with_ten_recovery_codes(
    client: TestClient, db: Session, member: Any, enrolled: dict[str, Any]
) -> None:
    codes = enrolled["codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(len(code) == 14 and code.count("-") == 2 for code in codes)
    user = reload_user(db, member.id)
    assert user.totp_enabled
    assert user.totp_enabled_at is not None
    stored = db.scalars(select(RecoveryCode.code_hash)).all()
    assert not set(codes) & set(stored)  # only digests are kept
    assert [e.action for e in audit_actions(db, "auth.2fa")] == ["auth.2fa.enabled"]


def test_sign_in_with_2fa_asks_for_the_code(
    client: TestClient, db: Session, enrolled: dict[str, Any]
) -> None:
    response = login(client, "mallory")

    assert response.status_code == 401
    assert error_of(response)["code"] == "otp_required"
    # Not a failure: nothing counted, nothing logged as failed.
    assert audit_actions(db, "auth.login.failed") == []


def test_sign_in_with_the_current_code(
    client: TestClient, db: Session, member: Any, enrolled: dict[str, Any]
) -> None:
    response = login(client, "mallory", otp=next_totp(db, member.id, enrolled["secret"]))

    assert response.status_code == 200
    assert audit_actions(db, "auth.login.succeeded")[-1].details["second_factor"] == "totp"


def test_a_used_code_cannot_be_replayed(
    client: TestClient, db: Session, member: Any, enrolled: dict[str, Any]
) -> None:
    code = next_totp(db, member.id, enrolled["secret"])
    assert login(client, "mallory", otp=code).status_code == 200

    replay = login(client, "mallory", otp=code)

    assert replay.status_code == 401
    assert error_of(replay) == {
        "code": "invalid_otp",
        "message": "The code is incorrect, expired or already used.",
        "details": [],
    }
    assert audit_actions(db, "auth.login.failed")[-1].details["reason"] == "bad_otp"


def test_the_confirmation_code_cannot_be_replayed_at_sign_in(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str]
) -> None:
    secret = client.post(
        f"{TWO_FA}/setup", json={"password": STRONG_PASSWORD}, headers=member_headers
    ).json()["secret"]
    user = reload_user(db, member.id)
    code = pyotp.TOTP(secret).now()
    client.post(f"{TWO_FA}/confirm", json={"code": code}, headers=member_headers)
    confirmed_counter = reload_user(db, user.id).totp_last_counter
    assert confirmed_counter is not None

    replay = login(client, "mallory", otp=pyotp.TOTP(secret).generate_otp(confirmed_counter))

    assert replay.status_code == 401
    assert error_of(replay)["code"] == "invalid_otp"


def test_a_wrong_code_counts_towards_the_throttle(
    client_with: Any, db: Session, member: Any, enrolled: dict[str, Any]
) -> None:
    client = client_with(auth_max_failures_per_account=2)
    for _ in range(2):
        assert login(client, "mallory", otp="000000").status_code == 401

    blocked = login(client, "mallory", otp=next_totp(db, member.id, enrolled["secret"]))

    assert blocked.status_code == 429


def test_a_recovery_code_signs_in_once(
    client: TestClient, db: Session, enrolled: dict[str, Any]
) -> None:
    code = enrolled["codes"][0]

    first = login(client, "mallory", otp=code.upper())  # typed from paper, any case
    second = login(client, "mallory", otp=code)

    assert first.status_code == 200
    assert second.status_code == 401
    assert error_of(second)["code"] == "invalid_otp"
    used = audit_actions(db, "auth.2fa.recovery_used")
    assert [e.details for e in used] == [{"remaining": 9}]
    assert code not in str(used[0].details)


def test_disable_needs_password_and_code(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str], enrolled: Any
) -> None:
    code = next_totp(db, member.id, enrolled["secret"])
    wrong_password = client.post(
        f"{TWO_FA}/disable",
        json={"password": "not-it-at-all", "code": code},
        headers=member_headers,
    )
    wrong_code = client.post(
        f"{TWO_FA}/disable",
        json={"password": STRONG_PASSWORD, "code": "000000"},
        headers=member_headers,
    )
    missing_code = client.post(
        f"{TWO_FA}/disable", json={"password": STRONG_PASSWORD}, headers=member_headers
    )

    assert (wrong_password.status_code, error_of(wrong_password)["code"]) == (
        403,
        "invalid_password",
    )
    assert (wrong_code.status_code, error_of(wrong_code)["code"]) == (403, "invalid_otp")
    assert missing_code.status_code == 422
    assert fields_of(missing_code) == {"body.code"}
    assert reload_user(db, member.id).totp_enabled


def test_disable_with_a_recovery_code_turns_2fa_off(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str], enrolled: Any
) -> None:
    response = client.post(
        f"{TWO_FA}/disable",
        json={"password": STRONG_PASSWORD, "code": enrolled["codes"][3]},
        headers=member_headers,
    )

    assert response.status_code == 204
    user = reload_user(db, member.id)
    assert not user.totp_enabled
    assert user.totp_last_counter is None
    assert db.scalars(select(RecoveryCode)).all() == []
    end_read(db)
    assert login(client, "mallory").status_code == 200
    actions = [e.action for e in audit_actions(db, "auth.2fa")]
    assert actions[-2:] == ["auth.2fa.recovery_used", "auth.2fa.disabled"]
    assert verify_chain(db).ok


def test_regenerating_recovery_codes_voids_the_old_set(
    client: TestClient, db: Session, member: Any, member_headers: dict[str, str], enrolled: Any
) -> None:
    response = client.post(
        f"{TWO_FA}/recovery-codes",
        json={"password": STRONG_PASSWORD, "code": next_totp(db, member.id, enrolled["secret"])},
        headers=member_headers,
    )

    assert response.status_code == 200
    fresh = response.json()["recovery_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(enrolled["codes"])
    assert login(client, "mallory", otp=enrolled["codes"][1]).status_code == 401
    assert login(client, "mallory", otp=fresh[0]).status_code == 200
    assert "auth.2fa.recovery_regenerated" in [e.action for e in audit_actions(db, "auth.2fa")]


def test_setting_up_twice_is_a_conflict(
    client: TestClient, member_headers: dict[str, str], enrolled: Any
) -> None:
    response = client.post(
        f"{TWO_FA}/setup", json={"password": STRONG_PASSWORD}, headers=member_headers
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"


def test_browser_sign_in_with_2fa(
    client: TestClient, db: Session, member: Any, enrolled: dict[str, Any]
) -> None:
    body = {"username": "mallory", "password": STRONG_PASSWORD}
    asked = client.post(f"{API}/auth/session", json=body)
    assert error_of(asked)["code"] == "otp_required"

    code = next_totp(db, member.id, enrolled["secret"])
    response = client.post(f"{API}/auth/session", json={**body, "otp": code})

    assert response.status_code == 200
    assert response.json()["user"]["totp_enabled"] is True


# -- secrets at rest ---------------------------------------------------------------------------


def _with_keys(settings: Settings, current: str, previous: str = "") -> Settings:
    return settings.model_copy(
        update={"secret_key": SecretStr(current), "previous_secret_keys": SecretStr(previous)}
    )


def test_the_seed_is_sealed_and_does_not_open_in_another_row(
    settings: Settings, db: Session, member: Any, admin: Any, enrolled: dict[str, Any]
) -> None:
    sealed = reload_user(db, member.id).totp_secret
    assert sealed is not None
    assert sealed.startswith("v1.")
    assert enrolled["secret"] not in sealed
    with pytest.raises(SecretBoxError):
        totp_box(settings).open(sealed, bound_to=admin.id)


def test_a_key_change_keeps_2fa_working_through_rotation(
    settings: Settings, db: Session, member: Any, enrolled: dict[str, Any]
) -> None:
    old = settings.secret_key.get_secret_value()
    new = "n" * 48
    totp_now = pyotp.TOTP(enrolled["secret"])
    user = reload_user(db, member.id)
    before = user.totp_secret
    assert before is not None
    # Later steps than the confirmation's, so no code is a replay.
    first, second = (utcnow() + timedelta(seconds=30 * k) for k in (1, 2))

    # The new key alone does not open the old seed: the sign-in fails closed.
    with pytest.raises(SecretBoxError):
        accept_second_factor(db, _with_keys(settings, new), user, totp_now.at(first), first)
    # With the old key listed as previous, the code is accepted; rotation re-seals the seed.
    rotated = _with_keys(settings, new, previous=f"unused-key-{'x' * 32}, {old}")
    assert accept_second_factor(db, rotated, user, totp_now.at(first), first) == "totp"
    assert reseal_totp_secrets(db, rotated) == 1
    assert reseal_totp_secrets(db, rotated) == 0
    after = reload_user(db, member.id).totp_secret
    assert after is not None
    assert after != before
    # Now the new key alone opens it, and the old one no longer does.
    user = reload_user(db, member.id)
    new_only = _with_keys(settings, new)
    assert accept_second_factor(db, new_only, user, totp_now.at(second), second) == "totp"
    with pytest.raises(SecretBoxError):
        totp_box(settings).open(after, bound_to=member.id)


def test_a_seed_stored_before_encryption_still_works_and_gets_sealed(
    settings: Settings, db: Session, member: Any
) -> None:
    secret = pyotp.random_base32()
    user = reload_user(db, member.id)
    user.totp_secret = secret
    user.totp_enabled_at = utcnow()
    db.flush()
    now = utcnow()
    assert accept_second_factor(db, settings, user, pyotp.TOTP(secret).at(now), now) == "totp"
    assert reseal_totp_secrets(db, settings) == 1
    sealed = reload_user(db, member.id).totp_secret
    assert sealed is not None
    assert totp_box(settings).open(sealed, bound_to=member.id) == secret
