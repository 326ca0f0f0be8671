"""What follows a change: the one place that fans a change out to the search index, the
outbound webhooks, the mail notifications and the other modules (the `incidents.changed`
signal, core.signals: chat archives an incident's war room when it closes), inside the
change's transaction (what they send goes through core.jobs' outbox, so it leaves only if the
change commits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from opsdeck.audit import service as audit
from opsdeck.core import signals
from opsdeck.incidents.models import Incident
from opsdeck.incidents.service import search
from opsdeck.incidents.service.access import Actor

# Sent after every change: `(session, number=, event=, data=, actor_id=)`, with `event` an
# IncidentEvent name and `data` the change's data (a status change: {"from", "to"}).
CHANGED_SIGNAL = "incidents.changed"


class IncidentEvent:
    """Event names, as outbound webhooks carry them (a contract: receivers match on them)."""

    CREATED = "incident.created"
    UPDATED = "incident.updated"
    STATUS_CHANGED = "incident.status_changed"
    RESOLVED = "incident.resolved"
    COMMENT_ADDED = "incident.comment_added"
    ASSIGNED = "incident.assigned"


@dataclass(frozen=True)
class Change:
    event: str
    # Who made it; None for an integration or the system.
    actor: Actor | None
    # Whatever the receivers need beyond the incident itself (old/new status, comment id, ...).
    data: dict[str, Any] = field(default_factory=dict)
    # Title, description or comments changed: the search document is rebuilt.
    text_changed: bool = False


def changed(session: Session, incident: Incident, change: Change) -> None:
    """Called by the service after every change it makes to an incident."""
    session.flush()
    if change.text_changed:
        search.index_incident(session, incident.number)
    audit.record(
        session,
        change.event,
        actor=change.actor,
        actor_name=None if change.actor else "integration",
        target_type="incident",
        target_id=str(incident.number),
        details=change.data,
    )
    from opsdeck.incidents.service import notifications, outbound  # they import Change

    notifications.on_change(session, incident, change)
    outbound.on_change(session, incident, change)
    signals.send(
        session,
        CHANGED_SIGNAL,
        number=incident.number,
        event=change.event,
        data=dict(change.data),
        actor_id=change.actor.id if change.actor else None,
    )
