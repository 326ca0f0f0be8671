"""Alerts in: admins manage integrations; Alertmanager and other tools post their alerts.

The alert routes authenticate the integration by its token (`Authorization: Bearer opi_...`),
not a user: no cookie, no CSRF, no CurrentUser. Each integration may post 120 notifications in
a burst, then 2 a second (429 with Retry-After past that). See service/integrations.py for what
a notification does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsdeck.accounts.dependencies import AdminUser
from opsdeck.core.deps import ClientDep, SessionDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import PageParams, page_params
from opsdeck.core.params import HexIdConvertor as HexIdConvertor  # registers {name:hexid}
from opsdeck.core.ratelimit import RateLimiterDep, too_many_requests
from opsdeck.incidents.models import Integration, IntegrationKind
from opsdeck.incidents.schemas import (
    AlertmanagerPayload,
    AlertOutcome,
    AlertResult,
    GenericAlert,
    IntegrationCreate,
    IntegrationCreated,
    IntegrationOut,
    IntegrationPage,
    IntegrationUpdate,
)
from opsdeck.incidents.service import integrations as service

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])

# Declared for the OpenAPI schema; the checks are the service's.
integration_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="IntegrationToken",
    description="An integration's token (opi_...), from POST /incidents/integrations.",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(integration_bearer)]


def _out(integration: Integration, categories: dict[str, str]) -> IntegrationOut:
    return IntegrationOut(
        id=integration.id,
        name=integration.name,
        kind=IntegrationKind(integration.kind),
        url=service.ENDPOINTS[IntegrationKind(integration.kind)],
        token_prefix=integration.token_prefix,
        severity_label=integration.severity_label,
        severity_map=dict(integration.severity_map or {}),
        default_severity=integration.default_severity,
        resolve_on_recovery=integration.resolve_on_recovery,
        category=categories.get(integration.category_id or ""),
        created_at=integration.created_at,
        last_used_at=integration.last_used_at,
        revoked_at=integration.revoked_at,
        active=integration.revoked_at is None,
    )


# -- administration -----------------------------------------------------------------------


@router.post(
    "/integrations",
    name="incidents-create-integration",
    status_code=status.HTTP_201_CREATED,
    response_model=IntegrationCreated,
    responses=error_responses(401, 403, 409, 422),
)
def create_integration(
    body: IntegrationCreate, user: AdminUser, session: SessionDep, client: ClientDep
) -> IntegrationCreated:
    """A new alert integration. Its `token` is in this answer only: configure the sender with
    it (`Authorization: Bearer <token>`) now; it cannot be shown again."""
    created = service.create_integration(session, user, body, client=client)
    out = _out(created.integration, service.category_names(session, [created.integration]))
    return IntegrationCreated(**out.model_dump(), token=created.token)


IntegrationPageParams = Annotated[
    PageParams, Depends(page_params(service.INTEGRATION_SORTS, default_limit=50, max_limit=100))
]


@router.get(
    "/integrations",
    name="incidents-list-integrations",
    response_model=IntegrationPage,
    responses=error_responses(401, 403, 422),
)
def list_integrations(
    user: AdminUser, session: SessionDep, page: IntegrationPageParams
) -> IntegrationPage:
    """Every integration, revoked ones included; never a token."""
    listed = service.list_integrations(session, user, page)
    categories = service.category_names(session, listed.items)
    return IntegrationPage(
        items=[_out(item, categories) for item in listed.items], next_cursor=listed.next_cursor
    )


@router.patch(
    "/integrations/{integration_id:hexid}",
    name="incidents-update-integration",
    response_model=IntegrationOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_integration(
    integration_id: str,
    body: IntegrationUpdate,
    user: AdminUser,
    session: SessionDep,
    client: ClientDep,
) -> IntegrationOut:
    """Change an integration's name, severity label and map, default severity, category or
    `resolve_on_recovery`: only the fields sent (`category: null` clears it). The map sent
    replaces the old one; alerts received from then on use it. Its kind and token stay; a
    revoked integration is a 409."""
    integration = service.update_integration(session, user, integration_id, body, client=client)
    return _out(integration, service.category_names(session, [integration]))


@router.delete(
    "/integrations/{integration_id:hexid}",
    name="incidents-revoke-integration",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def revoke_integration(
    integration_id: str, user: AdminUser, session: SessionDep, client: ClientDep
) -> None:
    """Revoke an integration: its token is refused from now on (the incidents it declared
    stay)."""
    service.revoke_integration(session, user, integration_id, client=client)


# -- alerts in ----------------------------------------------------------------------------


def _authenticated(
    session: SessionDep,
    limiter: RateLimiterDep,
    credentials: BearerCredentials,
    kind: IntegrationKind,
) -> Integration:
    token = credentials.credentials if credentials else None
    integration = service.authenticate(session, token, kind)
    decision = limiter.hit(service.ALERTS_RATE_LIMIT, integration.id)
    if not decision.allowed:
        raise too_many_requests(decision.retry_after)
    return integration


def alertmanager_integration(
    session: SessionDep, limiter: RateLimiterDep, credentials: BearerCredentials
) -> Integration:
    return _authenticated(session, limiter, credentials, IntegrationKind.ALERTMANAGER)


def generic_integration(
    session: SessionDep, limiter: RateLimiterDep, credentials: BearerCredentials
) -> Integration:
    return _authenticated(session, limiter, credentials, IntegrationKind.GENERIC)


async def raw_body(request: Request) -> bytes:
    """The body as sent (already read by FastAPI for validation): its digest makes retries
    harmless."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]
ALERT_RESPONSES = {
    201: {"model": AlertResult, "description": "The alert opened a new incident."},
    **error_responses(401, 403, 413, 422, 429),
}


def _answer(response: Response, result: AlertResult) -> AlertResult:
    if result.outcome == AlertOutcome.OPENED:
        response.status_code = status.HTTP_201_CREATED
    return result


@router.post(
    "/integrations/alertmanager",
    name="incidents-alertmanager-webhook",
    response_model=AlertResult,
    responses=ALERT_RESPONSES,
    summary="Receive a Prometheus Alertmanager notification (webhook_config, version 4)",
)
def alertmanager_webhook(
    payload: AlertmanagerPayload,
    body: RawBody,
    integration: Annotated[Integration, Depends(alertmanager_integration)],
    session: SessionDep,
    response: Response,
) -> AlertResult:
    """A firing group opens an incident (201, outcome `opened`) or, while the incident its
    `groupKey` opened is still open, is added to its timeline (`appended`); a resolved one is
    recorded (`recorded`) and resolves the incident when the integration says so (`resolved`).
    The same body again changes nothing and answers its incident (`duplicate`). Point
    Alertmanager's `webhook_config` here with `http_config.authorization.credentials` set to
    the integration's token."""
    return _answer(response, service.receive_alertmanager(session, integration, payload, body))


@router.post(
    "/integrations/generic",
    name="incidents-generic-webhook",
    response_model=AlertResult,
    responses=ALERT_RESPONSES,
    summary="Receive an alert from any tool (the generic JSON webhook)",
)
def generic_webhook(
    payload: GenericAlert,
    body: RawBody,
    integration: Annotated[Integration, Depends(generic_integration)],
    session: SessionDep,
    response: Response,
) -> AlertResult:
    """`{dedup_key, status: firing|resolved, title, description?, severity?, labels?}`, with
    the Alertmanager route's rules: `dedup_key` plays `groupKey`'s part."""
    return _answer(response, service.receive_generic(session, integration, payload, body))
