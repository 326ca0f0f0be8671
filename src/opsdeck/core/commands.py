"""What every `opsdeck` command shares, the platform's and each module's: configuration errors
and a database behind its migrations as clear messages, not stack traces. Imports stay light
(`opsdeck --help` loads every module's command group)."""

from __future__ import annotations

import click
from pydantic import ValidationError

from opsdeck.settings import Settings, get_settings


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        messages = [
            f"  - {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        raise click.ClickException("invalid configuration:\n" + "\n".join(messages)) from exc


def require_head(settings: Settings) -> None:
    """Stop with `opsdeck db upgrade` as the way out when the schema is behind the code."""
    from opsdeck.core.db import DatabaseNotAtHead, ensure_at_head, make_engine

    engine = make_engine(settings.database_url_resolved)
    try:
        ensure_at_head(engine)
    except DatabaseNotAtHead as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
