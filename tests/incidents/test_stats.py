"""GET /incidents/stats: open by severity now, per-day counts zero-filled over the period,
MTTA / MTTR percentiles, counts by status; only what the caller may see; the period's bounds.
Both stacks (PostgreSQL aggregates in SQL, SQLite in Python: the same figures). The cache:
answers reused while nothing changed and for at most the age limit, per visibility scope, and
a Redis outage is no error (Redis on the PostgreSQL stack, this process on the embedded one)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from opsdeck.app import create_app
from opsdeck.core.redis import redis_client
from opsdeck.incidents.models import Incident, IncidentStatus, Severity, Visibility
from opsdeck.incidents.service import stats
from opsdeck.incidents.service import stats_cache as stats_cache_module
from opsdeck.incidents.service.incidents import declare
from opsdeck.incidents.service.stats_cache import (
    KEY_PREFIX,
    MemoryStore,
    RedisStore,
    StatsCache,
    stats_cache,
)
from opsdeck.settings import Settings
from tests.conftest import API, UserFactory, error_of, sign_in
from tests.stack import TestStack, free_port

STATS = f"{API}/incidents/stats"
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 1, 11, tzinfo=UTC)
PERIOD = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


def _incident(
    session: Session,
    reporter: Any,
    declared_at: datetime,
    severity: Severity,
    *,
    status: IncidentStatus = IncidentStatus.TRIAGE,
    ack: int | None = None,
    resolve: int | None = None,
    visibility: Visibility = Visibility.PUBLIC,
) -> Incident:
    incident = declare(
        session,
        reporter,
        title=f"Incident at {declared_at:%d %H:%M}",
        severity=severity,
        visibility=visibility,
        declared_at=declared_at,
    )
    incident.status = status
    if ack is not None:
        incident.acknowledged_at = declared_at + timedelta(seconds=ack)
    if resolve is not None:
        incident.resolved_at = declared_at + timedelta(seconds=resolve)
    return incident


@pytest.fixture
def people(app: FastAPI, make_user: UserFactory) -> None:
    alice = make_user("alice")
    make_user("bob")
    make_user("root", role="admin")
    session: Session = app.state.sessionmaker()
    try:
        day = SINCE + timedelta(days=1)
        _incident(session, alice, day + timedelta(hours=10), Severity.SEV1,
                  status=IncidentStatus.RESOLVED, ack=60, resolve=3600)  # fmt: skip
        _incident(session, alice, day + timedelta(hours=12), Severity.SEV2,
                  status=IncidentStatus.CLOSED, ack=120, resolve=7200)  # fmt: skip
        _incident(session, alice, SINCE + timedelta(days=4), Severity.SEV1,
                  status=IncidentStatus.INVESTIGATING, ack=300)  # fmt: skip
        # Restricted: alice (its reporter) and admins count it, bob does not.
        _incident(session, alice, SINCE + timedelta(days=2), Severity.SEV3,
                  status=IncidentStatus.INVESTIGATING, ack=10_000,
                  visibility=Visibility.RESTRICTED)  # fmt: skip
        # Before the period: open now, so counted as open, nothing else.
        _incident(session, alice, SINCE - timedelta(days=10), Severity.SEV4, ack=5)
        session.commit()
    finally:
        session.close()


def _stats(client: TestClient, username: str, **params: Any) -> dict[str, Any]:
    query = PERIOD if not params else {k: v for k, v in params.items() if v is not None}
    response = client.get(STATS, params=query, headers=sign_in(client, username))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_stats_of_a_period_for_a_member_who_sees_the_public_incidents(
    client: TestClient, people: None
) -> None:
    body = _stats(client, "bob")

    assert body["open_by_severity"] == {"SEV1": 1, "SEV2": 0, "SEV3": 0, "SEV4": 1}
    assert body["by_status"] == {
        "triage": 0,
        "investigating": 1,
        "identified": 0,
        "monitoring": 0,
        "resolved": 1,
        "closed": 1,
    }
    created = body["created_per_day"]
    assert [row["day"] for row in created] == [f"2026-01-{day:02d}" for day in range(1, 11)]
    assert [row["count"] for row in created] == [0, 2, 0, 0, 1, 0, 0, 0, 0, 0]
    assert [row["count"] for row in body["resolved_per_day"]] == [0, 2, 0, 0, 0, 0, 0, 0, 0, 0]
    assert body["mtta"] == {
        "count": 3,
        "p50_seconds": pytest.approx(120.0),
        "p90_seconds": pytest.approx(264.0),
        "p95_seconds": pytest.approx(282.0),
    }
    assert body["mttr"] == {
        "count": 2,
        "p50_seconds": pytest.approx(5400.0),
        "p90_seconds": pytest.approx(6840.0),
        "p95_seconds": pytest.approx(7020.0),
    }
    assert datetime.fromisoformat(body["since"]) == SINCE
    assert datetime.fromisoformat(body["until"]) == UNTIL


@pytest.mark.parametrize("username", ["alice", "root"])
def test_a_restricted_incident_counts_for_those_who_may_see_it(
    client: TestClient, people: None, username: str
) -> None:
    body = _stats(client, username)

    assert body["open_by_severity"]["SEV3"] == 1
    assert body["by_status"]["investigating"] == 2
    assert body["created_per_day"][2] == {"day": "2026-01-03", "count": 1}
    assert body["mtta"]["count"] == 4


def test_an_empty_period_has_zero_days_and_no_percentiles(client: TestClient, people: None) -> None:
    body = _stats(client, "bob", since="2025-06-01T00:00:00Z", until="2025-06-03T00:00:00Z")

    assert [row["count"] for row in body["created_per_day"]] == [0, 0]
    assert body["mttr"] == {
        "count": 0,
        "p50_seconds": None,
        "p90_seconds": None,
        "p95_seconds": None,
    }
    assert body["open_by_severity"]["SEV1"] == 1  # open now, whatever the period


def test_the_default_period_is_the_last_30_days(client: TestClient, make_user: UserFactory) -> None:
    make_user("carol")
    body = _stats(client, "carol", since=None)
    since = datetime.fromisoformat(body["since"])
    until = datetime.fromisoformat(body["until"])
    assert until - since == timedelta(days=30)
    assert len(body["created_per_day"]) in (30, 31)
    assert sum(row["count"] for row in body["created_per_day"]) == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-02T00:00:00Z"}, "query.since"),
        ({"since": "2026-01-05T00:00:00Z", "until": "2026-01-02T00:00:00Z"}, "query.since"),
        ({"since": "2024-01-01T00:00:00Z", "until": "2025-01-02T00:00:01Z"}, "query.since"),
        ({"since": "yesterday"}, "query.since"),
        ({"until": "' OR 1=1 --"}, "query.until"),
        ({"since": "9999-99-99"}, "query.since"),
    ],
)
def test_a_bad_period_is_a_422_naming_the_field(
    client: TestClient, member_headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = client.get(STATS, params=params, headers=member_headers)

    assert response.status_code == 422, response.text
    assert field in {detail["field"] for detail in error_of(response)["details"]}


def test_the_longest_period_is_366_days(client: TestClient, member_headers: dict[str, str]) -> None:
    response = client.get(
        STATS,
        params={"since": "2024-01-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
        headers=member_headers,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["created_per_day"]) == 366


def test_stats_need_a_signed_in_user(client: TestClient) -> None:
    assert client.get(STATS).status_code == 401


def test_percentiles_interpolate_like_percentile_cont() -> None:
    assert stats.percentile([], 0.5) is None
    assert stats.percentile([7.0], 0.95) == 7.0
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert stats.percentile([10.0, 20.0], 0.9) == pytest.approx(19.0)


# -- the cache (incidents/service/stats_cache.py) ------------------------------------------


class StatsClock:
    """The stats cache's clock, moved by hand (whole seconds)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def stats_clock(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> StatsClock:
    fake = StatsClock()
    monkeypatch.setattr(stats_cache(settings), "clock", fake)
    return fake


def _number(db: Session, title: str) -> int:
    number = db.scalar(select(Incident.number).where(Incident.title == title))
    db.commit()
    assert number is not None
    return number


def _behind_the_services_back(db: Session, number: int, status: IncidentStatus) -> None:
    """A change that appends no timeline event: only the age limit makes the cache see it."""
    db.execute(update(Incident).where(Incident.number == number).values(status=status))
    db.commit()


INVESTIGATING_SEV1 = "Incident at 05 00:00"
RESTRICTED = "Incident at 03 00:00"


def test_a_second_call_is_answered_from_the_cache_until_the_age_limit(
    client: TestClient, db: Session, settings: Settings, people: None, stats_clock: StatsClock
) -> None:
    assert settings.incidents_stats_cache_seconds == 30
    first = _stats(client, "bob")
    _behind_the_services_back(db, _number(db, INVESTIGATING_SEV1), IncidentStatus.IDENTIFIED)

    stats_clock.advance(29)
    assert _stats(client, "bob") == first  # the cached answer: the change made no event

    stats_clock.advance(1)
    fresh = _stats(client, "bob")  # 30 s old: computed again
    assert fresh["by_status"]["investigating"] == 0
    assert fresh["by_status"]["identified"] == 1
    if settings.redis_url:  # distributed: shared through Redis
        keys = redis_client(settings.redis_url).keys(f"{KEY_PREFIX}*")
        assert keys, "no answer was stored in Redis"


def test_a_change_through_the_api_makes_the_next_call_compute(
    client: TestClient, db: Session, people: None, stats_clock: StatsClock
) -> None:
    root = sign_in(client, "root")
    number = _number(db, INVESTIGATING_SEV1)
    assert _stats(client, "bob")["by_status"]["investigating"] == 1

    response = client.post(
        f"{API}/incidents/{number}/transition", json={"to": "identified"}, headers=root
    )
    assert response.status_code == 200, response.text
    body = _stats(client, "bob")
    assert body["by_status"]["investigating"] == 0
    assert body["by_status"]["identified"] == 1

    response = client.patch(f"{API}/incidents/{number}", json={"severity": "SEV2"}, headers=root)
    assert response.status_code == 200, response.text
    assert _stats(client, "bob")["open_by_severity"]["SEV2"] == 1

    response = client.post(
        f"{API}/incidents", json={"title": "New one", "severity": "SEV4"}, headers=root
    )
    assert response.status_code == 201, response.text
    assert _stats(client, "bob")["open_by_severity"]["SEV4"] == 2  # open now, any period


def test_visibility_and_participants_change_what_a_member_counts_at_once(
    client: TestClient, db: Session, people: None, carol: Any, stats_clock: StatsClock
) -> None:
    root = sign_in(client, "root")
    restricted = _number(db, RESTRICTED)
    assert _stats(client, "bob")["mtta"]["count"] == 3

    response = client.post(
        f"{API}/incidents/{restricted}/watchers", json={"username": "bob"}, headers=root
    )
    assert response.status_code == 200, response.text
    assert _stats(client, "bob")["mtta"]["count"] == 4  # bob takes part: he sees it

    public = _number(db, INVESTIGATING_SEV1)
    assert _stats(client, "carol")["mtta"]["count"] == 3
    response = client.patch(
        f"{API}/incidents/{public}", json={"visibility": "restricted"}, headers=root
    )
    assert response.status_code == 200, response.text
    assert _stats(client, "carol")["mtta"]["count"] == 2  # carol takes part in neither
    assert _stats(client, "bob")["mtta"]["count"] == 3


def test_members_never_get_each_others_cached_stats(
    client: TestClient, people: None, stats_clock: StatsClock
) -> None:
    # alice reported the restricted incident; bob takes no part in it; root is an admin.
    for _ in range(2):
        assert _stats(client, "alice")["by_status"]["investigating"] == 2
        assert _stats(client, "bob")["by_status"]["investigating"] == 1
        assert _stats(client, "root")["by_status"]["investigating"] == 2
        assert _stats(client, "bob")["open_by_severity"]["SEV3"] == 0


def test_without_until_an_answer_covers_up_to_when_it_was_computed(
    client: TestClient, db: Session, people: None, stats_clock: StatsClock
) -> None:
    computed_at = stats_clock.now
    first = _stats(client, "bob", since=None)
    assert datetime.fromisoformat(first["until"]) == computed_at
    _behind_the_services_back(db, _number(db, INVESTIGATING_SEV1), IncidentStatus.RESOLVED)

    stats_clock.advance(10)
    again = _stats(client, "bob", since=None)
    assert again == first  # "now" reused: it says what it covers
    assert datetime.fromisoformat(again["until"]) == computed_at

    stats_clock.advance(20)
    later = _stats(client, "bob", since=None)
    assert datetime.fromisoformat(later["until"]) == stats_clock.now
    assert first["open_by_severity"]["SEV1"] == 1
    assert later["open_by_severity"]["SEV1"] == 0
    assert datetime.fromisoformat(later["until"]) - datetime.fromisoformat(
        later["since"]
    ) == timedelta(days=30)


def test_the_open_incidents_are_computed_once_for_every_period_of_a_scope(
    client: TestClient, db: Session, people: None, stats_clock: StatsClock
) -> None:
    assert _stats(client, "bob")["open_by_severity"]["SEV1"] == 1
    _behind_the_services_back(db, _number(db, INVESTIGATING_SEV1), IncidentStatus.RESOLVED)
    other = {"since": "2025-06-01T00:00:00Z", "until": "2025-06-03T00:00:00Z"}

    stats_clock.advance(10)
    body = _stats(client, "bob", **other)  # another period: computed, open from the cache
    assert body["open_by_severity"]["SEV1"] == 1
    assert _stats(client, "alice", **other)["open_by_severity"]["SEV1"] == 0  # her own

    stats_clock.advance(20)  # 30 s after the open counts were: the whole answer is as old
    assert _stats(client, "bob", **other)["open_by_severity"]["SEV1"] == 0


def test_a_cache_of_0_seconds_computes_every_call(
    settings: Settings, db: Session, people: None
) -> None:
    uncached = create_app(settings.model_copy(update={"incidents_stats_cache_seconds": 0}))
    with TestClient(uncached, base_url="http://testserver") as client:
        assert _stats(client, "bob")["by_status"]["investigating"] == 1
        _behind_the_services_back(db, _number(db, INVESTIGATING_SEV1), IncidentStatus.IDENTIFIED)
        assert _stats(client, "bob")["by_status"]["investigating"] == 0


def test_stats_are_answered_when_the_cache_s_redis_is_down(
    client: TestClient,
    settings: Settings,
    test_stack: TestStack,
    people: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign_in(client, "bob")
    expected = _stats(client, "bob")

    def ask() -> None:
        response = client.get(STATS, params=PERIOD, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == expected

    if test_stack.redis is not None:
        test_stack.redis.stop()  # the test Redis, for every process
        try:
            stats_cache(settings).clear()  # logged, not raised
            ask()
            ask()
        finally:
            test_stack.redis.start(same_port=True)
        return
    # Embedded: no Redis; the same cache over one that nobody answers.
    dead = StatsCache(
        RedisStore(redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)), 30
    )
    monkeypatch.setattr(stats_cache_module, "_cache", lambda _url, _ttl: dead)
    ask()
    ask()


def test_one_computation_of_an_answer_at_a_time_in_a_process() -> None:
    cache = StatsCache(MemoryStore(), 30)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with cache.computing("a"):
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        with cache.computing("a"):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    with cache.computing("b"):  # another answer does not wait
        order.append("other")
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "other", "first out", "second in"]
    with cache.computing("a"):  # nothing is left holding it
        pass
