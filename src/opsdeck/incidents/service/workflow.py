"""The incident workflow: which status may follow which, and what each move stamps.

    triage -> investigating -> identified -> monitoring -> resolved -> closed

The three working states (investigating, identified, monitoring) move freely among themselves,
because real incidents go back (a fix that did not hold). Any state before `resolved` may be
resolved (a false alarm resolves from triage). An incident is resolved before it is closed, so
`triage -> closed` is refused. `resolved` and `closed` reopen to `investigating`.

Timestamps: `acknowledged_at` is the first move out of triage (MTTA = acknowledged - declared),
`mitigated_at` the first arrival in monitoring, `resolved_at` and `closed_at` the latest arrival
in those states (a reopen clears them; MTTR = resolved - declared).
"""

from __future__ import annotations

from datetime import datetime

from opsdeck.incidents.models import Incident, IncidentStatus

S = IncidentStatus
WORKING = (S.INVESTIGATING, S.IDENTIFIED, S.MONITORING)

NEXT: dict[IncidentStatus, tuple[IncidentStatus, ...]] = {
    S.TRIAGE: (*WORKING, S.RESOLVED),
    S.INVESTIGATING: (S.IDENTIFIED, S.MONITORING, S.RESOLVED),
    S.IDENTIFIED: (S.INVESTIGATING, S.MONITORING, S.RESOLVED),
    S.MONITORING: (S.INVESTIGATING, S.IDENTIFIED, S.RESOLVED),
    S.RESOLVED: (S.CLOSED, S.INVESTIGATING),
    S.CLOSED: (S.INVESTIGATING,),
}
OPEN_STATUSES = (S.TRIAGE, *WORKING)
DONE_STATUSES = (S.RESOLVED, S.CLOSED)


def allowed_next(status: str) -> tuple[IncidentStatus, ...]:
    return NEXT[IncidentStatus(status)]


def is_open(status: str) -> bool:
    return status in OPEN_STATUSES


def stamp(incident: Incident, to: IncidentStatus, now: datetime) -> None:
    """Set the timestamps the move to `to` implies."""
    if incident.acknowledged_at is None and to != S.TRIAGE:
        incident.acknowledged_at = now
    if to == S.MONITORING and incident.mitigated_at is None:
        incident.mitigated_at = now
    if to == S.RESOLVED:
        incident.resolved_at = now
        incident.mitigated_at = incident.mitigated_at or now
    if to == S.CLOSED:
        incident.closed_at = now
    if to in OPEN_STATUSES:  # a reopen
        incident.resolved_at = None
        incident.closed_at = None
