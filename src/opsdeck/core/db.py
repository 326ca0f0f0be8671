"""Database engine, sessions, declarative base and the migration-head check."""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import structlog
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    CursorResult,
    DateTime,
    MetaData,
    Result,
    String,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import NullPool

from opsdeck.core.errors import AppError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "opsdeck.idle_since"
AFTER_COMMIT_KEY = "opsdeck.after_commit"
ON_REFUSAL_KEY = "opsdeck.keep_on_refusal"
# An execution option: `statement.execution_options(**{UNPREPARED: True})` makes PostgreSQL plan
# the statement for its parameters at every execution (see _unprepared_when_asked).
UNPREPARED = "opsdeck_unprepared"
log = structlog.get_logger("opsdeck.db")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """128 random bits as 32 hex digits (the shape of a uuid4 hex, a quarter of its cost)."""
    return secrets.token_hex(16)


def affected_rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE statement matched."""
    return cast(CursorResult[Any], result).rowcount


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops tzinfo) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use opsdeck.core.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), str: String()}


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    pooled: bool = True,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
) -> Engine:
    """`pooled=False`: every checkout opens a new connection and closing it closes it (for a
    thread in a process that forks later, so no child inherits an open connection)."""
    extra: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_SECONDS,
                "factory": _sqlite_connection_class(),
            },
            **extra,
        )
        _configure_sqlite(engine)
        return engine
    if not pooled:
        engine = create_engine(url, **extra)
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
        _ping_idle_connections(engine, ping_after_idle)
    _unprepared_when_asked(engine)
    return engine


def _unprepared_when_asked(engine: Engine) -> None:
    """Statements executed with the UNPREPARED option are never prepared server side.

    psycopg prepares a statement once a connection has run its text `prepare_threshold` (5)
    times, and PostgreSQL then plans it once for any parameters (a generic plan) as soon as
    that plan's estimate is no worse than the custom plans' average. For a statement whose best
    plan depends on the values (a full-text search: walk the newest rows for a common word,
    read the index for a rare one) the generic plan is a guess, and a bad one: for the
    incidents search it reads every match (docs/benchmarks.md, "Incidents API"). Sent
    unprepared, the statement is planned for its values every time."""
    if engine.dialect.driver != "psycopg":
        return
    from psycopg import ServerCursor  # a server-side cursor (stream_results) is never prepared

    @event.listens_for(engine, "do_execute")
    def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
        if not context.execution_options.get(UNPREPARED) or isinstance(cursor, ServerCursor):
            return None
        cursor.execute(statement, parameters, prepare=False)
        return True


def _ping_idle_connections(engine: Engine, after_seconds: float) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections that sat idle only.

    A pre-ping on every checkout is a round trip per request and two per image task, spent to
    learn that a connection used a moment ago still works. A connection idle for less than
    `after_seconds` is handed out as it is: for it to be dead, the server must have gone away
    within that moment, and then the first statement's disconnect error invalidates the pool
    (every connection checked in before it is replaced on its next checkout) and the request
    answers 503 or the task is retried, as during any outage. A connection idle for longer,
    across a restart in the night, say, is pinged and replaced before anyone uses it."""

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < after_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection, replaces it, and replaces every connection
            # checked in before now on its next checkout.
            raise InvalidatePoolError(f"pooled connection failed its ping: {exc}") from exc


SQLITE_BUSY_SECONDS = 30.0
READ_ONLY_OPTION = "opsdeck_read_only"
# A session's execution options for a unit of work that only reads (`session.connection(
# execution_options=READ_ONLY)` before its first statement): on SQLite its transaction does
# not take the write lock (it must then not write: SQLite would refuse the upgrade when
# another writer committed since its snapshot). PostgreSQL ignores it.
READ_ONLY = {READ_ONLY_OPTION: True}


class _SQLiteConnection(sqlite3.Connection):
    """A SQLite connection whose transactions take turns, within the process, on a lock that
    hands over at once.

    Every transaction starts with BEGIN IMMEDIATE (the write lock, below). Left to SQLite, a
    transaction that finds the lock taken polls for it, sleeping 1, 2, 5, 10 ... ms between
    tries: under a stream of short transactions (chat sends, a chunk's records) the database
    then sits idle between them, and throughput collapses long before the CPU is busy. The
    threads of one process queue on `writer_lock` first, so the next one starts the moment
    the last one commits; other processes (web and worker) still meet at SQLite's own lock.
    SQLite's lock is what keeps the data safe, so a turn that cannot be had within
    SQLITE_BUSY_SECONDS goes ahead to it without one."""

    writer_lock: threading.Lock  # one per engine (_sqlite_connection_class)
    holds_writer_lock = False

    def take_writer_turn(self) -> None:
        if self.writer_lock.acquire(timeout=SQLITE_BUSY_SECONDS):
            self.holds_writer_lock = True

    def end_writer_turn(self) -> None:
        if self.holds_writer_lock:
            self.holds_writer_lock = False
            self.writer_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_writer_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_writer_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_writer_turn()


# Weak: an engine's class (and lock) goes with the engine; a process making many (the tests)
# does not keep them all.
_sqlite_connection_classes: weakref.WeakSet[type[_SQLiteConnection]] = weakref.WeakSet()


def _sqlite_connection_class() -> type[_SQLiteConnection]:
    """A connection class of its own for an engine, so each database file has its lock."""
    cls = type("EngineSQLiteConnection", (_SQLiteConnection,), {"writer_lock": threading.Lock()})
    _sqlite_connection_classes.add(cls)
    return cls


def _new_writer_locks_after_fork() -> None:
    # A lock a thread of the parent held at the fork would never be released in the child.
    for cls in _sqlite_connection_classes:
        cls.writer_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_writer_locks_after_fork)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy so the "begin" hook below can take the lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: two writers queue (on the process's
        # turn, then on busy_timeout) instead of failing with SQLITE_BUSY when a read snapshot
        # cannot be upgraded.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            # Declared read-only (`READ_ONLY`): a deferred BEGIN, a WAL snapshot that neither
            # waits for the writer nor holds it up.
            connection.exec_driver_sql("BEGIN")
            return
        dbapi_connection = connection.connection.dbapi_connection
        dbapi_connection.take_writer_turn()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_connection.end_writer_turn()
            raise


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
    event.listen(factory, "after_commit", _run_after_commit)
    event.listen(factory, "after_soft_rollback", _drop_after_commit)
    event.listen(factory, "after_transaction_end", _forget_after_commit)
    return factory


_Pending = list[tuple[SessionTransaction | None, Callable[[], object]]]


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run `callback` once the session's outermost transaction has committed (e.g. send a job).
    It is dropped if that transaction, or the savepoint it was registered in, rolls back."""
    pending: _Pending = session.info.setdefault(AFTER_COMMIT_KEY, [])
    pending.append((session.get_nested_transaction(), callback))


def _enclosing_savepoint(transaction: SessionTransaction) -> SessionTransaction | None:
    parent = transaction.parent
    while parent is not None and not parent.nested:
        parent = parent.parent
    return parent


def _run_after_commit(session: Session) -> None:
    released = session.get_nested_transaction()
    if released is not None:
        # A savepoint was released, nothing is committed yet: its callbacks now belong to
        # the enclosing transaction and share its fate.
        owner = _enclosing_savepoint(released)
        pending: _Pending = session.info.get(AFTER_COMMIT_KEY, [])
        session.info[AFTER_COMMIT_KEY] = [
            (owner if registered_in is released else registered_in, callback)
            for registered_in, callback in pending
        ]
        return
    for _registered_in, callback in session.info.pop(AFTER_COMMIT_KEY, []):
        callback()


def _drop_after_commit(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(AFTER_COMMIT_KEY, None)
        return
    pending: _Pending = session.info.get(AFTER_COMMIT_KEY, [])
    session.info[AFTER_COMMIT_KEY] = [
        (registered_in, callback)
        for registered_in, callback in pending
        if registered_in is not previous_transaction
    ]


def _forget_after_commit(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit running them (closed, or its commit
    # failed): they must not leak into the session's next transaction.
    if transaction.parent is None:
        session.info.pop(AFTER_COMMIT_KEY, None)


# -- refusals that leave a record ------------------------------------------------------------

KeepCallback = Callable[[Session], object]


def keep_on_refusal(session: Session, record: KeepCallback) -> None:
    """Have `record(session)` write what a refused request must leave behind (the audit entry
    of a failed sign-in, the revocation of a session whose refresh token was replayed).

    A service calls this just before it raises the `AppError` that refuses the request. The
    unit of work's boundary (`unit_of_work`: the request's `SessionDep`, `transaction` for
    tasks and commands) rolls the failed transaction back, then runs every `record` in a new
    transaction on the same session and commits it, then lets the error go on to its answer.
    So the refusal's record survives while nothing else the request did does.

    `record` runs only if the unit of work ends in an `AppError`: a unit of work that commits
    (the caller caught the error) or crashes with any other exception drops it. It runs after
    a rollback, so it must not rely on ORM objects loaded before: capture ids and plain values.
    Counters outside the database (the rate limiter's) are not transactional and need none of
    this."""
    pending: list[KeepCallback] = session.info.setdefault(ON_REFUSAL_KEY, [])
    pending.append(record)


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """Commit on success; on an error roll back, keeping what a refusal asked to keep
    (`keep_on_refusal`); close the session in every case."""
    try:
        yield session
        session.info.pop(ON_REFUSAL_KEY, None)
        session.commit()
    except BaseException as exc:
        records: list[KeepCallback] = session.info.pop(ON_REFUSAL_KEY, [])
        session.rollback()
        if isinstance(exc, AppError) and records:
            _keep_records(session, records)
        raise
    finally:
        session.close()


def _keep_records(session: Session, records: list[KeepCallback]) -> None:
    try:
        for record in records:
            record(session)
        session.commit()
    except Exception:
        # The refusal still gets its answer; losing its record is logged, not turned into a 500.
        log.exception("refusal_record_failed")
        session.rollback()


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for tasks and commands: commit on success, roll back on error (keeping
    what a refusal asked to keep, see `keep_on_refusal`)."""
    with unit_of_work(factory()) as session:
        yield session


# -- migrations ----------------------------------------------------------------------------


def alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()


# The tables FTS5 keeps beside a full-text table `x`: x_data, x_idx, x_content, ...
FTS5_SHADOW_SUFFIXES = ("_data", "_idx", "_content", "_docsize", "_config")
UNMODELLED_TABLES_KEY = "opsdeck.unmodelled_tables"


def unmodelled_tables(metadata: MetaData) -> set[str]:
    """The names a module registered as tables of its migrations that are not models (a
    full-text index whose shape differs per database); `schema_filter` skips them."""
    names: set[str] = metadata.info.setdefault(UNMODELLED_TABLES_KEY, set())
    return names


def schema_filter(metadata: MetaData) -> Callable[[str | None, str, Any], bool]:
    """Alembic's `include_name` for comparing the models with the database: a table named in
    `unmodelled_tables(metadata)`, or one of the FTS5 shadow tables of such a table, is not
    compared (migrations own it)."""
    skipped = unmodelled_tables(metadata)

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        if type_ != "table" or name is None:
            return True
        if name in skipped:
            return False
        return not any(
            name == f"{table}{suffix}" for table in skipped for suffix in FTS5_SHADOW_SUFFIXES
        )

    return include_name


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(database_url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")


class DatabaseNotAtHead(RuntimeError):
    def __init__(self, current: str | None, head: str | None) -> None:
        super().__init__(
            f"the database schema is at revision {current or 'none (empty database)'} but this "
            f"OpsDeck needs {head}; run `opsdeck db upgrade` first"
        )
        self.current = current
        self.head = head


def ensure_at_head(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseNotAtHead(current, head)
