"""incidents stats indexes: the period's rows read from the index alone (PostgreSQL)

The indexes on declared_at and resolved_at carry what the statistics and the visibility rule
read (INCLUDE columns, PostgreSQL only; SQLite keeps the plain indexes), so the statistics of a
period are an index-only scan instead of one heap fetch per incident of the period.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 02:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VISIBILITY = ["number", "visibility", "reporter_id", "commander_id"]
_DECLARED = [*_VISIBILITY, "status", "acknowledged_at", "resolved_at"]


def upgrade() -> None:
    op.drop_index("ix_incidents_declared_at", table_name="incidents")
    op.create_index(
        "ix_incidents_declared_at",
        "incidents",
        ["declared_at"],
        unique=False,
        postgresql_include=_DECLARED,
    )
    op.drop_index("ix_incidents_resolved_at", table_name="incidents")
    op.create_index(
        "ix_incidents_resolved_at",
        "incidents",
        ["resolved_at"],
        unique=False,
        postgresql_include=_VISIBILITY,
    )


def downgrade() -> None:
    op.drop_index("ix_incidents_resolved_at", table_name="incidents")
    op.create_index("ix_incidents_resolved_at", "incidents", ["resolved_at"], unique=False)
    op.drop_index("ix_incidents_declared_at", table_name="incidents")
    op.create_index("ix_incidents_declared_at", "incidents", ["declared_at"], unique=False)
