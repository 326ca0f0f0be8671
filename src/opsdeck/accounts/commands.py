"""`opsdeck users ...`: user accounts from the command line (the first admin, for one)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from opsdeck.core.commands import load_settings, require_head

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from opsdeck.settings import Settings


@click.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--display-name", default="", help="Shown instead of the username.")
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(
    username: str, email: str, display_name: str, admin: bool, password_stdin: bool
) -> None:
    """Create a user (prompts for the password unless --password-stdin)."""
    settings = load_settings()
    require_head(settings)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    from opsdeck.accounts import service
    from opsdeck.accounts.models import Role
    from opsdeck.core.db import make_engine, make_sessionmaker, transaction
    from opsdeck.core.errors import AppError
    from opsdeck.core.security import Passwords

    passwords = Passwords(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    engine = make_engine(settings.database_url_resolved)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = service.create_user(
                session,
                passwords,
                username=username,
                email=email,
                password=password,
                display_name=display_name,
                role=Role.ADMIN if admin else Role.MEMBER,
                actor_name="cli",
            )
            click.echo(f"created {user.role} {user.username} ({user.id})")
    except AppError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        engine.dispose()


@click.group()
def keys() -> None:
    """Keys of the secrets stored at rest."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-seal every TOTP seed with the current OPSDECK_SECRET_KEY.

    Run it after changing the secret key, with the old one in OPSDECK_PREVIOUS_SECRET_KEYS;
    once it has run, the old key can be removed. Seeds written before encryption at rest are
    sealed too. A seed that no configured key opens stops the run with nothing changed."""
    settings = load_settings()
    require_head(settings)

    from opsdeck.accounts.service import reseal_totp_secrets
    from opsdeck.audit.service import record
    from opsdeck.core.db import make_engine, make_sessionmaker, transaction
    from opsdeck.core.security import SecretBoxError

    engine = make_engine(settings.database_url_resolved)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            changed = reseal_totp_secrets(session, settings)
            record(session, "keys.rotated", actor_name="cli", details={"totp_seeds": changed})
    except SecretBoxError as exc:
        raise click.ClickException(
            f"{exc}; add the key it was sealed with to OPSDECK_PREVIOUS_SECRET_KEYS. "
            "Nothing was changed."
        ) from exc
    finally:
        engine.dispose()
    click.echo(f"re-sealed {changed} TOTP seeds with the current key")


# `opsdeck seed demo`: a dozen people (username, display name, admin?). Two of them are admins,
# the on-call leads; the rest are members.
DEMO_USERS: tuple[tuple[str, str, bool], ...] = (
    ("amara.okafor", "Amara Okafor", True),
    ("ben.hartley", "Ben Hartley", True),
    ("chen.wei", "Chen Wei", False),
    ("diego.ramos", "Diego Ramos", False),
    ("elif.demir", "Elif Demir", False),
    ("farah.haddad", "Farah Haddad", False),
    ("gustav.lind", "Gustav Lind", False),
    ("hana.sato", "Hana Sato", False),
    ("ivan.petrov", "Ivan Petrov", False),
    ("julia.costa", "Julia Costa", False),
    ("kwame.mensah", "Kwame Mensah", False),
    ("lena.fischer", "Lena Fischer", False),
)
DEMO_EMAIL_DOMAIN = "demo.example.com"


def demo_seed(session: Session, settings: Settings) -> dict[str, int]:
    """The demo users that do not exist yet, all with one random password, printed once
    (when they are created; a second run creates nobody and prints nothing)."""
    import secrets

    from opsdeck.accounts import service
    from opsdeck.accounts.models import Role
    from opsdeck.core.errors import AppError
    from opsdeck.core.security import Passwords

    missing = [
        user for user in DEMO_USERS if service.get_active_user_by_username(session, user[0]) is None
    ]
    if not missing:
        return {"users": 0}

    class HashedOnce(Passwords):
        """They all share the password (printed below), so one hash serves them all."""

        cached: dict[str, str] = {}

        def hash(self, password: str) -> str:
            if password not in self.cached:
                self.cached[password] = super().hash(password)
            return self.cached[password]

    passwords = HashedOnce(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    password = f"demo-{secrets.token_urlsafe(12)}"
    created = 0
    for username, display_name, admin in missing:
        try:
            service.create_user(
                session,
                passwords,
                username=username,
                email=f"{username}@{DEMO_EMAIL_DOMAIN}",
                password=password,
                display_name=display_name,
                role=Role.ADMIN if admin else Role.MEMBER,
                actor_name="seed",
            )
        except AppError:
            # Taken by an inactive account or another e-mail: leave that person out.
            continue
        created += 1
    if created:
        admins = ", ".join(name for name, _, admin in missing if admin)
        click.echo(f"Demo users' password (all of them, shown once): {password}")
        click.echo(f"Demo admins: {admins}; the others are members.")
    return {"users": created}
