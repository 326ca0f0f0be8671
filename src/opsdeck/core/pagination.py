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
"""

from __future__ import annotations

import base64
import binascii
import enum
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, cast

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, TypeDecorator, and_, or_
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
    choices: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        choices = tuple(choice for key in self.keys for choice in (key, f"-{key}"))
        if self.default not in choices:
            raise ValueError(f"default sort {self.default!r} is not one of {choices}")
        object.__setattr__(self, "choices", choices)

    def column(self, sort: str) -> InstrumentedAttribute[Any]:
        return self.keys[sort.removeprefix("-")]


@dataclass(frozen=True)
class PageParams:
    """What a request asked for: the sort order, how many rows, and where to start."""

    orders: SortOrders
    sort: str
    limit: int
    after: tuple[Any, ...] | None = None


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
    if isinstance(raw, bool) or not isinstance(raw, kind):
        raise _invalid("bad key")
    if isinstance(raw, int) and not -(2**63) <= raw < 2**63:
        raise _invalid("bad key")
    return raw


def encode_cursor(orders: SortOrders, sort: str, row: object) -> str:
    key = [_encode_value(getattr(row, column.key)) for column in _key_columns(orders, sort)]
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
    columns = _key_columns(orders, sort)
    raw_key: list[Any] = body["k"]
    if len(raw_key) != len(columns):
        raise _invalid("bad key")
    return tuple(
        _decode_value(raw, _python_type(column))
        for raw, column in zip(raw_key, columns, strict=True)
    )


def page_params(
    orders: SortOrders, *, default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> Callable[..., PageParams]:
    """The FastAPI dependency reading `cursor`, `limit` (1 to `max_limit`) and `sort` (one of
    `orders.choices`, an enum in the OpenAPI schema) into PageParams; a bad cursor is a 422."""
    sort_enum = cast(Any, enum.StrEnum)(orders.name, {choice: choice for choice in orders.choices})

    def dependency(cursor: str | None, limit: int, sort: enum.StrEnum) -> PageParams:
        chosen = str(sort)
        after = decode_cursor(orders, chosen, cursor) if cursor else None
        return PageParams(orders=orders, sort=chosen, limit=limit, after=after)

    keyword = inspect.Parameter.KEYWORD_ONLY
    # Built here because the limit bound and the sort enum belong to each list.
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
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


def _after(columns: Sequence[InstrumentedAttribute[Any]], key: tuple[Any, ...], desc: bool) -> Any:
    """Rows strictly past `key` in (column, ..., id) order: (a > x) or (a = x and b > y)..."""
    terms = []
    for index, column in enumerate(columns):
        past = column < key[index] if desc else column > key[index]
        equal = [columns[i] == key[i] for i in range(index)]
        terms.append(and_(*equal, past) if equal else past)
    return or_(*terms)


def paginate(session: Session, statement: Select[Row], params: PageParams) -> Paged[Row]:
    """Run `statement` (filtered, unordered) for the page `params` asks for."""
    desc = params.sort.startswith("-")
    columns = _key_columns(params.orders, params.sort)
    if params.after is not None:
        statement = statement.where(_after(columns, params.after, desc))
    ordered = statement.order_by(*(column.desc() if desc else column.asc() for column in columns))
    rows = list(session.scalars(ordered.limit(params.limit + 1)))
    items = rows[: params.limit]
    more = len(rows) > params.limit
    cursor = encode_cursor(params.orders, params.sort, items[-1]) if more else None
    return Paged(items=items, next_cursor=cursor)
