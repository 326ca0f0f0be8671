"""Signed checkpoints of the audit chain, so that deleting its newest entries shows.

The hash chain alone proves that no entry was edited, removed from the middle or reordered,
but a chain cut short still verifies. A checkpoint records where the chain stood (the newest
entry's id and hash, the number of entries) with an HMAC under a key derived from the secret
key, and is written OUTSIDE the audit table: to the JSON log stream (an external log store
keeps a copy the database's owner cannot reach) and appended to a file in the data directory.
`opsdeck audit verify` compares the chain with the newest checkpoint and fails, naming the
missing entries, when the chain no longer reaches it.

What this protects against: somebody with write access to the database (a stolen credential,
a rogue operator, SQL injection) deleting the newest entries to hide what they did. What it
does not: an attacker who also holds the secret key and can rewrite the checkpoint file and
the external log copy; entries appended and removed again between two checkpoints (run them
as often as that matters: beat writes one every 10 minutes, `opsdeck audit checkpoint` on
demand).
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.audit.models import AuditEntry
from opsdeck.core.db import utcnow
from opsdeck.core.security import derive_key
from opsdeck.settings import Settings

log = structlog.get_logger("opsdeck.audit")

FILE_NAME = "audit-checkpoints.jsonl"
KEY_PURPOSE = "audit-checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    last_id: int
    last_hash: str
    count: int
    at: str
    mac: str = ""

    def signed_text(self) -> str:
        return f"{self.last_id}|{self.last_hash}|{self.count}|{self.at}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)


class CheckpointError(ValueError):
    """A checkpoint that is malformed or whose signature does not match."""


def _mac(settings: Settings, checkpoint: Checkpoint) -> str:
    key = derive_key(settings.secret_bytes(), KEY_PURPOSE)
    return hmac.new(key, checkpoint.signed_text().encode(), "sha256").hexdigest()


def current(session: Session, settings: Settings, now: datetime | None = None) -> Checkpoint:
    """Where the chain stands now, signed."""
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    count = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    unsigned = Checkpoint(
        last_id=last.id if last else 0,
        last_hash=last.hash if last else "",
        count=count,
        at=(now or utcnow()).isoformat(timespec="seconds"),
    )
    return Checkpoint(**{**asdict(unsigned), "mac": _mac(settings, unsigned)})


def path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


def write(session: Session, settings: Settings) -> Checkpoint:
    """Take a checkpoint: logged (event `audit_checkpoint`) and appended to the file."""
    checkpoint = current(session, settings)
    log.info("audit_checkpoint", **asdict(checkpoint))
    target = path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (checkpoint.to_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return checkpoint


def parse(settings: Settings, text: str) -> Checkpoint:
    """A checkpoint from its JSON (a line of the file or of the log); its signature checked."""
    try:
        raw: Any = json.loads(text)
        checkpoint = Checkpoint(
            last_id=int(raw["last_id"]),
            last_hash=str(raw["last_hash"]),
            count=int(raw["count"]),
            at=str(raw["at"]),
            mac=str(raw["mac"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"not a checkpoint: {exc}") from None
    if not hmac.compare_digest(_mac(settings, checkpoint), checkpoint.mac):
        raise CheckpointError("the checkpoint's signature does not match: it was altered")
    return checkpoint


def newest(settings: Settings, source: Path | None = None) -> Checkpoint | None:
    """The newest checkpoint of a file (the data directory's by default), or None."""
    target = source or path(settings)
    try:
        lines = [line for line in target.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return None
    return parse(settings, lines[-1]) if lines else None


def compare(session: Session, checkpoint: Checkpoint) -> str | None:
    """None when the chain still reaches the checkpoint; otherwise what is missing."""
    if checkpoint.last_id == 0:
        return None
    newest_id = session.scalar(select(func.max(AuditEntry.id))) or 0
    if newest_id < checkpoint.last_id:
        return (
            f"entries {newest_id + 1}..{checkpoint.last_id} are missing: the checkpoint of "
            f"{checkpoint.at} saw the chain reach entry {checkpoint.last_id} "
            f"({checkpoint.count} entries); it now ends at {newest_id}"
        )
    entry_hash = session.scalar(select(AuditEntry.hash).where(AuditEntry.id == checkpoint.last_id))
    if entry_hash != checkpoint.last_hash:
        return (
            f"entry {checkpoint.last_id} is not the one the checkpoint of {checkpoint.at} "
            "signed: the chain was rewritten from there"
        )
    count = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.id <= checkpoint.last_id)
    )
    if count != checkpoint.count:
        return (
            f"the checkpoint of {checkpoint.at} counted {checkpoint.count} entries up to "
            f"{checkpoint.last_id}; there are {count}"
        )
    return None
