"""Outbound incident webhooks: admins register endpoints (the URL checked by the outbound
address policy), incident events are delivered signed to a real local receiver, retried on a
5xx with the same delivery id, and an address the policy refuses is never contacted.

The end-to-end test goes through the outbox, the broker and the real Celery worker; the others
run the captured delivery jobs in this process (tests/incidents/test_notifications.py, Jobs)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from opsdeck.core.jobs import RetryLater
from opsdeck.core.webhooks import verify
from opsdeck.incidents.models import DeliveryStatus, WebhookDelivery
from opsdeck.incidents.service import outbound
from opsdeck.settings import Settings
from tests.conftest import error_of, fields_of, make_settings
from tests.incidents.conftest import INCIDENTS, Declare
from tests.incidents.jobs import Jobs, capture_jobs
from tests.stack import ManagedProcess, wait_until

WEBHOOKS = f"{INCIDENTS}/webhooks"


@pytest.fixture
def jobs(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Jobs:
    return capture_jobs(app, monkeypatch)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 204


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP receiver: records every POST and answers `status`."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _endpoint(
    client: TestClient, headers: dict[str, str], url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = client.post(WEBHOOKS, json={"url": url, "events": events or []}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _deliveries(app: FastAPI) -> list[WebhookDelivery]:
    with app.state.sessionmaker() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


def test_admins_manage_endpoints_and_bad_urls_or_events_are_refused(
    client: TestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    receiver: Receiver,
) -> None:
    for url in (
        "ftp://example.com/hook",
        "not a url",
        "http://10.0.0.5/hook",  # a private address the policy does not allow
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ):
        response = client.post(WEBHOOKS, json={"url": url}, headers=admin_headers)
        assert response.status_code == 422, (url, response.text)
        assert fields_of(response) == {"body.url"}, url
    response = client.post(
        WEBHOOKS,
        json={"url": receiver.url, "events": ["incident.created", "incident.deleted"]},
        headers=admin_headers,
    )
    assert response.status_code == 422
    assert fields_of(response) == {"body.events"}
    assert error_of(response)["details"][0]["value"] == "incident.deleted"
    assert client.post(WEBHOOKS, json={}, headers=admin_headers).status_code == 422

    assert (
        client.post(WEBHOOKS, json={"url": receiver.url}, headers=member_headers).status_code == 403
    )
    assert client.get(WEBHOOKS, headers=member_headers).status_code == 403
    assert client.get(WEBHOOKS).status_code == 401

    created = _endpoint(client, admin_headers, f"{receiver.url}/hook", ["incident.resolved"])
    assert created["events"] == ["incident.resolved"]
    assert created["is_active"] is True
    assert [e["id"] for e in client.get(WEBHOOKS, headers=admin_headers).json()] == [created["id"]]
    deliveries = client.get(f"{WEBHOOKS}/{created['id']}/deliveries", headers=admin_headers)
    assert deliveries.json() == {"items": [], "next_cursor": None}
    assert (
        client.get(f"{WEBHOOKS}/{created['id']}/deliveries", headers=member_headers).status_code
        == 403
    )
    assert client.delete(f"{WEBHOOKS}/{created['id']}", headers=member_headers).status_code == 403
    assert client.delete(f"{WEBHOOKS}/{created['id']}", headers=admin_headers).status_code == 204
    assert client.delete(f"{WEBHOOKS}/{created['id']}", headers=admin_headers).status_code == 404
    assert client.get(f"{WEBHOOKS}/nope/deliveries", headers=admin_headers).status_code == 404
    assert client.get(WEBHOOKS, headers=admin_headers).json() == []


def test_events_are_delivered_signed_by_the_worker(
    client: TestClient,
    admin_headers: dict[str, str],
    declare: Declare,
    receiver: Receiver,
    settings: Settings,
    celery_worker: ManagedProcess,
) -> None:
    """The whole way: outbox, broker, the real worker, a signed POST to the receiver."""
    endpoint = _endpoint(client, admin_headers, f"{receiver.url}/hook")
    incident = declare(admin_headers, title="Payments down", severity="SEV1")
    number = incident["number"]

    [received] = wait_until(
        lambda: receiver.received,
        timeout=60,
        message="the webhook delivery",
        diagnostics=celery_worker.diagnostics,
    )
    assert received.path == "/hook"
    assert verify(
        settings.webhook_secret.get_secret_value().encode(),
        received.body,
        received.headers["x-opsdeck-signature"],
        now=int(time.time()),
    )
    assert received.headers["x-opsdeck-event"] == "incident.created"
    body = received.json()
    assert body["event"] == "incident.created"
    assert body["incident"] == {
        "number": number,
        "key": f"INC-{number}",
        "title": "Payments down",
        "severity": "SEV1",
        "status": "triage",
        "visibility": "public",
        "url": f"{settings.public_base_url}/incidents/{number}",
    }
    assert body["actor"]["username"] == "root"
    assert "occurred_at" in body
    assert "description" not in json.dumps(body)

    def delivered() -> dict[str, Any] | None:
        page = client.get(f"{WEBHOOKS}/{endpoint['id']}/deliveries", headers=admin_headers).json()
        items = page["items"]
        return items[0] if items and items[0]["status"] == "delivered" else None

    row = wait_until(delivered, timeout=30, message="the delivery marked delivered")
    assert received.headers["x-opsdeck-delivery"] == row["id"]
    assert (row["attempts"], row["last_status_code"], row["event"]) == (
        1,
        204,
        "incident.created",
    )


def test_status_changes_resolution_and_comments_are_sent_to_the_endpoints_that_want_them(
    client: TestClient,
    admin_headers: dict[str, str],
    declare: Declare,
    receiver: Receiver,
    settings: Settings,
    jobs: Jobs,
) -> None:
    _endpoint(client, admin_headers, f"{receiver.url}/all")
    _endpoint(client, admin_headers, f"{receiver.url}/resolved", ["incident.resolved"])
    number = declare(admin_headers, description="secret details")["number"]
    for to in ("investigating", "resolved"):
        client.post(f"{INCIDENTS}/{number}/transition", json={"to": to}, headers=admin_headers)
    client.post(
        f"{INCIDENTS}/{number}/comments", json={"body": "the comment"}, headers=admin_headers
    )
    client.patch(f"{INCIDENTS}/{number}", json={"title": "Renamed"}, headers=admin_headers)

    jobs.run(settings)

    sent = sorted((r.path, r.headers["x-opsdeck-event"]) for r in receiver.received)
    assert sent == [
        ("/all", "incident.comment_added"),
        ("/all", "incident.created"),
        ("/all", "incident.resolved"),
        ("/all", "incident.status_changed"),
        ("/resolved", "incident.resolved"),
    ]
    by_event = {r.headers["x-opsdeck-event"]: r.json() for r in receiver.received}
    assert by_event["incident.status_changed"]["data"] == {"from": "triage", "to": "investigating"}
    assert by_event["incident.resolved"]["incident"]["status"] == "resolved"
    assert set(by_event["incident.comment_added"]["data"]) == {"comment_id"}
    for received in receiver.received:
        assert b"secret details" not in received.body
        assert b"the comment" not in received.body


def test_a_500_is_retried_with_the_same_delivery_id(
    client: TestClient,
    admin_headers: dict[str, str],
    declare: Declare,
    receiver: Receiver,
    settings: Settings,
    jobs: Jobs,
    app: FastAPI,
) -> None:
    _endpoint(client, admin_headers, f"{receiver.url}/hook")
    receiver.status = 500
    declare(admin_headers)
    [(_name, args)] = jobs.pending
    jobs.pending.clear()

    with pytest.raises(RetryLater) as retry:
        outbound.deliver(jobs.unit_of_work, settings, *args)
    assert retry.value.countdown > 0
    [row] = _deliveries(app)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.PENDING, 1, 500)

    receiver.status = 200
    assert outbound.deliver(jobs.unit_of_work, settings, *args) == "delivered"
    assert outbound.deliver(jobs.unit_of_work, settings, *args) == "nothing_to_send"
    first, second = receiver.received
    assert first.headers["x-opsdeck-delivery"] == second.headers["x-opsdeck-delivery"] == row.id
    assert first.body == second.body
    [row] = _deliveries(app)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.DELIVERED, 2, 200)


def test_an_address_the_policy_refuses_is_never_contacted(
    client: TestClient,
    admin_headers: dict[str, str],
    declare: Declare,
    receiver: Receiver,
    data_dir: Path,
    jobs: Jobs,
    app: FastAPI,
) -> None:
    """Registered while loopback was allowed; delivered under a policy that refuses it (as a
    name resolving to a private address would be): failed at once, nothing sent."""
    _endpoint(client, admin_headers, f"{receiver.url}/hook")
    declare(admin_headers)
    strict = make_settings(data_dir, fetch_allowed_networks=[])

    assert jobs.run(strict) == ["failed"]
    assert receiver.received == []
    [row] = _deliveries(app)
    assert row.status == DeliveryStatus.FAILED
    assert row.attempts == 1
    assert row.last_status_code is None
    assert row.last_error


def test_restricted_incidents_are_not_sent(
    client: TestClient,
    admin_headers: dict[str, str],
    declare: Declare,
    receiver: Receiver,
    settings: Settings,
    jobs: Jobs,
    app: FastAPI,
) -> None:
    _endpoint(client, admin_headers, f"{receiver.url}/hook")
    number = declare(admin_headers, title="Breach", visibility="restricted")["number"]
    client.post(
        f"{INCIDENTS}/{number}/transition", json={"to": "investigating"}, headers=admin_headers
    )
    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "x"}, headers=admin_headers)
    jobs.run(settings)
    assert receiver.received == []
    assert _deliveries(app) == []


def test_a_deleted_endpoint_gets_nothing_more(
    client: TestClient,
    admin_headers: dict[str, str],
    declare: Declare,
    receiver: Receiver,
    settings: Settings,
    jobs: Jobs,
) -> None:
    endpoint = _endpoint(client, admin_headers, f"{receiver.url}/hook")
    declare(admin_headers)
    client.delete(f"{WEBHOOKS}/{endpoint['id']}", headers=admin_headers)
    assert jobs.run(settings) == ["nothing_to_send"]
    declare(admin_headers)
    assert jobs.run(settings) == []
    assert receiver.received == []


def test_a_4xx_answer_fails_at_once(
    client: TestClient,
    admin_headers: dict[str, str],
    declare: Declare,
    receiver: Receiver,
    settings: Settings,
    jobs: Jobs,
    app: FastAPI,
) -> None:
    """A receiver that answers 410 (gone) or 400 will answer the same next time."""
    _endpoint(client, admin_headers, f"{receiver.url}/hook")
    receiver.status = 410
    declare(admin_headers)
    assert jobs.run(settings) == ["failed"]
    assert len(receiver.received) == 1
    [row] = _deliveries(app)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.FAILED, 1, 410)
