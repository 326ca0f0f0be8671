"""Outbound webhooks: endpoints admins register, told about incident events.

Events (hooks.IncidentEvent, a contract): `incident.created`, `incident.status_changed`,
`incident.resolved`, `incident.comment_added`. On such a change, one `WebhookDelivery` row per
active endpoint that wants the event, and one delivery job per row, in the change's
transaction (a change that rolls back sends nothing). The job POSTs the payload with
core.webhooks.post_signed (the images webhooks' signature, SSRF guard and limits) and retries
a failure that may pass on core.webhooks.retry_delay's schedule; `X-OpsDeck-Delivery` is the
row's id, the same on every retry.

Payload: `{event, incident: {number, key, title, severity, status, visibility, url}, actor,
data, occurred_at}`; never the description or a comment's text.

Restricted incidents are not sent at all. An endpoint is outside the permission model (whoever
runs the receiver reads everything sent to it, and a title alone can say too much), so an
incident visible only to its participants stays inside OpsDeck; events of an incident made
restricted later stop at that moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdeck.core.db import utcnow
from opsdeck.core.errors import NotFound, ValidationFailed
from opsdeck.core.jobs import RetryLater, enqueue_many
from opsdeck.core.outbound.client import OutboundClient
from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.policy import AddressPolicy, validate_url
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.core.webhooks import post_signed, retry_delay
from opsdeck.incidents.models import (
    DeliveryStatus,
    Incident,
    Visibility,
    WebhookDelivery,
    WebhookEndpoint,
)
from opsdeck.incidents.schemas import WEBHOOK_EVENTS
from opsdeck.incidents.service.access import Actor, incident_label, require_admin
from opsdeck.incidents.service.notifications import UnitOfWork, incident_url
from opsdeck.settings import Settings

if TYPE_CHECKING:
    from opsdeck.incidents.service.hooks import Change

log = structlog.get_logger("opsdeck.incidents.webhooks")

DELIVER_JOB = "incidents.deliver_webhook"
EVENTS = WEBHOOK_EVENTS
MAX_ENDPOINTS = 100
DELIVERY_SORTS = SortOrders(
    name="WebhookDeliverySort",
    id_column=WebhookDelivery.id,
    keys={"created_at": WebhookDelivery.created_at},
    default="-created_at",
)


# -- endpoints (admins) ---------------------------------------------------------------------


def create_endpoint(
    session: Session, actor: Actor, settings: Settings, url: str, events: Sequence[str]
) -> WebhookEndpoint:
    """A new active endpoint; its URL must pass the outbound address policy (422 naming
    `body.url`), its events must be known (422 naming `body.events`; none means all)."""
    require_admin(actor)
    try:
        checked = validate_url(
            url, policy=AddressPolicy.from_networks(settings.fetch_allowed_networks)
        )
    except FetchError as exc:
        raise ValidationFailed(
            f"The webhook URL is {exc.message}.",
            code="invalid_webhook_url",
            details=[{"field": "body.url", "message": exc.message, "type": exc.kind}],
        ) from exc
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise ValidationFailed(
            f"Unknown event {unknown[0]!r}; the events are {', '.join(EVENTS)}.",
            details=[
                {"field": "body.events", "message": "unknown event", "value": e} for e in unknown
            ],
        )
    count = len(list(session.scalars(select(WebhookEndpoint.id).limit(MAX_ENDPOINTS))))
    if count >= MAX_ENDPOINTS:
        raise ValidationFailed(
            f"There are already {MAX_ENDPOINTS} webhook endpoints; delete one first.",
            details=[{"field": "body.url", "message": "too many endpoints"}],
        )
    endpoint = WebhookEndpoint(
        url=checked,
        events=sorted(set(events), key=EVENTS.index),
        is_active=True,
        created_by_id=actor.id,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(session: Session, actor: Actor) -> list[WebhookEndpoint]:
    require_admin(actor)
    return list(
        session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


def _endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("There is no such webhook endpoint.")
    return endpoint


def delete_endpoint(session: Session, actor: Actor, endpoint_id: str) -> None:
    """Remove an endpoint with its delivery log; deliveries still queued are dropped."""
    require_admin(actor)
    session.delete(_endpoint(session, endpoint_id))
    session.flush()


def list_deliveries(
    session: Session, actor: Actor, endpoint_id: str, page: PageParams
) -> Paged[WebhookDelivery]:
    require_admin(actor)
    _endpoint(session, endpoint_id)
    return paginate(
        session, select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id), page
    )


# -- events ---------------------------------------------------------------------------------


def payload_of(incident: Incident, change: Change) -> dict[str, Any]:
    """The body sent for a change (the incident's `url` is added when it is sent)."""
    actor = change.actor
    return {
        "event": change.event,
        "incident": {
            "number": incident.number,
            "key": incident_label(incident.number),
            "title": incident.title,
            "severity": str(incident.severity),
            "status": str(incident.status),
            "visibility": str(incident.visibility),
        },
        "actor": {"id": actor.id, "username": actor.username} if actor else None,
        "data": dict(change.data),
        "occurred_at": utcnow().isoformat(),
    }


def on_change(session: Session, incident: Incident, change: Change) -> int:
    """Queue a delivery per active endpoint wanting the event (hooks.changed); how many."""
    if change.event not in EVENTS or incident.visibility != Visibility.PUBLIC:
        return 0
    endpoints = [
        e
        for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.is_active.is_(True)))
        if not e.events or change.event in e.events
    ]
    if not endpoints:
        return 0
    payload = payload_of(incident, change)
    rows = [
        WebhookDelivery(
            endpoint_id=e.id, event=change.event, payload=payload, status=DeliveryStatus.PENDING
        )
        for e in endpoints
    ]
    session.add_all(rows)
    session.flush()
    enqueue_many(session, [(DELIVER_JOB, (row.id,)) for row in rows])
    return len(rows)


# -- delivering -----------------------------------------------------------------------------


def deliver(
    unit_of_work: UnitOfWork,
    settings: Settings,
    delivery_id: str,
    *,
    client: OutboundClient | None = None,
) -> str:
    """One attempt (the delivery job): "delivered", "failed", or "nothing_to_send" (done
    already, or its endpoint is gone or paused); raises RetryLater when another is due."""
    with unit_of_work() as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None or row.status != DeliveryStatus.PENDING:
            return "nothing_to_send"
        endpoint = session.get(WebhookEndpoint, row.endpoint_id)
        if endpoint is None or not endpoint.is_active:
            return "nothing_to_send"
        url, event = endpoint.url, row.event
        payload = dict(row.payload)
        incident = dict(payload.get("incident") or {})
        number = incident.get("number")
        if isinstance(number, int):
            incident["url"] = incident_url(settings, number)
        payload["incident"] = incident
    result = post_signed(
        settings, url, payload, delivery_id=delivery_id, event=event, client=client
    )
    with unit_of_work() as session:
        row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if row is None or row.status != DeliveryStatus.PENDING:
            return "nothing_to_send"
        row.attempts += 1
        row.last_status_code = result.status_code
        row.last_error = result.error[:500] if result.error else None
        retry_in = None
        if result.succeeded:
            row.status = DeliveryStatus.DELIVERED
            row.delivered_at = utcnow()
            outcome = "delivered"
        else:
            retry_in = retry_delay(row.attempts) if result.retryable else None
            if retry_in is None:
                row.status = DeliveryStatus.FAILED
            outcome = "retrying" if retry_in is not None else "failed"
        attempts = row.attempts
    log.info(
        "incident_webhook_attempt",
        delivery_id=delivery_id,
        result=outcome,
        status_code=result.status_code,
        attempts=attempts,
        error=result.error,
    )
    if retry_in is not None:
        raise RetryLater(retry_in)
    return outcome
