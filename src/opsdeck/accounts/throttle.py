"""Failed sign-in counters on the core rate limiter, so every web process sees the same ones
(Redis in distributed mode; the process itself in embedded mode, which has one web process).

Two buckets count the failures of an attempt: `auth.account` keyed by the submitted username
(unknown usernames are throttled exactly like real ones) and `auth.ip` keyed by the client
address. Each holds the setting's number of failures and refills at that many per window
(OPSDECK_AUTH_WINDOW_SECONDS). An attempt is checked before the password is: when either
bucket is empty it is refused with 429 and Retry-After, and not counted, so a block ends on
time. Only failures take a token; a successful sign-in refills the account's bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsdeck.core.errors import TooManyRequests
from opsdeck.core.ratelimit import RateLimit, RateLimiter, rate_limiter
from opsdeck.settings import Settings

ACCOUNT_SCOPE = "auth.account"
IP_SCOPE = "auth.ip"
MAX_KEY_VALUE_LENGTH = 180


@dataclass(frozen=True)
class LoginThrottle:
    limiter: RateLimiter
    per_account: RateLimit
    per_ip: RateLimit

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        window = float(settings.auth_window_seconds)
        return cls(
            limiter=rate_limiter(settings),
            per_account=RateLimit(ACCOUNT_SCOPE, settings.auth_max_failures_per_account, window),
            per_ip=RateLimit(IP_SCOPE, settings.auth_max_failures_per_ip, window),
        )

    def retry_after(self, username: str, ip: str | None) -> int | None:
        """Seconds until an attempt would be heard, or None when it is heard now."""
        waits = [
            decision.retry_after
            for limit, key in self._buckets(username, ip)
            if not (decision := self.limiter.peek(limit, key)).allowed
        ]
        return max(waits, default=None)

    def record_failure(self, username: str, ip: str | None) -> None:
        for limit, key in self._buckets(username, ip):
            self.limiter.hit(limit, key)

    def forget_account(self, username: str) -> None:
        self.limiter.reset(self.per_account, account_key(username))

    def _buckets(self, username: str, ip: str | None) -> list[tuple[RateLimit, str]]:
        buckets = [(self.per_account, account_key(username))]
        if ip:
            buckets.append((self.per_ip, ip[:MAX_KEY_VALUE_LENGTH]))
        return buckets


def account_key(username: str) -> str:
    # The submitted name, not a user id: unknown usernames are throttled exactly like real ones.
    return username.strip().lower()[:MAX_KEY_VALUE_LENGTH]


def too_many_attempts(wait: int) -> TooManyRequests:
    return TooManyRequests(
        f"Too many failed attempts; try again in {wait} seconds.", retry_after=wait
    )
