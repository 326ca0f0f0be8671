"""Full-text search (service/search.py) through the incidents list: title, description and
comments found, deleted comments not, title matches ranked first, keyset pages by relevance,
hostile strings answered without an error or a fan-out, restricted incidents kept from others.
Run on both stacks: PostgreSQL's tsvector and SQLite's FTS5."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from opsdeck.core.errors import ValidationFailed
from opsdeck.core.fulltext import is_postgres
from opsdeck.core.pagination import PageParams
from opsdeck.incidents.models import Severity, Visibility
from opsdeck.incidents.service import comments, search
from opsdeck.incidents.service.incidents import (
    INCIDENT_SORTS,
    Edits,
    IncidentFilter,
    declare,
    list_incidents,
    update,
)
from tests.conftest import API, UserFactory, error_of
from tests.incidents.conftest import Declare

HOSTILE = [
    "' OR 1=1 --",
    "%",
    "_",
    "*",
    '"',
    '""',
    "NEAR(",
    "NEAR(database outage, 2)",
    "title:",
    "col:database",
    "database*",
    "^database",
    "a AND",
    "OR",
    "-",
    "-database",
    "(",
    ")",
    "\\",
    "'; DROP TABLE incidents; --",
    "\x00",
    "🔥",
    "&|!:*",
    "<script>alert(1)</script>",
]


@pytest.fixture
def session(app: FastAPI) -> Any:
    db: Session = app.state.sessionmaker()
    try:
        yield db
    finally:
        db.rollback()
        db.close()


@pytest.fixture
def people(make_user: UserFactory) -> tuple[Any, Any, Any]:
    return make_user("alice"), make_user("bob"), make_user("root", role="admin")


def _page(
    session: Session,
    actor: Any,
    q: str | None,
    *,
    sort: str | None = None,
    limit: int = 50,
    after: tuple[Any, ...] | None = None,
    **filters: Any,
) -> tuple[list[int], str | None]:
    page = PageParams(
        orders=INCIDENT_SORTS,
        sort=sort or INCIDENT_SORTS.default,
        limit=limit,
        after=after,
        sort_given=sort is not None,
    )
    result = list_incidents(session, actor, IncidentFilter(q=q, **filters), page)
    return [incident.number for incident in result.items], result.next_cursor


def _numbers(session: Session, actor: Any, q: str | None, **kwargs: Any) -> list[int]:
    return _page(session, actor, q, **kwargs)[0]


def _declare(session: Session, actor: Any, title: str, description: str = "", **kwargs: Any) -> int:
    return declare(
        session, actor, title=title, description=description, severity=Severity.SEV3, **kwargs
    ).number


def test_title_description_and_comments_are_found_and_title_ranks_first(
    session: Session, people: Sequence[Any]
) -> None:
    alice = people[0]
    in_comment = _declare(session, alice, "Checkout slow", "Latency up in eu-west.")
    comments.add_comment(session, alice, in_comment, "The database failover took minutes.")
    in_title = _declare(session, alice, "Database failover failed", "Primary gone.")
    in_description = _declare(session, alice, "Login errors", "The database refused clients.")
    _declare(session, alice, "Unrelated", "Nothing to see.")
    session.commit()

    assert _numbers(session, alice, "database") == [in_title, in_description, in_comment]
    assert _numbers(session, alice, "databases failing") == [in_title]  # stemmed, AND-ed
    assert _numbers(session, alice, '"failover took"') == [in_comment]  # a phrase
    assert set(_numbers(session, alice, "latency or refused")) == {in_comment, in_description}
    assert _numbers(session, alice, "database -failover") == [in_description]


def test_edits_and_deleted_comments_update_the_index(
    session: Session, people: Sequence[Any]
) -> None:
    alice, _, root = people
    number = _declare(session, alice, "Queue backlog")
    comment = comments.add_comment(session, alice, number, "Zanzibar cluster out of disk.")
    session.commit()
    assert _numbers(session, alice, "zanzibar") == [number]

    comments.delete_comment(session, alice, number, comment.id)
    update(session, root, number, Edits(title="Kafka lag", description="Consumers stuck."))
    session.commit()

    assert _numbers(session, alice, "zanzibar") == []
    assert _numbers(session, alice, "backlog") == []
    assert _numbers(session, alice, "kafka") == [number]
    assert _numbers(session, alice, "consumers") == [number]


def test_relevance_pages_walk_every_match_once(session: Session, people: Sequence[Any]) -> None:
    alice = people[0]
    expected = []
    for index in range(7):
        # Ties in rank (same text) and differences (more mentions rank higher on both).
        body = "redis " * (1 + index % 3)
        expected.append(_declare(session, alice, f"Incident {index}", body))
    _declare(session, alice, "Other", "postgres")
    session.commit()

    seen: list[int] = []
    numbers, cursor = _page(session, alice, "redis", limit=3)
    seen += numbers
    while cursor is not None:
        from opsdeck.core.pagination import decode_cursor

        after = decode_cursor(INCIDENT_SORTS, "-relevance", cursor)
        numbers, cursor = _page(session, alice, "redis", limit=3, sort="-relevance", after=after)
        seen += numbers
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))
    # Three mentions first, then two, then one; newest first within a tie.
    assert seen[:2] == sorted([expected[2], expected[5]], reverse=True)


def test_relevance_ranks_the_newest_candidates_the_caller_may_see(
    session: Session, people: Sequence[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, _ = people
    monkeypatch.setattr(search, "CANDIDATES", 3)
    # The oldest mentions the word most: it would rank first if every match were ranked.
    oldest = declare(
        session, alice, title="Kafka", description="kafka kafka kafka", severity=Severity.SEV1
    ).number
    older = _declare(session, alice, "Kafka lag", "kafka")
    public = [_declare(session, alice, f"Broker {index}", "kafka") for index in range(2)]
    # Bob may not see it: it is not one of his candidates, the older public one takes its place.
    hidden = _declare(session, alice, "Kafka", "kafka", visibility=Visibility.RESTRICTED)
    _declare(session, alice, "Unrelated", "postgres")
    session.commit()

    assert sorted(_numbers(session, alice, "kafka")) == sorted([*public, hidden])
    assert sorted(_numbers(session, bob, "kafka")) == sorted([older, *public])
    # Other filters narrow the candidates before the bound, not after.
    assert _numbers(session, bob, "kafka", severity=[Severity.SEV1]) == [oldest]
    # Sorted by anything else, a search lists every match.
    assert _numbers(session, alice, "kafka", sort="-number") == [
        hidden,
        *public[::-1],
        older,
        oldest,
    ]


def test_an_explicit_sort_keeps_its_order_and_relevance_needs_a_search(
    session: Session, people: Sequence[Any]
) -> None:
    alice = people[0]
    first = _declare(session, alice, "Disk full", "disk disk disk")
    second = _declare(session, alice, "Cache miss", "disk")
    session.commit()
    assert _numbers(session, alice, "disk") == [first, second]
    assert _numbers(session, alice, "disk", sort="-number") == [second, first]
    assert _numbers(session, alice, "disk", sort="number") == [first, second]
    with pytest.raises(ValidationFailed) as refused:
        _numbers(session, alice, None, sort="-relevance")
    assert refused.value.details[0]["field"] == "query.sort"


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_strings_neither_fail_nor_fan_out(
    session: Session, people: Sequence[Any], q: str
) -> None:
    alice = people[0]
    for index in range(3):
        _declare(session, alice, f"Payment {index} failing", "card processor timeouts")
    session.commit()

    assert _numbers(session, alice, q) == []
    for sort in ("-number", "-relevance"):
        assert _numbers(session, alice, q, sort=sort) == []
    session.rollback()


@pytest.mark.parametrize("q", ["", "   ", "\t\n"])
def test_a_blank_search_is_no_search(session: Session, people: Sequence[Any], q: str) -> None:
    alice = people[0]
    numbers = [_declare(session, alice, f"Incident {index}") for index in range(3)]
    session.commit()
    assert _numbers(session, alice, q) == numbers[::-1]


def test_hostile_strings_still_find_the_words_they_carry(
    session: Session, people: Sequence[Any]
) -> None:
    alice = people[0]
    number = _declare(session, alice, "Near database outage")
    session.commit()
    for q in ("NEAR(database", "database*", '"database', "database)"):
        assert _numbers(session, alice, q) == [number], q


def test_a_search_longer_than_the_bound_is_refused(session: Session, people: Sequence[Any]) -> None:
    alice = people[0]
    assert _numbers(session, alice, "x" * search.MAX_QUERY_LENGTH) == []
    with pytest.raises(ValidationFailed) as refused:
        _numbers(session, alice, "x" * 1000)
    assert refused.value.details[0]["field"] == "query.q"


def test_restricted_incidents_are_found_only_by_those_who_may_see_them(
    session: Session, people: Sequence[Any]
) -> None:
    alice, bob, root = people
    secret = _declare(session, alice, "Secret breach", visibility=Visibility.RESTRICTED)
    comments.add_comment(session, alice, secret, "Breach contained")
    public = _declare(session, alice, "Public breach drill")
    session.commit()

    assert _numbers(session, bob, "breach") == [public]
    assert _numbers(session, bob, "secret") == []
    assert _numbers(session, bob, "contained", sort="-number") == []
    assert set(_numbers(session, alice, "breach")) == {secret, public}
    assert set(_numbers(session, root, "breach")) == {secret, public}


def test_fts5_expressions_are_made_of_quoted_terms_only() -> None:
    assert search.fts5_expression('NEAR(a b) col:c "d e" or f -g *') == (
        '"NEAR a" AND "b" AND "col c" AND ("d e" OR "f") NOT "g"'
    )
    assert search.fts5_expression("% _ * \" ' --") is None
    assert search.fts5_expression("-only") is None


# -- over HTTP: GET /incidents?q= ------------------------------------------------------------

INCIDENTS = f"{API}/incidents"


def test_the_list_searches_by_relevance_and_its_cursor_goes_on_in_that_order(
    client: TestClient, member_headers: dict[str, str], declare: Declare
) -> None:
    numbers = [
        declare(member_headers, title=f"Incident {i}", description="redis " * (1 + i % 3))["number"]
        for i in range(5)
    ]
    best = declare(member_headers, title="Redis down", description="redis redis")["number"]
    declare(member_headers, title="Other", description="postgres")

    first = client.get(INCIDENTS, params={"q": "redis", "limit": 2}, headers=member_headers)
    assert first.status_code == 200, first.text
    seen = [item["number"] for item in first.json()["items"]]
    cursor = first.json()["next_cursor"]
    while cursor:
        page = client.get(
            INCIDENTS, params={"q": "redis", "limit": 2, "cursor": cursor}, headers=member_headers
        )
        assert page.status_code == 200, page.text
        seen += [item["number"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]

    assert seen[0] == best  # a title match first
    assert sorted(seen) == sorted([*numbers, best])
    by_number = client.get(
        INCIDENTS, params={"q": "redis", "sort": "-number"}, headers=member_headers
    ).json()
    assert [item["number"] for item in by_number["items"]] == sorted(seen, reverse=True)


@pytest.mark.parametrize("q", [*HOSTILE, "", "   "])
def test_hostile_searches_over_http_are_answered(
    client: TestClient, member_headers: dict[str, str], declare: Declare, q: str
) -> None:
    declare(member_headers, title="Payment failing")
    for sort in (None, "-relevance", "-number"):
        params = {"q": q} if sort is None else {"q": q, "sort": sort}
        response = client.get(INCIDENTS, params=params, headers=member_headers)
        if "\x00" in q:  # refused at the edge, naming the parameter
            assert response.status_code == 422, response.text
            assert error_of(response)["details"][0]["field"] == "query.q"
            continue
        if sort == "-relevance" and not q.strip():
            assert response.status_code == 422, response.text
            continue
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == (1 if not q.strip() else 0)


def test_a_long_search_is_a_422_naming_q(
    client: TestClient, member_headers: dict[str, str]
) -> None:
    response = client.get(INCIDENTS, params={"q": "a" * 1000}, headers=member_headers)

    assert response.status_code == 422
    assert "query.q" in {detail["field"] for detail in error_of(response)["details"]}


def test_a_second_member_never_finds_a_restricted_incident(
    client: TestClient,
    member_headers: dict[str, str],
    outsider_headers: dict[str, str],
    declare: Declare,
) -> None:
    secret = declare(member_headers, title="Zebra secret", visibility="restricted")
    client.post(
        f"{INCIDENTS}/{secret['number']}/comments",
        json={"body": "quokka in the logs"},
        headers=member_headers,
    )

    for q in ("zebra", "quokka", "secret"):
        for params in ({"q": q}, {"q": q, "sort": "-number"}):
            found = client.get(INCIDENTS, params=params, headers=outsider_headers).json()
            assert found["items"] == []
        mine = client.get(INCIDENTS, params={"q": q}, headers=member_headers).json()
        assert [item["number"] for item in mine["items"]] == [secret["number"]]


def test_a_search_run_again_and_again_on_one_connection_keeps_its_answer(
    session: Session, people: Sequence[Any]
) -> None:
    """psycopg prepares a statement at its fifth run on a connection, and PostgreSQL may then
    plan it once for any words (a generic plan that reads every match): a search is sent
    unprepared, so it is planned for its words every time, and its answer (order and
    visibility) is the same at the first run and the twentieth, by relevance and by number."""
    alice, bob, _root = people
    in_title = _declare(session, alice, "Kafka lag on orders", "Consumers behind.")
    in_description = _declare(session, alice, "Checkout slow", "Kafka lag grew to minutes.")
    secret = _declare(session, alice, "Kafka lag secret", visibility=Visibility.RESTRICTED)
    _declare(session, alice, "Unrelated", "Nothing to see.")
    session.commit()

    for who, visible in (
        (alice, {secret, in_title, in_description}),
        (bob, {in_title, in_description}),
    ):
        for sort in (None, "-number"):
            first = _numbers(session, who, "kafka lag", sort=sort)
            assert set(first) == visible
            if sort is None:
                assert first[-1] == in_description  # title matches rank first
            else:
                assert first == sorted(visible, reverse=True)
            for _ in range(20):
                assert _numbers(session, who, "kafka lag", sort=sort) == first
    if is_postgres(session):
        # Every search above ran in this transaction, on this connection.
        prepared = session.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%tsquery%'")
        ).scalar_one()
        assert prepared == 0


# Planner costs that make PostgreSQL parallelise any scan, even of a few rows (what a word with
# a high estimate does at 1,000,000 incidents: a Parallel Bitmap Heap Scan under a Gather Merge).
_PARALLEL_AT_ANY_COST = (
    "SET LOCAL parallel_setup_cost = 0",
    "SET LOCAL parallel_tuple_cost = 0",
    "SET LOCAL min_parallel_table_scan_size = 0",
    "SET LOCAL min_parallel_index_scan_size = 0",
)


def _plan_nodes(plan: dict[str, Any]) -> list[str]:
    return [plan["Node Type"], *(n for child in plan.get("Plans", []) for n in _plan_nodes(child))]


@pytest.mark.parametrize("sort", [None, "-number"])
def test_a_search_is_planned_without_parallel_workers(
    session: Session, people: Sequence[Any], sort: str | None
) -> None:
    """A word that matches nothing is read from the GIN index in a fraction of a millisecond,
    but PostgreSQL planned a parallel worker for it and waited 15-40 ms for the worker to start
    (docs/benchmarks.md, "Incidents API"): a search's transaction plans serially
    (search.plan_serially). The statement is checked under costs that make PostgreSQL
    parallelise anything, first without the search's setting (a Gather, so the check can
    fail), then in the search's transaction (none), by relevance and by number."""
    alice = people[0]
    numbers = [
        _declare(session, alice, f"Kafka lag {index}", "Consumers behind.") for index in range(5)
    ]
    rare = _declare(session, alice, "Deploy", "A rollback of the deploy.")
    session.commit()
    engine = session.get_bind()
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        sent.append((args[2], args[3]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert _numbers(session, alice, "rollback", sort=sort) == [rare]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert _numbers(session, alice, "kafka", sort=sort) == sorted(numbers, reverse=True)
    if not is_postgres(session):
        return  # SQLite has no parallel plans; the search above found its word
    statement, parameters = next((s, p) for s, p in sent if "incident_search" in s)

    def plan() -> list[str]:
        for setting in _PARALLEL_AT_ANY_COST:
            session.execute(text(setting))
        explained = session.connection().exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + statement, parameters
        )
        return _plan_nodes(explained.scalar_one()[0]["Plan"])

    session.rollback()  # a transaction without the search's setting
    assert {"Gather", "Gather Merge"} & set(plan())
    session.rollback()
    # In the search's transaction, after the search (as the search's own statement is planned).
    assert _numbers(session, alice, "rollback", sort=sort) == [rare]
    assert not {"Gather", "Gather Merge"} & set(plan())
