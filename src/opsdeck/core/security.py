"""Cryptographic building blocks shared by every module: password hashing, signed access
tokens, random tokens stored as digests, and per-purpose keys derived from the secret key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

JWT_ALGORITHM = "HS256"
JWT_ISSUER = "opsdeck"


def derive_key(secret: bytes, purpose: str) -> bytes:
    """One key per purpose, so a leak of one derived value reveals nothing about the others."""
    return hmac.new(secret, f"opsdeck:{purpose}".encode(), hashlib.sha256).digest()


def digest(value: str) -> str:
    """SHA-256 of a high-entropy random token; fine for lookup because it cannot be guessed."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def keyed_digest(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def new_token(prefix: str = "", nbytes: int = 32) -> str:
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def constant_time_equals(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode("utf-8"), right.encode("utf-8"))


class Passwords:
    """argon2id. Parameters default to RFC 9106's second recommendation (t=3, m=64 MiB, p=4),
    above the OWASP/ASVS floor of m=19 MiB, t=2, p=1."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against when the user does not exist, so both paths cost the same.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: datetime


def encode_access_token(key: bytes, *, user_id: str, session_id: str, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "iss": JWT_ISSUER,
        "sub": user_id,
        "sid": session_id,
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, key, algorithm=JWT_ALGORITHM)


def decode_access_token(key: bytes, token: str) -> AccessClaims | None:
    """None for anything but a valid, unexpired HS256 token we issued (`alg=none` included)."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            issuer=JWT_ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "iss"]},
            leeway=5,
        )
    except jwt.PyJWTError:
        return None
    if payload.get("typ") != "access":
        return None
    return AccessClaims(
        user_id=str(payload["sub"]),
        session_id=str(payload["sid"]),
        expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
    )
