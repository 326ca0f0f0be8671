"""Outbound webhook endpoints (admins): where incident events are sent, and what each
delivery did (service.outbound)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from opsdeck.accounts.dependencies import AdminUser
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import PageParams, page_params
from opsdeck.incidents.schemas import (
    WebhookDeliveryOut,
    WebhookDeliveryPage,
    WebhookEndpointIn,
    WebhookEndpointOut,
)
from opsdeck.incidents.service import outbound

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])
Id = Annotated[str, Path(max_length=32)]
DeliveryPageParams = Annotated[
    PageParams, Depends(page_params(outbound.DELIVERY_SORTS, default_limit=50, max_limit=200))
]


@router.get(
    "/webhooks",
    name="incidents-list-webhooks",
    response_model=list[WebhookEndpointOut],
    responses=error_responses(401, 403),
)
def list_webhooks(session: SessionDep, admin: AdminUser) -> list[WebhookEndpointOut]:
    return [WebhookEndpointOut.model_validate(e) for e in outbound.list_endpoints(session, admin)]


@router.post(
    "/webhooks",
    name="incidents-create-webhook",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointOut,
    responses=error_responses(401, 403, 422),
)
def create_webhook(
    body: WebhookEndpointIn, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> WebhookEndpointOut:
    endpoint = outbound.create_endpoint(session, admin, settings, body.url, body.events)
    return WebhookEndpointOut.model_validate(endpoint)


@router.delete(
    "/webhooks/{endpoint_id}",
    name="incidents-delete-webhook",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_webhook(endpoint_id: Id, session: SessionDep, admin: AdminUser) -> None:
    outbound.delete_endpoint(session, admin, endpoint_id)


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    name="incidents-list-webhook-deliveries",
    response_model=WebhookDeliveryPage,
    responses=error_responses(401, 403, 404, 422),
)
def list_deliveries(
    endpoint_id: Id, page: DeliveryPageParams, session: SessionDep, admin: AdminUser
) -> WebhookDeliveryPage:
    result = outbound.list_deliveries(session, admin, endpoint_id, page)
    return WebhookDeliveryPage(
        items=[WebhookDeliveryOut.model_validate(d) for d in result.items],
        next_cursor=result.next_cursor,
    )
