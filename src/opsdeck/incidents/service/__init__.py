"""Incidents logic. No HTTP here and no commits: the request or task boundary commits.

Other modules (chat's war rooms) import this package: what they may use is re-exported here.
"""

from opsdeck.incidents.service.access import (
    Actor,
    can_edit,
    can_see,
    get_visible,
    incident_label,
    participant_ids,
    visible_clause,
)
from opsdeck.incidents.service.hooks import Change, IncidentEvent
from opsdeck.incidents.service.incidents import (
    INCIDENT_SORTS,
    Edits,
    IncidentFilter,
    declare,
    get_incident,
    list_incidents,
    transition,
)

__all__ = [
    "INCIDENT_SORTS",
    "Actor",
    "Change",
    "Edits",
    "IncidentEvent",
    "IncidentFilter",
    "can_edit",
    "can_see",
    "declare",
    "get_incident",
    "get_visible",
    "incident_label",
    "list_incidents",
    "participant_ids",
    "transition",
    "visible_clause",
]
