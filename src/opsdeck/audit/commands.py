"""`opsdeck audit ...`: the tamper-evident audit log from the command line."""

from __future__ import annotations

import sys

import click

from opsdeck.core.commands import load_settings


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Exit 0 when the hash chain is intact; 1 naming the first broken entry otherwise."""
    settings = load_settings()
    from opsdeck.audit.service import verify_chain
    from opsdeck.core.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url_resolved)
    try:
        with make_sessionmaker(engine)() as session:
            report = verify_chain(session)
    finally:
        engine.dispose()
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} entries verified")
        return
    click.echo(
        f"audit chain BROKEN at entry {report.first_broken_id}: {report.reason} "
        f"({report.checked} entries before it verified)",
        err=True,
    )
    sys.exit(1)
