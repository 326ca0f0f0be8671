"""`opsdeck users ...`: user accounts from the command line (the first admin, for one)."""

from __future__ import annotations

import sys

import click

from opsdeck.core.commands import load_settings, require_head


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
