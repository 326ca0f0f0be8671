"""Alerts in: integrations an admin creates (token shown once, stored hashed), Alertmanager's
webhook (version 4) and the generic JSON webhook opening, appending to and resolving incidents,
deduplicated by group, idempotent under retries, rate limited, and their bad input."""

from __future__ import annotations

import copy
import json
import threading
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.audit.models import AuditEntry
from opsdeck.incidents.models import (
    AlertDelivery,
    Category,
    EventKind,
    Incident,
    IncidentStatus,
    Integration,
    TimelineEvent,
)
from opsdeck.incidents.module import MAX_BODY_BYTES
from opsdeck.incidents.service.integrations import ALERTS_RATE_LIMIT
from tests.conftest import API, FakeClock, bearer, error_of, fields_of

INTEGRATIONS = f"{API}/incidents/integrations"
ALERTMANAGER = f"{INTEGRATIONS}/alertmanager"
GENERIC = f"{INTEGRATIONS}/generic"
GROUP_KEY = '{}/{severity="critical"}:{alertname="ProbeFailure"}'


def alertmanager_payload(
    status: str = "firing", *, group_key: str = GROUP_KEY, **changes: Any
) -> dict[str, Any]:
    """A notification as Alertmanager sends it (webhook_config, version 4)."""
    payload: dict[str, Any] = {
        "receiver": "opsdeck",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "ProbeFailure",
                    "instance": "https://server.example.org",
                    "job": "http_checks",
                    "monitor": "master",
                    "severity": "critical",
                },
                "annotations": {
                    "description": "Instance https://server.example.org has been down for "
                    "over 5m. Job: http_checks",
                    "summary": "BlackBox Probe Failure: https://server.example.org",
                },
                "startsAt": "2023-02-06T13:08:45.828Z",
                "endsAt": "0001-01-01T00:00:00Z"
                if status == "firing"
                else "2023-02-06T13:38:45.828Z",
                "generatorURL": "http://prometheus.example.org:9090/graph?"
                "g0.expr=probe_success+%3D%3D+0&g0.tab=1",
                "fingerprint": "1a30ba71cca2921f",
            }
        ],
        "groupLabels": {"alertname": "ProbeFailure"},
        "commonLabels": {
            "alertname": "ProbeFailure",
            "instance": "https://server.example.org",
            "job": "http_checks",
            "monitor": "master",
            "severity": "critical",
        },
        "commonAnnotations": {
            "description": "Instance https://server.example.org has been down for over 5m. "
            "Job: http_checks",
            "summary": "BlackBox Probe Failure: https://server.example.org",
        },
        "externalURL": "http://alertmanager.example.org:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }
    payload.update(changes)
    return payload


def second_alert(payload: dict[str, Any], instance: str = "https://other.example.org") -> None:
    """Add another alert of the same group (a repeat notification that differs)."""
    alert = copy.deepcopy(payload["alerts"][0])
    alert["labels"]["instance"] = instance
    alert["fingerprint"] = "2b41cb82ddbe3a30"
    payload["alerts"].append(alert)
    payload["commonLabels"].pop("instance", None)


def create_integration(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("name", "prometheus")
    body.setdefault("kind", "alertmanager")
    response = client.post(INTEGRATIONS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def integration(client: TestClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    return create_integration(client, admin_headers)


@pytest.fixture
def token(integration: dict[str, Any]) -> str:
    value: str = integration["token"]
    return value


def post_alert(
    client: TestClient, token: str, payload: dict[str, Any], url: str = ALERTMANAGER
) -> httpx.Response:
    response: httpx.Response = client.post(url, json=payload, headers=bearer(token))
    return response


def incidents_of(db: Session) -> list[Incident]:
    db.expire_all()
    rows = list(db.scalars(select(Incident).order_by(Incident.number)))
    db.commit()
    return rows


def events_of(db: Session, number: int, kind: EventKind | None = None) -> list[TimelineEvent]:
    db.expire_all()
    query = select(TimelineEvent).where(TimelineEvent.incident_number == number)
    if kind is not None:
        query = query.where(TimelineEvent.kind == kind)
    rows = list(db.scalars(query.order_by(TimelineEvent.id)))
    db.commit()
    return rows


def count(db: Session, model: type[Any]) -> int:
    total = db.scalar(select(func.count()).select_from(model)) or 0
    db.commit()
    return int(total)


def audit_actions(db: Session, prefix: str) -> list[AuditEntry]:
    rows = list(
        db.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)
        )
    )
    db.commit()
    return rows


# -- administration ---------------------------------------------------------------------------


def test_an_admin_creates_an_integration_whose_token_is_shown_once(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    created = create_integration(
        client, admin_headers, name="Prometheus EU", resolve_on_recovery=True
    )

    token = created["token"]
    assert token.startswith("opi_")
    assert len(token) > 40
    assert created["token_prefix"] == token[:12]
    assert created["kind"] == "alertmanager"
    assert created["url"] == ALERTMANAGER
    assert created["active"] is True
    assert created["resolve_on_recovery"] is True
    assert created["severity_label"] == "severity"
    assert created["severity_map"]["critical"] == "SEV1"
    listed = client.get(INTEGRATIONS, headers=admin_headers)
    assert listed.status_code == 200
    assert [item["name"] for item in listed.json()["items"]] == ["Prometheus EU"]
    assert "token" not in listed.json()["items"][0]
    assert token not in listed.text
    row = db.scalars(select(Integration)).one()
    assert row.token_hash != token
    assert token not in row.token_hash
    db.commit()
    [entry] = audit_actions(db, "incidents.integration.")
    assert entry.action == "incidents.integration.created"
    assert entry.actor == "root"
    assert entry.target_id == created["id"]
    assert entry.details == {
        "name": "Prometheus EU",
        "kind": "alertmanager",
        "token_prefix": created["token_prefix"],
    }
    assert token not in json.dumps(entry.details)


def test_members_cannot_create_list_or_revoke_integrations(
    client: TestClient,
    member_headers: dict[str, str],
    integration: dict[str, Any],
) -> None:
    created = client.post(
        INTEGRATIONS, json={"name": "sneaky", "kind": "generic"}, headers=member_headers
    )
    listed = client.get(INTEGRATIONS, headers=member_headers)
    revoked = client.delete(f"{INTEGRATIONS}/{integration['id']}", headers=member_headers)

    assert [created.status_code, listed.status_code, revoked.status_code] == [403, 403, 403]
    assert error_of(created)["code"] == "forbidden"
    assert client.post(INTEGRATIONS, json={"name": "anon", "kind": "generic"}).status_code == 401


def test_bad_integration_input_names_the_field(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    def refused(body: dict[str, Any]) -> httpx.Response:
        response: httpx.Response = client.post(INTEGRATIONS, json=body, headers=admin_headers)
        assert response.status_code in (409, 422), response.text
        return response

    assert fields_of(refused({"name": "x", "kind": "nagios"})) == {"body.kind"}
    assert fields_of(refused({"kind": "generic"})) == {"body.name"}
    assert fields_of(
        refused({"name": "x", "kind": "generic", "severity_map": {"critical": "SEV9"}})
    ) == {"body.severity_map.critical"}
    assert fields_of(refused({"name": "x", "kind": "generic", "default_severity": "P1"})) == {
        "body.default_severity"
    }
    assert fields_of(refused({"name": "x", "kind": "generic", "category": "Nope"})) == {
        "body.category"
    }
    assert fields_of(refused({"name": "x", "kind": "generic", "token": "mine"})) == {"body.token"}
    assert count(db, Integration) == 0
    create_integration(client, admin_headers, name="Twice")
    duplicate = refused({"name": "twice", "kind": "generic"})
    assert duplicate.status_code == 409
    assert fields_of(duplicate) == {"body.name"}


def test_revoking_an_integration_refuses_its_token_and_is_audited(
    client: TestClient,
    admin_headers: dict[str, str],
    integration: dict[str, Any],
    token: str,
    db: Session,
) -> None:
    assert post_alert(client, token, alertmanager_payload()).status_code == 201

    revoked = client.delete(f"{INTEGRATIONS}/{integration['id']}", headers=admin_headers)
    again = client.delete(f"{INTEGRATIONS}/{integration['id']}", headers=admin_headers)

    assert (revoked.status_code, again.status_code) == (204, 204)
    refused = post_alert(client, token, alertmanager_payload(group_key="other"))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    [item] = client.get(INTEGRATIONS, headers=admin_headers).json()["items"]
    assert item["active"] is False
    assert item["revoked_at"] is not None
    assert item["last_used_at"] is not None
    assert [e.action for e in audit_actions(db, "incidents.integration.")] == [
        "incidents.integration.created",
        "incidents.integration.revoked",
    ]
    assert len(incidents_of(db)) == 1  # the incident it declared stays
    missing = client.delete(f"{INTEGRATIONS}/nope", headers=admin_headers)
    assert missing.status_code == 404


def patch_integration(
    client: TestClient, headers: dict[str, str], integration_id: str, body: dict[str, Any]
) -> httpx.Response:
    response: httpx.Response = client.patch(
        f"{INTEGRATIONS}/{integration_id}", json=body, headers=headers
    )
    return response


def test_an_admin_edits_an_integrations_severity_map_and_the_next_alerts_use_it(
    client: TestClient,
    admin_headers: dict[str, str],
    integration: dict[str, Any],
    token: str,
    db: Session,
) -> None:
    first = post_alert(client, token, alertmanager_payload(group_key="before"))
    assert incidents_of(db)[0].severity == "SEV1"  # critical -> SEV1, the default map

    edited = patch_integration(
        client,
        admin_headers,
        integration["id"],
        {
            "name": "Prometheus EU",
            "severity_map": {"CRITICAL": "SEV2", "page": "SEV1"},
            "default_severity": "SEV4",
            "resolve_on_recovery": True,
        },
    )

    assert first.status_code == 201
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["name"] == "Prometheus EU"
    assert body["severity_map"] == {"critical": "SEV2", "page": "SEV1"}
    assert body["default_severity"] == "SEV4"
    assert body["resolve_on_recovery"] is True
    # What was not sent stays; the token is never shown again and still works.
    assert body["severity_label"] == "severity"
    assert body["kind"] == "alertmanager"
    assert body["token_prefix"] == integration["token_prefix"]
    assert "token" not in body
    [listed] = client.get(INTEGRATIONS, headers=admin_headers).json()["items"]
    assert listed["severity_map"] == {"critical": "SEV2", "page": "SEV1"}
    assert listed["name"] == "Prometheus EU"

    after = post_alert(client, token, alertmanager_payload(group_key="after"))
    unmapped = alertmanager_payload(group_key="unmapped")
    unmapped["commonLabels"]["severity"] = "whatever"
    unmapped["alerts"][0]["labels"]["severity"] = "whatever"
    assert post_alert(client, token, unmapped).status_code == 201
    assert after.status_code == 201
    assert [i.severity for i in incidents_of(db)] == ["SEV1", "SEV2", "SEV4"]
    # resolve_on_recovery now on: the recovery resolves the incident.
    resolved = post_alert(client, token, alertmanager_payload("resolved", group_key="after"))
    assert resolved.json()["outcome"] == "resolved"


def test_editing_an_integration_is_audited_with_what_changed(
    client: TestClient, admin_headers: dict[str, str], integration: dict[str, Any], db: Session
) -> None:
    db.add(Category(name="Networking"))
    db.commit()
    body = {"severity_map": {"critical": "SEV2"}, "category": "networking"}
    assert patch_integration(client, admin_headers, integration["id"], body).status_code == 200
    # The same again changes nothing, and nothing more is audited.
    again = patch_integration(client, admin_headers, integration["id"], body)
    cleared = patch_integration(client, admin_headers, integration["id"], {"category": None})

    assert again.status_code == 200
    assert cleared.json()["category"] is None
    entries = audit_actions(db, "incidents.integration.")
    assert [e.action for e in entries] == [
        "incidents.integration.created",
        "incidents.integration.updated",
        "incidents.integration.updated",
    ]
    updated = entries[1]
    assert updated.actor == "root"
    assert updated.target_type == "incident_integration"
    assert updated.target_id == integration["id"]
    assert updated.details == {
        "name": "prometheus",
        "kind": "alertmanager",
        "token_prefix": integration["token_prefix"],
        "changes": {
            "severity_map": {
                "old": {"critical": "SEV1", "error": "SEV2", "warning": "SEV3", "info": "SEV4"},
                "new": {"critical": "SEV2"},
            },
            "category": {"old": None, "new": "Networking"},
        },
    }
    assert entries[2].details["changes"] == {"category": {"old": "Networking", "new": None}}
    assert integration["token"] not in json.dumps([e.details for e in entries])


def test_bad_integration_edits_name_the_field_and_change_nothing(
    client: TestClient, admin_headers: dict[str, str], integration: dict[str, Any], db: Session
) -> None:
    def refused(body: dict[str, Any], code: int = 422) -> set[str]:
        response = patch_integration(client, admin_headers, integration["id"], body)
        assert response.status_code == code, response.text
        return fields_of(response)

    assert refused({"severity_map": {"critical": "SEV9"}}) == {"body.severity_map.critical"}
    assert refused({"severity_map": {"warning": "SEV3", "critical": "P1"}}) == {
        "body.severity_map.critical"
    }
    assert refused({"severity_map": {"x" * 256: "SEV1"}}) == {
        f"body.severity_map.{'x' * 256}.[key]"
    }
    assert refused({"severity_map": {f"v{i}": "SEV1" for i in range(51)}}) == {"body.severity_map"}
    assert refused({"default_severity": "P1"}) == {"body.default_severity"}
    assert refused({"resolve_on_recovery": "yes"}) == {"body.resolve_on_recovery"}
    assert refused({"name": "  "}) == {"body.name"}
    assert refused({"category": "Nope"}) == {"body.category"}
    assert refused({"kind": "generic"}) == {"body.kind"}
    assert refused({"token": "opi_mine"}) == {"body.token"}
    create_integration(client, admin_headers, name="Taken", kind="generic")
    assert refused({"name": "TAKEN"}, 409) == {"body.name"}

    row = db.get(Integration, integration["id"])
    assert row is not None
    assert row.name == "prometheus"
    assert row.severity_map["critical"] == "SEV1"
    assert row.default_severity == "SEV3"
    db.commit()
    assert [e.action for e in audit_actions(db, "incidents.integration.updated")] == []


def test_members_cannot_edit_integrations_and_unknown_or_revoked_ones_are_refused(
    client: TestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    integration: dict[str, Any],
    db: Session,
) -> None:
    body = {"severity_map": {"critical": "SEV4"}}
    member = patch_integration(client, member_headers, integration["id"], body)
    anonymous = client.patch(f"{INTEGRATIONS}/{integration['id']}", json=body)
    missing = patch_integration(client, admin_headers, "0" * 32, body)
    not_an_id = patch_integration(client, admin_headers, "nope", body)

    assert member.status_code == 403
    assert error_of(member)["code"] == "forbidden"
    assert anonymous.status_code == 401
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    assert not_an_id.status_code == 404
    row = db.get(Integration, integration["id"])
    assert row is not None
    assert row.severity_map["critical"] == "SEV1"
    db.commit()

    assert client.delete(f"{INTEGRATIONS}/{integration['id']}", headers=admin_headers).status_code
    revoked = patch_integration(client, admin_headers, integration["id"], body)
    assert revoked.status_code == 409
    assert error_of(revoked)["code"] == "conflict"
    assert [e.action for e in audit_actions(db, "incidents.integration.updated")] == []


# -- authenticating the sender ----------------------------------------------------------------


def test_a_missing_or_wrong_token_is_a_401_with_a_bearer_challenge(
    client: TestClient, token: str, member_headers: dict[str, str], db: Session
) -> None:
    payload = alertmanager_payload()
    answers = [
        client.post(ALERTMANAGER, json=payload),
        client.post(ALERTMANAGER, json=payload, headers=bearer("opi_" + "x" * 43)),
        client.post(ALERTMANAGER, json=payload, headers=bearer(token[:-1])),
        client.post(ALERTMANAGER, json=payload, headers={"Authorization": f"Basic {token}"}),
        # A user's credentials are not an integration's.
        client.post(ALERTMANAGER, json=payload, headers=member_headers),
    ]

    for answer in answers:
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert error_of(answer)["code"] == "not_authenticated"
    assert incidents_of(db) == []
    assert count(db, AlertDelivery) == 0


def test_a_token_works_only_on_the_endpoint_of_its_kind(
    client: TestClient, admin_headers: dict[str, str], token: str, db: Session
) -> None:
    generic = create_integration(client, admin_headers, name="uptime", kind="generic")["token"]

    wrong_kind = [
        post_alert(client, generic, alertmanager_payload()),
        post_alert(client, token, {"dedup_key": "k", "status": "firing", "title": "t"}, GENERIC),
    ]

    assert [answer.status_code for answer in wrong_kind] == [403, 403]
    assert "generic" in error_of(wrong_kind[0])["message"]
    assert incidents_of(db) == []


# -- Alertmanager ------------------------------------------------------------------------------


def test_a_firing_group_opens_an_incident(
    client: TestClient, integration: dict[str, Any], token: str, db: Session
) -> None:
    response = post_alert(client, token, alertmanager_payload())

    assert response.status_code == 201, response.text
    [incident] = incidents_of(db)
    assert response.json() == {"incident": incident.number, "outcome": "opened"}
    assert incident.title == "BlackBox Probe Failure: https://server.example.org"
    assert incident.severity == "SEV1"  # severity=critical through the default mapping
    assert incident.status == IncidentStatus.TRIAGE
    assert incident.source == "alertmanager"
    assert incident.integration_id == integration["id"]
    assert incident.alert_group_key == GROUP_KEY
    assert incident.reporter_id is None
    assert "ProbeFailure" in incident.description
    assert "has been down for over 5m" in incident.description_html
    assert 'href="http://prometheus.example.org:9090/graph?' in incident.description_html
    assert "Firing alerts (1)" in incident.description_html
    [declared] = events_of(db, incident.number)
    assert declared.kind == EventKind.DECLARED
    assert declared.data["source"] == "alertmanager"
    [entry] = audit_actions(db, "incident.created")
    assert entry.actor == "integration"


def test_repeats_of_an_open_group_append_to_its_incident(
    client: TestClient, token: str, db: Session
) -> None:
    first = post_alert(client, token, alertmanager_payload())
    repeat = alertmanager_payload()
    second_alert(repeat)

    appended = post_alert(client, token, repeat)

    assert appended.status_code == 200, appended.text
    number = first.json()["incident"]
    assert appended.json() == {"incident": number, "outcome": "appended"}
    assert len(incidents_of(db)) == 1
    [event] = events_of(db, number, EventKind.ALERT_FIRING)
    assert event.actor_id is None
    assert event.data["alerts"] == 2
    assert event.data["fingerprints"] == ["1a30ba71cca2921f", "2b41cb82ddbe3a30"]
    assert "other.example.org" in event.body_html
    # Another group is another incident.
    other = post_alert(client, token, alertmanager_payload(group_key='{}:{alertname="Other"}'))
    assert other.status_code == 201
    assert other.json()["incident"] != number


def test_a_replayed_notification_answers_the_same_incident_and_changes_nothing(
    client: TestClient, token: str, db: Session
) -> None:
    body = json.dumps(alertmanager_payload()).encode()
    headers = {**bearer(token), "Content-Type": "application/json"}
    first = client.post(ALERTMANAGER, content=body, headers=headers)
    number = first.json()["incident"]
    events = len(events_of(db, number))
    audits = count(db, AuditEntry)

    replays = [client.post(ALERTMANAGER, content=body, headers=headers) for _ in range(2)]

    for replay in replays:
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"incident": number, "outcome": "duplicate"}
    assert len(incidents_of(db)) == 1
    assert len(events_of(db, number)) == events
    assert count(db, AuditEntry) == audits
    assert count(db, AlertDelivery) == 1
    # The replay of a resolved notification does not record the recovery twice either.
    resolved = json.dumps(alertmanager_payload("resolved")).encode()
    for _ in range(2):
        client.post(ALERTMANAGER, content=resolved, headers=headers)
    assert len(events_of(db, number, EventKind.ALERT_RESOLVED)) == 1


def test_a_resolved_notification_is_recorded_on_the_timeline(
    client: TestClient, token: str, db: Session
) -> None:
    number = post_alert(client, token, alertmanager_payload()).json()["incident"]

    resolved = post_alert(client, token, alertmanager_payload("resolved"))

    assert resolved.status_code == 200
    assert resolved.json() == {"incident": number, "outcome": "recorded"}
    [incident] = incidents_of(db)
    assert incident.status == IncidentStatus.TRIAGE  # resolve_on_recovery is off
    [event] = events_of(db, number, EventKind.ALERT_RESOLVED)
    assert "Resolved alerts" in event.body_html
    assert events_of(db, number, EventKind.STATUS_CHANGED) == []
    # Still open: the group fires again into the same incident.
    again = alertmanager_payload()
    again["alerts"][0]["startsAt"] = "2023-02-06T14:00:00Z"
    assert post_alert(client, token, again).json() == {"incident": number, "outcome": "appended"}


def test_resolve_on_recovery_resolves_the_incident_and_a_new_firing_opens_another(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    token = create_integration(client, admin_headers, resolve_on_recovery=True)["token"]
    number = post_alert(client, token, alertmanager_payload()).json()["incident"]

    resolved = post_alert(client, token, alertmanager_payload("resolved"))

    assert resolved.json() == {"incident": number, "outcome": "resolved"}
    [incident] = incidents_of(db)
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.resolved_at is not None
    [change] = events_of(db, number, EventKind.STATUS_CHANGED)
    assert (change.old_value, change.new_value, change.actor_id) == ("triage", "resolved", None)
    assert len(events_of(db, number, EventKind.ALERT_RESOLVED)) == 1
    assert [e.action for e in audit_actions(db, "incident.resolved")] == ["incident.resolved"]
    # The group fires again later: the resolved incident is not reopened, a new one is declared.
    refire = alertmanager_payload()
    refire["alerts"][0]["startsAt"] = "2023-02-07T09:00:00Z"
    reopened = post_alert(client, token, refire)
    assert reopened.status_code == 201
    assert reopened.json()["incident"] != number
    assert len(incidents_of(db)) == 2


def test_a_recovery_after_the_incident_was_closed_is_still_recorded_on_it(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    token = create_integration(client, admin_headers, resolve_on_recovery=True)["token"]
    number = post_alert(client, token, alertmanager_payload()).json()["incident"]
    incident = db.get(Incident, number)
    assert incident is not None
    incident.status = IncidentStatus.CLOSED
    db.commit()

    resolved = post_alert(client, token, alertmanager_payload("resolved"))
    unknown = post_alert(client, token, alertmanager_payload("resolved", group_key="never"))

    assert resolved.json() == {"incident": number, "outcome": "recorded"}
    assert incidents_of(db)[0].status == IncidentStatus.CLOSED
    assert len(events_of(db, number, EventKind.ALERT_RESOLVED)) == 1
    assert unknown.status_code == 200
    assert unknown.json() == {"incident": None, "outcome": "recorded"}


def test_severity_comes_from_the_integrations_label_mapping(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    token = create_integration(
        client,
        admin_headers,
        severity_label="priority",
        severity_map={"P1": "SEV1", "p2": "SEV2"},
        default_severity="SEV4",
    )["token"]

    def severity_of(priorities: list[str | None], key: str) -> str:
        payload = alertmanager_payload(group_key=key, commonLabels={"alertname": "X"})
        template = payload["alerts"][0]
        payload["alerts"] = []
        for i, priority in enumerate(priorities):
            alert = copy.deepcopy(template)
            alert["labels"] = {"alertname": "X", "n": str(i)}
            if priority is not None:
                alert["labels"]["priority"] = priority
            payload["alerts"].append(alert)
        number = post_alert(client, token, payload).json()["incident"]
        incident = db.get(Incident, number)
        assert incident is not None
        severity = incident.severity
        db.commit()
        return severity

    assert severity_of(["p2"], "a") == "SEV2"
    assert severity_of(["P2", "p1", None], "b") == "SEV1"  # the most severe alert wins
    assert severity_of(["whatever"], "c") == "SEV4"  # unmapped: the default
    assert severity_of([None], "d") == "SEV4"
    assert severity_of(["sev3"], "e") == "SEV3"  # a severity needs no mapping


def test_the_title_falls_back_to_the_alert_name_and_group_labels(
    client: TestClient, token: str, db: Session
) -> None:
    payload = alertmanager_payload(
        commonAnnotations={},
        groupLabels={"alertname": "HighLatency", "cluster": "eu1", "service": "api"},
    )
    payload["alerts"][0]["annotations"] = {}

    post_alert(client, token, payload)

    assert incidents_of(db)[0].title == "HighLatency (cluster=eu1, service=api)"


def test_a_group_key_longer_than_the_column_is_kept_as_its_digest(
    client: TestClient, token: str, db: Session
) -> None:
    long_key = "{}:{" + ", ".join(f'label{i}="{"v" * 20}"' for i in range(40)) + "}"

    first = post_alert(client, token, alertmanager_payload(group_key=long_key))
    second_payload = alertmanager_payload(group_key=long_key)
    second_alert(second_payload)
    second = post_alert(client, token, second_payload)

    assert (first.status_code, second.json()["outcome"]) == (201, "appended")
    [incident] = incidents_of(db)
    assert incident.alert_group_key is not None
    assert incident.alert_group_key.startswith("sha256:")


def test_an_incident_gets_the_integrations_category(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    db.add(Category(name="Networking"))
    db.commit()
    created = create_integration(client, admin_headers, category="networking")

    post_alert(client, created["token"], alertmanager_payload())

    assert created["category"] == "Networking"
    category = db.scalars(select(Category)).one()
    assert incidents_of(db)[0].category_id == category.id


XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![x](javascript:alert(1))",
    '"><svg onload=alert(1)>',
    "`code` **bold** <a href='javascript:alert(1)'>a</a>",
]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(html: str) -> None:
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert tag not in {"script", "img", "svg", "iframe"}, html
        for name, value in attrs:
            assert not name.startswith("on"), html
            if name == "href":
                # Only the links this server wrote, to http(s) addresses.
                assert (value or "").startswith(("http://", "https://")), html


def test_markup_in_labels_and_annotations_is_inert(
    client: TestClient, token: str, member_headers: dict[str, str], db: Session
) -> None:
    payload = alertmanager_payload(
        receiver=XSS[1],
        commonAnnotations={"summary": XSS[0], "description": XSS[2]},
        groupKey=XSS[4],
        externalURL="javascript:alert(1)",
    )
    alert = payload["alerts"][0]
    alert["labels"] = {"alertname": XSS[0], "evil": XSS[1], XSS[5]: XSS[3]}
    alert["annotations"] = {"summary": XSS[4], "description": XSS[5]}
    alert["generatorURL"] = "javascript:alert(1)"

    opened = post_alert(client, token, payload)
    repeat = copy.deepcopy(payload)
    repeat["alerts"][0]["generatorURL"] = 'http://x.example/"><script>alert(1)</script>'
    appended = post_alert(client, token, repeat)

    assert (opened.status_code, appended.json()["outcome"]) == (201, "appended")
    [incident] = incidents_of(db)
    assert incident.title == XSS[0]  # plain text: the UI shows it as text
    assert_inert(incident.description_html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in incident.description_html
    assert "<p>[click](javascript:alert(1))</p>" in incident.description_html  # as text
    number = incident.number
    [event] = events_of(db, number, EventKind.ALERT_FIRING)
    assert_inert(event.body_html)
    assert "x.example/%22%3E%3Cscript%3E" in event.body_html
    # And so is what the API answers (an alert's incident is public: members see it).
    shown = client.get(f"{API}/incidents/{number}", headers=member_headers)
    assert shown.status_code == 200, shown.text
    assert_inert(shown.json()["description_html"])
    timeline = client.get(f"{API}/incidents/{number}/timeline", headers=member_headers)
    assert timeline.status_code == 200, timeline.text
    kinds = [item["kind"] for item in timeline.json()["items"]]
    assert "alert_firing" in kinds
    for item in timeline.json()["items"]:
        assert_inert(item["body_html"])


def test_a_malformed_notification_is_a_422_naming_the_field(
    client: TestClient, token: str, db: Session
) -> None:
    def broken(change: Any) -> httpx.Response:
        payload = alertmanager_payload()
        change(payload)
        response = post_alert(client, token, payload)
        assert response.status_code == 422, response.text
        return response

    assert fields_of(broken(lambda p: p.pop("groupKey"))) == {"body.groupKey"}
    assert fields_of(broken(lambda p: p.update(version="3"))) == {"body.version"}
    assert fields_of(broken(lambda p: p.update(status="exploded"))) == {"body.status"}
    assert fields_of(broken(lambda p: p.update(alerts=[]))) == {"body.alerts"}
    assert fields_of(broken(lambda p: p["alerts"][0].update(status="maybe"))) == {
        "body.alerts.0.status"
    }
    assert fields_of(broken(lambda p: p["alerts"][0]["labels"].update(severity=3))) == {
        "body.alerts.0.labels.severity"
    }
    assert fields_of(broken(lambda p: p["alerts"][0].update(startsAt="yesterday"))) == {
        "body.alerts.0.startsAt"
    }
    # Found by the fuzz gate: a number was read as a Unix time (the document says date-time).
    assert fields_of(broken(lambda p: p["alerts"][0].update(startsAt=0, endsAt="0"))) == {
        "body.alerts.0.startsAt",
        "body.alerts.0.endsAt",
    }
    not_json = client.post(
        ALERTMANAGER,
        content=b'{"version": "4", ',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert not_json.status_code == 422
    assert incidents_of(db) == []
    assert count(db, AlertDelivery) == 0


def test_unknown_fields_from_newer_senders_are_ignored(
    client: TestClient, token: str, db: Session
) -> None:
    payload = alertmanager_payload(orgId=1, title="[FIRING:1]")
    payload["alerts"][0].update(silenceURL="https://grafana.example/silence", values={"B": 1.5})

    assert post_alert(client, token, payload).status_code == 201


def test_a_body_over_the_limit_is_a_413(client: TestClient, token: str, db: Session) -> None:
    payload = alertmanager_payload()
    payload["commonAnnotations"]["description"] = "x" * MAX_BODY_BYTES

    response = post_alert(client, token, payload)

    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert incidents_of(db) == []


def test_each_integration_is_rate_limited(
    client: TestClient,
    admin_headers: dict[str, str],
    token: str,
    clock: FakeClock,
    db: Session,
) -> None:
    other = create_integration(client, admin_headers, name="other")["token"]
    body = json.dumps(alertmanager_payload()).encode()
    headers = {**bearer(token), "Content-Type": "application/json"}
    answers = [
        client.post(ALERTMANAGER, content=body, headers=headers).status_code
        for _ in range(ALERTS_RATE_LIMIT.capacity)
    ]
    assert answers == [201] + [200] * (ALERTS_RATE_LIMIT.capacity - 1)

    refused = client.post(ALERTMANAGER, content=body, headers=headers)

    assert refused.status_code == 429
    assert error_of(refused)["code"] == "too_many_requests"
    assert refused.headers["Retry-After"] == "1"  # 120 a minute: one every half second
    assert post_alert(client, other, alertmanager_payload()).status_code == 201
    clock.advance(1)
    assert client.post(ALERTMANAGER, content=body, headers=headers).status_code == 200


def test_simultaneous_notifications_of_one_group_open_one_incident(
    client: TestClient, token: str, db: Session
) -> None:
    payloads = []
    for i in range(4):
        payload = alertmanager_payload()
        second_alert(payload, instance=f"https://host{i}.example.org")
        payloads.append(payload)
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(len(payloads))

    def send(payload: dict[str, Any]) -> None:
        start.wait()
        response = post_alert(client, token, payload)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert sorted(a.json()["outcome"] for a in answers) == ["appended"] * 3 + ["opened"]
    [incident] = incidents_of(db)
    assert {a.json()["incident"] for a in answers} == {incident.number}
    assert len(events_of(db, incident.number, EventKind.ALERT_FIRING)) == 3


# -- the generic webhook ----------------------------------------------------------------------


@pytest.fixture
def generic_token(client: TestClient, admin_headers: dict[str, str]) -> str:
    created = create_integration(
        client,
        admin_headers,
        name="uptime",
        kind="generic",
        resolve_on_recovery=True,
        severity_map={"high": "SEV2"},
    )
    assert created["url"] == GENERIC
    value: str = created["token"]
    return value


def generic(status: str = "firing", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dedup_key": "checkout-down",
        "status": status,
        "title": "Checkout is down",
        "description": "The **checkout** probe fails from 3 regions.",
        "labels": {"severity": "high", "region": "eu"},
    }
    body.update(changes)
    return body


def test_the_generic_webhook_opens_appends_and_resolves(
    client: TestClient, generic_token: str, db: Session
) -> None:
    opened = post_alert(client, generic_token, generic(), GENERIC)
    appended = post_alert(client, generic_token, generic(title="Checkout still down"), GENERIC)
    replayed = post_alert(client, generic_token, generic(title="Checkout still down"), GENERIC)
    resolved = post_alert(client, generic_token, generic("resolved"), GENERIC)

    assert opened.status_code == 201, opened.text
    number = opened.json()["incident"]
    assert [a.json() for a in (appended, replayed, resolved)] == [
        {"incident": number, "outcome": "appended"},
        {"incident": number, "outcome": "duplicate"},
        {"incident": number, "outcome": "resolved"},
    ]
    [incident] = incidents_of(db)
    assert incident.title == "Checkout is down"
    assert incident.source == "generic"
    assert incident.severity == "SEV2"  # labels.severity=high through the mapping
    assert incident.status == IncidentStatus.RESOLVED
    assert "<strong>checkout</strong>" in incident.description_html
    assert "region=eu" in incident.description_html
    assert len(events_of(db, number, EventKind.ALERT_FIRING)) == 1
    assert len(events_of(db, number, EventKind.ALERT_RESOLVED)) == 1


def test_the_generic_webhooks_own_severity_wins_and_markup_is_inert(
    client: TestClient, generic_token: str, db: Session
) -> None:
    response = post_alert(
        client,
        generic_token,
        generic(
            severity="SEV1",
            dedup_key=XSS[0],
            description=XSS[1] + "\n\n" + XSS[2],
            labels={"x": XSS[0], XSS[4]: "y"},
        ),
        GENERIC,
    )

    assert response.status_code == 201, response.text
    [incident] = incidents_of(db)
    assert incident.severity == "SEV1"
    assert_inert(incident.description_html)


def test_bad_generic_input_names_the_field(
    client: TestClient, generic_token: str, db: Session
) -> None:
    def refused(body: dict[str, Any]) -> set[str]:
        response = post_alert(client, generic_token, body, GENERIC)
        assert response.status_code == 422, response.text
        return fields_of(response)

    assert refused(generic(title="")) == {"body.title"}
    assert refused({k: v for k, v in generic().items() if k != "dedup_key"}) == {"body.dedup_key"}
    assert refused(generic(status="on_fire")) == {"body.status"}
    assert refused(generic(severity="critical")) == {"body.severity"}
    assert refused(generic(dedup_key="k" * 256)) == {"body.dedup_key"}
    assert refused(generic(labels={f"l{i}": "v" for i in range(65)})) == {"body.labels"}
    assert refused(generic(priority="high")) == {"body.priority"}
    assert refused(generic(description="d" * 100_001)) == {"body.description"}
    assert incidents_of(db) == []
