"""SecretBox: authenticated encryption of the secrets kept in the database."""

from __future__ import annotations

import pytest

from opsdeck.core.security import SecretBox, SecretBoxError

KEY, OTHER = b"k" * 40, b"o" * 40


def test_a_sealed_value_opens_only_with_its_key_its_row_and_untouched() -> None:
    box = SecretBox(KEY, purpose="totp-secret")
    sealed = box.seal("JBSWY3DPEHPK3PXP", bound_to="user-1")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert box.seal("JBSWY3DPEHPK3PXP", bound_to="user-1") != sealed  # a fresh nonce each time
    assert box.open(sealed, bound_to="user-1") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretBoxError, match="tampered or moved"):
        box.open(sealed, bound_to="user-2")
    body = sealed.rsplit(".", 1)
    flipped = body[0] + "." + ("A" if body[1][0] != "A" else "B") + body[1][1:]
    with pytest.raises(SecretBoxError):
        box.open(flipped, bound_to="user-1")
    with pytest.raises(SecretBoxError, match="not configured"):
        SecretBox(OTHER, purpose="totp-secret").open(sealed, bound_to="user-1")
    with pytest.raises(SecretBoxError):
        box.open("v1.nodots", bound_to="user-1")


def test_each_purpose_has_its_own_key() -> None:
    sealed = SecretBox(KEY, purpose="totp-secret").seal("x", bound_to="u")
    with pytest.raises(SecretBoxError):
        SecretBox(KEY, purpose="something-else").open(sealed, bound_to="u")


def test_previous_keys_open_and_reseal_is_needed_until_rotated() -> None:
    old = SecretBox(OTHER, purpose="p")
    sealed = old.seal("seed", bound_to="u")
    box = SecretBox(KEY, [OTHER], purpose="p")
    assert box.open(sealed, bound_to="u") == "seed"
    assert box.needs_reseal(sealed)
    assert box.needs_reseal("PLAINSEED")
    assert not box.needs_reseal(box.seal("seed", bound_to="u"))
    assert box.open("PLAINSEED", bound_to="u") == "PLAINSEED"
