"""Postmortems: started from a template with the pinned timeline, edited by the incident's
editors, draft -> in_review -> published (reopened by admins only), read by everybody who sees
the incident and nobody else, rendered inert; and the admins' templates."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.incidents.models import (
    EventKind,
    PostmortemTemplate,
    TimelineEvent,
)
from opsdeck.incidents.schemas import MARKDOWN_MAX
from tests.conftest import API, error_of
from tests.incidents.conftest import NewIncident


def _url(number: int, tail: str = "") -> str:
    return f"{API}/incidents/{number}/postmortem{tail}"


def _events(app: FastAPI, number: int, kind: EventKind) -> list[TimelineEvent]:
    session: Session = app.state.sessionmaker()
    try:
        return list(
            session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.incident_number == number, TimelineEvent.kind == kind)
                .order_by(TimelineEvent.id)
            )
        )
    finally:
        session.close()


def test_a_postmortem_starts_from_the_default_template_with_the_pinned_events(
    client: TestClient, app: FastAPI, new_incident: NewIncident, carol_headers: dict[str, str]
) -> None:
    number = new_incident(
        notes=("Not a key event",), pins=("Rolled back the deploy", "Error rate back to normal")
    )

    assert client.get(_url(number), headers=carol_headers).status_code == 404

    response = client.post(_url(number), headers=carol_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "draft"
    assert body["key"] == f"INC-{number}"
    assert body["author"]["username"] == "carol"
    assert body["can_edit"] is True
    assert body["allowed_transitions"] == ["in_review"]
    markdown = body["body"]
    for section in (
        "## Summary",
        "## Impact",
        "## Timeline",
        "## Root causes",
        "## What went well",
        "## What went badly",
        "## Follow-ups",
    ):
        assert section in markdown
    assert f"# INC-{number}: Checkout is down" in markdown
    assert "{{" not in markdown
    # The pinned events, in order, "HH:MM UTC — what"; the unpinned note is left out.
    lines = re.findall(r"^- \d\d:\d\d UTC — (.*)$", markdown, flags=re.MULTILINE)
    assert lines == ["Rolled back the deploy (carol)", "Error rate back to normal (carol)"]
    assert "Not a key event" not in markdown
    assert "<h2>Timeline</h2>" in body["body_html"]

    assert client.get(_url(number), headers=carol_headers).json() == body
    [event] = _events(app, number, EventKind.POSTMORTEM_CHANGED)
    assert event.new_value == "draft"
    assert event.data["action"] == "created"

    again = client.post(_url(number), headers=carol_headers)
    assert again.status_code == 409
    assert len(_events(app, number, EventKind.POSTMORTEM_CHANGED)) == 1


def test_without_pinned_events_the_timeline_says_how_to_fill_it(
    client: TestClient, new_incident: NewIncident, carol_headers: dict[str, str]
) -> None:
    number = new_incident()
    body = client.post(_url(number), headers=carol_headers).json()
    assert "pin the key events" in body["body"]


def test_the_built_in_template_is_created_on_first_use(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.get(f"{API}/incidents/postmortem-templates", headers=admin_headers)
    assert response.status_code == 200
    [template] = response.json()
    assert template["name"] == "Default"
    assert template["is_default"] is True
    assert "{{timeline}}" in template["body"]
    # Read again: still one.
    assert (
        len(client.get(f"{API}/incidents/postmortem-templates", headers=admin_headers).json()) == 1
    )


def test_the_workflow_and_its_409s(
    client: TestClient,
    app: FastAPI,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    number = new_incident()
    client.post(_url(number), headers=carol_headers)

    refused = client.post(
        _url(number, "/transition"), json={"to": "published"}, headers=carol_headers
    )
    assert refused.status_code == 409
    error = error_of(refused)
    assert [d["value"] for d in error["details"]] == ["in_review"]
    assert {d["field"] for d in error["details"]} == {"to"}

    review = client.post(
        _url(number, "/transition"), json={"to": "in_review"}, headers=carol_headers
    )
    assert review.status_code == 200
    assert review.json()["allowed_transitions"] == ["draft", "published"]
    back = client.post(_url(number, "/transition"), json={"to": "draft"}, headers=carol_headers)
    assert back.json()["status"] == "draft"
    client.post(_url(number, "/transition"), json={"to": "in_review"}, headers=carol_headers)
    published = client.post(
        _url(number, "/transition"), json={"to": "published"}, headers=carol_headers
    )
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert published.json()["published_at"] is not None
    assert published.json()["can_edit"] is False
    assert published.json()["allowed_transitions"] == []

    # Published is final for editors: no edit, no move back.
    edit = client.put(_url(number), json={"body": "rewritten"}, headers=carol_headers)
    assert edit.status_code == 409
    reopen = client.post(_url(number, "/transition"), json={"to": "draft"}, headers=carol_headers)
    assert reopen.status_code == 409
    assert error_of(reopen)["details"] == []
    assert "admin may reopen" in error_of(reopen)["message"]

    # An admin reopens it.
    assert client.get(_url(number), headers=admin_headers).json()["allowed_transitions"] == [
        "draft"
    ]
    reopened = client.post(_url(number, "/transition"), json={"to": "draft"}, headers=admin_headers)
    assert reopened.status_code == 200
    assert reopened.json()["status"] == "draft"
    assert reopened.json()["published_at"] is None
    edited = client.put(_url(number), json={"body": "rewritten"}, headers=carol_headers)
    assert edited.status_code == 200
    assert edited.json()["body"] == "rewritten"

    actions = [e.data["action"] for e in _events(app, number, EventKind.POSTMORTEM_CHANGED)]
    assert actions == ["created", "status", "status", "status", "status", "reopened", "edited"]


def test_bad_transition_and_body_input_is_refused(
    client: TestClient, new_incident: NewIncident, carol_headers: dict[str, str]
) -> None:
    number = new_incident()
    client.post(_url(number), headers=carol_headers)
    unknown = client.post(_url(number, "/transition"), json={"to": "bogus"}, headers=carol_headers)
    assert unknown.status_code == 422
    assert any("to" in (d.get("field") or "") for d in error_of(unknown)["details"])
    too_long = client.put(
        _url(number), json={"body": "x" * (MARKDOWN_MAX + 1)}, headers=carol_headers
    )
    assert too_long.status_code == 422
    assert any("body" in (d.get("field") or "") for d in error_of(too_long)["details"])
    extra = client.put(
        _url(number), json={"body": "ok", "status": "published"}, headers=carol_headers
    )
    assert extra.status_code == 422
    unknown_template = client.post(
        _url(new_incident()), json={"template_id": "nope"}, headers=carol_headers
    )
    assert unknown_template.status_code == 422
    assert [d["field"] for d in error_of(unknown_template)["details"]] == ["template_id"]


def test_only_editors_write_and_everybody_who_sees_the_incident_reads(
    client: TestClient,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    member_headers: dict[str, str],
) -> None:
    number = new_incident()
    assert client.post(_url(number), headers=member_headers).status_code == 403
    client.post(_url(number), headers=carol_headers)
    read = client.get(_url(number), headers=member_headers)
    assert read.status_code == 200
    assert read.json()["can_edit"] is False
    assert read.json()["allowed_transitions"] == []
    assert (
        client.put(_url(number), json={"body": "mine"}, headers=member_headers).status_code == 403
    )
    moved = client.post(
        _url(number, "/transition"), json={"to": "in_review"}, headers=member_headers
    )
    assert moved.status_code == 403
    assert client.get(_url(number)).status_code == 401


def test_a_restricted_incidents_postmortem_is_invisible_to_outsiders(
    client: TestClient,
    new_incident: NewIncident,
    carol_headers: dict[str, str],
    member_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    number = new_incident(restricted=True)
    # Before it exists and after: the same 404 as a number that does not exist.
    assert client.post(_url(number), headers=member_headers).status_code == 404
    client.post(_url(number), headers=carol_headers)
    for method, tail, payload in (
        ("GET", "", None),
        ("PUT", "", {"body": "leak"}),
        ("POST", "", None),
        ("POST", "/transition", {"to": "in_review"}),
    ):
        response = client.request(method, _url(number, tail), json=payload, headers=member_headers)
        assert response.status_code == 404, (method, tail, response.text)
        assert "leak" not in response.text
    assert client.get(_url(number), headers=admin_headers).status_code == 200
    assert client.get(_url(999_999), headers=member_headers).status_code == 404


XSS = (
    "<script>alert(1)</script>\n\n"
    "<img src=x onerror=alert(2)>\n\n"
    "[click](javascript:alert(3))\n\n"
    '<a href="javascript:alert(4)">x</a>\n\n'
    "**bold**"
)


def test_a_postmortem_body_with_script_is_rendered_inert(
    client: TestClient, new_incident: NewIncident, carol_headers: dict[str, str]
) -> None:
    number = new_incident(pins=("<script>alert('pin')</script>",))
    created = client.post(_url(number), headers=carol_headers).json()
    assert "<script" not in created["body_html"]
    response = client.put(_url(number), json={"body": XSS}, headers=carol_headers)
    assert response.status_code == 200
    html = response.json()["body_html"]
    assert "<strong>bold</strong>" in html
    assert "<script" not in html
    assert "<img" not in html
    # Whatever is left of the payload is text, never inside a tag.
    assert re.search(r"<[^>]*(onerror|javascript)", html) is None
    # The Markdown source is returned as written (it is text, shown in an editor).
    assert response.json()["body"] == XSS


def test_templates_are_managed_by_admins(
    client: TestClient,
    new_incident: NewIncident,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    carol_headers: dict[str, str],
) -> None:
    url = f"{API}/incidents/postmortem-templates"
    short = {"name": "Short", "body": "# {{key}} ({{severity}})\n\n{{timeline}}\n\n{{title}}"}
    assert client.post(url, json=short, headers=member_headers).status_code == 403
    created = client.post(url, json={**short, "is_default": True}, headers=admin_headers)
    assert created.status_code == 201, created.text
    template = created.json()
    assert template["is_default"] is True
    listed = client.get(url, headers=member_headers).json()
    assert [t["name"] for t in listed] == ["Short"]

    duplicate = client.post(url, json={**short, "name": "short"}, headers=admin_headers)
    assert duplicate.status_code == 409
    assert error_of(duplicate)["details"][0]["field"] == "name"
    assert (
        client.post(url, json={"name": "", "body": "x"}, headers=admin_headers).status_code == 422
    )

    number = new_incident(title="Search is slow")
    body = client.post(_url(number), headers=carol_headers).json()["body"]
    assert body.startswith(f"# INC-{number} (SEV2)")
    assert body.endswith("Search is slow")

    # Another template as the default; the first one is no longer.
    other = client.post(
        url,
        json={"name": "Long", "body": "long {{title}}", "is_default": True},
        headers=admin_headers,
    ).json()
    names = {t["name"]: t["is_default"] for t in client.get(url, headers=admin_headers).json()}
    assert names == {"Short": False, "Long": True}
    # Chosen explicitly.
    chosen = client.post(
        _url(new_incident(title="Picked")),
        json={"template_id": template["id"]},
        headers=carol_headers,
    )
    assert chosen.json()["body"].endswith("Picked")

    item = f"{url}/{template['id']}"
    assert client.put(item, json={"body": "x"}, headers=member_headers).status_code == 403
    renamed = client.put(item, json={"name": "Brief", "is_default": True}, headers=admin_headers)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Brief"
    assert renamed.json()["is_default"] is True
    taken = client.put(item, json={"name": "long"}, headers=admin_headers)
    assert taken.status_code == 409
    assert client.delete(item, headers=member_headers).status_code == 403
    assert client.delete(item, headers=admin_headers).status_code == 204
    assert client.delete(item, headers=admin_headers).status_code == 404
    assert client.put(item, json={"body": "x"}, headers=admin_headers).status_code == 404
    # No default left: the next postmortem brings the built-in one back.
    client.put(f"{url}/{other['id']}", json={"is_default": False}, headers=admin_headers)
    fallback = client.post(_url(new_incident()), headers=carol_headers).json()["body"]
    assert "## What went badly" in fallback
    names = {t["name"]: t["is_default"] for t in client.get(url, headers=admin_headers).json()}
    assert names == {"Default": True, "Long": False}
    audited = client.get(
        f"{API}/audit?action=incident.postmortem_template.&sort=id&limit=50", headers=admin_headers
    ).json()["items"]
    assert [(e["action"], e["actor"]) for e in audited] == [
        ("incident.postmortem_template.created", "root"),
        ("incident.postmortem_template.created", "root"),
        ("incident.postmortem_template.updated", "root"),
        ("incident.postmortem_template.deleted", "root"),
        ("incident.postmortem_template.updated", "root"),
    ]


def test_template_bodies_are_not_format_strings(
    app: FastAPI,
    client: TestClient,
    new_incident: NewIncident,
    admin_headers: dict[str, str],
    carol_headers: dict[str, str],
) -> None:
    """Only the documented placeholders are replaced; braces of any other kind stay."""
    url = f"{API}/incidents/postmortem-templates"
    weird = "{0} {title} {{unknown}} {__class__} {{title}}"
    client.post(
        url, json={"name": "Weird", "body": weird, "is_default": True}, headers=admin_headers
    )
    body = client.post(_url(new_incident(title="T")), headers=carol_headers).json()["body"]
    assert body == "{0} {title} {{unknown}} {__class__} T"
    session: Session = app.state.sessionmaker()
    try:
        assert session.scalar(select(PostmortemTemplate.name).where(PostmortemTemplate.is_default))
    finally:
        session.close()


def test_a_taken_non_ascii_template_name_is_a_409(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    """lower() folds ASCII only (SQLite, PostgreSQL with the C locale): the same name written
    again is still found, a 409 and never the unique constraint's 500 (found by the fuzz gate)."""
    url = f"{API}/incidents/postmortem-templates"
    body = {"name": "Überlast Ñ review", "body": "# Summary"}
    assert client.post(url, json=body, headers=admin_headers).status_code == 201
    again = client.post(url, json=body, headers=admin_headers)
    assert again.status_code == 409
    assert error_of(again)["details"][0]["field"] == "name"
