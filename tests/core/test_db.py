"""core.db: UTC datetimes, the migration-head guard, jobs sent only after commit, and what a
refused unit of work keeps."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from opsdeck.app import create_app
from opsdeck.core.db import (
    DatabaseNotAtHead,
    UTCDateTime,
    after_commit,
    ensure_at_head,
    head_revision,
    keep_on_refusal,
    make_engine,
    make_sessionmaker,
    transaction,
    upgrade_database,
    utcnow,
)
from opsdeck.core.deps import SessionDep
from opsdeck.core.errors import Forbidden, NotFound
from opsdeck.settings import Settings
from tests.conftest import error_of, make_settings
from tests.stack import current_stack, hermetic_env, python_command

KOLKATA = timezone(timedelta(hours=5, minutes=30))
moments = MetaData()
MOMENTS = Table(
    "core_test_moments",
    moments,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime()),
)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url_resolved)
    moments.create_all(engine)
    try:
        yield engine
    finally:
        moments.drop_all(engine)
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


# -- UTC datetimes -----------------------------------------------------------------------------


def test_datetimes_come_back_as_the_same_instant_in_utc(engine: Engine) -> None:
    written = datetime(2024, 3, 31, 1, 30, 15, 123456, tzinfo=KOLKATA)

    with engine.begin() as connection:
        connection.execute(insert(MOMENTS).values(id=1, at=written))
    with engine.connect() as connection:
        read = connection.execute(select(MOMENTS.c.at)).scalar_one()

    assert read == written
    assert read.tzinfo is not None
    assert read.utcoffset() == timedelta(0)
    assert read == datetime(2024, 3, 30, 20, 0, 15, 123456, tzinfo=UTC)


def test_utcnow_is_aware_and_round_trips(engine: Engine) -> None:
    now = utcnow()

    with engine.begin() as connection:
        connection.execute(insert(MOMENTS).values(id=2, at=now))
    with engine.connect() as connection:
        read = connection.execute(select(MOMENTS.c.at)).scalar_one()

    assert now.tzinfo is UTC
    assert read == now


def test_a_naive_datetime_is_refused_with_a_hint(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(StatementError) as refused:
        connection.execute(insert(MOMENTS).values(id=3, at=datetime(2024, 1, 1, 12, 0)))

    assert "naive datetime given; use opsdeck.core.db.utcnow()" in str(refused.value)
    with engine.connect() as connection:
        assert connection.execute(select(MOMENTS.c.id)).all() == []


def test_null_datetimes_stay_null(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(MOMENTS).values(id=4, at=None))
    with engine.connect() as connection:
        assert connection.execute(select(MOMENTS.c.at)).scalar_one() is None


# -- the migration-head guard -----------------------------------------------------------------


def test_an_unmigrated_database_is_refused_with_the_command_to_run(
    scratch_database_url: str,
) -> None:
    engine = make_engine(scratch_database_url)
    try:
        with pytest.raises(DatabaseNotAtHead) as refused:
            ensure_at_head(engine)
        upgrade_database(scratch_database_url)
        ensure_at_head(engine)
    finally:
        engine.dispose()

    message = str(refused.value)
    assert "run `opsdeck db upgrade`" in message
    assert "none (empty database)" in message
    assert str(head_revision()) in message
    assert refused.value.current is None
    assert refused.value.head == head_revision()


def test_the_app_does_not_start_on_an_unmigrated_database(
    scratch_database_url: str, tmp_path: Path
) -> None:
    app = create_app(make_settings(tmp_path, database_url=scratch_database_url))

    with pytest.raises(DatabaseNotAtHead), TestClient(app):
        pass


def test_opsdeck_db_check_and_upgrade_from_the_command_line(
    scratch_database_url: str, settings: Settings, tmp_path: Path
) -> None:
    env = hermetic_env(settings, tmp_path / "metrics")
    env["OPSDECK_DATABASE_URL"] = scratch_database_url

    def opsdeck(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            python_command(["opsdeck", *args], tmp_path),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    before = opsdeck("db", "check")
    upgraded = opsdeck("db", "upgrade")
    after = opsdeck("db", "check")

    assert before.returncode == 1
    assert "run `opsdeck db upgrade` first" in before.stderr
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"database at head ({head_revision()})" in upgraded.stdout
    assert after.returncode == 0, after.stderr


# -- after_commit ------------------------------------------------------------------------------


def _write(session: Session, moment_id: int) -> None:
    session.execute(insert(MOMENTS).values(id=moment_id, at=utcnow()))


def _stored_ids(sessions: sessionmaker[Session]) -> list[int]:
    with sessions() as session:
        return list(session.scalars(select(MOMENTS.c.id).order_by(MOMENTS.c.id)))


def test_after_commit_runs_once_after_the_commit_and_sees_the_rows(
    sessions: sessionmaker[Session],
) -> None:
    seen: list[list[int]] = []
    with sessions() as session:
        _write(session, 10)
        after_commit(session, lambda: seen.append(_stored_ids(sessions)))
        session.flush()
        assert seen == []
        session.commit()
        assert seen == [[10]]  # another connection already sees the committed row
        _write(session, 11)
        session.commit()

    assert seen == [[10]]


def test_after_commit_is_dropped_on_rollback(sessions: sessionmaker[Session]) -> None:
    ran: list[str] = []
    with sessions() as session:
        _write(session, 20)
        after_commit(session, lambda: ran.append("job"))
        session.rollback()
        _write(session, 21)
        session.commit()

    assert ran == []
    assert _stored_ids(sessions) == [21]


def test_after_commit_is_dropped_when_the_unit_of_work_fails(
    sessions: sessionmaker[Session],
) -> None:
    ran: list[str] = []

    def unit_of_work() -> None:
        with transaction(sessions) as session:
            _write(session, 30)
            after_commit(session, lambda: ran.append("job"))
            raise RuntimeError("validation failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        unit_of_work()

    assert ran == []
    assert _stored_ids(sessions) == []


def test_after_commit_is_dropped_when_the_session_closes_without_commit(
    sessions: sessionmaker[Session],
) -> None:
    ran: list[str] = []
    with sessions() as session:
        _write(session, 40)
        after_commit(session, lambda: ran.append("stale job"))
        session.close()
        _write(session, 41)  # the same session object, a new transaction
        session.commit()

    assert ran == []
    assert _stored_ids(sessions) == [41]


def test_a_rolled_back_savepoint_drops_only_its_own_callbacks(
    sessions: sessionmaker[Session],
) -> None:
    ran: list[str] = []
    with sessions() as session:
        _write(session, 50)
        after_commit(session, lambda: ran.append("outer"))
        savepoint = session.begin_nested()
        _write(session, 51)
        after_commit(session, lambda: ran.append("inside the failed savepoint"))
        savepoint.rollback()
        with session.begin_nested():
            _write(session, 52)
            after_commit(session, lambda: ran.append("inside the kept savepoint"))
        released = list(ran)  # releasing a savepoint commits nothing yet
        session.commit()

    assert released == []
    assert ran == ["outer", "inside the kept savepoint"]
    assert _stored_ids(sessions) == [50, 52]


def test_a_released_savepoint_callback_dies_with_the_outer_rollback(
    sessions: sessionmaker[Session],
) -> None:
    ran: list[str] = []
    with sessions() as session:
        with session.begin_nested():
            _write(session, 60)
            after_commit(session, lambda: ran.append("job"))
        session.rollback()

    assert ran == []
    assert _stored_ids(sessions) == []


# -- keep_on_refusal ---------------------------------------------------------------------------


def test_a_refusal_keeps_its_record_and_nothing_else(sessions: sessionmaker[Session]) -> None:
    def refused() -> None:
        with transaction(sessions) as session:
            _write(session, 70)
            keep_on_refusal(session, lambda s: _write(s, 71))
            raise Forbidden("no")

    with pytest.raises(Forbidden):
        refused()

    assert _stored_ids(sessions) == [71]


def test_records_run_in_order_after_the_rollback(sessions: sessionmaker[Session]) -> None:
    seen: list[list[int]] = []

    def record(session: Session, moment_id: int) -> None:
        seen.append(list(session.scalars(select(MOMENTS.c.id).order_by(MOMENTS.c.id))))
        _write(session, moment_id)

    def refused() -> None:
        with transaction(sessions) as session:
            _write(session, 72)
            keep_on_refusal(session, lambda s: record(s, 73))
            keep_on_refusal(session, lambda s: record(s, 74))
            raise NotFound("gone")

    with pytest.raises(NotFound):
        refused()

    assert seen == [[], [73]]
    assert _stored_ids(sessions) == [73, 74]


def test_nothing_is_kept_when_the_unit_of_work_commits(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        _write(session, 75)
        keep_on_refusal(session, lambda s: _write(s, 76))
        # The caller handled the refusal itself and carried on.

    assert _stored_ids(sessions) == [75]


def test_nothing_is_kept_when_the_unit_of_work_crashes(sessions: sessionmaker[Session]) -> None:
    def crashed() -> None:
        with transaction(sessions) as session:
            keep_on_refusal(session, lambda s: _write(s, 77))
            raise RuntimeError("a bug, not a refusal")

    with pytest.raises(RuntimeError):
        crashed()

    assert _stored_ids(sessions) == []


def test_a_failing_record_does_not_hide_the_refusal(sessions: sessionmaker[Session]) -> None:
    def broken(_session: Session) -> None:
        raise RuntimeError("cannot record")

    def refused() -> None:
        with transaction(sessions) as session:
            keep_on_refusal(session, broken)
            raise Forbidden("the refusal")

    with pytest.raises(Forbidden, match="the refusal"):
        refused()

    assert _stored_ids(sessions) == []


def test_the_request_session_keeps_a_refusals_record(
    app: FastAPI, client: TestClient, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    router = APIRouter(prefix="/api/v1/db-tests")

    @router.post("/refuse")
    def refuse(session: SessionDep) -> None:
        _write(session, 80)
        keep_on_refusal(session, lambda s: _write(s, 81))
        raise Forbidden("Refused, but remembered.")

    app.include_router(router)

    response = client.post("/api/v1/db-tests/refuse")

    assert response.status_code == 403
    assert error_of(response)["message"] == "Refused, but remembered."
    assert _stored_ids(sessions) == [81]


# -- pooled connections that died -------------------------------------------------------------

if current_stack().postgres is not None:
    # SQLite has no server to lose; the pool's ping is PostgreSQL's.

    def _backend_pid(engine: Engine) -> int:
        with engine.connect() as connection:
            return int(connection.scalar(text("SELECT pg_backend_pid()")))

    def _terminate(settings: Settings, pid: int) -> None:
        killer = make_engine(settings.database_url_resolved, pooled=False)
        try:
            with killer.connect() as connection:
                assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            killer.dispose()

    def test_a_pooled_connection_that_died_while_idle_is_replaced_before_use(
        settings: Settings,
    ) -> None:
        engine = make_engine(settings.database_url_resolved, pool_size=1, ping_after_idle=0.1)
        try:
            first = _backend_pid(engine)
            _terminate(settings, first)
            time.sleep(0.3)

            # The dead connection is found by the ping, not by the caller's statement.
            second = _backend_pid(engine)
        finally:
            engine.dispose()

        assert second != first

    def test_a_connection_reused_at_once_is_not_pinged_and_one_error_renews_the_pool(
        settings: Settings,
    ) -> None:
        # Within the idle allowance a checkout costs no round trip, so a connection killed in
        # that moment fails its caller once; that failure replaces every pooled connection.
        engine = make_engine(settings.database_url_resolved, pool_size=2, ping_after_idle=60)
        try:
            with engine.connect() as one, engine.connect() as two:
                pids = [
                    one.scalar(text("SELECT pg_backend_pid()")),
                    two.scalar(text("SELECT pg_backend_pid()")),
                ]
            for pid in pids:
                _terminate(settings, int(pid))

            with pytest.raises(OperationalError), engine.connect() as connection:
                connection.scalar(text("SELECT 1"))
            after = {_backend_pid(engine), _backend_pid(engine)}
        finally:
            engine.dispose()

        assert after.isdisjoint(pids)


# -- SQLite: one process's transactions take turns -------------------------------------------

_ENDINGS = ("commit", "rollback", "close", "failed statement")


@pytest.mark.parametrize("ending", _ENDINGS)
def test_sqlite_transactions_of_a_process_take_turns_and_every_ending_hands_the_turn_on(
    tmp_path: Path, ending: str
) -> None:
    """The next transaction waits for the one before it and starts once it ends, however it
    ends: a turn never handed on would stall every writer of the process."""
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    moments.create_all(engine)
    second_done = threading.Event()

    def second() -> None:
        with engine.begin() as connection:
            connection.execute(insert(MOMENTS).values(id=2))
        second_done.set()

    try:
        first = engine.connect()
        first.begin()
        first.execute(insert(MOMENTS).values(id=1))
        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(0.3)
        assert not second_done.is_set()  # the first still has its turn

        if ending == "commit":
            first.commit()
        elif ending == "rollback":
            first.rollback()
        elif ending == "failed statement":
            with pytest.raises(IntegrityError):
                first.execute(insert(MOMENTS).values(id=1))
            first.rollback()
        first.close()  # "close" ends it by closing the connection alone
        waiting.join(10)
        assert second_done.is_set()
        with engine.connect() as connection:
            ids = connection.scalars(select(MOMENTS.c.id).order_by(MOMENTS.c.id)).all()
        assert ids == ([1, 2] if ending == "commit" else [2])
    finally:
        engine.dispose()


def test_a_forked_child_does_not_inherit_a_held_sqlite_turn(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fork.db'}")
    moments.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(MOMENTS).values(id=1))
            lock: Any = type(connection.connection.dbapi_connection).__dict__.get("writer_lock")
            assert lock is not None
            assert lock.locked()
            child = os.fork()
            if child == 0:  # pragma: no cover - the child's verdict is its exit status
                lock = type(connection.connection.dbapi_connection).__dict__["writer_lock"]
                os._exit(1 if lock.locked() else 0)
            _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        engine.dispose()
