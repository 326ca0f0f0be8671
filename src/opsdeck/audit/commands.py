"""`opsdeck audit ...`: the tamper-evident audit log from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdeck.core.commands import load_settings


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint file (or a log excerpt of `audit_checkpoint` lines as JSON); default: "
    "the data directory's audit-checkpoints.jsonl.",
)
def audit_verify(checkpoint_file: Path | None) -> None:
    """Exit 0 when the hash chain is intact and reaches the newest checkpoint; 1 naming the
    first broken entry, or the missing ones, otherwise."""
    settings = load_settings()
    from opsdeck.audit import checkpoints
    from opsdeck.audit.service import verify_chain
    from opsdeck.core.db import make_engine, make_sessionmaker

    if checkpoint_file is not None and not checkpoint_file.is_file():
        raise click.ClickException(f"no checkpoint file at {checkpoint_file}")
    try:
        checkpoint = checkpoints.newest(settings, checkpoint_file)
    except checkpoints.CheckpointError as exc:
        click.echo(f"audit checkpoint REFUSED: {exc}", err=True)
        sys.exit(1)
    engine = make_engine(settings.database_url_resolved)
    try:
        with make_sessionmaker(engine)() as session:
            report = verify_chain(session)
            gap = checkpoints.compare(session, checkpoint) if checkpoint else None
    finally:
        engine.dispose()
    if not report.ok:
        click.echo(
            f"audit chain BROKEN at entry {report.first_broken_id}: {report.reason} "
            f"({report.checked} entries before it verified)",
            err=True,
        )
        sys.exit(1)
    if gap is not None:
        click.echo(f"audit chain TRUNCATED: {gap}", err=True)
        sys.exit(1)
    against = f"; reaches the checkpoint of {checkpoint.at}" if checkpoint else "; no checkpoint"
    click.echo(f"audit chain intact: {report.checked} entries verified{against}")


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign where the chain stands now: appended to the data directory's
    audit-checkpoints.jsonl, logged as `audit_checkpoint`, and printed (keep a copy)."""
    settings = load_settings()
    from opsdeck.audit import checkpoints
    from opsdeck.core.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url_resolved)
    try:
        with make_sessionmaker(engine)() as session:
            checkpoint = checkpoints.write(session, settings)
    finally:
        engine.dispose()
    click.echo(checkpoint.to_json())
