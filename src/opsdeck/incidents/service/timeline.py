"""The timeline: one row per change, written by the service in the same transaction as the
change itself (who, what, old -> new, when), plus the notes people add and pin."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from opsdeck.core.db import utcnow
from opsdeck.core.markdown import render
from opsdeck.incidents.models import EventKind, TimelineEvent

VALUE_LIMIT = 255


def _short(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def record(
    session: Session,
    incident_number: int,
    kind: EventKind,
    *,
    actor_id: str | None = None,
    old: object = None,
    new: object = None,
    body: str = "",
    data: dict[str, Any] | None = None,
    pinned: bool = False,
) -> TimelineEvent:
    """Append an event to an incident's timeline (flushed, so it has its id)."""
    event = TimelineEvent(
        incident_number=incident_number,
        at=utcnow(),
        actor_id=actor_id,
        kind=kind,
        old_value=_short(old),
        new_value=_short(new),
        body=body,
        body_html=render(body) if body else "",
        data=data or {},
        pinned=pinned,
    )
    session.add(event)
    session.flush()
    return event
