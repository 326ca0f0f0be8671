"""Failed sign-in counters on the core rate limiter, so every web process sees the same ones
(Redis in distributed mode; the process itself in embedded mode, which has one web process),
and the known-device cookie that lets a browser which signed in before past them
(docs/api.md, "Sign-in throttling", has the design and its ASVS 5.0 V6 reasoning).

Buckets, each holding the setting's number of failures and refilling at that many per window
(OPSDECK_AUTH_WINDOW_SECONDS):

- `auth.account`, keyed by the submitted username (unknown usernames are throttled exactly like
  real ones): guesses at one account from anywhere;
- `auth.account_ip`, keyed by (username, client address): guesses at one account from one place;
- `auth.ip`, keyed by the client address, browser sign-ins only: one address spraying guesses
  over many accounts;
- `auth.device`, keyed by a known-device cookie's nonce: guesses made with a (stolen) cookie.

An attempt is checked before the password is: when a bucket it is counted in is empty it is
refused with 429 and Retry-After, and not counted, so a block ends on time. An attempt that
presents a valid known-device cookie for the account is counted in its device's bucket only, so
neither an attacker guessing at the account nor one behind the same NAT locks its owner out.
Only failures take a token; a successful sign-in refills the account's, the (account, address)
or the device's bucket it was counted in.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsdeck.core.errors import TooManyRequests
from opsdeck.core.ratelimit import RateLimit, RateLimiter, rate_limiter
from opsdeck.core.security import (
    TokenError,
    derive_key,
    keyed_digest,
    new_token,
    read_token,
    sign_token,
)
from opsdeck.settings import Settings

ACCOUNT_SCOPE = "auth.account"
ACCOUNT_IP_SCOPE = "auth.account_ip"
IP_SCOPE = "auth.ip"
DEVICE_SCOPE = "auth.device"
MAX_KEY_VALUE_LENGTH = 180

KNOWN_DEVICE_PURPOSE = "known-device"


@dataclass(frozen=True)
class Attempt:
    """Who tries to sign in, from where, with what proof of a known device.

    `device` is the nonce of a valid known-device cookie for the account tried (None without
    one); `per_address` counts the attempt in the address's own bucket (browser sign-ins: API
    clients have no cookie to prove a known device, so an address's bucket would lock out every
    API client behind it)."""

    username: str
    ip: str | None
    device: str | None = None
    per_address: bool = False


@dataclass(frozen=True)
class LoginThrottle:
    limiter: RateLimiter
    per_account: RateLimit
    per_account_ip: RateLimit
    per_ip: RateLimit
    per_device: RateLimit

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        window = float(settings.auth_window_seconds)
        per_account_ip = settings.auth_max_failures_per_account_ip
        return cls(
            limiter=rate_limiter(settings),
            per_account=RateLimit(ACCOUNT_SCOPE, settings.auth_max_failures_per_account, window),
            per_account_ip=RateLimit(ACCOUNT_IP_SCOPE, per_account_ip, window),
            per_ip=RateLimit(IP_SCOPE, settings.auth_max_failures_per_ip, window),
            per_device=RateLimit(DEVICE_SCOPE, per_account_ip, window),
        )

    def retry_after(self, attempt: Attempt) -> int | None:
        """Seconds until an attempt would be heard, or None when it is heard now."""
        waits = [
            decision.retry_after
            for limit, key in self._buckets(attempt)
            if not (decision := self.limiter.peek(limit, key)).allowed
        ]
        return max(waits, default=None)

    def record_failure(self, attempt: Attempt) -> None:
        for limit, key in self._buckets(attempt):
            self.limiter.hit(limit, key)

    def forget(self, attempt: Attempt) -> None:
        """A successful sign-in refills the account's buckets it was counted in (not the
        address's: one good password must not buy a sprayer more guesses)."""
        for limit, key in self._buckets(attempt):
            if limit.scope != IP_SCOPE:
                self.limiter.reset(limit, key)

    def _buckets(self, attempt: Attempt) -> list[tuple[RateLimit, str]]:
        if attempt.device is not None:
            return [(self.per_device, attempt.device[:MAX_KEY_VALUE_LENGTH])]
        account = account_key(attempt.username)
        buckets = [(self.per_account, account)]
        if attempt.ip:
            ip = attempt.ip[:MAX_KEY_VALUE_LENGTH]
            buckets.append((self.per_account_ip, f"{account}|{ip}"))
            if attempt.per_address:
                buckets.append((self.per_ip, ip))
        return buckets


def account_key(username: str) -> str:
    # The submitted name, not a user id: unknown usernames are throttled exactly like real ones.
    return username.strip().lower()[:MAX_KEY_VALUE_LENGTH]


def too_many_attempts(wait: int) -> TooManyRequests:
    return TooManyRequests(
        f"Too many failed attempts; try again in {wait} seconds.", retry_after=wait
    )


# -- known devices -----------------------------------------------------------------------------


def issue_known_device(settings: Settings, *, user_id: str, password_hash: str) -> str:
    """The value of the known-device cookie of a browser `user_id` just signed in with: signed
    (HMAC under a key derived for this purpose), naming the user, a random nonce (its own
    failure bucket) and a keyed fingerprint of the password hash, so a password change voids
    it. It expires after OPSDECK_AUTH_KNOWN_DEVICE_DAYS."""
    payload = {
        "u": user_id,
        "n": new_token(nbytes=16),
        "pw": _password_fingerprint(settings, password_hash),
    }
    return sign_token(
        settings.secret_bytes(),
        KNOWN_DEVICE_PURPOSE,
        payload,
        max_age=settings.auth_known_device_days * 86_400,
    )


def known_device_nonce(
    settings: Settings, cookie: str | None, *, user_id: str, password_hash: str
) -> str | None:
    """The nonce of a valid known-device cookie for this user and password, else None."""
    if not cookie:
        return None
    try:
        payload = read_token(
            settings.secret_bytes(),
            KNOWN_DEVICE_PURPOSE,
            cookie,
            max_age=settings.auth_known_device_days * 86_400,
        )
    except TokenError:
        return None
    nonce = payload.get("n")
    if (
        payload.get("u") != user_id
        or payload.get("pw") != _password_fingerprint(settings, password_hash)
        or not isinstance(nonce, str)
        or not nonce
    ):
        return None
    return nonce


def _password_fingerprint(settings: Settings, password_hash: str) -> str:
    # Keyed, so the readable cookie tells nothing about the hash.
    return keyed_digest(
        derive_key(settings.secret_bytes(), "known-device-password"), password_hash
    )[:32]
