"""Full-text search over incidents: their title, description and (non-deleted) comments.

One API, two back ends, chosen by the session's database (the search string is read by
core.fulltext, the same for every module):

- PostgreSQL: `incident_search` keeps one `tsvector` per incident (title weight A, description
  B, comments C; GIN-indexed); a search is `websearch_to_tsquery('english', q)` ranked with
  `ts_rank`.
- SQLite: the FTS5 table `incident_search_fts(title, description, comments)` whose rowid is the
  incident number, ranked with `bm25` (title weighs most).

Either way a word is matched as a word (stemmed English), never as a pattern: `%`, `_` or `*`
match nothing in particular, and a string with no word to look for (none, or only `-word`
exclusions, which would match nearly everything) matches nothing. A blank string
is no search at all. The relevance of a row is a float where higher is better, so a list can
page by (relevance, number) descending (core.pagination's computed sort keys). A list by
relevance ranks the newest CANDIDATES matches the caller may see (with the list's other
filters), not every match: a common word matches a sixth of a big database, and ranking all
of it is what made a search cost seconds. Sorted otherwise, a search lists every match.

`index_incident` rebuilds one incident's document; hooks.changed calls it whenever a change
touched the text (`Change.text_changed`), inside the change's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Integer,
    Select,
    cast,
    column,
    delete,
    false,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Session

from opsdeck.core.db import UNPREPARED
from opsdeck.core.fulltext import (
    MAX_QUERY_LENGTH,
    fts5_expression,
    fts5_match,
    is_postgres,
    normalise,
    tsquery,
)
from opsdeck.incidents.models import SEARCH_FTS_TABLE, SEARCH_TABLE, Incident

# The computed sort key of a searched list (INCIDENT_SORTS), most relevant first: "-relevance".
RELEVANCE = "relevance"
# A search by relevance ranks the newest this many of its matches (see with_relevance): eight
# pages of 25. Ranking is what costs: every candidate's row and document are read and
# ts_rank'ed, so the query's cost grows with this number, not with the page (1,000: 9.6 ms of
# PostgreSQL execution for a common word at 1,000,000 incidents, bench/incidents_api.py).
# Quality: the list shows the most relevant of the recent matches (title matches first), and a
# search is for recent incidents; a word rare enough to have fewer matches is ranked over all
# of them, whatever their age; older matches of a common word are reached by narrowing the
# search (another word, a filter, a period) or sorting by date, which lists every match.
CANDIDATES = 200
# bm25 weights of the FTS5 columns (title, description, comments), as PostgreSQL's A, B, C.
_BM25_WEIGHTS = (10.0, 4.0, 1.0)
# A search is planned for its words at every execution, never prepared (core.db.UNPREPARED):
# the best plan depends on how common the words are (a common word: walk the newest incidents
# until CANDIDATES match; a rare one: read its matches from the GIN index), and PostgreSQL's
# generic plan for a prepared search, which cannot know, reads every match of the word. With
# psycopg preparing a statement at its fifth run on a connection, PostgreSQL chose that plan
# at 20,000 incidents (3-5 times the custom plan's execution time); at 1,000,000 it costs
# 0.24-2.1 s a search against 12-30 ms (docs/benchmarks.md, "Incidents API").
PLANNED_EVERY_TIME = {UNPREPARED: True}
# A search is planned without parallel workers (PostgreSQL; for the rest of its transaction,
# see plan_serially). A word that matches nothing or little is read from the GIN index in
# about 0.1 ms, but its estimate (1,584 rows for a word with none at 1,000,000 incidents) made
# PostgreSQL plan a Parallel Bitmap Heap Scan under a Gather Merge: the search then waited
# 15-40 ms for the worker it started, whose own scan took 1.2 ms. Common words walk the newest
# incidents and never went parallel, so nothing is lost (docs/benchmarks.md, "Incidents API").
# A setting of the transaction rather than `parallel_workers = 0` on `incident_search` (a
# migration): it keeps every table of the search's statement serial, not that one only.
_SERIAL_PLANS = text("SET LOCAL max_parallel_workers_per_gather = 0")

_search = table(SEARCH_TABLE, column("incident_number", Integer), column("document", TSVECTOR))
_fts = table(SEARCH_FTS_TABLE, column("rowid", Integer))

# The document of incident i: its title, description and non-deleted comments.
_PG_DOCUMENT = (
    "setweight(to_tsvector('english', i.title), 'A') || "
    "setweight(to_tsvector('english', i.description), 'B') || "
    "setweight(to_tsvector('english', coalesce((SELECT string_agg(c.body, ' ') "
    "FROM incident_comments c WHERE c.incident_number = i.number AND c.deleted_at IS NULL), "
    "'')), 'C')"
)
# Made of constants only (the incident number is a bound parameter).
_PG_INDEX_ONE = text(  # nosec B608 - constants only
    "INSERT INTO incident_search (incident_number, document) "  # noqa: S608
    "SELECT i.number, " + _PG_DOCUMENT + " FROM incidents i WHERE i.number = :number "  # nosec B608
    "ON CONFLICT (incident_number) DO UPDATE SET document = excluded.document"
)
_PG_INDEX_ALL = text(  # nosec B608 - constants only
    "INSERT INTO incident_search (incident_number, document) "  # noqa: S608
    "SELECT i.number, " + _PG_DOCUMENT + " FROM incidents i "  # nosec B608
    "ON CONFLICT (incident_number) DO UPDATE SET document = excluded.document"
)
_FTS_ROW = (
    "INSERT INTO incident_search_fts (rowid, title, description, comments) "
    "SELECT i.number, i.title, i.description, coalesce((SELECT group_concat(c.body, ' ') "
    "FROM incident_comments c WHERE c.incident_number = i.number AND c.deleted_at IS NULL), "
    "'') FROM incidents i"
)
_FTS_INDEX_ONE = text(_FTS_ROW + " WHERE i.number = :number")
_FTS_INDEX_ALL = text(_FTS_ROW)


# -- the index ------------------------------------------------------------------------------


def index_incident(session: Session, number: int) -> None:
    """Rebuild incident `number`'s search document from its current title, description and
    non-deleted comments (pending changes are flushed first)."""
    session.flush()
    if is_postgres(session):
        session.execute(_PG_INDEX_ONE, {"number": number})
    else:
        session.execute(delete(_fts).where(_fts.c.rowid == number))
        session.execute(_FTS_INDEX_ONE, {"number": number})


def rebuild_index(session: Session) -> None:
    """Rebuild every incident's document (after a bulk load that bypassed the service, such as
    the benchmark's or a restore)."""
    session.flush()
    if is_postgres(session):
        session.execute(delete(_search))
        session.execute(_PG_INDEX_ALL)
    else:
        session.execute(delete(_fts))
        session.execute(_FTS_INDEX_ALL)


# -- queries --------------------------------------------------------------------------------


def plan_serially(session: Session) -> None:
    """Keep PostgreSQL from planning parallel workers for the statements `session` sends until
    its transaction ends (a search's, _SERIAL_PLANS); nothing on SQLite. Call it before sending
    a statement that uses match_clause or with_relevance."""
    if is_postgres(session):
        session.execute(_SERIAL_PLANS)


def match_clause(session: Session, q: str) -> ColumnElement[bool]:
    """A WHERE clause on `Incident` keeping the incidents matching search `q` (normalised)."""
    expression = fts5_expression(q)
    if expression is None:
        # No word to look for, or only exclusions ("-word" alone would match everything).
        return false()
    if is_postgres(session):
        return Incident.number.in_(
            select(_search.c.incident_number).where(_search.c.document.bool_op("@@")(tsquery(q)))
        )
    return Incident.number.in_(select(_fts.c.rowid).where(fts5_match(SEARCH_FTS_TABLE, expression)))


def with_relevance(session: Session, statement: Select[Any], q: str) -> Select[Any]:
    """The newest CANDIDATES rows of `statement` (a select of Incident already narrowed to the
    matches of `q` by match_clause, to what the caller may see and to the other filters), each
    with its relevance as a column labelled `relevance` (higher is better), for
    core.pagination's computed sort key.

    Only these candidates are ranked: ranking every match of a common word reads and sorts
    every document that has it (1.2 s for 155,000 matches in bench/incidents_api.py), while the
    newest CANDIDATES are found by walking the incidents newest first. A list sorted by anything
    else (`sort=-number`, ...) still lists every match."""
    expression = fts5_expression(q)
    if expression is None:
        return statement.where(false()).add_columns(literal_column("0.0").label(RELEVANCE))
    candidates = (
        statement.with_only_columns(Incident.number)
        .order_by(Incident.number.desc())
        .limit(CANDIDATES)
    )
    if is_postgres(session):
        ranked = (
            select(
                _search.c.incident_number.label("number"),
                # float8: a real (float4) would come back rounded in text and a cursor made
                # from it would not equal the row it names.
                cast(func.ts_rank(_search.c.document, tsquery(q)), Double).label("rank"),
            )
            .where(_search.c.incident_number.in_(candidates))
            .subquery("ranked")
        )
    else:
        bm25 = func.bm25(literal_column(SEARCH_FTS_TABLE), *_BM25_WEIGHTS)
        ranked = (
            select(_fts.c.rowid.label("number"), (-bm25).label("rank"))
            .where(fts5_match(SEARCH_FTS_TABLE, expression), _fts.c.rowid.in_(candidates))
            .subquery("ranked")
        )
    return (
        select(Incident)
        .join(ranked, ranked.c.number == Incident.number)
        .add_columns(ranked.c.rank.label(RELEVANCE))
        .execution_options(**PLANNED_EVERY_TIME)
    )


__all__ = [
    "CANDIDATES",
    "MAX_QUERY_LENGTH",
    "PLANNED_EVERY_TIME",
    "RELEVANCE",
    "fts5_expression",
    "index_incident",
    "match_clause",
    "normalise",
    "plan_serially",
    "rebuild_index",
    "with_relevance",
]
