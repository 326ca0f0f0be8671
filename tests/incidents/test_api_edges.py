"""The edges the API fuzzer found: what the OpenAPI document says is what the server does."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import fields_of
from tests.incidents.conftest import INCIDENTS, Declare


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/tags", {"GET", "POST"}),
        ("/categories", {"GET", "POST"}),
        ("/follow-ups", {"GET"}),
        ("/integrations/generic", {"POST"}),
    ],
)
def test_a_fixed_path_is_not_read_as_an_incident_number(
    client: TestClient, admin_headers: dict[str, str], path: str, allowed: set[str]
) -> None:
    response = client.request("PUT", f"{INCIDENTS}{path}", json={}, headers=admin_headers)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == allowed


@pytest.mark.parametrize(
    "url",
    [
        f"{INCIDENTS}?until=0.5",
        f"{INCIDENTS}?since=1700000000",
        f"{INCIDENTS}/stats?until=0.5",
        f"{INCIDENTS}/export.csv?since=0.5",
    ],
)
def test_a_number_is_not_a_date(
    client: TestClient, member_headers: dict[str, str], url: str
) -> None:
    response = client.get(url, headers=member_headers)
    assert response.status_code == 422
    assert fields_of(response) & {"query.since", "query.until"}


def test_booleans_are_booleans_and_lengths_are_checked_as_sent(
    client: TestClient,
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
    declare: Declare,
) -> None:
    number = declare(member_headers)["number"]
    note = client.post(
        f"{INCIDENTS}/{number}/notes", json={"body": "x", "pinned": 0}, headers=member_headers
    )
    assert note.status_code == 422
    assert fields_of(note) == {"body.pinned"}
    padded = client.post(
        f"{INCIDENTS}/{number}/notes", json={"body": "\t" * 20_001}, headers=member_headers
    )
    assert padded.status_code == 422
    long_title = client.post(
        INCIDENTS, json={"title": " " * 150 + "x" * 100, "severity": "SEV3"}, headers=member_headers
    )
    assert long_title.status_code == 422
    assert fields_of(long_title) == {"body.title"}
    blank = client.post(
        INCIDENTS, json={"title": "   ", "severity": "SEV3"}, headers=member_headers
    )
    assert blank.status_code == 422
    trimmed = client.post(
        INCIDENTS, json={"title": "  Disk full  ", "severity": "SEV3"}, headers=member_headers
    )
    assert trimmed.json()["title"] == "Disk full"
    template = client.post(
        f"{INCIDENTS}/postmortem-templates",
        json={"name": "t", "body": "b", "is_default": 0},
        headers=admin_headers,
    )
    assert template.status_code == 422


def test_the_unsubscribe_page_documents_its_errors_as_json(client: TestClient) -> None:
    document: dict[str, Any] = client.get("/api/v1/openapi.json").json()
    for method in ("get", "post"):
        responses = document["paths"][f"{INCIDENTS}/unsubscribe"][method]["responses"]
        assert set(responses["200"]["content"]) == {"text/html"}
        for status in ("400", "422", "503"):
            assert set(responses[status]["content"]) == {"application/json"}
    answer = client.post(f"{INCIDENTS}/unsubscribe")
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/json")


def test_an_alert_count_is_an_integer() -> None:
    from pydantic import ValidationError

    from opsdeck.incidents.schemas import AlertmanagerPayload

    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "status": "firing",
        "receiver": "opsdeck",
        "alerts": [{"labels": {}, "status": "firing"}],
        "truncatedAlerts": 0,
    }
    assert AlertmanagerPayload.model_validate(payload).truncated_alerts == 0
    with pytest.raises(ValidationError):
        AlertmanagerPayload.model_validate({**payload, "truncatedAlerts": False})


def test_renaming_a_category_to_a_taken_non_ascii_name_is_a_conflict(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    url = f"{INCIDENTS}/categories"
    taken = client.post(url, json={"name": "Überlast Ï"}, headers=admin_headers)
    assert taken.status_code == 201
    other = client.post(url, json={"name": "other"}, headers=admin_headers).json()
    renamed = client.patch(
        f"{url}/{other['id']}", json={"name": "Überlast Ï"}, headers=admin_headers
    )
    assert renamed.status_code == 409
    assert fields_of(renamed) == {"name"}
    again = client.post(url, json={"name": "Überlast Ï"}, headers=admin_headers)
    assert again.status_code == 409
