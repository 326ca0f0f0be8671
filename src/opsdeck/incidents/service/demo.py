"""`opsdeck seed demo` for incidents: categories, tags, a few hundred incidents over the last
months with real timelines (declared, handed to a commander, assignees, comments, pinned notes,
status changes, severity changes), postmortems and follow-ups, so a new deployment looks lived
in.

Everything goes through the service (declare, update, transition, add_assignee, add_comment,
add_note, create_postmortem, create_follow_up, ...), so the timeline, the audit log and every
hook see what a real incident would make them see; the seeder then moves each step back in time
(`at`, the incident's timestamps, comments' and postmortems' dates), which only a seeder may do.

Idempotent: the tag `demo` (on every demo incident, so they are easy to filter out) marks that
the data is there; a second run adds nothing. Deterministic: the same random seed every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import ClassVar, TypeVar

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from opsdeck.accounts import service as accounts
from opsdeck.core.db import utcnow
from opsdeck.core.pagination import PageParams
from opsdeck.incidents.models import (
    Comment,
    FollowUp,
    FollowUpStatus,
    Incident,
    IncidentStatus,
    Postmortem,
    PostmortemStatus,
    Severity,
    Tag,
    TimelineEvent,
    Visibility,
)
from opsdeck.incidents.service import catalog, comments, follow_ups, postmortems
from opsdeck.incidents.service.incidents import (
    Edits,
    add_assignee,
    declare,
    transition,
    update,
    watch,
)

MARKER_TAG = "demo"
INCIDENTS = 300
# How far back the demo incidents go.
HISTORY_DAYS = 120
# The newest ones are still open, in every working state.
OPEN_INCIDENTS = 14
RANDOM_SEED = 13
T = TypeVar("T")
WORKFLOW = (
    IncidentStatus.INVESTIGATING,
    IncidentStatus.IDENTIFIED,
    IncidentStatus.MONITORING,
    IncidentStatus.RESOLVED,
    IncidentStatus.CLOSED,
)
# The moves pinned on the timeline (the postmortem's timeline is built from the pins).
PINNED_STATES = (IncidentStatus.IDENTIFIED, IncidentStatus.RESOLVED)

CATEGORIES: tuple[tuple[str, str], ...] = (
    ("Database", "Primary databases, replicas, connection pools, migrations."),
    ("Network", "Load balancers, DNS, CDN, VPN and the links between regions."),
    ("Deployment", "A release, a configuration change or a feature flag gone wrong."),
    ("Security", "Suspicious access, leaked credentials, certificate problems."),
    ("Third party", "Payment providers, e-mail delivery, identity providers."),
    ("Capacity", "Saturation: CPU, memory, disks, queues, rate limits."),
)
TAGS = (
    MARKER_TAG,
    "customer-facing",
    "api",
    "payments",
    "checkout",
    "auth",
    "kubernetes",
    "postgres",
    "redis",
    "dns",
    "cdn",
    "latency",
    "data-integrity",
)
SERVICES = (
    "checkout-api",
    "orders-db",
    "auth-service",
    "search",
    "billing-worker",
    "edge-proxy",
    "notifications",
    "inventory-api",
    "reporting",
    "mobile-gateway",
)
# (title pattern, category, tags)
SCENARIOS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Elevated 5xx rate on {service}", "Deployment", ("api", "customer-facing")),
    ("Replication lag on {service} replicas", "Database", ("postgres", "latency")),
    ("Connection pool exhausted in {service}", "Capacity", ("postgres", "api")),
    ("Login failures after {service} release", "Deployment", ("auth", "customer-facing")),
    ("p99 latency above SLO on {service}", "Capacity", ("latency", "api")),
    ("DNS resolution failures for {service}", "Network", ("dns", "customer-facing")),
    ("Payment provider timeouts in {service}", "Third party", ("payments", "checkout")),
    ("Cache eviction storm in {service}", "Capacity", ("redis", "latency")),
    ("Expired TLS certificate on {service}", "Security", ("cdn", "customer-facing")),
    ("Disk almost full on {service} nodes", "Capacity", ("kubernetes",)),
    ("Duplicate orders written by {service}", "Database", ("data-integrity", "checkout")),
    ("Pods crash-looping for {service}", "Deployment", ("kubernetes", "api")),
    ("Suspicious admin logins on {service}", "Security", ("auth",)),
    ("CDN serving stale assets for {service}", "Network", ("cdn",)),
    ("E-mail delivery delayed from {service}", "Third party", ()),
)
DESCRIPTIONS = (
    "Alerts fired for **{service}** at {clock}. Dashboards show the error budget burning "
    "at {burn}x the normal rate.\n\n- first seen by the on-call\n- customers reported it in "
    "support shortly after",
    "Synthetic checks against **{service}** started failing. Impact is being assessed.\n\n"
    "Runbook: `runbooks/{service}.md`",
    "Customer support escalated several tickets about **{service}**. Metrics confirm a "
    "degradation since {clock}.",
)
COMMENTS = (
    "Looking at the dashboards now.",
    "I see the same errors in the logs of {service}: `connection reset by peer`.",
    "Rolled back the last deploy on one canary; errors are unchanged so far.",
    "Support has {count} tickets open about this; I'll keep them posted.",
    "The graph for {service} flattened out after the restart.",
    "Could this be related to last week's config change? Linking it here.",
    "Paging the database on-call as well.",
    "Status page updated.",
    "Error rate back under 0.1 % for 15 minutes.",
    "I can reproduce it from the staging environment.",
)
NOTES = (
    "Customer impact confirmed: {service} failing for about {percent} % of requests.",
    "Mitigation started: traffic shifted away from the unhealthy pool.",
    "Root cause found: a bad configuration value shipped with the last release.",
    "Fix deployed; watching the error rate.",
)
ROOT_CAUSES = (
    "A configuration change raised a timeout on {service} without load testing it.",
    "A slow query on a new code path held connections until the pool ran dry.",
    "An upstream provider degraded and our retries multiplied the load.",
    "A certificate renewal job had been failing silently for weeks.",
    "Autoscaling reacted on CPU while the bottleneck was memory.",
)
WENT_WELL = (
    "The alert fired within two minutes and reached the right person.",
    "The rollback procedure worked as documented.",
    "Communication on the status page was quick and clear.",
)
WENT_BADLY = (
    "It took too long to find the right dashboard.",
    "The runbook was out of date.",
    "Nobody owned the failing job, so its alerts went unread.",
)
FOLLOW_UPS = (
    "Add an alert on {service} connection pool saturation",
    "Load test {service} before changing timeouts",
    "Update the {service} runbook",
    "Automate certificate renewal checks for {service}",
    "Add a circuit breaker around the provider calls in {service}",
    "Write a dashboard for {service} p99 latency by endpoint",
    "Review retry settings of {service}",
)


@dataclass(frozen=True)
class SeedActor:
    """A user acting in the seeder (`access.Actor`); `is_admin` as the user's role says,
    except for the lead standing in for an admin when the deployment has none yet."""

    id: str
    username: str
    is_admin: bool


@dataclass
class Counts:
    categories: int = 0
    tags: int = 0
    incidents: int = 0
    comments: int = 0
    postmortems: int = 0
    follow_ups: int = 0
    timeline_events: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "categories": self.categories,
            "tags": self.tags,
            "incidents": self.incidents,
            "comments": self.comments,
            "postmortems": self.postmortems,
            "follow-ups": self.follow_ups,
            "timeline events": self.timeline_events,
        }


def already_seeded(session: Session) -> bool:
    return session.scalar(select(Tag.id).where(Tag.name == MARKER_TAG)) is not None


def _people(session: Session) -> list[SeedActor]:
    page = PageParams(orders=accounts.USER_SORTS, sort="username", limit=200)
    users = accounts.list_users(session, accounts.UserQuery(is_active=True), page).items
    return [SeedActor(id=u.id, username=u.username, is_admin=u.is_admin) for u in users]


class _Clock:
    """Dates what the service writes during a step back to the step's (past) time: new timeline
    events (pinned when the step says so), comments, postmortems and follow-ups, and every
    timestamp the service set on an incident, postmortem or follow-up since the seeding
    started. A `before_flush` listener on the seeder's own session, nothing else's."""

    STAMPS: ClassVar[dict[type, tuple[str, ...]]] = {
        Incident: ("acknowledged_at", "mitigated_at", "resolved_at", "closed_at"),
        Postmortem: ("created_at", "published_at"),
        FollowUp: ("created_at", "completed_at"),
        Comment: ("created_at",),
    }

    def __init__(self, session: Session) -> None:
        self.session = session
        self.real_start = utcnow()
        self.at = self.real_start
        self.pin = False

    def __enter__(self) -> _Clock:
        event.listen(self.session, "before_flush", self._before_flush)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.session, "before_flush", self._before_flush)

    def _before_flush(self, session: Session, _context: object, _instances: object) -> None:
        # (updated_at has onupdate=utcnow: always set it, so that default does not win)
        for row in session.new:
            if isinstance(row, TimelineEvent):
                row.at = self.at
                row.pinned = row.pinned or self.pin
            elif isinstance(row, Comment | FollowUp | Postmortem):
                row.created_at = self.at
            if isinstance(row, Incident | Postmortem):
                row.updated_at = self.at
        for row in session.dirty:
            for name in self.STAMPS.get(type(row), ()):
                value = getattr(row, name)
                if value is not None and value >= self.real_start:
                    setattr(row, name, self.at)
            if isinstance(row, Incident | Postmortem):
                row.updated_at = self.at


class _Story:
    """One incident's life, step by step, each step at its own (past) time."""

    def __init__(self, clock: _Clock, rng: random.Random, start: datetime, end: datetime) -> None:
        self.clock = clock
        self.rng = rng
        self.at = start
        self.end = end

    def later(self, low: float, high: float) -> datetime:
        """Move the story on by `low`..`high` minutes (never past `end`)."""
        step = timedelta(minutes=self.rng.uniform(low, high))
        self.at = min(self.at + step, self.end)
        return self.at

    def step(self, action: Callable[[], T], *, pinned: bool = False) -> T:
        """Run `action` (a service call) at the story's time."""
        self.clock.at, self.clock.pin = self.at, pinned
        try:
            result = action()
            self.clock.session.flush()
        finally:
            self.clock.pin = False
        return result


def _ensure_catalog(session: Session, lead: SeedActor, counts: Counts) -> None:
    existing = {c.name.lower() for c in catalog.list_categories(session)}
    for name, description in CATEGORIES:
        if name.lower() not in existing:
            catalog.create_category(session, lead, name, description)
            counts.categories += 1
    tags = {t.name for t in catalog.list_tags(session)}
    for tag in TAGS:
        if tag not in tags:
            catalog.create_tag(session, lead, tag)
            counts.tags += 1


def _declared_times(rng: random.Random, now: datetime) -> list[datetime]:
    """When each incident was declared, oldest first: spread over the history, the newest few
    in the last two days (those are the open ones)."""
    old = [
        now - timedelta(days=rng.uniform(2.5, HISTORY_DAYS))
        for _ in range(INCIDENTS - OPEN_INCIDENTS)
    ]
    recent = [now - timedelta(hours=rng.uniform(0.5, 44)) for _ in range(OPEN_INCIDENTS)]
    return sorted(old) + sorted(recent)


def _severity(rng: random.Random) -> Severity:
    return rng.choices(
        (Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4), weights=(5, 20, 45, 30)
    )[0]


def seed_demo(session: Session) -> dict[str, int]:
    """Create the demo data; counts of zero when it is there already or nobody exists to act
    in it (`opsdeck seed demo` seeds the users first)."""
    counts = Counts()
    if already_seeded(session):
        return counts.as_dict()
    people = _people(session)
    if not people:
        return counts.as_dict()
    admins = [p for p in people if p.is_admin]
    # Somebody must hand incidents to their commanders: an admin, or the first user standing
    # in for one (a seeder's licence; no request ever acts like this).
    leads = admins or [SeedActor(people[0].id, people[0].username, True)]
    rng = random.Random(RANDOM_SEED)  # noqa: S311  # nosec B311 - demo data, not security
    _ensure_catalog(session, leads[0], counts)
    last_event_before = session.scalar(select(func.max(TimelineEvent.id))) or 0
    with _Clock(session) as clock:
        now = clock.real_start - timedelta(minutes=1)
        times = _declared_times(rng, now)
        open_states = (
            IncidentStatus.TRIAGE,
            IncidentStatus.INVESTIGATING,
            IncidentStatus.IDENTIFIED,
            IncidentStatus.MONITORING,
        )
        for index, declared_at in enumerate(times):
            if index >= len(times) - OPEN_INCIDENTS:
                final = open_states[index % len(open_states)]
            else:
                final = rng.choices(
                    (IncidentStatus.CLOSED, IncidentStatus.RESOLVED), weights=(8, 2)
                )[0]
            story = _Story(clock, rng, declared_at, now)
            _one_incident(session, story, people, leads, final, counts)
    counts.incidents = len(times)
    last_event = session.scalar(select(func.max(TimelineEvent.id))) or 0
    counts.timeline_events = last_event - last_event_before
    return counts.as_dict()


def _one_incident(
    session: Session,
    story: _Story,
    people: Sequence[SeedActor],
    leads: Sequence[SeedActor],
    final: IncidentStatus,
    counts: Counts,
) -> None:
    rng = story.rng
    service = rng.choice(SERVICES)
    pattern, category, scenario_tags = rng.choice(SCENARIOS)
    severity = _severity(rng)
    restricted = category == "Security" or rng.random() < 0.05
    reporter = rng.choice(people)
    commander = rng.choice(people)
    lead = rng.choice(leads)
    others = [p for p in people if p.id not in (reporter.id, commander.id)]
    assignees = rng.sample(others, k=min(len(others), rng.randint(0, 2)))
    words: dict[str, object] = {
        "service": service,
        "clock": story.at.strftime("%H:%M UTC"),
        "burn": rng.randint(3, 40),
        "count": rng.randint(2, 60),
        "percent": rng.randint(2, 35),
    }
    incident = story.step(
        lambda: declare(
            session,
            reporter,
            title=pattern.format(**words),
            description=rng.choice(DESCRIPTIONS).format(**words),
            severity=severity,
            category=category,
            tags=[MARKER_TAG, *scenario_tags],
            visibility=Visibility.RESTRICTED if restricted else Visibility.PUBLIC,
            declared_at=story.at,
        ),
        pinned=True,
    )
    number = incident.number
    if final == IncidentStatus.TRIAGE and rng.random() < 0.5:
        return  # just declared: nobody has picked it up yet

    story.later(1, 8)
    story.step(lambda: update(session, lead, number, Edits(commander=commander.username)))
    for person in assignees:
        story.later(0.5, 5)
        story.step(partial(add_assignee, session, commander, number, person.username))
    # Who may speak on it: everybody for a public incident, its people for a restricted one.
    crew = [reporter, commander, *assignees]
    speakers = crew if restricted else [*crew, *rng.sample(people, k=min(3, len(people)))]
    if not restricted and rng.random() < 0.4:
        watcher = rng.choice(people)
        story.later(0.5, 10)
        story.step(lambda: watch(session, watcher, number))

    def say(text: str) -> None:
        speaker = rng.choice(speakers)
        story.later(2, 25)
        story.step(lambda: comments.add_comment(session, speaker, number, text))
        counts.comments += 1

    def note(text: str) -> None:
        story.later(2, 15)
        story.step(
            lambda: comments.add_note(session, commander, number, text, pinned=True), pinned=True
        )

    path = WORKFLOW[: WORKFLOW.index(final) + 1] if final in WORKFLOW else ()
    for status in path:
        if status == IncidentStatus.INVESTIGATING:
            story.later(1, 20)
        elif status == IncidentStatus.CLOSED:
            story.later(60 * 6, 60 * 48)
        else:
            for _ in range(rng.randint(0, 2)):
                say(rng.choice(COMMENTS).format(**words))
            story.later(5, 90)
        cause = (
            rng.choice(ROOT_CAUSES).format(**words) if status == IncidentStatus.IDENTIFIED else None
        )
        story.step(
            partial(transition, session, commander, number, status, note=cause),
            pinned=status in PINNED_STATES,
        )
        if status == IncidentStatus.INVESTIGATING:
            note(NOTES[0].format(**words))
            if rng.random() < 0.2:
                worse = Severity.SEV1 if severity == Severity.SEV2 else Severity.SEV2
                story.later(2, 20)
                story.step(
                    partial(update, session, commander, number, Edits(severity=worse)),
                    pinned=True,
                )
        elif status == IncidentStatus.IDENTIFIED and rng.random() < 0.6:
            note(NOTES[1].format(**words))
    if final in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
        # A follow-up's owner must see the incident: on a restricted one, one of its people.
        owners = crew if restricted else list(people)
        _aftermath(session, story, incident, owners, commander, severity, final, words, counts)


def _aftermath(
    session: Session,
    story: _Story,
    incident: Incident,
    owners: Sequence[SeedActor],
    commander: SeedActor,
    severity: Severity,
    final: IncidentStatus,
    words: dict[str, object],
    counts: Counts,
) -> None:
    """Follow-ups and, for the serious ones, the postmortem."""
    rng = story.rng
    number = incident.number
    resolved_on = story.at.date()
    today = follow_ups.today()
    for title in rng.sample(FOLLOW_UPS, k=rng.randint(0, 3)):
        owner = rng.choice(owners)
        story.later(10, 120)
        row = story.step(
            partial(
                follow_ups.create_follow_up,
                session,
                commander,
                number,
                title=title.format(**words),
                owner=owner.username,
            )
        )
        # Set after the fact (the service refuses a due date in the past): old ones are mostly
        # done, some slipped (overdue), recent ones are in the works.
        due: date = resolved_on + timedelta(days=rng.randint(7, 45))
        row.due_date = due
        if due < today and rng.random() < 0.7:
            row.status = FollowUpStatus.DONE
            done_on = due - timedelta(days=rng.randint(0, 5))
            row.completed_at = max(datetime.combine(done_on, story.at.timetz()), story.at)
        elif rng.random() < 0.4:
            row.status = FollowUpStatus.IN_PROGRESS
        counts.follow_ups += 1
    if severity not in (Severity.SEV1, Severity.SEV2) and rng.random() > 0.15:
        return
    story.later(60, 60 * 24)
    postmortem = story.step(lambda: postmortems.create_postmortem(session, commander, number))
    counts.postmortems += 1
    body = postmortem.body
    for placeholder, text in (
        (
            "What happened, in two or three sentences a newcomer understands.",
            f"{incident.title}. {rng.choice(ROOT_CAUSES).format(**words)}",
        ),
        ("## Root causes\n", f"## Root causes\n\n{rng.choice(ROOT_CAUSES).format(**words)}\n"),
        ("## What went well\n", f"## What went well\n\n- {rng.choice(WENT_WELL)}\n"),
        ("## What went badly\n", f"## What went badly\n\n- {rng.choice(WENT_BADLY)}\n"),
    ):
        body = body.replace(placeholder, text, 1)
    story.later(30, 60 * 24)
    story.step(lambda: postmortems.update_postmortem(session, commander, number, body))
    stages = [PostmortemStatus.IN_REVIEW, PostmortemStatus.PUBLISHED]
    if final == IncidentStatus.RESOLVED:
        stages = stages[: rng.randint(0, 1)]
    for stage in stages:
        story.later(60, 60 * 24 * 2)
        story.step(partial(postmortems.transition_postmortem, session, commander, number, stage))


__all__ = ["INCIDENTS", "MARKER_TAG", "already_seeded", "seed_demo"]
