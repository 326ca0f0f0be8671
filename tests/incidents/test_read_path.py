"""The read path of one incident and of the list (presenters, service.read_incident): Core
statements of columns, everything an incident shows besides its own columns in one more
statement, the visibility rule bound per reader, the same JSON as the write routes answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import anyio.to_thread
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from opsdeck.accounts.models import ApiToken, User
from opsdeck.core.db import utcnow
from tests.conftest import API, UserFactory, bearer, browser_sign_in, error_of, sign_in
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


# -- who reads: one thread-pool hop, the credential checked at every request -----------------

TOKENS = f"{API}/users/me/tokens"
REFUSED = "The API token is invalid, expired or revoked."


def _api_token(client: TestClient, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A new API token of whoever `headers` sign in: its id and its headers."""
    created = client.post(TOKENS, json={"name": "reader"}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["id"], bearer(created.json()["token"])


def test_a_read_by_api_token_hops_to_the_thread_pool_once(
    app: FastAPI,
    client: TestClient,
    member_headers: dict[str, str],
    declare: Declare,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The session, the credential's check, the query and the commit of one incident's page
    and of a page of the list run in one hand-off to the thread pool, not four (SessionDep,
    get_principal, the route and the session's end), and the API token is read by one
    statement."""
    number = declare(member_headers, title="Checkout is failing")["number"]
    _, token = _api_token(client, member_headers)
    hops: list[object] = []
    offload = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **options: Any) -> Any:
        hops.append(func)
        return await offload(func, *args, **options)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    for path in (f"{INCIDENTS}/{number}", f"{INCIDENTS}?limit=25&status=triage&severity=SEV3"):
        hops.clear()
        with _all_statements(app) as sent:
            response = client.get(path, headers=token)
        assert response.status_code == 200, response.text
        assert len(hops) == 1, path
        reads = [s for s in sent if s.startswith("SELECT") and "FROM api_tokens" in s]
        assert len(reads) == 1, sent


@contextmanager
def _all_statements(app: FastAPI) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(str(args[2]))

    event.listen(app.state.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(app.state.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("how", ["revoked", "expired", "user disabled"])
def test_a_read_refuses_a_token_at_once_when_it_stops_being_good(
    app: FastAPI,
    client: TestClient,
    member: Any,
    member_headers: dict[str, str],
    declare: Declare,
    how: str,
) -> None:
    """Nothing about a credential is cached between requests: the request right after the
    token is revoked, expires or its user is disabled is a 401, on both hot reads."""
    number = declare(member_headers, title="Checkout is failing")["number"]
    _, token = _api_token(client, member_headers)
    paths = (f"{INCIDENTS}/{number}", INCIDENTS)
    for path in paths:
        assert client.get(path, headers=token).status_code == 200

    session: Session = app.state.sessionmaker()
    try:
        if how == "revoked":
            session.execute(update(ApiToken).values(revoked_at=utcnow()))
        elif how == "expired":
            session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        else:
            session.execute(update(User).where(User.id == member.id).values(is_active=False))
        session.commit()
    finally:
        session.close()
    for path in paths:
        refused = client.get(path, headers=token)
        assert refused.status_code == 401, path
        assert error_of(refused)["message"] == REFUSED


def test_a_read_writes_the_tokens_last_use_at_most_once_a_minute(
    app: FastAPI, client: TestClient, member_headers: dict[str, str], declare: Declare
) -> None:
    number = declare(member_headers, title="Checkout is failing")["number"]
    _, token = _api_token(client, member_headers)

    def last_used() -> Any:
        session: Session = app.state.sessionmaker()
        try:
            return session.scalars(select(ApiToken.last_used_at)).one()
        finally:
            session.close()

    assert last_used() is None
    assert client.get(f"{INCIDENTS}/{number}", headers=token).status_code == 200
    first = last_used()
    assert first is not None
    with _all_statements(app) as sent:
        assert client.get(INCIDENTS, headers=token).status_code == 200
    assert not [s for s in sent if s.lstrip().upper().startswith("UPDATE")]
    assert last_used() == first

    session: Session = app.state.sessionmaker()
    try:
        session.execute(update(ApiToken).values(last_used_at=first - timedelta(minutes=2)))
        session.commit()
    finally:
        session.close()
    assert client.get(INCIDENTS, headers=token).status_code == 200
    assert last_used() > first - timedelta(minutes=1)


def test_the_hot_reads_sign_in_by_jwt_and_by_browser_session_too(
    client: TestClient,
    make_user: UserFactory,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    declare: Declare,
) -> None:
    """Any credential reads (an access token, a browser cookie, an API token), as the same
    person with the same visibility; none, or a bad one, is a 401."""
    secret = declare(member_headers, title="Breach", visibility="restricted")["number"]
    _, token = _api_token(client, member_headers)
    for headers in (member_headers, token, admin_headers):
        assert client.get(f"{INCIDENTS}/{secret}", headers=headers).status_code == 200
        listed = client.get(INCIDENTS, headers=headers).json()["items"]
        assert [item["number"] for item in listed] == [secret]
    make_user("eve")
    _, eve_token = _api_token(client, sign_in(client, "eve"))
    assert client.get(f"{INCIDENTS}/{secret}", headers=eve_token).status_code == 404
    assert client.get(INCIDENTS, headers=eve_token).json()["items"] == []
    for headers in (
        {},
        bearer("opd_not-a-token"),
        bearer("not-a-jwt"),
        {"Authorization": "Basic x"},
    ):
        assert client.get(f"{INCIDENTS}/{secret}", headers=headers).status_code == 401
        assert client.get(INCIDENTS, headers=headers).status_code == 401
    # No credential is a 401 before anything else of the request is looked at.
    for path in (f"{INCIDENTS}?status=bogus&limit=0", f"{INCIDENTS}/0"):
        assert client.get(path).status_code == 401
    browser_sign_in(client, "eve")
    assert client.get(f"{INCIDENTS}/{secret}").status_code == 404
    assert client.get(INCIDENTS).status_code == 200
