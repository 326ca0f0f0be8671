"""The read path of one incident and of the list (presenters, service.read_incident): Core
statements of columns, everything an incident shows besides its own columns in one more
statement, the visibility rule bound per reader, the same JSON as the write routes answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.conftest import UserFactory, sign_in
from tests.incidents.conftest import INCIDENTS, Declare


@contextmanager
def incident_statements(app: FastAPI) -> Iterator[list[str]]:
    """The statements the application sends that read an incidents table, while in the block."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if " incident" in statement.lower():
            sent.append(statement)

    engine = app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _busy_incident(
    client: TestClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> int:
    """An incident with a category, two tags, a commander, two assignees and watchers."""
    for name in ("database",):
        client.post(f"{INCIDENTS}/categories", json={"name": name}, headers=admin_headers)
    for name in ("payments", "db"):
        client.post(f"{INCIDENTS}/tags", json={"name": name}, headers=admin_headers)
    response = client.post(
        INCIDENTS,
        json={
            "title": "Checkout is failing",
            "severity": "SEV2",
            "category": "database",
            "tags": ["payments", "db"],
        },
        headers=member_headers,
    )
    assert response.status_code == 201, response.text
    number: int = response.json()["number"]
    for username in ("carol", "dave"):
        added = client.post(
            f"{INCIDENTS}/{number}/assignees", json={"username": username}, headers=admin_headers
        )
        assert added.status_code == 200, added.text
    edited = client.patch(
        f"{INCIDENTS}/{number}", json={"commander": "carol"}, headers=admin_headers
    )
    assert edited.status_code == 200, edited.text
    return number


def test_one_incident_is_two_statements_and_answers_what_the_write_routes_answer(
    app: FastAPI,
    client: TestClient,
    make_user: UserFactory,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
) -> None:
    make_user("carol", display_name="Carol Commander")
    make_user("dave", display_name="Dave Assignee")
    number = _busy_incident(client, admin_headers, member_headers)
    watched = client.post(f"{INCIDENTS}/{number}/watchers", headers=admin_headers)
    assert watched.status_code == 200, watched.text

    with incident_statements(app) as sent:
        response = client.get(f"{INCIDENTS}/{number}", headers=admin_headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    # The incident, then its participants, tags, category and people in one statement.
    assert len(sent) == 2, sent
    body = response.json()
    # The write routes build their answer from the Incident they changed: the same JSON.
    assert body == watched.json()
    assert body["category"] == "database"
    assert body["tags"] == ["db", "payments"]
    assert body["commander"]["username"] == "carol"
    assert body["reporter"]["username"] == "mallory"
    assert [a["username"] for a in body["assignees"]] == ["carol", "dave"]
    assert [w["username"] for w in body["watchers"]] == ["mallory", "root"]
    assert body["watching"] is True
    assert body["can_edit"] is True
    assert body["declared_at"].endswith("Z")


def test_a_page_of_the_list_is_two_statements_whatever_it_shows(
    app: FastAPI,
    client: TestClient,
    make_user: UserFactory,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    declare: Declare,
) -> None:
    make_user("carol", display_name="Carol Commander")
    make_user("dave", display_name="Dave Assignee")
    busy = _busy_incident(client, admin_headers, member_headers)
    for index in range(4):
        declare(member_headers, title=f"Slow page {index}")

    with incident_statements(app) as sent:
        response = client.get(INCIDENTS, params={"limit": 3}, headers=member_headers)
    assert response.status_code == 200, response.text
    assert len(sent) == 2, sent

    cursor = response.json()["next_cursor"]
    with incident_statements(app) as sent:
        rest = client.get(INCIDENTS, params={"cursor": cursor}, headers=member_headers)
    assert len(sent) == 2, sent
    items = [*response.json()["items"], *rest.json()["items"]]
    assert len(items) == 5
    (row,) = [item for item in items if item["number"] == busy]
    assert row["category"] == "database"
    assert row["tags"] == ["db", "payments"]
    assert row["commander"] == {
        "id": row["commander"]["id"],
        "username": "carol",
        "display_name": "Carol Commander",
    }
    assert "description" not in row


def test_a_restricted_incident_is_read_only_by_its_participants(
    client: TestClient,
    make_user: UserFactory,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    declare: Declare,
) -> None:
    make_user("eve", display_name="Eve Outsider")
    eve = sign_in(client, "eve")
    secret = declare(member_headers, title="Breach", visibility="restricted")["number"]

    assert client.get(f"{INCIDENTS}/{secret}", headers=eve).status_code == 404
    listed = client.get(INCIDENTS, headers=eve).json()["items"]
    assert secret not in [item["number"] for item in listed]
    # Each reader is bound into the same statement: the member who declared it reads it.
    assert client.get(f"{INCIDENTS}/{secret}", headers=member_headers).status_code == 200

    added = client.post(
        f"{INCIDENTS}/{secret}/watchers", json={"username": "eve"}, headers=admin_headers
    )
    assert added.status_code == 200, added.text

    seen = client.get(f"{INCIDENTS}/{secret}", headers=eve)
    assert seen.status_code == 200, seen.text
    assert seen.json()["watching"] is True
    assert seen.json()["can_edit"] is False
    assert seen.json()["allowed_transitions"] == []
    listed = client.get(INCIDENTS, headers=eve).json()["items"]
    assert secret in [item["number"] for item in listed]
