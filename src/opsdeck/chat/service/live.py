"""Live-update topics a chat connection may follow (`live:subscribe`), and who may receive
what is published on them (docs/chat.md, "Live updates").

- `incidents`: every incident the user may see (a restricted one only reaches its people and
  admins, checked when each event is delivered);
- `incidents:<number>`: one incident the user may see;
- `images:batch:<id>`: one image batch of the user's (admins: anybody's).

A topic the user may not see is `not_found`, the same answer as one that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from opsdeck.chat.service.access import Actor
from opsdeck.core.errors import NotFound
from opsdeck.images import service as images
from opsdeck.incidents import service as incidents

INCIDENTS = "incidents"
_INCIDENT = re.compile(r"^incidents:([1-9][0-9]{0,8})$")
_BATCH = re.compile(r"^images:batch:([A-Za-z0-9_-]{1,64})$")


def _not_found(topic: str) -> NotFound:
    return NotFound(f"There is no topic {topic[:80]!r} for you.", code="not_found")


def authorize(session: Session, actor: Actor, topic: str) -> str:
    """The topic, when `actor` may follow it; `not_found` otherwise."""
    if topic == INCIDENTS:
        return topic
    if match := _INCIDENT.match(topic):
        if not may_see_incident(session, actor, int(match.group(1))):
            raise _not_found(topic)
        return topic
    if match := _BATCH.match(topic):
        owner = images.batch_owner_id(session, match.group(1))
        if owner is None or (owner != actor.id and not actor.is_admin):
            raise _not_found(topic)
        return topic
    raise _not_found(topic)


def may_see_incident(session: Session, actor: Actor, number: int) -> bool:
    try:
        incidents.get_visible(session, actor, number)
    except NotFound:
        return False
    return True


def delivery_topics(topic: str, payload: dict[str, Any]) -> list[str]:
    """The topics whose followers get an event published on `topic`."""
    if topic == INCIDENTS and isinstance(payload.get("number"), int):
        return [INCIDENTS, f"incidents:{payload['number']}"]
    return [topic]


def may_receive(session: Session, actor: Actor, topic: str, payload: dict[str, Any]) -> bool:
    """Whether `actor` may still receive a restricted event (checked per delivery)."""
    number = payload.get("number")
    if topic == INCIDENTS and isinstance(number, int):
        return may_see_incident(session, actor, number)
    return False
