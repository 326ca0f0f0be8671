"""Full-text search over the messages of the conversations a user may read.

The index holds one document per message that is not deleted (its Markdown body and the names
of its attachments), kept in step by the message service inside the sending, editing or
deleting transaction (`index_message`, `forget_message`):

- PostgreSQL: `chat_message_search(message_id, document tsvector)`, GIN-indexed; a search is
  `websearch_to_tsquery('english', q)`, ranked with `ts_rank`.
- SQLite: the FTS5 table `chat_message_search_fts(body, message_id UNINDEXED)`, whose rowid is
  made from the message id (`fts_rowid`, 56 bits of a hash: a message's row is replaced and
  removed through it), ranked with `bm25`.

The search string is read by core.fulltext (the same rules as incidents' search: words,
quoted phrases, `or`, `-word`; FTS5's own syntax is only text).

Ranking is bounded: ranking every match of a common word on a big table would cost as much as
the table. The most relevant results are chosen among the newest RANK_CANDIDATES (1,000)
matches; older matches are reached with `sort=-created_at` (newest first, every match) or by
narrowing the search (a room, an author, a date range).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Integer,
    String,
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

from opsdeck.chat.models import SEARCH_FTS_TABLE, SEARCH_TABLE, Attachment, Conversation, Message
from opsdeck.chat.service.access import Actor, get_readable, readable_clause
from opsdeck.core.errors import ValidationFailed
from opsdeck.core.fulltext import (
    QUERY_FIELD,
    fts5_expression,
    fts5_match,
    is_postgres,
    normalise,
    tsquery,
)
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate

RELEVANCE = "relevance"
# How many of the newest matches are ranked for a search by relevance.
RANK_CANDIDATES = 1000
SEARCH_SORTS = SortOrders(
    "ChatSearchSort",
    Message.id,
    {"created_at": Message.created_at},
    default=f"-{RELEVANCE}",
    computed={RELEVANCE: float},
)

_search = table(SEARCH_TABLE, column("message_id", String), column("document", TSVECTOR))
_fts = table(SEARCH_FTS_TABLE, column("rowid", Integer), column("message_id", String))

_PG_INDEX_ONE = text(
    "INSERT INTO chat_message_search (message_id, document) "
    "VALUES (:message_id, to_tsvector('english', :document)) "
    "ON CONFLICT (message_id) DO UPDATE SET document = excluded.document"
)
_FTS_INSERT = text(
    "INSERT INTO chat_message_search_fts (rowid, body, message_id) "
    "VALUES (:rowid, :document, :message_id)"
)


_NAME_PARTS = re.compile(r"[\W_]+")


def fts_rowid(message_id: str) -> int:
    """The FTS5 rowid of a message: 56 bits of a hash of its id (the migration has a copy)."""
    return int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=7).digest(), "big")


# -- the index ------------------------------------------------------------------------------


def index_message(
    session: Session, message: Message, *, new_with_names: Sequence[str] | None = None
) -> None:
    """(Re)index a message from its current body and attachments' names; a deleted one is
    removed instead. A message just sent passes its attachments' names (`new_with_names`, in
    order): nothing to look up, and no earlier entry to replace."""
    if message.deleted_at is not None:
        forget_message(session, message.id)
        return
    if new_with_names is not None:
        names: Sequence[str] = new_with_names
    else:
        session.flush()
        names = session.scalars(
            select(Attachment.filename)
            .where(Attachment.message_id == message.id)
            .order_by(Attachment.position)
        ).all()
    # A name's parts as words ("quarterly-report.pdf": quarterly report pdf); a parser would
    # read it whole, as one file name.
    document = " ".join([message.body, *(_NAME_PARTS.sub(" ", name) for name in names)])
    if is_postgres(session):
        session.execute(_PG_INDEX_ONE, {"message_id": message.id, "document": document})
    else:
        rowid = fts_rowid(message.id)
        if new_with_names is None:
            session.execute(delete(_fts).where(_fts.c.rowid == rowid))
        session.execute(
            _FTS_INSERT, {"rowid": rowid, "document": document, "message_id": message.id}
        )


def forget_message(session: Session, message_id: str) -> None:
    if is_postgres(session):
        session.execute(delete(_search).where(_search.c.message_id == message_id))
    else:
        session.execute(delete(_fts).where(_fts.c.rowid == fts_rowid(message_id)))


# -- searching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    q: str | None
    room_id: str | None = None
    author_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Hit:
    message: Message
    conversation: Conversation
    # Higher is more relevant; None when sorted by date.
    rank: float | None


def _query(q: str | None) -> str:
    text_q = normalise(q)
    if text_q is None:
        raise ValidationFailed(
            "Say what to look for.",
            details=[{"field": QUERY_FIELD, "message": "empty", "type": "missing"}],
        )
    return text_q


def _matching(session: Session, q: str, expression: str) -> tuple[Any, ColumnElement[bool]]:
    """The index table to join on a message's id and the condition its row matches `q`."""
    if is_postgres(session):
        return _search.c.message_id, _search.c.document.bool_op("@@")(tsquery(q))
    return _fts.c.message_id, fts5_match(SEARCH_FTS_TABLE, expression)


def _ranks(session: Session, q: str, expression: str, ids: Any) -> Any:
    """A subquery (id, rank) ranking the messages whose ids are `ids` (a select or a list)."""
    if is_postgres(session):
        query = tsquery(q)
        return (
            select(
                _search.c.message_id.label("id"),
                # float8: a real (float4) would come back rounded in text and a cursor made
                # from it would not equal the row it names.
                cast(func.ts_rank(_search.c.document, query), Double).label("rank"),
            )
            .where(_search.c.message_id.in_(ids))
            .subquery("ranked")
        )
    bm25 = func.bm25(literal_column(SEARCH_FTS_TABLE))
    return (
        select(_fts.c.message_id.label("id"), (-bm25).label("rank"))
        .where(fts5_match(SEARCH_FTS_TABLE, expression), _fts.c.message_id.in_(ids))
        .subquery("ranked")
    )


def search(session: Session, actor: Actor, query: SearchQuery, page: PageParams) -> Paged[Hit]:
    """A page of the messages matching `query` in the conversations the actor reads: by
    relevance among the newest RANK_CANDIDATES matches (`-relevance`, the default), or by date
    among every match (`created_at`, `-created_at`)."""
    q = _query(query.q)
    filters: list[ColumnElement[bool]] = [
        Message.deleted_at.is_(None),
        Message.conversation_id.in_(select(Conversation.id).where(readable_clause(actor))),
    ]
    if query.room_id is not None:
        conversation, _member = get_readable(session, actor, query.room_id)
        filters.append(Message.conversation_id == conversation.id)
    if query.author_id is not None:
        filters.append(Message.author_id == query.author_id)
    if query.since is not None:
        filters.append(Message.created_at >= query.since)
    if query.until is not None:
        filters.append(Message.created_at < query.until)
    expression = fts5_expression(q)
    if expression is None:
        # No word to look for, or only exclusions ("-word" alone would match everything).
        filters.append(false())
        expression = '""'
    key, matches = _matching(session, q, expression)
    matching = (
        select(Message.id).join_from(Message, key.table, key == Message.id).where(matches, *filters)
    )
    if page.orders.is_computed(page.sort):
        candidates = (
            matching.order_by(Message.created_at.desc(), Message.id.desc())
            .limit(RANK_CANDIDATES)
            .subquery("candidates")
        )
        ranked = _ranks(session, q, expression, select(candidates.c.id))
        statement = (
            select(Message)
            .join(ranked, ranked.c.id == Message.id)
            .add_columns(ranked.c.rank.label(RELEVANCE))
        )
        result = paginate(session, statement, page)
        ids = [message.id for message in result.items]
        page_ranks = _ranks(session, q, expression, ids)
        ranks: dict[str, float] = {
            row[0]: row[1] for row in session.execute(select(page_ranks.c.id, page_ranks.c.rank))
        }
    else:
        result = paginate(session, select(Message).where(Message.id.in_(matching)), page)
        ranks = {}
    conversations = _conversations(session, [m.conversation_id for m in result.items])
    return Paged(
        items=[Hit(m, conversations[m.conversation_id], ranks.get(m.id)) for m in result.items],
        next_cursor=result.next_cursor,
    )


def _conversations(session: Session, ids: Sequence[str]) -> dict[str, Conversation]:
    if not ids:
        return {}
    return {
        c.id: c for c in session.scalars(select(Conversation).where(Conversation.id.in_(set(ids))))
    }
