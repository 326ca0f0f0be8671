"""Incidents fixtures: the people of an incident (a commander, an outsider), categories and
tags made by an admin, `declare` through the API and `new_incident` through the service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from opsdeck.incidents.models import Severity, Visibility
from opsdeck.incidents.service import comments, incidents
from opsdeck.incidents.service.stats_cache import stats_cache
from opsdeck.settings import Settings
from tests.conftest import API, UserFactory, sign_in

INCIDENTS = f"{API}/incidents"
Declare = Callable[..., dict[str, Any]]
NewIncident = Callable[..., int]


@pytest.fixture(autouse=True)
def _forget_cached_stats(base_settings: Settings) -> Iterator[None]:
    """The stats cache (Redis or this process) outlives a test's tables: on SQLite, emptied
    tables hand out the same event ids again, so an answer of the last test could match."""
    yield
    stats_cache(base_settings).clear()


@pytest.fixture
def outsider_headers(client: TestClient, make_user: UserFactory) -> dict[str, str]:
    """A second member: the one every IDOR test tries to get in with."""
    make_user("eve", display_name="Eve Outsider")
    return sign_in(client, "eve")


@pytest.fixture
def carol(make_user: UserFactory) -> Any:
    """The commander of the incidents `new_incident` declares (an editor, not an admin)."""
    return make_user("carol", display_name="Carol Commander")


@pytest.fixture
def carol_headers(client: TestClient, carol: Any) -> dict[str, str]:
    return sign_in(client, carol.username)


@pytest.fixture
def new_incident(app: FastAPI, admin: Any, carol: Any) -> NewIncident:
    """Declare an incident through the service (by the admin) with carol as its commander and
    carol's timeline `notes` and pinned `pins`; its number."""

    def factory(
        *,
        restricted: bool = False,
        title: str = "Checkout is down",
        notes: tuple[str, ...] = (),
        pins: tuple[str, ...] = (),
    ) -> int:
        session: Session = app.state.sessionmaker()
        try:
            incident = incidents.declare(
                session,
                admin,
                title=title,
                severity=Severity.SEV2,
                visibility=Visibility.RESTRICTED if restricted else Visibility.PUBLIC,
            )
            number = incident.number
            incidents.update(session, admin, number, incidents.Edits(commander=carol.username))
            for text in notes:
                comments.add_note(session, carol, number, text, pinned=False)
            for text in pins:
                comments.add_note(session, carol, number, text, pinned=True)
            session.commit()
            return number
        finally:
            session.close()

    return factory


@pytest.fixture
def catalog(client: TestClient, admin_headers: dict[str, str]) -> None:
    """The categories (database, network) and tags (db, payments) the tests name."""
    for name in ("database", "network"):
        assert (
            client.post(
                f"{INCIDENTS}/categories", json={"name": name}, headers=admin_headers
            ).status_code
            == 201
        )
    for name in ("db", "payments"):
        assert (
            client.post(f"{INCIDENTS}/tags", json={"name": name}, headers=admin_headers).status_code
            == 201
        )


@pytest.fixture
def declare(client: TestClient) -> Declare:
    """Declare an incident through the API; the 201 answer's body."""

    def factory(headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {"title": "Checkout is failing", "severity": "SEV2", **fields}
        response = client.post(INCIDENTS, json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    return factory
