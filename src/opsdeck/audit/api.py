from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from opsdeck.accounts.dependencies import AdminUser
from opsdeck.audit import service
from opsdeck.audit.schemas import AuditEntryOut, AuditPage, ChainStatus
from opsdeck.core.deps import SessionDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import PageParams, page_params
from opsdeck.core.params import IsoDateTime

router = APIRouter(prefix=f"{API_PREFIX}/audit", tags=["audit"])


@router.get(
    "", name="audit-list", response_model=AuditPage, responses=error_responses(401, 403, 422)
)
def list_audit(
    session: SessionDep,
    _admin: AdminUser,
    page: Annotated[PageParams, Depends(page_params(service.AUDIT_SORTS))],
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64, description="Prefix, e.g. auth.")] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
) -> AuditPage:
    filters = service.AuditFilter(actor=actor, action=action, since=since, until=until)
    rows = service.list_entries(session, filters, page)
    return AuditPage(
        items=[AuditEntryOut.model_validate(row) for row in rows.items],
        next_cursor=rows.next_cursor,
    )


@router.get(
    "/verify", name="audit-verify", response_model=ChainStatus, responses=error_responses(401, 403)
)
def verify_audit(session: SessionDep, _admin: AdminUser) -> ChainStatus:
    report = service.verify_chain(session)
    return ChainStatus(
        ok=report.ok,
        checked=report.checked,
        first_broken_id=report.first_broken_id,
        reason=report.reason,
    )
