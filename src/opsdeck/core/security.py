"""Cryptographic building blocks shared by every module: password hashing, signed access
tokens, random tokens stored as digests, per-purpose keys derived from the secret key, and
signed tokens for links (sign_token / read_token)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
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


# -- signed tokens (links in e-mails: one-click unsubscribe...) ------------------------------

# Longer than any token OpsDeck signs; bounds the work a forged one can cause.
MAX_TOKEN_LENGTH = 4096
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class TokenError(ValueError):
    """A signed token that cannot be trusted: malformed, tampered with, signed for another
    purpose or with another key, or expired. `reason` is `malformed`, `signature` or
    `expired`; show users one message for all three."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token ({reason})")
        self.reason = reason


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or not _B64URL.fullmatch(text):
        raise TokenError("malformed")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error) as exc:
        raise TokenError("malformed") from exc


def sign_token(
    secret: bytes,
    purpose: str,
    payload: dict[str, Any],
    *,
    max_age: int | None = None,
    now: float | None = None,
) -> str:
    """`<base64url JSON>.<base64url HMAC-SHA256>`, URL-safe, keyed by derive_key(secret,
    "token:<purpose>"): a token made for one purpose is refused for any other. The JSON holds
    `payload` and the time of signing (readable by whoever has the token: put ids in it, not
    secrets). `max_age` (seconds) makes it expire; read_token can also set a limit of its own.

    `secret` is settings.secret_bytes(): changing the secret key voids every token issued."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"p": payload, "iat": issued}
    if max_age is not None:
        claims["exp"] = issued + max_age
    body = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    mac = hmac.new(derive_key(secret, f"token:{purpose}"), body.encode(), hashlib.sha256)
    return f"{body}.{_b64encode(mac.digest())}"


def read_token(
    secret: bytes,
    purpose: str,
    token: str,
    *,
    max_age: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload of a token sign_token made for `purpose`, or TokenError. `max_age`
    (seconds since signing) applies on top of any expiry the token carries."""
    body, dot, signature = token.partition(".")
    if not dot or len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("malformed")
    given = _b64decode(signature)
    _b64decode(body)
    expected = hmac.new(derive_key(secret, f"token:{purpose}"), body.encode(), hashlib.sha256)
    if not hmac.compare_digest(given, expected.digest()):
        raise TokenError("signature")
    try:
        claims = json.loads(_b64decode(body))
        payload, issued, expires = claims["p"], int(claims["iat"]), claims.get("exp")
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("malformed") from exc
    if not isinstance(payload, dict):
        raise TokenError("malformed")
    current = time.time() if now is None else now
    if expires is not None and current >= int(expires):
        raise TokenError("expired")
    if max_age is not None and current >= issued + max_age:
        raise TokenError("expired")
    return payload


# -- secrets at rest ---------------------------------------------------------------------------


class SecretBoxError(ValueError):
    """A stored secret that no known key opens: tampered, moved to another row, or sealed with
    a key that is no longer configured."""


class SecretBox:
    """Authenticated encryption for small secrets stored in the database (TOTP seeds).

    AES-256-GCM with a key derived from the secret key by HKDF-SHA256 under the box's own
    context (`opsdeck:<purpose>`), so it shares nothing with the other keys derived from the
    same secret. A sealed value reads `v1.<key id>.<base64url(nonce | ciphertext | tag)>`; the
    key id (8 hex digits of the key's digest) picks the key on read, so values sealed with a
    previous secret key still open while they are re-sealed (`opsdeck keys rotate`). Each
    value is bound to its row (`bound_to`, the associated data): a value copied into another
    row does not open.
    """

    VERSION = "v1"

    def __init__(self, current: bytes, previous: Sequence[bytes] = (), *, purpose: str) -> None:
        self._purpose = purpose
        self._current = self._derive(current)
        self.current_kid = self._kid(self._current)
        self._keys = {self.current_kid: self._current}
        for secret in previous:
            key = self._derive(secret)
            self._keys.setdefault(self._kid(key), key)

    def _derive(self, secret: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=f"opsdeck:{self._purpose}".encode(),
        ).derive(secret)

    @staticmethod
    def _kid(key: bytes) -> str:
        return hashlib.sha256(b"opsdeck-kid:" + key).hexdigest()[:8]

    @classmethod
    def is_sealed(cls, value: str) -> bool:
        return value.startswith(f"{cls.VERSION}.")

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._current).encrypt(nonce, plaintext.encode(), bound_to.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{self.VERSION}.{self.current_kid}.{body}"

    def open(self, value: str, *, bound_to: str) -> str:
        """The plaintext of a sealed value. A value that is not sealed (written before
        encryption at rest) is returned as it is, so those rows keep working until the
        migration or `opsdeck keys rotate` seals them."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not self.is_sealed(value):
            return value
        try:
            _version, kid, body = value.split(".", 2)
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, binascii.Error):
            raise SecretBoxError("not a sealed value") from None
        key = self._keys.get(kid)
        if key is None:
            raise SecretBoxError(f"sealed with key {kid}, which is not configured")
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except (InvalidTag, ValueError):
            raise SecretBoxError("the sealed value does not open (tampered or moved)") from None

    def needs_reseal(self, value: str) -> bool:
        """Whether a stored value is plain or sealed with another key than the current one."""
        return not value.startswith(f"{self.VERSION}.{self.current_kid}.")
