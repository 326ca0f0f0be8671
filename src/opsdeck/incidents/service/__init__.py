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
from opsdeck.incidents.service.comments import add_note
from opsdeck.incidents.service.hooks import CHANGED_SIGNAL, Change, IncidentEvent
from opsdeck.incidents.service.incidents import (
    INCIDENT_SORTS,
    Edits,
    IncidentFilter,
    declare,
    get_incident,
    link_war_room,
    list_incidents,
    transition,
)
from opsdeck.incidents.service.notifications import Kind as NotificationKind
from opsdeck.incidents.service.notifications import queue as queue_notification

__all__ = [
    "CHANGED_SIGNAL",
    "INCIDENT_SORTS",
    "Actor",
    "Change",
    "Edits",
    "IncidentEvent",
    "IncidentFilter",
    "NotificationKind",
    "add_note",
    "can_edit",
    "can_see",
    "declare",
    "get_incident",
    "get_visible",
    "incident_label",
    "link_war_room",
    "list_incidents",
    "participant_ids",
    "queue_notification",
    "transition",
    "visible_clause",
]
