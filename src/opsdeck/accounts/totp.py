"""Time-based one-time passwords (RFC 6238) and single-use recovery codes."""

from __future__ import annotations

import secrets
from datetime import datetime

import pyotp

from opsdeck.core.security import constant_time_equals, keyed_digest

ISSUER = "OpsDeck"
STEP_SECONDS = 30
DIGITS = 6
# One step either side absorbs clock drift between the phone and the server.
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
RECOVERY_GROUPS = 3
RECOVERY_GROUP_LENGTH = 4


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account_name: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account_name, issuer_name=ISSUER
    )


def looks_like_totp(code: str) -> bool:
    """Six digits is a TOTP code; anything else is tried as a recovery code."""
    compact = _compact(code)
    return len(compact) == DIGITS and compact.isdigit()


def matching_counter(
    secret: str, code: str, *, now: datetime, last_counter: int | None
) -> int | None:
    """The time step `code` belongs to, or None. Steps at or before `last_counter` were already
    spent (or are older than one that was), so a replayed code never matches."""
    if not looks_like_totp(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)
    for counter in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if last_counter is not None and counter <= last_counter:
            continue
        if constant_time_equals(totp.generate_otp(counter), _compact(code)):
            return counter
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like `k3xq-7mwa-p2fd`: 60 random bits each, from the base32 alphabet, which
    has no 0, 1, 8 or 9 to be misread as o, l, b or g when typed from paper."""
    return [
        "-".join(_random_group() for _ in range(RECOVERY_GROUPS))
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def recovery_code_digest(key: bytes, code: str) -> str:
    """Keyed, so a stolen table cannot be checked offline against the 2^60 possible codes
    without the server's secret as well."""
    return keyed_digest(key, _compact(code).lower())


def _random_group() -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH))


def _compact(code: str) -> str:
    return "".join(code.split()).replace("-", "")
