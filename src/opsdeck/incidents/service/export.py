"""The incident list as CSV, with the list's filters, for the people who may see the rows.

Streamed: the rows are read a chunk at a time (keyset on the number, newest first), each chunk
in its own short read transaction that ends before the chunk is written out, so a slow reader
neither loads the table into memory nor holds a transaction (on SQLite, the write lock) open
while the bytes travel. Every cell is neutralised against formula injection
(core.spreadsheet): titles, tags and names come from users and the file is opened in
spreadsheets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from opsdeck.accounts import service as accounts
from opsdeck.core.db import transaction
from opsdeck.core.spreadsheet import iter_csv
from opsdeck.incidents.models import Incident
from opsdeck.incidents.service import catalog, search
from opsdeck.incidents.service.access import Actor, incident_label
from opsdeck.incidents.service.incidents import IncidentFilter, filtered

COLUMNS = (
    "key",
    "title",
    "severity",
    "status",
    "category",
    "tags",
    "commander",
    "reporter",
    "declared_at",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
)
CHUNK_SIZE = 1000


@dataclass(frozen=True)
class Reader:
    """Who exports, copied off the request's user: the rows are read after the request's own
    session has ended."""

    id: str
    username: str
    is_admin: bool


def _moment(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _chunk(
    session: Session, reader: Reader, filters: IncidentFilter, before: int | None, size: int
) -> list[list[str]]:
    query = filtered(session, reader, filters)
    if before is not None:
        query = query.where(Incident.number < before)
    incidents = list(session.scalars(query.order_by(Incident.number.desc()).limit(size)))
    numbers = [incident.number for incident in incidents]
    tags = catalog.tag_names(session, numbers)
    categories = catalog.category_names(session, [i.category_id for i in incidents])
    users = accounts.users_by_id(
        session, [u for i in incidents for u in (i.commander_id, i.reporter_id) if u]
    )

    def name(user_id: str | None) -> str:
        user = users.get(user_id) if user_id else None
        return user.username if user else ""

    return [
        [
            incident_label(incident.number),
            incident.title,
            incident.severity,
            incident.status,
            categories.get(incident.category_id or "", ""),
            ", ".join(tags.get(incident.number, [])),
            name(incident.commander_id),
            name(incident.reporter_id),
            _moment(incident.declared_at),
            _moment(incident.acknowledged_at),
            _moment(incident.resolved_at),
            _moment(incident.closed_at),
        ]
        for incident in incidents
    ]


def _rows(
    factory: sessionmaker[Session], reader: Reader, filters: IncidentFilter, size: int
) -> Iterator[list[str]]:
    yield list(COLUMNS)
    before: int | None = None
    while True:
        with transaction(factory) as session:
            rows = _chunk(session, reader, filters, before, size)
        yield from rows
        if len(rows) < size:
            return
        before = int(rows[-1][0].removeprefix("INC-"))


def export_csv(
    factory: sessionmaker[Session],
    actor: Actor,
    filters: IncidentFilter,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bytes]:
    """The CSV (UTF-8 with a byte order mark) of the incidents `actor` may see that match
    `filters`, newest first, as chunks read lazily from `factory`'s sessions. A bad filter is
    refused here, before the first byte."""
    filters = replace(filters, q=search.normalise(filters.q))
    reader = Reader(id=actor.id, username=actor.username, is_admin=actor.is_admin)
    return iter_csv(_rows(factory, reader, filters, chunk_size))
