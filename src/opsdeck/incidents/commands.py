"""`opsdeck incidents ...`."""

from __future__ import annotations

import click


@click.group(help="Incidents: demo data and maintenance.")
def incidents() -> None:
    """Incident commands."""
