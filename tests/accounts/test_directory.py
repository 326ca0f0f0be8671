"""The user directory: what anyone signed in may find of other accounts (to invite someone to a
room, to pick an assignee), and what it never shows."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from opsdeck.accounts import service
from tests.conftest import API, UserFactory, fields_of

DIRECTORY = f"{API}/users/directory"


def test_a_member_finds_active_people_by_name_without_their_private_fields(
    app: FastAPI,
    client: TestClient,
    make_user: UserFactory,
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    make_user("carol", display_name="Carol Danvers", email="carol@corp.example")
    make_user("erin", display_name="Erin 100%_off")
    gone = make_user("frank", display_name="Frank Gone")
    client.patch(f"{API}/users/{gone.id}", json={"is_active": False}, headers=admin_headers)
    session: Session = app.state.sessionmaker()
    try:
        service.system_user(session, on_behalf_of="tests")
        session.commit()
    finally:
        session.close()

    def found(**params: Any) -> list[dict[str, Any]]:
        answer = client.get(DIRECTORY, params=params, headers=member_headers)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    everyone = found()
    # Inactive accounts and the system account are never offered.
    assert [person["username"] for person in everyone] == ["carol", "erin", "mallory", "root"]
    # Only the id and the names: no e-mail, role, state or 2FA.
    assert set(everyone[0]) == {"id", "username", "display_name"}
    assert everyone[0]["display_name"] == "Carol Danvers"
    assert [p["username"] for p in found(q=" DANVERS ")] == ["carol"]
    assert found(q="corp.example") == []  # never matched on e-mail
    assert [p["username"] for p in found(q="0%_o")] == ["erin"]  # wildcards match literally
    assert [p["username"] for p in found(q="%")] == ["erin"]
    assert [p["username"] for p in found(sort="-username", limit=2)] == ["root", "mallory"]

    bad = client.get(DIRECTORY, params={"q": "x" * 101, "limit": 0}, headers=member_headers)
    assert bad.status_code == 422
    assert fields_of(bad) == {"query.q", "query.limit"}
    assert client.get(DIRECTORY).status_code == 401


def test_the_directory_pages_without_gaps(
    client: TestClient, make_user: UserFactory, member_headers: dict[str, str]
) -> None:
    for name in ("carol", "dave", "erin"):
        make_user(name)
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(DIRECTORY, params=params, headers=member_headers).json()
        pages.append([person["username"] for person in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [["carol", "dave"], ["erin", "mallory"]]


def test_the_directory_path_is_not_taken_for_a_user_id(
    client: TestClient, member_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    # Found by the fuzz gate: OPTIONS /users/directory answered with the Allow of
    # /users/{user_id} (GET, PATCH), since "directory" also matched as a user id.
    options = client.options(DIRECTORY, headers=member_headers)
    assert options.status_code == 405
    assert options.headers["Allow"] == "GET"
    patched = client.patch(DIRECTORY, json={"role": "admin"}, headers=admin_headers)
    assert patched.status_code == 405
    assert client.get(f"{API}/users/not-an-id", headers=admin_headers).status_code == 404
