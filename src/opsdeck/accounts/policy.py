"""Rules for usernames, e-mail addresses and passwords.

Shared by the API schemas (which turn a broken rule into a 422 naming the field) and the
service (which the CLI calls without going through the schemas).
"""

from __future__ import annotations

import gzip
import re
from functools import cache
from importlib import resources

from email_validator import EmailNotValidError, validate_email

from opsdeck.core.control_chars import strip_bidi_controls

USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
USERNAME_RULE = (
    "Use 3 to 64 characters: lowercase letters, digits, '.', '_' or '-', "
    "starting with a letter or a digit."
)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
COMMON_PASSWORDS_RESOURCE = "common-passwords.txt.gz"


def normalise_username(value: str) -> str:
    username = value.strip().lower()
    if not USERNAME_PATTERN.fullmatch(username):
        raise ValueError(USERNAME_RULE)
    return username


def clean_display_name(value: str) -> str:
    """A display name as it is kept: without bidirectional formatting characters (which can
    make a name show as another, U+202E and friends) and surrounding white space."""
    return strip_bidi_controls(value).strip()


def normalise_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    # The local part is case-sensitive in theory only; lowercasing everything keeps one
    # person from holding two accounts as Bob@ and bob@.
    return result.normalized.lower()


@cache
def common_passwords() -> frozenset[str]:
    """Django's list of the 20,000 most common passwords, read once on first use."""
    resource = resources.files("opsdeck.accounts").joinpath(COMMON_PASSWORDS_RESOURCE)
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def password_problem(password: str, *, username: str, email: str) -> str | None:
    """Why `password` is refused, in words a person can act on; None when it is acceptable.

    Length and a blocklist only: composition rules push people to predictable patterns
    (NIST SP 800-63B, section 5.1.1.2).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    lowered = password.lower()
    if lowered in {username.lower(), email.lower()}:
        return "The password must not be the same as the username or e-mail address."
    if lowered in common_passwords():
        return "This password is one of the most common ones; choose one that is harder to guess."
    return None
