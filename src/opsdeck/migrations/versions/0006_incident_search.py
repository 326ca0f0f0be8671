"""incident search: the full-text index of incidents (title, description, comments)

PostgreSQL: `incident_search(incident_number, document tsvector)` with a GIN index, one row per
incident, removed with it. SQLite: an FTS5 table `incident_search_fts(title, description,
comments)` whose rowid is the incident number, and a trigger removing an incident's row with
the incident. Neither is a model (their shapes differ per database); `opsdeck.core.db`'s
`schema_filter` leaves them out of model comparisons. Incidents that exist already are indexed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each incident's document: title, description, non-deleted comments (service/search.py).
_PG_INDEX_ALL = (
    "INSERT INTO incident_search (incident_number, document) SELECT i.number, "
    "setweight(to_tsvector('english', i.title), 'A') || "
    "setweight(to_tsvector('english', i.description), 'B') || "
    "setweight(to_tsvector('english', coalesce((SELECT string_agg(c.body, ' ') "
    "FROM incident_comments c WHERE c.incident_number = i.number AND c.deleted_at IS NULL), "
    "'')), 'C') FROM incidents i"
)
_FTS_INDEX_ALL = (
    "INSERT INTO incident_search_fts (rowid, title, description, comments) "
    "SELECT i.number, i.title, i.description, coalesce((SELECT group_concat(c.body, ' ') "
    "FROM incident_comments c WHERE c.incident_number = i.number AND c.deleted_at IS NULL), "
    "'') FROM incidents i"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_table(
            "incident_search",
            sa.Column("incident_number", sa.Integer(), nullable=False),
            sa.Column("document", postgresql.TSVECTOR(), nullable=False),
            sa.ForeignKeyConstraint(
                ["incident_number"],
                ["incidents.number"],
                name=op.f("fk_incident_search_incident_number_incidents"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("incident_number", name=op.f("pk_incident_search")),
        )
        op.create_index(
            "ix_incident_search_document",
            "incident_search",
            ["document"],
            postgresql_using="gin",
        )
        op.execute(_PG_INDEX_ALL)
    else:
        op.execute(
            "CREATE VIRTUAL TABLE incident_search_fts USING fts5("
            "title, description, comments, tokenize = 'porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER incident_search_fts_forget AFTER DELETE ON incidents BEGIN "
            "DELETE FROM incident_search_fts WHERE rowid = old.number; END"
        )
        op.execute(_FTS_INDEX_ALL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_incident_search_document", table_name="incident_search")
        op.drop_table("incident_search")
    else:
        op.execute("DROP TRIGGER IF EXISTS incident_search_fts_forget")
        op.execute("DROP TABLE IF EXISTS incident_search_fts")
