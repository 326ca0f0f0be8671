"""GET /incidents/stats: open by severity now, per-day counts zero-filled over the period,
MTTA / MTTR percentiles, counts by status; only what the caller may see; the period's bounds.
Both stacks (PostgreSQL aggregates in SQL, SQLite in Python: the same figures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from opsdeck.incidents.models import Incident, IncidentStatus, Severity, Visibility
from opsdeck.incidents.service import stats
from opsdeck.incidents.service.incidents import declare
from tests.conftest import API, UserFactory, error_of, sign_in

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
