from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from opsdeck.core.pagination import Page


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    actor_id: str | None
    actor: str | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(Page[AuditEntryOut]):
    pass


class ChainStatus(BaseModel):
    ok: bool
    checked: int
    first_broken_id: int | None
    reason: str | None
