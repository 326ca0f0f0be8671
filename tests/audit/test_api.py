"""GET /api/v1/audit: the shared list shape, its filters, and its refusals."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.audit import service
from opsdeck.audit.models import AuditEntry
from tests.conftest import STRONG_PASSWORD, UserFactory

AUDIT = "/api/v1/audit"


@pytest.fixture
def admin_headers(client: TestClient, make_user: UserFactory) -> dict[str, str]:
    make_user("root", role="admin")
    response = client.post(
        "/api/v1/auth/token", data={"username": "root", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _walk(client: TestClient, headers: dict[str, str], **params: Any) -> list[int]:
    """Every id the list gives, page after page; each page no longer than `limit`."""
    ids: list[int] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(AUDIT, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= params["limit"]
        ids += [entry["id"] for entry in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def test_the_audit_list_pages_newest_first_or_oldest_first_with_filters(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    for number in range(5):
        service.record(db, "widget.poked", actor_name=f"bot{number % 2}")
    db.commit()
    every = list(db.scalars(select(AuditEntry.id)))
    db.commit()

    assert _walk(client, admin_headers, limit=3) == sorted(every, reverse=True)
    assert _walk(client, admin_headers, limit=4, sort="id") == sorted(every)
    bots = _walk(client, admin_headers, limit=1, actor="bot1", action="widget.")
    assert len(bots) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 201}, "query.limit"),
        ({"limit": 10**30}, "query.limit"),
        ({"cursor": "%%%"}, "query.cursor"),
        ({"before_id": 3, "sort": "created_at"}, "query.sort"),
    ],
)
def test_bad_paging_parameters_are_422(
    client: TestClient, admin_headers: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = client.get(AUDIT, params=params, headers=admin_headers)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in {detail["field"] for detail in error["details"]}


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-3", "1e9"])
def test_a_number_is_not_a_date_time(
    client: TestClient, admin_headers: dict[str, str], value: str
) -> None:
    """The OpenAPI document says `format: date-time`; pydantic alone reads a number as Unix
    seconds, so `until=0.5` answered 200 (found by the fuzzing gate)."""
    for name in ("since", "until"):
        response = client.get(AUDIT, params={name: value}, headers=admin_headers)

        assert response.status_code == 422, response.text
        details = response.json()["error"]["details"]
        assert [detail["field"] for detail in details] == [f"query.{name}"]
        assert "ISO 8601" in details[0]["message"]


def test_iso_8601_date_times_filter_the_list(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    kept = client.get(AUDIT, params={"since": "2000-01-01T00:00:00Z"}, headers=admin_headers)
    none = client.get(AUDIT, params={"until": "2000-01-01T00:00:00+00:00"}, headers=admin_headers)

    assert kept.status_code == 200
    assert kept.json()["items"]
    assert none.status_code == 200
    assert none.json()["items"] == []
