"""Follow-ups: created and changed by the incident's editors (the owner may move the status),
refused with the field named on bad input, listed per incident and across incidents with
`overdue`, and never shown to anybody who may not see their incident."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from opsdeck.accounts.models import User
from opsdeck.incidents.models import EventKind, FollowUp, TimelineEvent
from opsdeck.incidents.service import follow_ups, incidents
from tests.conftest import API, UserFactory, error_of, fields_of, sign_in
from tests.incidents.conftest import NewIncident

LIST = f"{API}/incidents/follow-ups"


@pytest.fixture
def owen(make_user: UserFactory) -> Any:
    """Owns follow-ups; not an editor of any incident."""
    return make_user("owen")


@pytest.fixture
def owen_headers(client: TestClient, owen: Any) -> dict[str, str]:
    return sign_in(client, owen.username)


def _create(client: TestClient, number: int, headers: dict[str, str], **body: Any) -> Any:
    response = client.post(
        f"{API}/incidents/{number}/follow-ups",
        json={"title": "Add an alert", **body},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


def _make_overdue(app: FastAPI, follow_up_id: str, days: int = 3) -> None:
    session: Session = app.state.sessionmaker()
    try:
        session.execute(
            update(FollowUp)
            .where(FollowUp.id == follow_up_id)
            .values(due_date=follow_ups.today() - timedelta(days=days))
        )
        session.commit()
    finally:
        session.close()


def _count(app: FastAPI, model: Any, *where: Any) -> int:
    session: Session = app.state.sessionmaker()
    try:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        session.close()


def test_an_editor_adds_a_follow_up(
    client: TestClient,
    app: FastAPI,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    owen: Any,
) -> None:
    number = new_incident()
    due = (follow_ups.today() + timedelta(days=14)).isoformat()
    item = _create(client, number, carol_headers, owner="owen", due_date=due)
    assert item["title"] == "Add an alert"
    assert item["owner"]["username"] == "owen"
    assert item["due_date"] == due
    assert item["status"] == "open"
    assert item["overdue"] is False
    assert item["incident_number"] == number
    assert item["incident_key"] == f"INC-{number}"
    assert item["incident_title"] == "Checkout is down"
    assert item["completed_at"] is None
    # Due today is fine.
    _create(client, number, carol_headers, due_date=follow_ups.today().isoformat())
    assert (
        _count(
            app,
            TimelineEvent,
            TimelineEvent.incident_number == number,
            TimelineEvent.kind == EventKind.FOLLOW_UP_CHANGED,
        )
        == 2
    )


def test_bad_input_names_the_field_and_writes_nothing(
    client: TestClient, app: FastAPI, new_incident: NewIncident, carol_headers: dict[str, str]
) -> None:
    number = new_incident()
    url = f"{API}/incidents/{number}/follow-ups"
    yesterday = (follow_ups.today() - timedelta(days=1)).isoformat()
    past = client.post(url, json={"title": "x", "due_date": yesterday}, headers=carol_headers)
    assert past.status_code == 422
    assert fields_of(past) == {"due_date"}
    unknown = client.post(url, json={"title": "x", "owner": "nobody"}, headers=carol_headers)
    assert unknown.status_code == 422
    assert fields_of(unknown) == {"owner"}
    for body in (
        {"title": ""},
        {"title": "x" * 201},
        {"title": "x", "status": "finished"},
        {"title": "x", "due_date": "someday"},
        # A number is not a date (pydantic alone reads it as a Unix time's day).
        {"title": "x", "due_date": 4102444800},
        {"title": "x", "incident": 3},
    ):
        response = client.post(url, json=body, headers=carol_headers)
        assert response.status_code == 422, body
    assert _count(app, FollowUp) == 0
    assert _count(app, TimelineEvent, TimelineEvent.kind == EventKind.FOLLOW_UP_CHANGED) == 0


def test_editors_change_and_delete_owners_move_the_status(
    client: TestClient,
    app: FastAPI,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    owen_headers: dict[str, str],
    member_headers: dict[str, str],
) -> None:
    number = new_incident()
    item = _create(client, number, carol_headers, owner="owen")
    url = f"{LIST}/{item['id']}"

    # The owner may move the status, nothing else; another member may do neither.
    started = client.patch(url, json={"status": "in_progress"}, headers=owen_headers)
    assert started.status_code == 200
    assert started.json()["status"] == "in_progress"
    assert client.patch(url, json={"title": "Mine now"}, headers=owen_headers).status_code == 403
    assert client.patch(url, json={"status": "done"}, headers=member_headers).status_code == 403

    done = client.patch(url, json={"status": "done"}, headers=carol_headers)
    assert done.json()["completed_at"] is not None
    reopened = client.patch(url, json={"status": "open"}, headers=carol_headers)
    assert reopened.json()["completed_at"] is None

    later = (follow_ups.today() + timedelta(days=30)).isoformat()
    changed = client.patch(
        url, json={"title": "Alert on pool saturation", "due_date": later}, headers=carol_headers
    )
    assert changed.json()["title"] == "Alert on pool saturation"
    assert changed.json()["due_date"] == later
    cleared = client.patch(url, json={"owner": None, "due_date": None}, headers=carol_headers)
    assert cleared.json()["owner"] is None
    assert cleared.json()["due_date"] is None
    yesterday = (follow_ups.today() - timedelta(days=1)).isoformat()
    past = client.patch(url, json={"due_date": yesterday}, headers=carol_headers)
    assert past.status_code == 422
    assert fields_of(past) == {"due_date"}
    assert fields_of(client.patch(url, json={"owner": "ghost"}, headers=carol_headers)) == {"owner"}

    events = _count(
        app,
        TimelineEvent,
        TimelineEvent.incident_number == number,
        TimelineEvent.kind == EventKind.FOLLOW_UP_CHANGED,
    )
    assert events == 6  # created, 5 changes, and nothing for the refusals

    assert client.delete(url, headers=member_headers).status_code == 403
    assert client.delete(url, headers=carol_headers).status_code == 204
    assert client.patch(url, json={"status": "done"}, headers=carol_headers).status_code == 404
    assert client.delete(url, headers=carol_headers).status_code == 404
    assert _count(app, FollowUp) == 0


def test_the_list_across_incidents_shows_overdue_ones_and_filters(
    client: TestClient,
    app: FastAPI,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    member_headers: dict[str, str],
    owen: Any,
) -> None:
    first, second = new_incident(title="First"), new_incident(title="Second")
    late = _create(client, first, carol_headers, title="Late", owner="owen")
    _make_overdue(app, late["id"])
    done_late = _create(client, first, carol_headers, title="Done late")
    _make_overdue(app, done_late["id"])
    client.patch(f"{LIST}/{done_late['id']}", json={"status": "done"}, headers=carol_headers)
    on_time = _create(
        client,
        second,
        carol_headers,
        title="On time",
        due_date=(follow_ups.today() + timedelta(days=3)).isoformat(),
    )
    undated = _create(client, second, carol_headers, title="Undated", owner="owen")

    everything = client.get(LIST, headers=member_headers).json()
    by_title = {item["title"]: item for item in everything["items"]}
    assert set(by_title) == {"Late", "Done late", "On time", "Undated"}
    assert {t for t, item in by_title.items() if item["overdue"]} == {"Late"}
    assert by_title["On time"]["incident_title"] == "Second"
    assert by_title["Late"]["incident_key"] == f"INC-{first}"

    def titles(query: str) -> set[str]:
        response = client.get(f"{LIST}?{query}", headers=member_headers)
        assert response.status_code == 200, response.text
        return {item["title"] for item in response.json()["items"]}

    assert titles("overdue=true") == {"Late"}
    assert titles("overdue=false") == {"Done late", "On time", "Undated"}
    assert titles("status=done") == {"Done late"}
    assert titles("status=open&status=in_progress") == {"Late", "On time", "Undated"}
    assert titles("owner=owen") == {"Late", "Undated"}
    assert titles("owner=owen&overdue=true") == {"Late"}
    assert titles("owner=nobody") == set()
    assert titles("owner=%27%20OR%201%3D1%20--") == set()

    one = client.get(f"{API}/incidents/{second}/follow-ups", headers=member_headers).json()
    assert {item["id"] for item in one["items"]} == {on_time["id"], undated["id"]}

    # Keyset pages: every item once.
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"{LIST}?{query}", headers=member_headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4
    assert set(seen) == {late["id"], done_late["id"], on_time["id"], undated["id"]}

    for bad in ("status=finished", "overdue=maybe", "cursor=garbage", "limit=0", "sort=title"):
        response = client.get(f"{LIST}?{bad}", headers=member_headers)
        assert response.status_code == 422, bad
        assert error_of(response)["details"]
    assert client.get(LIST).status_code == 401


def test_follow_ups_of_a_restricted_incident_stay_hidden(
    client: TestClient,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    secret = new_incident(restricted=True, title="Leaked credentials")
    item = _create(client, secret, carol_headers, title="Rotate every key")
    url = f"{LIST}/{item['id']}"

    listed = client.get(LIST, headers=member_headers).json()["items"]
    assert listed == []
    assert client.get(f"{LIST}?overdue=false", headers=member_headers).json()["items"] == []
    for method, path, body in (
        ("GET", f"{API}/incidents/{secret}/follow-ups", None),
        ("POST", f"{API}/incidents/{secret}/follow-ups", {"title": "x"}),
        ("PATCH", url, {"status": "done"}),
        ("DELETE", url, None),
    ):
        response = client.request(method, path, json=body, headers=member_headers)
        assert response.status_code == 404, (method, path)
        assert "Rotate" not in response.text
        assert "Leaked" not in response.text

    assert [i["title"] for i in client.get(LIST, headers=admin_headers).json()["items"]] == [
        "Rotate every key"
    ]
    assert [i["title"] for i in client.get(LIST, headers=carol_headers).json()["items"]] == [
        "Rotate every key"
    ]
    assert (
        client.get(f"{API}/incidents/999999/follow-ups", headers=member_headers).status_code == 404
    )


def test_an_owner_must_be_able_to_see_a_restricted_incident(
    client: TestClient,
    app: FastAPI,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    owen: Any,
) -> None:
    secret = new_incident(restricted=True)
    url = f"{API}/incidents/{secret}/follow-ups"
    refused = client.post(url, json={"title": "x", "owner": "owen"}, headers=carol_headers)
    assert refused.status_code == 422
    assert fields_of(refused) == {"owner"}
    assert "watcher" in error_of(refused)["message"]
    item = _create(client, secret, carol_headers)
    patched = client.patch(f"{LIST}/{item['id']}", json={"owner": "owen"}, headers=carol_headers)
    assert fields_of(patched) == {"owner"}
    # Let in as a watcher (by an editor), owen may own it, and then sees it and moves it.
    session: Session = app.state.sessionmaker()
    try:
        carol = session.scalar(select(User).where(User.username == "carol"))
        assert carol is not None
        incidents.watch(session, carol, secret, "owen")
        session.commit()
    finally:
        session.close()
    owned = client.patch(f"{LIST}/{item['id']}", json={"owner": "owen"}, headers=carol_headers)
    assert owned.status_code == 200
    owen_headers = sign_in(client, owen.username)
    moved = client.patch(f"{LIST}/{item['id']}", json={"status": "done"}, headers=owen_headers)
    assert moved.status_code == 200


def test_follow_up_titles_are_returned_as_text(
    client: TestClient, new_incident: NewIncident, carol_headers: dict[str, str]
) -> None:
    """A title is plain text (no HTML is ever produced from it): it comes back as sent."""
    payload = "<img src=x onerror=alert(1)>"
    item = _create(client, new_incident(), carol_headers, title=payload)
    assert item["title"] == payload
