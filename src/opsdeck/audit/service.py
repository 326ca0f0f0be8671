"""Appending to and verifying the hash-chained audit log.

Each entry's hash is sha256(prev_hash || canonical JSON of the entry), where the canonical JSON
covers every stored field except the hash itself, ids included, so an edited, deleted or
reordered row breaks the chain at that row or the one after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from opsdeck.audit.models import AuditEntry
from opsdeck.core.db import utcnow
from opsdeck.core.deps import ClientContext
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate

GENESIS_HASH = "0" * 64
# Any fixed 64-bit number; names the lock that serialises appends on PostgreSQL.
_CHAIN_LOCK_KEY = 0x0D5DEC_A0D17


class Actor(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def username(self) -> str: ...


def canonical_json(entry: AuditEntry) -> str:
    body: dict[str, Any] = {
        "id": entry.id,
        "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "actor_id": entry.actor_id,
        "actor": entry.actor,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "ip": entry.ip,
        "request_id": entry.request_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_hash(entry: AuditEntry) -> str:
    return hashlib.sha256((entry.prev_hash + canonical_json(entry)).encode("utf-8")).hexdigest()


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
    # SQLite: every transaction began with BEGIN IMMEDIATE, so this one already holds the
    # database's single write lock.


def record(
    session: Session,
    action: str,
    *,
    actor: Actor | None = None,
    actor_name: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    client: ClientContext | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction. `actor_name` names an actor that is not a
    user row (a failed login's submitted username, the CLI)."""
    _lock_chain(session)
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    entry = AuditEntry(
        id=(last.id + 1) if last else 1,
        created_at=utcnow(),
        actor_id=actor.id if actor else None,
        actor=(actor.username if actor else actor_name),
        action=action,
        target_type=target_type,
        target_id=target_id,
        ip=client.ip if client else None,
        request_id=client.request_id if client else None,
        details=json.loads(json.dumps(details or {}, default=str)),
        prev_hash=last.hash if last else GENESIS_HASH,
    )
    entry.hash = compute_hash(entry)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None


def _iter_chain(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    expected_prev = GENESIS_HASH
    expected_id = 1
    checked = 0
    for entry in _iter_chain(session):
        if entry.id != expected_id:
            return ChainReport(
                False, checked, entry.id, f"entry {expected_id} is missing (found {entry.id} next)"
            )
        if entry.prev_hash != expected_prev:
            return ChainReport(
                False,
                checked,
                entry.id,
                "prev_hash does not match the previous entry: a row was deleted or reordered",
            )
        if compute_hash(entry) != entry.hash:
            return ChainReport(False, checked, entry.id, "content does not match its hash: edited")
        expected_prev = entry.hash
        expected_id += 1
        checked += 1
    return ChainReport(True, checked)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# Ids are chain order, so newest first is `-id`.
AUDIT_SORTS = SortOrders(
    name="AuditSort", id_column=AuditEntry.id, keys={"id": AuditEntry.id}, default="-id"
)


def list_entries(session: Session, filters: AuditFilter, page: PageParams) -> Paged[AuditEntry]:
    """Newest first by default."""
    query = select(AuditEntry)
    if filters.actor:
        query = query.where(func.lower(AuditEntry.actor) == filters.actor.lower())
    if filters.action:
        query = query.where(AuditEntry.action.startswith(filters.action, autoescape=True))
    if filters.since:
        query = query.where(AuditEntry.created_at >= filters.since)
    if filters.until:
        query = query.where(AuditEntry.created_at < filters.until)
    return paginate(session, query, page)
