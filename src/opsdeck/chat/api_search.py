"""Chat search over HTTP: full text over the messages of the conversations you may read
(docs/chat.md). Thin: chat.service.search decides."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.chat.presenters import search_hits_out
from opsdeck.chat.schemas import SearchPage
from opsdeck.chat.service import search
from opsdeck.core.deps import SessionDep
from opsdeck.core.errors import error_responses
from opsdeck.core.fulltext import MAX_QUERY_LENGTH
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import PageParams, page_params
from opsdeck.core.params import IsoDateTime

router = APIRouter(prefix=f"{API_PREFIX}/chat", tags=["chat"])

SearchPageParams = Annotated[
    PageParams, Depends(page_params(search.SEARCH_SORTS, default_limit=20, max_limit=100))
]


@router.get(
    "/search",
    name="chat-search",
    response_model=SearchPage,
    responses=error_responses(401, 403, 404, 422),
    summary="Full-text search over the messages of the conversations you may read",
)
def search_messages(
    session: SessionDep,
    user: CurrentUser,
    page: SearchPageParams,
    q: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_LENGTH,
            description='Words, "a phrase", `or` between two terms, `-word` to leave out.',
        ),
    ],
    room_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    author_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    since: Annotated[IsoDateTime | None, Query(description="Sent at or after (ISO 8601).")] = None,
    until: Annotated[IsoDateTime | None, Query(description="Sent before (ISO 8601).")] = None,
) -> SearchPage:
    query = search.SearchQuery(q=q, room_id=room_id, author_id=author_id, since=since, until=until)
    result = search.search(session, user, query, page)
    return SearchPage(items=search_hits_out(session, result.items), next_cursor=result.next_cursor)
