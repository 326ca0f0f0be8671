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
from opsdeck.core import live, signals
from opsdeck.core.db import after_commit
from opsdeck.incidents.models import Incident, Visibility
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
    _publish_live(session, incident, change)


# The `change` of a live `incidents:incident` event (docs/chat.md, "Live updates").
_LIVE_CHANGES = {
    IncidentEvent.CREATED: "created",
    IncidentEvent.STATUS_CHANGED: "status",
    IncidentEvent.RESOLVED: "status",
    IncidentEvent.COMMENT_ADDED: "comment",
}


def _publish_live(session: Session, incident: Incident, change: Change) -> None:
    """Tell the open pages, once committed: `incidents:incident` on the `incidents` topic
    (who receives a restricted one is decided where it is delivered)."""
    payload = {
        "number": incident.number,
        "status": str(incident.status),
        "severity": str(incident.severity),
        "updated_at": incident.updated_at.isoformat() if incident.updated_at else None,
        "change": _LIVE_CHANGES.get(
            change.event, "timeline" if "timeline" in change.event else "updated"
        ),
        "restricted": incident.visibility != Visibility.PUBLIC,
    }
    after_commit(session, lambda: live.publish("incidents", "incidents:incident", payload))
