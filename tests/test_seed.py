"""`opsdeck seed demo`: every module's demo data (a dozen users; a few hundred incidents with
real timelines, comments, postmortems and follow-ups), once; refused in production."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.accounts.models import User
from opsdeck.cli import main
from opsdeck.core.db import utcnow
from opsdeck.incidents.models import (
    Category,
    Comment,
    FollowUp,
    Incident,
    IncidentStatus,
    Postmortem,
    PostmortemStatus,
    Tag,
    TimelineEvent,
    Visibility,
)
from opsdeck.incidents.service import demo
from opsdeck.settings import Settings, get_settings
from tests.conftest import API, bearer, login


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point the in-process CLI at the test stack's database."""
    for name in list(os.environ):
        if name.startswith("OPSDECK_") and not name.startswith("OPSDECK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPSDECK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("OPSDECK_DATABASE_URL", settings.database_url_resolved)
    monkeypatch.setenv("OPSDECK_SECRET_KEY", settings.secret_key.get_secret_value())
    if settings.redis_url:
        monkeypatch.setenv("OPSDECK_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _count(session: Session, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _counts(session: Session) -> dict[str, int]:
    return {
        model.__name__: _count(session, model)
        for model in (User, Category, Tag, Incident, Comment, Postmortem, FollowUp, TimelineEvent)
    }


# The command makes demo.INCIDENTS (a few hundred); the suite runs it on fewer, to spare the
# shared machine: what is checked does not depend on how many.
SEEDED = 60


def test_the_demo_has_a_few_hundred_incidents() -> None:
    assert 200 <= demo.INCIDENTS <= 1000


def test_seed_demo_fills_a_new_deployment_once(
    cli_env: Settings, app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "INCIDENTS", SEEDED)
    runner = CliRunner()
    first = runner.invoke(main, ["seed", "demo"])
    assert first.exit_code == 0, first.output
    output = first.output
    assert "accounts: 12 users" in output
    assert f"incidents: {SEEDED} incidents" in output
    for what in ("categories", "comments", "postmortems", "follow-ups", "timeline events"):
        assert re.search(rf"incidents: [1-9]\d* {what}", output), what
    found = re.search(r"password \(all of them, shown once\): (\S+)", output)
    assert found is not None, output
    password = found.group(1)

    session: Session = app.state.sessionmaker()
    try:
        before = _counts(session)
        now = utcnow()
        assert before["User"] == 12
        assert _count(session, User, User.role == "admin") == 2
        assert before["Incident"] == SEEDED
        assert before["Category"] == len(demo.CATEGORIES)
        incidents = list(session.scalars(select(Incident).order_by(Incident.number)))
        # Spread over months, in the past, in order of their numbers.
        declared = [i.declared_at for i in incidents]
        assert declared == sorted(declared)
        assert declared[-1] < now
        assert declared[-1] - declared[0] > timedelta(days=60)
        statuses = {i.status for i in incidents}
        assert statuses == set(IncidentStatus)
        assert Visibility.RESTRICTED in {i.visibility for i in incidents}
        for incident in incidents:
            if incident.status == IncidentStatus.CLOSED:
                assert incident.acknowledged_at is not None
                assert incident.resolved_at is not None
                assert incident.closed_at is not None
                assert (
                    incident.declared_at
                    <= incident.acknowledged_at
                    <= incident.resolved_at
                    <= incident.closed_at
                    <= now
                )
        # Real timelines: backdated, in order, starting at the declaration.
        events = session.execute(
            select(TimelineEvent.incident_number, TimelineEvent.at).order_by(TimelineEvent.id)
        ).all()
        by_incident: dict[int, list[Any]] = {}
        for number, at in events:
            by_incident.setdefault(number, []).append(at)
        assert set(by_incident) == {i.number for i in incidents}
        for incident in incidents:
            times = by_incident[incident.number]
            assert times == sorted(times)
            assert times[0] == incident.declared_at
            assert times[-1] <= now
        assert _count(session, TimelineEvent, TimelineEvent.pinned.is_(True)) > SEEDED
        published = list(
            session.scalars(
                select(Postmortem).where(Postmortem.status == PostmortemStatus.PUBLISHED)
            )
        )
        assert published
        assert all(" UTC — " in p.body and p.published_at is not None for p in published)
        assert all(p.published_at < now for p in published if p.published_at)
        assert _count(session, FollowUp, FollowUp.status == "done") > 0
        session.commit()
    finally:
        session.close()

    # The demo people sign in with the password printed, and see the follow-ups overdue.
    signed_in = login(client, "chen.wei", password)
    assert signed_in.status_code == 200, signed_in.text
    headers = bearer(signed_in.json()["access_token"])
    overdue = client.get(f"{API}/incidents/follow-ups?overdue=true&limit=5", headers=headers)
    assert overdue.status_code == 200
    assert overdue.json()["items"]
    assert all(item["overdue"] for item in overdue.json()["items"])

    second = runner.invoke(main, ["seed", "demo"])
    assert second.exit_code == 0, second.output
    assert "Nothing to add: the demo data is there already." in second.output
    assert "password" not in second.output
    session = app.state.sessionmaker()
    try:
        assert _counts(session) == before
    finally:
        session.close()


def test_seed_demo_refuses_to_run_in_production(
    settings: Settings, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("OPSDECK_") and not name.startswith("OPSDECK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPSDECK_ENVIRONMENT", "production")
    monkeypatch.setenv("OPSDECK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("OPSDECK_SECRET_KEY", "production-secret-key-that-is-long-enough-0123")
    monkeypatch.setenv("OPSDECK_WEBHOOK_SECRET", "production-webhook-secret-long-enough-01234")
    # Nothing listens there: the refusal comes before any connection.
    monkeypatch.setenv("OPSDECK_DATABASE_URL", "postgresql+psycopg://opsdeck:x@127.0.0.1:9/opsdeck")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["seed", "demo"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "Refusing to seed demo data" in result.output
    assert "OPSDECK_ENVIRONMENT=production" in result.output
    session: Session = app.state.sessionmaker()
    try:
        assert _count(session, User) == 0
        assert _count(session, Incident) == 0
    finally:
        session.close()


def test_every_modules_seeder_is_optional_and_the_cli_names_no_module() -> None:
    """The command loops over the registry; accounts and incidents bring seeders."""
    from opsdeck.modules import MODULES

    seeders = [module.name for module in MODULES if module.demo_seed is not None]
    assert seeders[:1] == ["accounts"]  # the people come first
    assert "incidents" in seeders
    help_text = CliRunner().invoke(main, ["seed", "demo", "--help"]).output
    assert "production" in help_text
