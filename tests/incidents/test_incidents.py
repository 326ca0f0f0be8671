"""Declaring, reading, editing and driving incidents through the API: the contract of issue 13,
the workflow, the roles and who may see what."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import UserFactory, browser_sign_in, error_of, fields_of, sign_in
from tests.incidents.conftest import INCIDENTS, Declare

WORKFLOW = ["investigating", "identified", "monitoring", "resolved", "closed"]


def test_declaring_answers_the_contract(
    client: TestClient, member: Any, member_headers: dict[str, str], catalog: None
) -> None:
    response = client.post(
        INCIDENTS,
        json={
            "title": "  Checkout is failing  ",
            "description": "Payments **time out**.",
            "severity": "SEV1",
            "category": "Database",
            "tags": ["payments", "DB", "db"],
        },
        headers=member_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"{INCIDENTS}/{body['number']}"
    assert isinstance(body["number"], int)
    assert body["key"] == f"INC-{body['number']}"
    assert body["status"] == "triage"
    assert body["title"] == "Checkout is failing"
    assert body["severity"] == "SEV1"
    assert body["category"] == "database"
    assert body["tags"] == ["db", "payments"]
    assert body["visibility"] == "public"
    assert body["reporter"]["username"] == member.username
    assert body["description_html"] == "<p>Payments <strong>time out</strong>.</p>\n"
    assert body["watching"] is True  # the reporter hears about what follows
    assert body["can_edit"] is False  # a reporter is not an editor until assigned
    fetched = client.get(f"{INCIDENTS}/{body['number']}", headers=member_headers).json()
    assert fetched["number"] == body["number"]


def test_numbers_follow_each_other(
    client: TestClient, member_headers: dict[str, str], declare: Declare
) -> None:
    first = declare(member_headers)["number"]
    second = declare(member_headers)["number"]
    assert second == first + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "severity": "SEV5"}, "body.severity"),
        ({"title": "x", "severity": "sev1"}, "body.severity"),
        ({"title": "", "severity": "SEV1"}, "body.title"),
        ({"title": "x" * 201, "severity": "SEV1"}, "body.title"),
        ({"severity": "SEV1"}, "body.title"),
        ({"title": "x", "severity": "SEV1", "visibility": "secret"}, "body.visibility"),
        ({"title": "x", "severity": "SEV1", "status": "closed"}, "body.status"),
        ({"title": "x", "severity": "SEV1", "tags": [f"t{i}" for i in range(1000)]}, "body.tags"),
        ({"title": "x", "severity": "SEV1", "description": "a" * 1_000_000}, "body.description"),
        ({"title": "x", "severity": "SEV1", "category": "nope"}, "category"),
        ({"title": "x", "severity": "SEV1", "tags": ["db", "nope"]}, "tags.1"),
    ],
)
def test_bad_declarations_name_the_field_and_write_nothing(
    client: TestClient,
    member_headers: dict[str, str],
    catalog: None,
    body: dict[str, Any],
    field: str,
) -> None:
    response = client.post(INCIDENTS, json=body, headers=member_headers)
    assert response.status_code == 422, response.text
    assert field in fields_of(response)
    assert client.get(INCIDENTS, headers=member_headers).json()["items"] == []


def test_a_body_over_the_limit_is_refused_at_the_edge(
    client: TestClient, member_headers: dict[str, str]
) -> None:
    response = client.post(
        INCIDENTS,
        content=b'{"title": "x", "severity": "SEV1", "description": "' + b"a" * 3_000_000 + b'"}',
        headers={**member_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_signed_out_callers_are_refused(client: TestClient) -> None:
    assert client.get(INCIDENTS).status_code == 401
    assert client.post(INCIDENTS, json={"title": "x", "severity": "SEV1"}).status_code == 401


def test_cookie_requests_need_the_csrf_token(
    client: TestClient, member: Any, declare: Declare
) -> None:
    csrf = browser_sign_in(client, member.username)
    body = {"title": "From the browser", "severity": "SEV3"}
    refused = client.post(INCIDENTS, json=body)
    assert refused.status_code == 403
    assert client.get(INCIDENTS).json()["items"] == []
    assert client.post(INCIDENTS, json=body, headers=csrf).status_code == 201


# -- the workflow ----------------------------------------------------------------------------


def _transition(client: TestClient, headers: dict[str, str], number: int, to: str) -> Any:
    return client.post(f"{INCIDENTS}/{number}/transition", json={"to": to}, headers=headers)


def test_the_workflow_runs_to_closed_and_stamps_each_step(
    client: TestClient, admin_headers: dict[str, str], declare: Declare
) -> None:
    number = declare(admin_headers)["number"]
    for status in WORKFLOW:
        response = _transition(client, admin_headers, number, status)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    body = client.get(f"{INCIDENTS}/{number}", headers=admin_headers).json()
    declared = body["declared_at"]
    for stamp in ("acknowledged_at", "mitigated_at", "resolved_at", "closed_at"):
        assert body[stamp] is not None
        assert body[stamp] >= declared
    assert body["allowed_transitions"] == ["investigating"]
    kinds = [
        (e["kind"], e["old_value"], e["new_value"])
        for e in client.get(f"{INCIDENTS}/{number}/timeline", headers=admin_headers).json()["items"]
    ]
    assert kinds[0][0] == "declared"
    assert [k for k in kinds if k[0] == "status_changed"] == [
        ("status_changed", old, new)
        for old, new in zip(["triage", *WORKFLOW[:-1]], WORKFLOW, strict=True)
    ]


def test_an_illegal_move_is_a_409_listing_the_allowed_states(
    client: TestClient, admin_headers: dict[str, str], declare: Declare
) -> None:
    number = declare(admin_headers)["number"]
    response = _transition(client, admin_headers, number, "closed")
    assert response.status_code == 409
    allowed = [d["value"] for d in error_of(response)["details"]]
    assert allowed == ["investigating", "identified", "monitoring", "resolved"]
    assert "resolved" in error_of(response)["message"]
    body = client.get(f"{INCIDENTS}/{number}", headers=admin_headers).json()
    assert body["status"] == "triage"
    assert body["acknowledged_at"] is None
    assert _transition(client, admin_headers, number, "escalated").status_code == 422


def test_a_resolved_or_closed_incident_reopens(
    client: TestClient, admin_headers: dict[str, str], declare: Declare
) -> None:
    number = declare(admin_headers)["number"]
    for status in ("resolved", "investigating", "resolved", "closed", "investigating"):
        assert _transition(client, admin_headers, number, status).status_code == 200
    body = client.get(f"{INCIDENTS}/{number}", headers=admin_headers).json()
    assert body["status"] == "investigating"
    assert body["resolved_at"] is None
    assert body["closed_at"] is None
    assert body["acknowledged_at"] is not None


def test_only_editors_move_or_edit_an_incident(
    client: TestClient,
    member: Any,
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
    outsider_headers: dict[str, str],
    declare: Declare,
) -> None:
    number = declare(member_headers)["number"]
    assert _transition(client, outsider_headers, number, "investigating").status_code == 403
    assert _transition(client, member_headers, number, "investigating").status_code == 403
    patch = client.patch(f"{INCIDENTS}/{number}", json={"severity": "SEV1"}, headers=member_headers)
    assert patch.status_code == 403
    # The admin hands the incident to its reporter: now they drive it.
    handed = client.patch(
        f"{INCIDENTS}/{number}", json={"commander": member.username}, headers=admin_headers
    )
    assert handed.status_code == 200
    assert handed.json()["commander"]["username"] == member.username
    assert _transition(client, member_headers, number, "investigating").status_code == 200
    assert _transition(client, outsider_headers, number, "resolved").status_code == 403


def test_assignees_may_drive_and_handovers_are_recorded(
    client: TestClient,
    make_user: UserFactory,
    admin_headers: dict[str, str],
    declare: Declare,
) -> None:
    make_user("alice")
    make_user("bob")
    alice, bob = sign_in(client, "alice"), sign_in(client, "bob")
    number = declare(admin_headers)["number"]
    assigned = client.post(
        f"{INCIDENTS}/{number}/assignees", json={"username": "alice"}, headers=admin_headers
    )
    assert [a["username"] for a in assigned.json()["assignees"]] == ["alice"]
    assert _transition(client, alice, number, "investigating").status_code == 200
    assert (
        client.patch(
            f"{INCIDENTS}/{number}", json={"commander": "alice"}, headers=alice
        ).status_code
        == 200
    )
    assert (
        client.patch(f"{INCIDENTS}/{number}", json={"commander": "bob"}, headers=alice).json()[
            "commander"
        ]["username"]
        == "bob"
    )
    removed = client.delete(f"{INCIDENTS}/{number}/assignees/alice", headers=bob)
    assert removed.json()["assignees"] == []
    assert _transition(client, alice, number, "resolved").status_code == 403
    events = client.get(f"{INCIDENTS}/{number}/timeline", headers=admin_headers).json()["items"]
    handovers = [
        (e["old_value"], e["new_value"]) for e in events if e["kind"] == "commander_changed"
    ]
    assert handovers == [(None, "alice"), ("alice", "bob")]
    assert [e["kind"] for e in events].count("assignee_added") == 1
    assert [e["kind"] for e in events].count("assignee_removed") == 1
    unknown = client.post(
        f"{INCIDENTS}/{number}/assignees", json={"username": "nobody"}, headers=admin_headers
    )
    assert unknown.status_code == 422
    assert fields_of(unknown) == {"username"}


def test_edits_land_on_the_timeline_with_old_and_new(
    client: TestClient, admin_headers: dict[str, str], declare: Declare, catalog: None
) -> None:
    number = declare(admin_headers, category="network")["number"]
    response = client.patch(
        f"{INCIDENTS}/{number}",
        json={
            "title": "Checkout fails for EU users",
            "severity": "SEV1",
            "category": "database",
            "tags": ["db"],
            "description": "# Now with details",
        },
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description_html"] == "<h1>Now with details</h1>\n"
    events = client.get(f"{INCIDENTS}/{number}/timeline", headers=admin_headers).json()["items"]
    changes = {
        (e["kind"], e["data"].get("field"), e["old_value"], e["new_value"]) for e in events[1:]
    }
    assert ("severity_changed", None, "SEV2", "SEV1") in changes
    assert (
        "field_changed",
        "title",
        "Checkout is failing",
        "Checkout fails for EU users",
    ) in changes
    assert ("field_changed", "category", "network", "database") in changes
    assert ("field_changed", "tags", "", "db") in changes
    assert ("field_changed", "description", None, None) in changes
    bad = client.patch(f"{INCIDENTS}/{number}", json={"status": "closed"}, headers=admin_headers)
    assert bad.status_code == 422
    assert "body.status" in fields_of(bad)


def test_sending_category_null_clears_it_and_leaving_it_out_keeps_it(
    client: TestClient, admin_headers: dict[str, str], declare: Declare, catalog: None
) -> None:
    number = declare(admin_headers, category="network")["number"]
    kept = client.patch(f"{INCIDENTS}/{number}", json={"title": "Renamed"}, headers=admin_headers)
    assert kept.status_code == 200, kept.text
    assert kept.json()["category"] == "network"
    cleared = client.patch(f"{INCIDENTS}/{number}", json={"category": None}, headers=admin_headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["category"] is None
    assert client.get(f"{INCIDENTS}/{number}", headers=admin_headers).json()["category"] is None
    again = client.patch(f"{INCIDENTS}/{number}", json={"category": None}, headers=admin_headers)
    assert again.status_code == 200
    events = client.get(f"{INCIDENTS}/{number}/timeline", headers=admin_headers).json()["items"]
    category_changes = [
        (e["old_value"], e["new_value"])
        for e in events
        if e["kind"] == "field_changed" and e["data"].get("field") == "category"
    ]
    assert category_changes == [("network", None)]
    unfiltered = client.get(INCIDENTS, params={"category": "network"}, headers=admin_headers)
    assert [i["number"] for i in unfiltered.json()["items"]] == []


# -- who sees what ----------------------------------------------------------------------------


def test_a_restricted_incident_is_hidden_from_non_participants_on_every_route(
    client: TestClient,
    member_headers: dict[str, str],
    outsider_headers: dict[str, str],
    admin_headers: dict[str, str],
    declare: Declare,
) -> None:
    secret = declare(member_headers, title="Breach", visibility="restricted")["number"]
    public = declare(member_headers, title="Slow page")["number"]
    base = f"{INCIDENTS}/{secret}"
    attempts = [
        client.get(base, headers=outsider_headers),
        client.patch(base, json={"title": "x"}, headers=outsider_headers),
        client.post(f"{base}/transition", json={"to": "resolved"}, headers=outsider_headers),
        client.get(f"{base}/timeline", headers=outsider_headers),
        client.get(f"{base}/comments", headers=outsider_headers),
        client.post(f"{base}/comments", json={"body": "hi"}, headers=outsider_headers),
        client.post(f"{base}/notes", json={"body": "hi"}, headers=outsider_headers),
        client.post(f"{base}/watchers", headers=outsider_headers),
        client.delete(f"{base}/watchers", headers=outsider_headers),
        client.post(f"{base}/assignees", json={"username": "eve"}, headers=outsider_headers),
        client.patch(f"{base}/timeline/1", json={"pinned": True}, headers=outsider_headers),
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request.url, response.text)
    missing = client.get(f"{INCIDENTS}/999999", headers=outsider_headers)
    assert error_of(attempts[0])["message"].replace(str(secret), "N") == error_of(missing)[
        "message"
    ].replace("999999", "N")
    listed = client.get(INCIDENTS, headers=outsider_headers).json()["items"]
    assert [i["number"] for i in listed] == [public]
    assert client.get(base, headers=member_headers).status_code == 200
    assert client.get(base, headers=admin_headers).status_code == 200
    # An admin lets the outsider in by making them watch.
    added = client.post(f"{base}/watchers", json={"username": "eve"}, headers=admin_headers)
    assert added.status_code == 200
    assert client.get(base, headers=outsider_headers).status_code == 200


def test_watching_and_unwatching(
    client: TestClient,
    member_headers: dict[str, str],
    outsider_headers: dict[str, str],
    declare: Declare,
) -> None:
    number = declare(member_headers)["number"]
    watched = client.post(f"{INCIDENTS}/{number}/watchers", headers=outsider_headers)
    assert watched.json()["watching"] is True
    assert {w["username"] for w in watched.json()["watchers"]} == {"mallory", "eve"}
    # A member may not add somebody else.
    other = client.post(
        f"{INCIDENTS}/{number}/watchers", json={"username": "mallory"}, headers=outsider_headers
    )
    assert other.status_code in (200, 403)
    forced = client.delete(
        f"{INCIDENTS}/{number}/watchers", params={"username": "mallory"}, headers=outsider_headers
    )
    assert forced.status_code == 403
    left = client.delete(f"{INCIDENTS}/{number}/watchers", headers=outsider_headers)
    assert left.json()["watching"] is False


# -- comments and notes -----------------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<svg/onload=alert(1)>",
    "<iframe src=//evil.example></iframe>",
]


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """The elements an HTML fragment really contains (text that looks like a tag is not one)."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, dict(attrs)))

    Collector().feed(html)
    return found


def assert_inert(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag not in {"script", "img", "svg", "iframe", "object", "embed", "style"}
        assert not any(name.startswith("on") for name in attrs)
        assert not (attrs.get("href") or "").lower().startswith("javascript")


@pytest.mark.parametrize("payload", XSS)
def test_markdown_is_rendered_inert(
    client: TestClient, member_headers: dict[str, str], declare: Declare, payload: str
) -> None:
    incident = declare(member_headers, title=payload, description=payload)
    comment = client.post(
        f"{INCIDENTS}/{incident['number']}/comments", json={"body": payload}, headers=member_headers
    ).json()
    note = client.post(
        f"{INCIDENTS}/{incident['number']}/notes", json={"body": payload}, headers=member_headers
    ).json()
    for html in (incident["description_html"], comment["body_html"], note["body_html"]):
        assert html.strip()
        assert_inert(html)
    # The title is plain text: stored as sent, escaped by whoever shows it.
    assert incident["title"] == payload


def test_comments_are_edited_with_a_mark_and_deleted_softly(
    client: TestClient,
    member_headers: dict[str, str],
    outsider_headers: dict[str, str],
    admin_headers: dict[str, str],
    declare: Declare,
) -> None:
    number = declare(member_headers)["number"]
    url = f"{INCIDENTS}/{number}/comments"
    comment = client.post(url, json={"body": "Looking into it"}, headers=outsider_headers).json()
    assert comment["edited_at"] is None
    assert comment["author"]["username"] == "eve"
    refused = client.patch(f"{url}/{comment['id']}", json={"body": "x"}, headers=member_headers)
    assert refused.status_code == 403
    edited = client.patch(
        f"{url}/{comment['id']}", json={"body": "Found it"}, headers=outsider_headers
    ).json()
    assert edited["edited_at"] is not None
    assert edited["body_html"] == "<p>Found it</p>\n"
    assert client.delete(f"{url}/{comment['id']}", headers=admin_headers).status_code == 204
    listed = client.get(url, headers=member_headers).json()["items"]
    assert [(c["deleted"], c["body"]) for c in listed] == [(True, "")]
    assert client.delete(f"{url}/{comment['id']}", headers=admin_headers).status_code == 404
    kinds = [
        e["kind"]
        for e in client.get(f"{INCIDENTS}/{number}/timeline", headers=member_headers).json()[
            "items"
        ]
    ]
    assert kinds[-3:] == ["comment_added", "comment_edited", "comment_deleted"]
    empty = client.post(url, json={"body": "   "}, headers=member_headers)
    assert empty.status_code == 422
    assert fields_of(empty) == {"body.body"}


def test_notes_are_added_and_editors_pin_key_events(
    client: TestClient,
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
    declare: Declare,
) -> None:
    number = declare(member_headers)["number"]
    note = client.post(
        f"{INCIDENTS}/{number}/notes",
        json={"body": "Rolled back **v42**"},
        headers=member_headers,
    )
    assert note.status_code == 201
    event = note.json()
    assert event["kind"] == "note"
    assert event["body_html"] == "<p>Rolled back <strong>v42</strong></p>\n"
    pin_url = f"{INCIDENTS}/{number}/timeline/{event['id']}"
    assert client.patch(pin_url, json={"pinned": True}, headers=member_headers).status_code == 403
    assert client.patch(pin_url, json={"pinned": True}, headers=admin_headers).json()["pinned"]
    pinned = client.get(
        f"{INCIDENTS}/{number}/timeline", params={"pinned": "true"}, headers=member_headers
    ).json()["items"]
    assert [e["id"] for e in pinned] == [event["id"]]


# -- lists -----------------------------------------------------------------------------------


def test_filters_narrow_and_pages_cover_everything_once(
    client: TestClient,
    make_user: UserFactory,
    member: Any,
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
    declare: Declare,
    catalog: None,
) -> None:
    numbers = [
        declare(member_headers, severity=f"SEV{1 + i % 4}", tags=["db"] if i % 2 else [])["number"]
        for i in range(7)
    ]
    other = declare(admin_headers, category="network", severity="SEV4")["number"]
    _transition(client, admin_headers, numbers[0], "investigating")

    def listed(**params: Any) -> list[int]:
        response = client.get(INCIDENTS, params=params, headers=member_headers)
        assert response.status_code == 200, response.text
        return [i["number"] for i in response.json()["items"]]

    assert listed() == sorted([*numbers, other], reverse=True)
    assert listed(severity="SEV1") == [numbers[4], numbers[0]]
    assert listed(severity=["SEV1", "SEV2"]) == [numbers[5], numbers[4], numbers[1], numbers[0]]
    assert listed(status="investigating") == [numbers[0]]
    assert listed(tag="db") == [numbers[5], numbers[3], numbers[1]]
    assert listed(category="network") == [other]
    assert listed(reporter=member.username, sort="number") == numbers
    assert listed(mine="true") == sorted(numbers, reverse=True)
    assert listed(commander="nobody") == []
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "sort": "number"}
        if cursor:
            params["cursor"] = cursor
        page = client.get(INCIDENTS, params=params, headers=member_headers).json()
        seen += [i["number"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted([*numbers, other])


INJECTIONS = ["' OR 1=1 --", "%", "_", '"; DROP TABLE incidents; --', "*", "\\", "db' --"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_sql_ish_filter_values_match_nothing_and_never_fail(
    client: TestClient, member_headers: dict[str, str], declare: Declare, value: str
) -> None:
    declare(member_headers)
    for name in ("category", "tag", "commander", "assignee", "reporter"):
        response = client.get(INCIDENTS, params={name: value}, headers=member_headers)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["items"] == []
    for name in ("status", "severity", "sort", "since", "limit", "cursor"):
        response = client.get(INCIDENTS, params={name: value}, headers=member_headers)
        assert response.status_code == 422, (name, response.text)
        assert any(f.startswith(f"query.{name}") for f in fields_of(response)), fields_of(response)
    assert client.get(f"{INCIDENTS}/{value}", headers=member_headers).status_code in (404, 422)


def test_attachment_names_lose_directories_and_control_characters() -> None:
    from opsdeck.core.uploads import clean_name

    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("C:\\Users\\eve\\report.pdf") == "report.pdf"
    assert clean_name("a\r\nX-Injected: 1.txt") == "a_X-Injected: 1.txt"
    assert clean_name('"quoted".txt') == "_quoted_.txt"
    assert clean_name("...") == "attachment"
    assert clean_name(None) == "attachment"
    assert len(clean_name("é" * 300)) == 255
