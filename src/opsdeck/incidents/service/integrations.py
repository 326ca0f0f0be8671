"""Alerts in: integrations (an Alertmanager or a generic JSON webhook) that declare incidents.

An admin creates an integration and gets its token once (`opi_...`; only its sha256 and its
first characters are stored). The sender posts notifications with `Authorization: Bearer
<token>`; this is not a user's sign-in (no cookie, no CSRF), and a token works only on the
endpoint of its kind.

A notification belongs to an alert group (Alertmanager's `groupKey`, the generic webhook's
`dedup_key`):

- firing, and the group has no open incident (one not resolved or closed): a new incident,
  declared by the integration (`opened`);
- firing, and the group has an open incident: an `alert_firing` event on its timeline
  (`appended`), never a second incident;
- resolved: an `alert_resolved` event on the group's open incident (or, when there is none, its
  latest one); with `resolve_on_recovery` and a workflow that allows it, the incident is
  resolved too (`resolved`), otherwise only the event is added (`recorded`; also the answer when
  the group never had an incident).

Retries are harmless: the sha256 of each accepted body is stored per integration
(`AlertDelivery`), and the same body again answers what the first one did (its incident) as
`duplicate`, changing nothing. Notifications of one integration are handled one at a time: the
integration's row is locked (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite serialises
writers), so two notifications of one group arriving together cannot open two incidents.

Everything the sender wrote (labels, annotations, keys, URLs) is untrusted: it goes into the
incident's Markdown escaped, and core.markdown sanitises what it renders.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from opsdeck.audit import service as audit
from opsdeck.core.db import utcnow
from opsdeck.core.deps import ClientContext
from opsdeck.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.core.ratelimit import RateLimit
from opsdeck.core.security import digest, new_token
from opsdeck.incidents.models import (
    AlertDelivery,
    Category,
    EventKind,
    Incident,
    IncidentSource,
    IncidentStatus,
    Integration,
    IntegrationKind,
    Severity,
)
from opsdeck.incidents.schemas import (
    MARKDOWN_MAX,
    TITLE_MAX,
    AlertmanagerAlert,
    AlertmanagerPayload,
    AlertOutcome,
    AlertResult,
    GenericAlert,
    IntegrationCreate,
    IntegrationUpdate,
)
from opsdeck.incidents.service import catalog, incidents, timeline, workflow
from opsdeck.incidents.service.access import Actor, require_admin
from opsdeck.incidents.service.catalog import same_name
from opsdeck.incidents.service.hooks import Change, IncidentEvent, changed

# A public marker that tells integration tokens apart from other credentials, not a secret.
TOKEN_PREFIX = "opi_"  # noqa: S105  # nosec B105
# "opi_" and 8 characters of the token: enough to tell tokens apart in a list, useless alone.
TOKEN_DISPLAY_LENGTH = 12
# Per integration: a burst of 120 notifications, then 2 a second. Alertmanager sends one per
# group per group_interval; more than this is a loop or an abuse of a leaked token.
ALERTS_RATE_LIMIT = RateLimit("incidents.integration", 120, 60)
# Where each kind posts (the API's paths, shown to admins).
ENDPOINTS = {
    IntegrationKind.ALERTMANAGER: "/api/v1/incidents/integrations/alertmanager",
    IntegrationKind.GENERIC: "/api/v1/incidents/integrations/generic",
}

INTEGRATION_SORTS = SortOrders(
    name="IntegrationSort",
    id_column=Integration.id,
    keys={"created_at": Integration.created_at, "name": Integration.name},
    default="-created_at",
)

# How much of a notification goes into an incident's Markdown.
ALERTS_LISTED = 50
VALUE_LIMIT = 300
LABELS_LISTED = 30
# A key longer than the column is stored as its digest (Alertmanager's keys can be long).
GROUP_KEY_LIMIT = 255


# -- managing integrations (admins) ------------------------------------------------------


@dataclass(frozen=True)
class NewIntegration:
    integration: Integration
    # The token itself: in the creation's answer only.
    token: str


def create_integration(
    session: Session,
    actor: Actor,
    spec: IntegrationCreate,
    *,
    client: ClientContext | None = None,
) -> NewIntegration:
    """A new integration and its token (shown once). A taken name is a 409; an unknown
    category a 422 naming `category`."""
    require_admin(actor)
    name = spec.name.strip()
    taken = session.scalar(select(Integration.id).where(same_name(Integration.name, name)))
    if taken is not None:
        raise Conflict(
            f"An integration named {name!r} exists already.",
            details=[{"field": "body.name", "message": "taken", "type": "duplicate"}],
        )
    category = None
    if spec.category:
        category = catalog.category_by_name(session, spec.category, field="body.category")
    token = new_token(TOKEN_PREFIX, 32)
    integration = Integration(
        name=name,
        kind=spec.kind,
        token_hash=digest(token),
        token_prefix=token[:TOKEN_DISPLAY_LENGTH],
        severity_label=spec.severity_label,
        severity_map=_normalised_map(spec.severity_map),
        default_severity=spec.default_severity,
        resolve_on_recovery=spec.resolve_on_recovery,
        category_id=category.id if category else None,
        created_by_id=actor.id,
    )
    session.add(integration)
    session.flush()
    _audit(session, actor, "incidents.integration.created", integration, client)
    return NewIntegration(integration, token)


def list_integrations(session: Session, actor: Actor, page: PageParams) -> Paged[Integration]:
    """Every integration, revoked ones included (admins only)."""
    require_admin(actor)
    return paginate(session, select(Integration), page)


def revoke_integration(
    session: Session, actor: Actor, integration_id: str, *, client: ClientContext | None = None
) -> Integration:
    """Its token stops working at once; the incidents it declared stay. Revoking a revoked
    integration changes nothing."""
    require_admin(actor)
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise NotFound(f"There is no integration with id {integration_id!r}.")
    if integration.revoked_at is None:
        integration.revoked_at = utcnow()
        _audit(session, actor, "incidents.integration.revoked", integration, client)
    return integration


def _normalised_map(severity_map: Mapping[str, Severity]) -> dict[str, str]:
    """Values are compared without case: stored in lower case."""
    return {key.lower(): str(value) for key, value in severity_map.items()}


def update_integration(
    session: Session,
    actor: Actor,
    integration_id: str,
    spec: IntegrationUpdate,
    *,
    client: ClientContext | None = None,
) -> Integration:
    """Change what an integration does with the alerts it receives: its name, the severity
    label and map, the default severity, resolving on recovery, the category. Only the fields
    sent change (`category: null` clears it); the kind and the token stay. A taken name is a
    409, an unknown category a 422 naming `body.category`, a revoked integration a 409. The
    row is locked like a notification locks it, so an alert handled after this commits uses
    the new map. Audited (`incidents.integration.updated`, each change's old and new value)
    when something changed."""
    require_admin(actor)
    integration = session.scalars(
        select(Integration)
        .where(Integration.id == integration_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if integration is None:
        raise NotFound(f"There is no integration with id {integration_id!r}.")
    if integration.revoked_at is not None:
        raise Conflict(
            f"The integration {integration.name!r} is revoked; create a new one instead.",
            details=[{"message": "revoked", "type": "revoked"}],
        )
    sent = spec.model_fields_set
    changes: dict[str, dict[str, Any]] = {}

    def change(field: str, old: Any, new: Any) -> None:
        if old != new:
            changes[field] = {"old": old, "new": new}

    if spec.name is not None:
        name = spec.name.strip()
        if name != integration.name:
            taken = session.scalar(
                select(Integration.id).where(
                    same_name(Integration.name, name), Integration.id != integration.id
                )
            )
            if taken is not None:
                raise Conflict(
                    f"An integration named {name!r} exists already.",
                    details=[{"field": "body.name", "message": "taken", "type": "duplicate"}],
                )
            change("name", integration.name, name)
            integration.name = name
    if spec.severity_label is not None:
        change("severity_label", integration.severity_label, spec.severity_label)
        integration.severity_label = spec.severity_label
    if spec.severity_map is not None:
        severity_map = _normalised_map(spec.severity_map)
        change("severity_map", dict(integration.severity_map or {}), severity_map)
        integration.severity_map = severity_map
    if spec.default_severity is not None:
        change("default_severity", integration.default_severity, str(spec.default_severity))
        integration.default_severity = spec.default_severity
    if spec.resolve_on_recovery is not None:
        change("resolve_on_recovery", integration.resolve_on_recovery, spec.resolve_on_recovery)
        integration.resolve_on_recovery = spec.resolve_on_recovery
    if "category" in sent:
        category = (
            catalog.category_by_name(session, spec.category, field="body.category")
            if spec.category
            else None
        )
        old_names = category_names(session, [integration])
        change(
            "category",
            old_names.get(integration.category_id or ""),
            category.name if category else None,
        )
        integration.category_id = category.id if category else None
    if changes:
        session.flush()
        _audit(
            session, actor, "incidents.integration.updated", integration, client, changes=changes
        )
    return integration


def category_names(session: Session, integrations: Iterable[Integration]) -> dict[str, str]:
    """Category id -> name, for the categories of `integrations`."""
    ids = {i.category_id for i in integrations if i.category_id}
    if not ids:
        return {}
    rows = session.execute(select(Category.id, Category.name).where(Category.id.in_(ids)))
    return {row.id: row.name for row in rows}


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    integration: Integration,
    client: ClientContext | None,
    *,
    changes: dict[str, dict[str, Any]] | None = None,
) -> None:
    details: dict[str, Any] = {
        "name": integration.name,
        "kind": integration.kind,
        "token_prefix": integration.token_prefix,
    }
    if changes:
        details["changes"] = changes
    audit.record(
        session,
        action,
        actor=actor,
        target_type="incident_integration",
        target_id=integration.id,
        details=details,
        client=client,
    )


# -- authenticating a sender --------------------------------------------------------------


def authenticate(session: Session, token: str | None, kind: IntegrationKind) -> Integration:
    """The live integration `token` belongs to. No token, an unknown or revoked one: 401 (with
    `WWW-Authenticate: Bearer`); a token of another kind than the endpoint's: 403."""
    if not token:
        raise Unauthorized("Send the integration's token as 'Authorization: Bearer <token>'.")
    integration = (
        session.scalar(select(Integration).where(Integration.token_hash == digest(token)))
        if token.startswith(TOKEN_PREFIX)
        else None
    )
    if integration is None or integration.revoked_at is not None:
        raise Unauthorized("This integration token is not valid (unknown or revoked).")
    if integration.kind != kind:
        raise Forbidden(
            f"This token belongs to a {integration.kind} integration; post to "
            f"{ENDPOINTS[IntegrationKind(integration.kind)]}."
        )
    return integration


# -- receiving notifications --------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """What any sender's notification comes down to."""

    group_key: str
    firing: bool
    # For a new incident.
    title: str
    description: str
    severity: Severity
    # For the timeline event of a repeat or a recovery: Markdown, escaped.
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


def receive_alertmanager(
    session: Session, integration: Integration, payload: AlertmanagerPayload, body: bytes
) -> AlertResult:
    """Handle one Alertmanager notification (`body` is the raw request body, whose digest makes
    retries harmless)."""
    return _receive(
        session, integration, _body_digest(body), _from_alertmanager(integration, payload)
    )


def receive_generic(
    session: Session, integration: Integration, payload: GenericAlert, body: bytes
) -> AlertResult:
    """Handle one generic webhook notification (see `receive_alertmanager`)."""
    return _receive(session, integration, _body_digest(body), _from_generic(integration, payload))


def _body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _receive(
    session: Session, integration: Integration, body_digest: str, note: Notification
) -> AlertResult:
    # One notification of this integration at a time (see the module's docstring).
    locked = session.scalars(
        select(Integration)
        .where(Integration.id == integration.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if locked.revoked_at is not None:
        raise Unauthorized("This integration token is not valid (unknown or revoked).")
    seen = session.scalar(
        select(AlertDelivery).where(
            AlertDelivery.integration_id == locked.id, AlertDelivery.digest == body_digest
        )
    )
    if seen is not None:
        return AlertResult(incident=seen.incident_number, outcome=AlertOutcome.DUPLICATE)
    incident: Incident | None
    if note.firing:
        incident, outcome = _fire(session, locked, note)
    else:
        incident, outcome = _recover(session, locked, note)
    number = incident.number if incident is not None else None
    session.add(
        AlertDelivery(
            integration_id=locked.id,
            digest=body_digest,
            incident_number=number,
            outcome=outcome,
        )
    )
    locked.last_used_at = utcnow()
    session.flush()
    return AlertResult(incident=number, outcome=outcome)


def _group_incidents(integration: Integration, group_key: str) -> Select[Incident]:
    return (
        select(Incident)
        .where(Incident.integration_id == integration.id, Incident.alert_group_key == group_key)
        .order_by(Incident.number.desc())
        .limit(1)
    )


def _open_incident(session: Session, integration: Integration, group_key: str) -> Incident | None:
    query = _group_incidents(integration, group_key).where(
        Incident.status.in_([str(s) for s in workflow.OPEN_STATUSES])
    )
    incident: Incident | None = session.scalar(query.with_for_update())
    return incident


def _fire(
    session: Session, integration: Integration, note: Notification
) -> tuple[Incident, AlertOutcome]:
    incident = _open_incident(session, integration, note.group_key)
    if incident is None:
        category = (
            session.get(Category, integration.category_id) if integration.category_id else None
        )
        incident = incidents.declare(
            session,
            None,
            title=note.title,
            description=note.description,
            severity=note.severity,
            category=category.name if category else None,
            source=IncidentSource(integration.kind),
            integration_id=integration.id,
            alert_group_key=note.group_key,
        )
        return incident, AlertOutcome.OPENED
    timeline.record(
        session,
        incident.number,
        EventKind.ALERT_FIRING,
        body=note.summary,
        data={"integration": integration.name, **note.data},
    )
    incident.updated_at = utcnow()
    changed(session, incident, Change(IncidentEvent.UPDATED, None, data={"alert": "firing"}))
    return incident, AlertOutcome.APPENDED


def _recover(
    session: Session, integration: Integration, note: Notification
) -> tuple[Incident | None, AlertOutcome]:
    incident = _open_incident(session, integration, note.group_key)
    if incident is None:
        # Resolved by hand before the alerts stopped: the recovery still belongs on its timeline.
        incident = session.scalar(_group_incidents(integration, note.group_key).with_for_update())
    if incident is None:
        return None, AlertOutcome.RECORDED
    timeline.record(
        session,
        incident.number,
        EventKind.ALERT_RESOLVED,
        body=note.summary,
        data={"integration": integration.name, **note.data},
    )
    if (
        integration.resolve_on_recovery
        and workflow.is_open(incident.status)
        and IncidentStatus.RESOLVED in workflow.allowed_next(incident.status)
    ):
        incidents.transition(
            session,
            None,
            incident.number,
            IncidentStatus.RESOLVED,
            note=f"Resolved by the {escape(integration.name)} integration: its alerts recovered.",
            incident=incident,
        )
        return incident, AlertOutcome.RESOLVED
    incident.updated_at = utcnow()
    changed(session, incident, Change(IncidentEvent.UPDATED, None, data={"alert": "resolved"}))
    return incident, AlertOutcome.RECORDED


# -- from a sender's payload to a notification --------------------------------------------

_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


def severity_for(integration: Integration, label_sets: Iterable[Mapping[str, str]]) -> Severity:
    """The most severe severity any of the label sets maps to through the integration's label
    and mapping (a value that is itself SEV1..SEV4 counts as is); the default when none does."""
    found: list[Severity] = []
    mapping = integration.severity_map or {}
    for labels in label_sets:
        value = labels.get(integration.severity_label)
        if value is None:
            continue
        key = value.strip().lower()
        mapped = mapping.get(key) or key.upper()
        if mapped in Severity.__members__:
            found.append(Severity(mapped))
    if not found:
        return Severity(integration.default_severity)
    return min(found, key=_SEVERITY_RANK.__getitem__)


def group_key(raw: str) -> str:
    """The key stored on the incident: the sender's, or its digest when it is too long."""
    key = raw.strip()
    if len(key) <= GROUP_KEY_LIMIT:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _from_alertmanager(integration: Integration, payload: AlertmanagerPayload) -> Notification:
    firing = payload.status == "firing"
    alerts = [a for a in payload.alerts if a.status == payload.status] or payload.alerts
    severity = severity_for(
        integration,
        [payload.common_labels, *(a.labels for a in alerts)],
    )
    listing = _alert_list(alerts, payload.truncated_alerts)
    heading = "Firing" if firing else "Resolved"
    description = "\n\n".join(
        part
        for part in (
            escape(payload.common_annotations.get("description", ""), limit=2000),
            f"**{heading} alerts ({len(alerts) + payload.truncated_alerts})**",
            listing,
            _provenance(integration, payload),
        )
        if part
    )
    return Notification(
        group_key=group_key(payload.group_key),
        firing=firing,
        title=_alertmanager_title(payload),
        description=_clip(description, MARKDOWN_MAX),
        severity=severity,
        summary=_clip(f"**{heading} alerts**\n\n{listing}", MARKDOWN_MAX),
        data={
            "source": "alertmanager",
            "group_key": _clip(payload.group_key, VALUE_LIMIT),
            "alerts": len(payload.alerts),
            "truncated_alerts": payload.truncated_alerts,
            "fingerprints": [_clip(a.fingerprint, 64) for a in alerts[:ALERTS_LISTED]],
        },
    )


def _alertmanager_title(payload: AlertmanagerPayload) -> str:
    summary = payload.common_annotations.get("summary", "")
    if not summary.strip() and len(payload.alerts) == 1:
        summary = payload.alerts[0].annotations.get("summary", "")
    if summary.strip():
        return _one_line(summary, TITLE_MAX)
    name = (
        payload.group_labels.get("alertname")
        or payload.common_labels.get("alertname")
        or payload.alerts[0].labels.get("alertname")
        or "Alert"
    )
    others = [f"{k}={v}" for k, v in sorted(payload.group_labels.items()) if k != "alertname"]
    title = f"{name} ({', '.join(others)})" if others else name
    return _one_line(title, TITLE_MAX) or "Alert"


def _alert_list(alerts: Sequence[AlertmanagerAlert], truncated: int) -> str:
    lines: list[str] = []
    for alert in alerts[:ALERTS_LISTED]:
        name = escape(alert.labels.get("alertname", "alert"), limit=200)
        summary = alert.annotations.get("summary", "")
        lines.append(f"- **{name}**" + (f": {escape(summary)}" if summary.strip() else ""))
        labels = _labels(alert.labels, skip="alertname")
        if labels:
            lines.append(f"  - Labels: {labels}")
        description = alert.annotations.get("description", "")
        if description.strip():
            lines.append(f"  - Description: {escape(description, limit=1000)}")
        if alert.starts_at is not None and alert.starts_at.year > 1:
            lines.append(f"  - Started: {alert.starts_at.isoformat()}")
        if alert.ends_at is not None and alert.ends_at.year > 1 and alert.status == "resolved":
            lines.append(f"  - Ended: {alert.ends_at.isoformat()}")
        link = _link("Source", alert.generator_url)
        if link:
            lines.append(f"  - {link}")
    hidden = len(alerts) - ALERTS_LISTED + truncated
    if hidden > 0:
        lines.append(f"- … and {hidden} more")
    return "\n".join(lines)


def _provenance(integration: Integration, payload: AlertmanagerPayload) -> str:
    parts = [f"_Declared by the **{escape(integration.name)}** integration (Alertmanager)_"]
    if payload.receiver:
        parts.append(f"receiver {escape(payload.receiver, limit=100)}")
    parts.append(f"group {escape(payload.group_key)}")
    link = _link("Alertmanager", payload.external_url)
    if link:
        parts.append(link)
    return "; ".join(parts)


def _from_generic(integration: Integration, payload: GenericAlert) -> Notification:
    firing = payload.status == "firing"
    severity = payload.severity or severity_for(integration, [payload.labels])
    labels = _labels(payload.labels)
    provenance = f"_Declared by the **{escape(integration.name)}** integration_"
    key = f"key {escape(payload.dedup_key)}"
    description = "\n\n".join(
        part
        for part in (payload.description, f"Labels: {labels}" if labels else "", provenance)
        if part
    )
    heading = "Firing" if firing else "Resolved"
    summary = f"**{heading}**: {escape(payload.title)} ({key})" + (
        f"\n\nLabels: {labels}" if labels else ""
    )
    return Notification(
        group_key=group_key(payload.dedup_key),
        firing=firing,
        title=_one_line(payload.title, TITLE_MAX),
        description=_clip(description, MARKDOWN_MAX),
        severity=severity,
        summary=_clip(summary, MARKDOWN_MAX),
        data={"source": "generic", "dedup_key": payload.dedup_key},
    )


# -- Markdown from untrusted text ---------------------------------------------------------

# Everything Markdown gives a meaning to, inline: emphasis, code, links and images, raw HTML,
# entities, headings, lists, tables, strikethrough. A backslash makes each one literal.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def escape(text: str, *, limit: int = VALUE_LIMIT) -> str:
    """`text` as literal Markdown inline text: one line, at most `limit` characters, every
    character Markdown could read as syntax escaped."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", _one_line(text, limit))


def _one_line(text: str, limit: int) -> str:
    return _clip(" ".join(text.split()), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _labels(labels: Mapping[str, str], *, skip: str = "") -> str:
    pairs = [f"{escape(k, limit=64)}={escape(v)}" for k, v in sorted(labels.items()) if k != skip]
    more = len(pairs) - LABELS_LISTED
    listed = ", ".join(pairs[:LABELS_LISTED])
    return listed + (f" and {more} more" if more > 0 else "")


# What may appear unencoded in a link destination we write (no spaces, angle brackets, quotes,
# parentheses or backslashes, which could end it or start markup).
_URL_SAFE = "/:?#[]@!$&*+,;=%~-._"


def _link(text: str, url: str) -> str:
    """A Markdown link to an http(s) `url`, or nothing for any other scheme."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or len(url) > 2000:
        return ""
    return f"[{text}]({quote(url, safe=_URL_SAFE)})"
