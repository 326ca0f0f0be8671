"""Jobs: sent only once their transaction commits, through the outbox, by a relay that never
publishes a row twice while another relay holds it."""

from __future__ import annotations

import importlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi import FastAPI
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from opsdeck.core import jobs
from opsdeck.core.db import make_engine, make_sessionmaker
from opsdeck.core.errors import is_database_unavailable
from opsdeck.core.jobs import (
    DATABASE_RETRY_MAX_SECONDS,
    JobOutbox,
    Relay,
    database_retry_delay,
    enqueue,
    publish_owed,
)
from opsdeck.core.observability import bind_request_id, clear_request_id
from opsdeck.core.queue import beat_schedule
from opsdeck.modules import task_modules
from tests.core.conftest import closed_port_database_url
from tests.stack import ManagedProcess, TestStack

PURGE = "accounts.purge_expired"


@pytest.fixture
def engine(app: FastAPI, scratch_database_url: str) -> Iterator[Engine]:
    """A database of its own holding just the outbox, so the relays of the test stack's
    worker (which drain the test database's outbox) cannot take these tests' rows. Building
    the app pointed Celery at the test stack's broker."""
    engine = make_engine(scratch_database_url)
    JobOutbox.metadata.create_all(engine, tables=[JobOutbox.__table__])  # type: ignore[list-item]
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """What the relays of this process publish, (task, args), recorded at the publishing
    boundary instead of reaching the broker (these jobs' arguments are markers, not real
    ones)."""
    seen: list[tuple[str, list[Any]]] = []

    def record(connection: Any, row: JobOutbox) -> None:
        seen.append((row.task, list(row.args)))

    monkeypatch.setattr(jobs, "_send", record)
    return seen


def _owed(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(JobOutbox)) or 0)


def test_a_job_enqueued_in_a_rolled_back_transaction_is_never_sent(
    sessions: sessionmaker[Session], sent: list[tuple[str, list[Any]]]
) -> None:
    marker = uuid.uuid4().hex
    with sessions() as session:
        enqueue(session, PURGE, marker)
        session.rollback()

    assert _owed(sessions) == 0
    assert sent == []


def test_a_job_enqueued_in_a_rolled_back_savepoint_is_never_sent(
    sessions: sessionmaker[Session], sent: list[tuple[str, list[Any]]]
) -> None:
    with sessions() as session:
        savepoint = session.begin_nested()
        enqueue(session, PURGE, "in the failed savepoint")
        savepoint.rollback()
        with session.begin_nested():
            enqueue(session, PURGE, "in the kept savepoint")
        assert sent == []  # releasing a savepoint commits nothing yet
        session.commit()

    assert sent == [(PURGE, ["in the kept savepoint"])]
    assert _owed(sessions) == 0  # published, so no longer owed


def _enqueue_traced(sessions: sessionmaker[Session]) -> str:
    trace = f"jobs-{uuid.uuid4().hex}"
    bind_request_id(trace)
    try:
        with sessions() as session:
            enqueue(session, PURGE)
            session.commit()
    finally:
        clear_request_id()
    return trace


def _ran(celery_worker: ManagedProcess, trace: str) -> dict[str, Any]:
    return celery_worker.wait_for_record(
        lambda r: r.get("event") == "task_finished" and r.get("request_id") == trace,
        message=f"the job's task_finished line carrying {trace}",
    )


@pytest.mark.integration
def test_a_committed_job_runs_on_the_worker_with_the_request_id(
    sessions: sessionmaker[Session], celery_worker: ManagedProcess
) -> None:
    record = _ran(celery_worker, _enqueue_traced(sessions))
    assert record["task"] == PURGE
    assert record["state"] == "SUCCESS"
    assert _owed(sessions) == 0


@pytest.mark.integration
def test_a_publishing_connection_is_kept_and_a_dead_one_costs_no_job(
    sessions: sessionmaker[Session], celery_worker: ManagedProcess, test_stack: TestStack
) -> None:
    """Publishes after the first reuse its connection; one that died meanwhile (the broker
    restarted, or dropped it) is replaced at once, and the job goes out at once, not later
    through the relay."""
    jobs._publishers.close()
    _ran(celery_worker, _enqueue_traced(sessions))
    with jobs._publishers.connection() as publisher:
        assert publisher.kept

    if test_stack.redis is None:
        return  # the filesystem broker's connection is a folder: nothing to die
    client = redis.Redis.from_url(test_stack.redis.url)
    try:
        assert client.client_kill_filter(_type="normal", skipme=True) >= 1
    finally:
        client.close()

    trace = _enqueue_traced(sessions)
    assert _owed(sessions) == 0  # published by the commit, not left to the relay
    _ran(celery_worker, trace)


def test_a_kept_connection_that_fails_is_replaced_for_the_same_job(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs._publishers.close()
    with jobs._publishers.connection() as publisher:
        dead = publisher.connection
    seen: list[Any] = []

    def send(connection: Any, row: JobOutbox) -> None:
        if connection is dead:
            raise ConnectionError("connection reset by peer")
        seen.append((connection, row.task))

    monkeypatch.setattr(jobs, "_send", send)
    with sessions() as session:
        enqueue(session, PURGE, "marker")
        session.commit()

    assert _owed(sessions) == 0
    assert len(seen) == 1
    assert seen[0][1] == PURGE
    with jobs._publishers.connection() as publisher:
        assert publisher.connection is seen[0][0]  # the new one is kept, the dead one is gone


def test_a_forked_child_opens_its_own_publishing_connection(
    sessions: sessionmaker[Session], sent: list[tuple[str, list[Any]]]
) -> None:
    """Celery's pool processes are forked from a process that has published: a connection
    used by two processes at once would mix their bytes."""
    with jobs._publishers.connection():
        pass
    with jobs._publishers.connection() as publisher:
        parents = publisher.connection
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's verdict is its exit status
        with jobs._publishers.connection() as publisher:
            os._exit(0 if publisher.connection is not parents and not publisher.kept else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with jobs._publishers.connection() as publisher:
        assert publisher.connection is parents


def test_a_job_whose_publish_fails_stays_owed_and_the_relay_sends_it_later(
    sessions: sessionmaker[Session],
    engine: Engine,
    sent: list[tuple[str, list[Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commit succeeds whatever the broker says; the row waits for a relay."""

    def broker_down(connection: Any, row: JobOutbox) -> None:
        raise ConnectionError("broker unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(jobs, "_send", broker_down)
        with sessions() as session:
            enqueue(session, PURGE, "owed")
            session.commit()  # does not raise
        assert _owed(sessions) == 1

    assert Relay(engine).run_once() == 1
    assert sent == [(PURGE, ["owed"])]
    assert _owed(sessions) == 0


def test_two_relays_never_publish_the_same_row(
    sessions: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two relays draining at once, each publish slow: every row goes out exactly once.
    PostgreSQL: the second relay skips the rows the first holds (SKIP LOCKED); SQLite: it waits
    for the first one's transaction, then finds them gone."""
    with sessions() as session:
        session.add_all(JobOutbox(task=PURGE, args=[n]) for n in range(20))
        session.commit()
    published: list[int] = []
    lock = threading.Lock()

    def slow_send(connection: Any, row: JobOutbox) -> None:
        time.sleep(0.02)  # a publish in flight while the other relay looks
        with lock:
            published.append(int(row.args[0]))

    monkeypatch.setattr(jobs, "_send", slow_send)
    counts: list[int] = []
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            # One row at a time, so the two relays interleave over the whole run.
            total = 0
            while (one := publish_owed(engine, limit=1)) or _owed(sessions):
                total += one
            counts.append(total)
        except BaseException as exc:  # reported below
            errors.append(exc)

    relays = [threading.Thread(target=drain) for _ in range(2)]
    for relay in relays:
        relay.start()
    for relay in relays:
        relay.join(timeout=120)

    assert errors == []
    assert sorted(published) == list(range(20))
    assert sum(counts) == 20
    assert _owed(sessions) == 0


def test_a_relay_holding_a_row_keeps_the_other_one_off_it(
    sessions: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one relay holds a row (mid-publish), another publishes nothing of it."""
    with sessions() as session:
        session.add(JobOutbox(task=PURGE, args=["held"]))
        session.commit()
    published: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def held_send(connection: Any, row: JobOutbox) -> None:
        if threading.current_thread().name == "first-relay":
            holding.set()
            release.wait(30)
        published.append(threading.current_thread().name)

    monkeypatch.setattr(jobs, "_send", held_send)
    first = threading.Thread(target=lambda: publish_owed(engine), name="first-relay")
    first.start()
    assert holding.wait(30)
    second_result: list[int] = []
    second = threading.Thread(
        target=lambda: second_result.append(publish_owed(engine)), name="second-relay"
    )
    second.start()
    # PostgreSQL: the second relay skips the held row and returns at once. SQLite: it waits
    # for the first one's write lock. Either way it has published nothing while the row is held.
    second.join(timeout=1.0)
    assert published == []
    release.set()
    first.join(timeout=30)
    second.join(timeout=60)

    assert published == ["first-relay"]
    assert second_result == [0]
    assert _owed(sessions) == 0


def test_periodic_jobs_are_declared_by_their_modules() -> None:
    for name in task_modules():
        importlib.import_module(name)

    schedule = beat_schedule()
    assert schedule["accounts.purge_expired"] == {
        "task": "accounts.purge_expired",
        "schedule": 3600.0,
    }
    assert schedule["images.requeue_stalled"]["schedule"] == 60.0
    assert schedule["images.purge_expired_outputs"]["schedule"] == 86400.0
    assert schedule["audit.checkpoint"]["schedule"] == 600.0


def test_a_database_that_does_not_answer_is_told_from_other_errors(
    app: FastAPI, tmp_path: Path
) -> None:
    """What makes a job run again later instead of failing (and the API answer 503)."""
    url = closed_port_database_url()
    unreachable = make_engine(url)
    try:
        with pytest.raises(DBAPIError) as refused:
            unreachable.connect()
    finally:
        unreachable.dispose()
    with pytest.raises(psycopg.OperationalError) as raw:
        psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
    with app.state.sessionmaker() as session, pytest.raises(DBAPIError) as bad_sql:
        session.execute(text("SELECT * FROM no_such_table"))
    try:
        raise RuntimeError("wrapped") from refused.value
    except RuntimeError as exc:
        wrapped = exc
    # SQLite: held by another connection (an outage of sorts), or asked about a missing table.
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    waiting = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        with pytest.raises(DBAPIError) as locked, waiting.connect() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        holder.execute("ROLLBACK")
        with pytest.raises(DBAPIError) as missing, waiting.connect() as connection:
            connection.exec_driver_sql("SELECT * FROM no_such_table")
    finally:
        holder.close()
        waiting.dispose()

    assert is_database_unavailable(refused.value)
    assert is_database_unavailable(raw.value)
    assert is_database_unavailable(wrapped)
    assert is_database_unavailable(locked.value)
    assert not is_database_unavailable(bad_sql.value)  # a mistake, not an outage
    assert not is_database_unavailable(missing.value)
    assert not is_database_unavailable(ValueError("no"))
    assert not is_database_unavailable(None)


def test_jobs_meeting_a_database_outage_back_off_to_a_cap() -> None:
    delays = [database_retry_delay(attempt) for attempt in range(10)]

    for attempt, delay in enumerate(delays[:5]):
        assert 2**attempt <= delay <= 1.25 * 2**attempt
    assert all(delay == DATABASE_RETRY_MAX_SECONDS for delay in delays[5:])
    assert database_retry_delay(10_000) == DATABASE_RETRY_MAX_SECONDS
