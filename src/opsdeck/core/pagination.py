"""Keyset pagination: the one response shape, cursor and query parameters of every list.

A list answers `{items, next_cursor}` (`Page[T]`). `next_cursor` is opaque to clients: the
URL-safe base64 (unpadded) of compact JSON `{"s": <sort>, "k": [<sort key>, <id>]}` naming the
last row of the page, so the next page starts strictly after it whatever was inserted since.
Rows that tie on the sort key are ordered by id in the same direction, so each row is on exactly
one page. A cursor is not signed: forging one only moves the starting point inside what the
list's own filters already allow, and a malformed one is a 422 in the house error shape.

A list declares its allowed sort orders once (`SortOrders`); `page_params(orders)` is the
FastAPI dependency that reads `cursor`, `limit` and `sort` (an enum in the OpenAPI schema), and
`paginate(session, statement, params)` runs the select and returns the page.

A sort key may also be computed per request (`SortOrders.computed`, e.g. full-text relevance):
the list's statement selects it as a column labelled with the key's name, after the row's
entity, and `paginate` orders, pages and makes cursors with it like with a column. Without an
explicit `sort`, a `cursor` goes on in the order it was made for (`PageParams.sort_given` says
whether the request chose one), so a list may pick its order per request (search results by
relevance) and its next pages follow.
"""

from __future__ import annotations

import base64
import binascii
import enum
import inspect
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, cast, overload

from fastapi import Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, TypeDecorator, and_, or_
from sqlalchemy import Row as ResultRow
from sqlalchemy.orm import InstrumentedAttribute, Session

from opsdeck.core.errors import ValidationFailed

T = TypeVar("T")
Row = TypeVar("Row")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 512
# Bound for any other integer query parameter (an offset, an id): past it the database would
# fail on the number rather than answer.
MAX_QUERY_INT = 2**31 - 1
CURSOR_FIELD = "query.cursor"


class Page(BaseModel, Generic[T]):
    """One page of a list. A module names its own subclass (`class UserPage(Page[UserOut])`) so
    the OpenAPI schema and the generated client keep readable names."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to read the next page; null on the last page."
    )


@dataclass(frozen=True)
class SortOrders:
    """The sort orders a list allows: each key ascending (`name`) and descending (`-name`),
    ties broken by `id_column` in the same direction. `name` names the enum in the OpenAPI
    schema (e.g. `UserSort`)."""

    name: str
    id_column: InstrumentedAttribute[Any]
    keys: Mapping[str, InstrumentedAttribute[Any]]
    default: str
    # Keys computed per request (name -> Python type of the value, e.g. {"relevance": float}):
    # the paginated statement selects each as a column labelled with its name.
    computed: Mapping[str, type] = field(default_factory=dict)
    choices: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [*self.keys, *self.computed]
        choices = tuple(choice for key in names for choice in (key, f"-{key}"))
        if self.default not in choices:
            raise ValueError(f"default sort {self.default!r} is not one of {choices}")
        object.__setattr__(self, "choices", choices)

    def column(self, sort: str) -> InstrumentedAttribute[Any]:
        return self.keys[sort.removeprefix("-")]

    def is_computed(self, sort: str) -> bool:
        return sort.removeprefix("-") in self.computed


@dataclass(frozen=True)
class PageParams:
    """What a request asked for: the sort order, how many rows, and where to start."""

    orders: SortOrders
    sort: str
    limit: int
    after: tuple[Any, ...] | None = None
    # False when the request named no `sort` (the list's default, or the cursor's own order).
    sort_given: bool = True


@dataclass(frozen=True)
class Paged(Generic[Row]):
    items: list[Row]
    next_cursor: str | None


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(
        f"The cursor is not one this list returned ({message}); start again without it.",
        details=[{"field": CURSOR_FIELD, "message": message, "type": "invalid_cursor"}],
    )


def _key_columns(orders: SortOrders, sort: str) -> list[InstrumentedAttribute[Any]]:
    column = orders.column(sort)
    return [column] if column is orders.id_column else [column, orders.id_column]


def _key_types(orders: SortOrders, sort: str) -> list[type]:
    if orders.is_computed(sort):
        return [orders.computed[sort.removeprefix("-")], _python_type(orders.id_column)]
    return [_python_type(column) for column in _key_columns(orders, sort)]


def _python_type(column: InstrumentedAttribute[Any]) -> type:
    sql_type = column.type
    # A TypeDecorator (UTCDateTime) answers `object`; its stored type knows better.
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    return cast(type, sql_type.python_type)


def _encode_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode_value(raw: Any, kind: type) -> Any:
    if kind is datetime:
        if not isinstance(raw, str):
            raise _invalid("bad key")
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise _invalid("bad key") from None
        if moment.tzinfo is None:
            raise _invalid("bad key")
        return moment
    # bool is an int to isinstance; it is never a key.
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, bool) or not isinstance(raw, kind):
        raise _invalid("bad key")
    if isinstance(raw, int) and not -(2**63) <= raw < 2**63:
        raise _invalid("bad key")
    return raw


def encode_cursor(orders: SortOrders, sort: str, row: object) -> str:
    return _encode_key(sort, [getattr(row, column.key) for column in _key_columns(orders, sort)])


def _encode_key(sort: str, values: Sequence[Any]) -> str:
    key = [_encode_value(value) for value in values]
    body = json.dumps({"s": sort, "k": key}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(orders: SortOrders, sort: str, cursor: str) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        raise _invalid("not a cursor") from None
    if not isinstance(body, dict) or not isinstance(body.get("k"), list):
        raise _invalid("not a cursor")
    if body.get("s") != sort:
        raise _invalid("made for another sort order")
    kinds = _key_types(orders, sort)
    raw_key: list[Any] = body["k"]
    if len(raw_key) != len(kinds):
        raise _invalid("bad key")
    return tuple(_decode_value(raw, kind) for raw, kind in zip(raw_key, kinds, strict=True))


def _cursor_sort(orders: SortOrders, cursor: str) -> str | None:
    """The sort order a cursor was made for, when it names one the list allows."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        return None
    sort = body.get("s") if isinstance(body, dict) else None
    return sort if isinstance(sort, str) and sort in orders.choices else None


def page_params(
    orders: SortOrders, *, default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> Callable[..., Coroutine[Any, Any, PageParams]]:
    """The FastAPI dependency reading `cursor`, `limit` (1 to `max_limit`) and `sort` (one of
    `orders.choices`, an enum in the OpenAPI schema) into PageParams; a bad cursor is a 422."""
    sort_enum = cast(Any, enum.StrEnum)(orders.name, {choice: choice for choice in orders.choices})

    # `async`: it only reads the query, and FastAPI would run a sync dependency in its thread
    # pool (a hop costing more CPU than decoding the cursor).
    async def dependency(
        request: Request, cursor: str | None, limit: int, sort: enum.StrEnum
    ) -> PageParams:
        chosen = str(sort)
        given = "sort" in request.query_params
        if not given and cursor:
            chosen = _cursor_sort(orders, cursor) or chosen
        after = decode_cursor(orders, chosen, cursor) if cursor else None
        return PageParams(orders=orders, sort=chosen, limit=limit, after=after, sort_given=given)

    keyword = inspect.Parameter.KEYWORD_ONLY
    # Built here because the limit bound and the sort enum belong to each list.
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", keyword, annotation=Request),
            inspect.Parameter(
                "cursor",
                keyword,
                default=None,
                annotation=Annotated[
                    str | None,
                    Query(
                        max_length=MAX_CURSOR_LENGTH,
                        description="`next_cursor` of the previous page.",
                    ),
                ],
            ),
            inspect.Parameter(
                "limit",
                keyword,
                default=default_limit,
                annotation=Annotated[
                    int,
                    Query(ge=1, le=max_limit, description=f"Page size, at most {max_limit}."),
                ],
            ),
            inspect.Parameter(
                "sort",
                keyword,
                default=sort_enum(orders.default),
                annotation=Annotated[
                    sort_enum,
                    Query(description="A key, ascending; `-key` for descending."),
                ],
            ),
        ],
        return_annotation=PageParams,
    )
    return dependency


def _after(columns: Sequence[Any], key: tuple[Any, ...], desc: bool) -> Any:
    """Rows strictly past `key` in (column, ..., id) order: (a > x) or (a = x and b > y)..."""
    terms = []
    for index, column in enumerate(columns):
        past = column < key[index] if desc else column > key[index]
        equal = [columns[i] == key[i] for i in range(index)]
        terms.append(and_(*equal, past) if equal else past)
    return or_(*terms)


@overload
def paginate(
    session: Session,
    statement: Select[Row, *tuple[Any, ...]],
    params: PageParams,
    *,
    rows: Literal[False] = False,
) -> Paged[Row]: ...
@overload
def paginate(
    session: Session, statement: Select[Any], params: PageParams, *, rows: Literal[True]
) -> Paged[ResultRow[Any]]: ...
def paginate(
    session: Session,
    statement: Select[Any],
    params: PageParams,
    *,
    rows: bool = False,
) -> Paged[Any]:
    """Run `statement` (filtered, unordered) for the page `params` asks for. For a computed
    sort key, `statement` selects the row's entity first and the key as a labelled column.

    With `rows`, `statement` selects columns (a Core select, no entity) and the page's items
    are its rows: it must select the sort keys and the id under their names, and the page is
    ordered and keyed by those selected columns (no ORM attribute enters the statement)."""
    if params.orders.is_computed(params.sort):
        return _paginate_computed(session, statement, params)
    desc = params.sort.startswith("-")
    columns: Sequence[Any] = _key_columns(params.orders, params.sort)
    if rows:
        columns = [statement.selected_columns[column.key] for column in columns]
    if params.after is not None:
        statement = statement.where(_after(columns, params.after, desc))
    ordered = statement.order_by(*(column.desc() if desc else column.asc() for column in columns))
    limited = ordered.limit(params.limit + 1)
    found = list(session.execute(limited) if rows else session.scalars(limited))
    items = found[: params.limit]
    more = len(found) > params.limit
    cursor = encode_cursor(params.orders, params.sort, items[-1]) if more else None
    return Paged(items=items, next_cursor=cursor)


def _paginate_computed(session: Session, statement: Select[Any], params: PageParams) -> Paged[Any]:
    name = params.sort.removeprefix("-")
    desc = params.sort.startswith("-")
    if name not in statement.selected_columns:
        raise ValueError(f"the statement selects no column labelled {name!r} to sort by")
    value: ColumnElement[Any] = statement.selected_columns[name]
    id_column = params.orders.id_column
    columns = [value, id_column]
    if params.after is not None:
        statement = statement.where(_after(columns, params.after, desc))
    ordered = statement.order_by(*(column.desc() if desc else column.asc() for column in columns))
    rows = list(session.execute(ordered.limit(params.limit + 1)))
    page = rows[: params.limit]
    items = [row[0] for row in page]
    more = len(rows) > params.limit
    cursor = None
    if more:
        last = page[-1]
        cursor = _encode_key(params.sort, [last._mapping[name], getattr(last[0], id_column.key)])
    return Paged(items=items, next_cursor=cursor)
