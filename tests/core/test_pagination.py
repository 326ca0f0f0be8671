"""core.pagination: keyset pages over a real table (every row exactly once, both directions,
ties in the sort key), and the 422s of a bad cursor, sort or limit."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Integer, String, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from opsdeck.core.db import UTCDateTime, make_engine, make_sessionmaker
from opsdeck.core.deps import SessionDep
from opsdeck.core.pagination import (
    MAX_LIMIT,
    Page,
    Paged,
    PageParams,
    SortOrders,
    decode_cursor,
    encode_cursor,
    page_params,
    paginate,
)
from opsdeck.settings import Settings

ROUTE = "/api/v1/core-tests/gadgets"
URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Scratch(DeclarativeBase):
    pass


class Gadget(Scratch):
    __tablename__ = "core_test_gadgets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rank: Mapped[int] = mapped_column(Integer)


ORDERS = SortOrders(
    name="GadgetSort",
    id_column=Gadget.id,
    keys={"created_at": Gadget.created_at, "rank": Gadget.rank, "id": Gadget.id},
    default="-created_at",
)


class GadgetOut(Page[str]):
    pass


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url_resolved)
    Scratch.metadata.create_all(engine)
    try:
        yield engine
    finally:
        Scratch.metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def gadgets(sessions: sessionmaker[Session]) -> list[Gadget]:
    """23 rows whose created_at takes only four values (many ties), ids not in insert order,
    and ranks that tie too."""
    rows = [
        Gadget(
            id=f"g{(index * 7) % 23:02d}",
            created_at=START + timedelta(microseconds=index % 4),
            rank=index % 3,
        )
        for index in range(23)
    ]
    with sessions.begin() as session:
        session.add_all(rows)
    return rows


def _expected(rows: list[Gadget], sort: str) -> list[str]:
    key = sort.removeprefix("-")
    ordered = sorted(rows, key=lambda row: (getattr(row, key), row.id))
    ids = [row.id for row in ordered]
    return ids[::-1] if sort.startswith("-") else ids


def _walk(session: Session, sort: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        after = decode_cursor(ORDERS, sort, cursor) if cursor else None
        page: Paged[Gadget] = paginate(
            session,
            select(Gadget),
            PageParams(orders=ORDERS, sort=sort, limit=limit, after=after),
        )
        assert len(page.items) <= limit
        seen.extend(row.id for row in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("sort", ORDERS.choices)
@pytest.mark.parametrize("limit", [1, 4, 23, 50])
def test_paging_through_returns_every_row_once_in_order(
    sessions: sessionmaker[Session], gadgets: list[Gadget], sort: str, limit: int
) -> None:
    with sessions() as session:
        seen = _walk(session, sort, limit)

    assert seen == _expected(gadgets, sort)
    assert len(set(seen)) == len(gadgets)


@pytest.mark.parametrize("sort", ORDERS.choices)
def test_rows_pages_a_core_select_of_columns_like_its_entities(
    sessions: sessionmaker[Session], gadgets: list[Gadget], sort: str
) -> None:
    table = Gadget.__table__.c
    seen: list[str] = []
    cursor: str | None = None
    with sessions() as session:
        for _ in range(100):
            after = decode_cursor(ORDERS, sort, cursor) if cursor else None
            page = paginate(
                session,
                select(table.id, table.created_at, table.rank),
                PageParams(orders=ORDERS, sort=sort, limit=4, after=after),
                rows=True,
            )
            # Rows (named columns), not objects loaded by the ORM.
            assert all(not isinstance(row, Gadget) for row in page.items)
            seen.extend(row.id for row in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break

    assert seen == _expected(gadgets, sort)


def test_an_exact_last_page_has_no_next_cursor(
    sessions: sessionmaker[Session], gadgets: list[Gadget]
) -> None:
    with sessions() as session:
        whole = paginate(
            session,
            select(Gadget),
            PageParams(orders=ORDERS, sort="id", limit=len(gadgets)),
        )
    assert len(whole.items) == len(gadgets)
    assert whole.next_cursor is None


def test_rows_added_ahead_of_the_cursor_do_not_shift_the_next_page(
    sessions: sessionmaker[Session], gadgets: list[Gadget]
) -> None:
    with sessions() as session:
        first = paginate(session, select(Gadget), PageParams(ORDERS, "-created_at", 5))
    with sessions.begin() as session:
        session.add(Gadget(id="new", created_at=START + timedelta(days=1), rank=0))
    assert first.next_cursor is not None
    with sessions() as session:
        after = decode_cursor(ORDERS, "-created_at", first.next_cursor)
        second = paginate(session, select(Gadget), PageParams(ORDERS, "-created_at", 5, after))

    expected = _expected(gadgets, "-created_at")
    assert [row.id for row in first.items] == expected[:5]
    assert [row.id for row in second.items] == expected[5:10]


def test_sort_orders_refuse_a_default_they_do_not_allow() -> None:
    with pytest.raises(ValueError, match="default sort"):
        SortOrders(name="X", id_column=Gadget.id, keys={"rank": Gadget.rank}, default="size")


# -- over HTTP: the dependency ------------------------------------------------------------------


@pytest.fixture
def http(app: FastAPI, engine: Engine, gadgets: list[Gadget]) -> Iterator[TestClient]:
    router = APIRouter()

    @router.get(ROUTE, response_model=GadgetOut)
    def list_gadgets(
        session: SessionDep,
        page: Annotated[PageParams, Depends(page_params(ORDERS, default_limit=10))],
    ) -> GadgetOut:
        rows = paginate(session, select(Gadget), page)
        return GadgetOut(items=[row.id for row in rows.items], next_cursor=rows.next_cursor)

    app.include_router(router)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_the_dependency_pages_with_its_defaults_and_the_sort_asked_for(
    http: TestClient, gadgets: list[Gadget]
) -> None:
    first = http.get(ROUTE).json()
    assert first["items"] == _expected(gadgets, "-created_at")[:10]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"sort": "rank", "limit": 6}
        if cursor:
            params["cursor"] = cursor
        page = http.get(ROUTE, params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == _expected(gadgets, "rank")


def _b64(body: object) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("-created_at", "!!"),
        ("-created_at", "a"),
        ("-created_at", _b64(b"\xff\xfe not utf-8")),
        ("-created_at", _b64(b"not json")),
        ("-created_at", _b64([1, 2])),
        ("-created_at", _b64({"s": "-created_at"})),
        ("-created_at", _b64({"s": "-created_at", "k": ["2026-03-01T12:00:00+00:00"]})),
        ("-created_at", _b64({"s": "-created_at", "k": [12, "g01"]})),
        ("-created_at", _b64({"s": "-created_at", "k": ["yesterday", "g01"]})),
        ("-created_at", _b64({"s": "-created_at", "k": ["2026-03-01T12:00:00", "g01"]})),
        ("-created_at", _b64({"s": "-created_at", "k": ["2026-03-01T12:00:00+00:00", 7]})),
        ("-created_at", _b64({"s": "rank", "k": [1, "g01"]})),
        ("-rank", _b64({"s": "-rank", "k": [True, "g01"]})),
        ("-rank", _b64({"s": "-rank", "k": [2**80, "g01"]})),
    ],
)
def test_a_bad_cursor_is_a_422_in_the_error_shape(http: TestClient, sort: str, cursor: str) -> None:
    response = http.get(ROUTE, params={"cursor": cursor, "sort": sort})

    error = _error(response)
    assert error["code"] == "validation_error"
    assert [detail["field"] for detail in error["details"]] == ["query.cursor"]


def test_a_cursor_made_for_another_sort_order_is_refused(http: TestClient) -> None:
    cursor = http.get(ROUTE, params={"sort": "rank", "limit": 2}).json()["next_cursor"]

    error = _error(http.get(ROUTE, params={"sort": "-rank", "cursor": cursor}))
    assert error["details"][0]["message"] == "made for another sort order"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": MAX_LIMIT + 1}, "query.limit"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 10**40}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"sort": "colour"}, "query.sort"),
        ({"sort": "--rank"}, "query.sort"),
        ({"cursor": "x" * 600}, "query.cursor"),
    ],
)
def test_a_bad_limit_sort_or_oversized_cursor_is_a_422(
    http: TestClient, params: dict[str, Any], field: str
) -> None:
    error = _error(http.get(ROUTE, params=params))
    assert field in {detail["field"] for detail in error["details"]}


def test_cursors_round_trip_and_are_url_safe(gadgets: list[Gadget]) -> None:
    row = gadgets[0]
    for sort in ORDERS.choices:
        cursor = encode_cursor(ORDERS, sort, row)
        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        key = decode_cursor(ORDERS, sort, cursor)
        column = sort.removeprefix("-")
        assert key == ((row.id,) if column == "id" else (getattr(row, column), row.id))


def test_a_cursor_without_a_sort_goes_on_in_its_own_order(
    http: TestClient, gadgets: list[Gadget]
) -> None:
    first = http.get(ROUTE, params={"sort": "rank", "limit": 4}).json()

    second = http.get(ROUTE, params={"cursor": first["next_cursor"], "limit": 4}).json()

    assert first["items"] + second["items"] == _expected(gadgets, "rank")[:8]


# -- computed sort keys ---------------------------------------------------------------------

SCORED = SortOrders(
    name="GadgetScoreSort",
    id_column=Gadget.id,
    keys={"id": Gadget.id},
    default="id",
    computed={"score": float},
)


def _score(row: Gadget) -> float:
    return row.rank * 1.5 + 0.25


@pytest.mark.parametrize("sort", ["score", "-score"])
def test_a_computed_key_pages_every_row_once_in_its_order(
    sessions: sessionmaker[Session], gadgets: list[Gadget], sort: str
) -> None:
    statement = select(Gadget, (Gadget.rank * 1.5 + 0.25).label("score"))
    seen: list[str] = []
    with sessions() as session:
        cursor: str | None = None
        for _ in range(100):
            after = decode_cursor(SCORED, sort, cursor) if cursor else None
            page = paginate(session, statement, PageParams(SCORED, sort, 4, after))
            assert all(isinstance(row, Gadget) for row in page.items)
            seen += [row.id for row in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break

    ordered = [row.id for row in sorted(gadgets, key=lambda row: (_score(row), row.id))]
    assert seen == (ordered[::-1] if sort.startswith("-") else ordered)
    assert "score" in SCORED.choices
    assert "-score" in SCORED.choices


def test_a_computed_key_the_statement_does_not_select_is_a_programming_error(
    sessions: sessionmaker[Session], gadgets: list[Gadget]
) -> None:
    with sessions() as session, pytest.raises(ValueError, match="score"):
        paginate(session, select(Gadget), PageParams(SCORED, "-score", 4))
