"""Background jobs: a typed task decorator, and one way to send a job that is never lost.

Declaring a job::

    @job("images.deliver_webhook")
    def deliver_webhook(batch_id: str) -> str: ...

    @job("accounts.purge_expired", every=3600.0)   # beat runs it every hour
    def purge_expired() -> dict[str, int]: ...

A job asks to run again later by raising `RetryLater(countdown)`; `job_retries()` says how
many times it has been retried so far.

A job that meets a database that does not answer (core.errors.is_database_unavailable: the
server stopped or restarting, a connection lost, no connection to be had) is not a failure:
it is sent again, with the same arguments and retry count, after a back-off of 1, 2, 4 ... up
to DATABASE_RETRY_MAX_SECONDS, for as long as the outage lasts, and its message is
acknowledged only once the new one is with the broker. That goes through Celery, not the
outbox: the outbox needs the database. Every job re-reads its state when it runs, so a job cut
anywhere by the outage finishes what it had started (see images.pipeline for the claims).

Sending a job, from a service, inside the caller's transaction::

    enqueue(session, deliver_webhook, batch.id)

`enqueue` writes a row in `job_outbox` in that transaction. Once the transaction commits
(a rolled-back transaction or savepoint takes its rows, and so its jobs, with it), the rows
are published to the broker at once and deleted. When the broker cannot be reached at that
moment the request still succeeds: the row stays, and a relay thread (one in each web process,
one in each worker's main process) publishes it when the broker is back. Relays claim rows
with `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite serialises writers), so two relays never
publish the same row at the same time.

Delivery is at least once: a relay that published a message and died before its DELETE
committed publishes it again. Tasks take ids, re-read their state and are idempotent, so a
second run changes nothing more.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, cast

import redis
import structlog
from celery import signals
from celery.exceptions import Reject, Retry
from sqlalchemy import JSON, BigInteger, Integer, String, delete, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsdeck.core.db import Base, after_commit, make_engine, utcnow
from opsdeck.core.errors import is_database_unavailable
from opsdeck.core.observability import current_request_id, request_id_var
from opsdeck.core.queue import celery_app, register_periodic, task_session
from opsdeck.settings import get_settings

P = ParamSpec("P")
R = TypeVar("R")

log = structlog.get_logger("opsdeck.jobs")

# A publish must not hold a request thread for long when the broker is down: one connection
# attempt of about a second, no retries (the relay tries again).
PUBLISH_TIMEOUT_SECONDS = 1.0
RELAY_INTERVAL_SECONDS = 1.0
RELAY_BATCH = 500
# A job that met a database outage runs again after 1, 2, 4 ... seconds, at most this long.
DATABASE_RETRY_MAX_SECONDS = 30.0
# The message header counting those runs (it sets the back-off; Celery's retry count, which
# jobs read with job_retries(), is left as it was).
DATABASE_RETRY_HEADER = "opsdeck_database_retries"


class JobOutbox(Base):
    """A job owed to the broker: written with the rows it is about, deleted once published."""

    __tablename__ = "job_outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    task: Mapped[str] = mapped_column(String(200))
    args: Mapped[list[Any]] = mapped_column(JSON)
    # Celery's retry count for the message (jobs re-sent by RetryLater carry theirs).
    retries: Mapped[int] = mapped_column(Integer, default=0)
    # Not to run before this moment (a countdown), kept as a moment so a late publish waits
    # only what is left of it.
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RetryLater(Exception):
    """Raised by a job to run again in `countdown` seconds (the retry count goes up by one)."""

    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:g} s")
        self.countdown = countdown


class TooManyRetries(RuntimeError):
    pass


class Job(Generic[P, R]):
    """A Celery task with its function's signature. Call it to run it here and now (tests);
    send it with `enqueue`."""

    def __init__(
        self, function: Callable[P, R], name: str, *, max_retries: int | None, every: float | None
    ) -> None:
        self.function = function
        self.name = name
        self.max_retries = max_retries
        self.every = every
        self.__doc__ = function.__doc__

        def run(task: Any, *args: Any) -> Any:
            return self._run(task, *args)

        run.__name__ = function.__name__
        run.__qualname__ = function.__qualname__
        run.__module__ = function.__module__
        run.__doc__ = function.__doc__
        # Celery ships no type information: its task object stays behind this typed facade.
        self.task: Any = celery_app.task(name=name, bind=True, acks_late=True)(run)
        if every is not None:
            register_periodic(name, every)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run here and now, as Celery's Task.run does."""
        return self.function(*args, **kwargs)

    def _run(self, task: Any, *args: Any) -> Any:
        try:
            try:
                return cast(Callable[..., Any], self.function)(*args)
            except RetryLater as retry:
                retries = int(task.request.retries or 0) + 1
                if self.max_retries is not None and retries > self.max_retries:
                    raise TooManyRetries(
                        f"{self.name}: gave up after {retries - 1} retries"
                    ) from None
                # Through the outbox, not Celery's retry: a broker blink must not lose it.
                with task_session() as session:
                    enqueue(session, self.name, *args, countdown=retry.countdown, retries=retries)
                log.info("job_retry_later", countdown=retry.countdown, retries=retries)
                return None
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            self._again_after_database_error(task, args, exc)

    def _again_after_database_error(self, task: Any, args: tuple[Any, ...], exc: Exception) -> None:
        """Send this job again after a back-off, then end this run as a Celery RETRY (its
        message acknowledged: the new one is with the broker). When even that send fails (the
        broker is down too), the message is handed back to the broker unacknowledged."""
        request = task.request
        attempt = int(getattr(request, DATABASE_RETRY_HEADER, None) or 0)
        countdown = database_retry_delay(attempt)
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        log.warning(
            "job_database_unavailable",
            retry_in=round(countdown, 2),
            attempt=attempt + 1,
            error=error,
        )
        try:
            celery_app.send_task(
                self.name,
                args=list(args),
                countdown=countdown,
                retries=int(request.retries or 0),
                headers={DATABASE_RETRY_HEADER: attempt + 1},
                add_to_parent=False,
            )
        except Exception as send_error:
            log.warning("job_database_retry_not_sent", error=f"{type(send_error).__name__}")
            raise Reject(error, requeue=True) from exc
        raise Retry(error, exc, when=countdown) from exc


def job(
    name: str, *, max_retries: int | None = None, every: float | None = None
) -> Callable[[Callable[P, R]], Job[P, R]]:
    """Declare a task under its public name. `every`: beat runs it every so many seconds.
    `max_retries`: how many RetryLater a run may ask for (None: no limit)."""

    def declare(function: Callable[P, R]) -> Job[P, R]:
        return Job(function, name, max_retries=max_retries, every=every)

    return declare


def database_retry_delay(attempt: int) -> float:
    """Seconds before the run after `attempt` runs met a database outage (0 for the first):
    1, 2, 4, 8, 16, then DATABASE_RETRY_MAX_SECONDS, each up to a quarter more at random so
    the jobs of one outage do not all come back at the same moment."""
    base = min(DATABASE_RETRY_MAX_SECONDS, 2.0 ** min(attempt, 16))
    # Jitter only spreads retries out; it needs no cryptographic randomness.
    return min(DATABASE_RETRY_MAX_SECONDS, base * random.uniform(1.0, 1.25))  # noqa: S311  # nosec B311


def job_retries() -> int:
    """How many times the running job has been retried (0 outside a job)."""
    task = celery_app.current_worker_task
    if task is None:
        return 0
    return int(task.request.retries or 0)


JobRef = Job[Any, Any] | str


def _name(target: JobRef) -> str:
    return target if isinstance(target, str) else target.name


# -- sending --------------------------------------------------------------------------------


def enqueue(
    session: Session,
    target: JobRef,
    *args: Any,
    countdown: float | None = None,
    retries: int = 0,
) -> None:
    """Send a job once `session`'s transaction commits, and only then (see the module doc)."""
    enqueue_many(session, [(target, args)], countdown=countdown, retries=retries)


def enqueue_many(
    session: Session,
    calls: Iterable[tuple[JobRef, Sequence[Any]]],
    *,
    countdown: float | None = None,
    retries: int = 0,
) -> int:
    """`enqueue` for several jobs at once: one INSERT, one publish after the commit."""
    not_before = utcnow() + timedelta(seconds=countdown) if countdown else None
    request_id = current_request_id()
    rows = [
        JobOutbox(
            task=_name(target),
            args=list(args),
            retries=retries,
            not_before=not_before,
            request_id=request_id,
        )
        for target, args in calls
    ]
    if not rows:
        return 0
    session.add_all(rows)
    session.flush()
    ids = [row.id for row in rows]
    engine = session.get_bind()
    after_commit(session, lambda: _publish_after_commit(engine, ids))
    return len(rows)


def enqueue_from_task(
    target: JobRef, *args: Any, countdown: float | None = None, retries: int = 0
) -> None:
    """For a task with nothing of its own to commit: `enqueue` in a unit of work of its own."""
    with task_session() as session:
        enqueue(session, target, *args, countdown=countdown, retries=retries)


def _publish_after_commit(bind: Engine | Connection, ids: list[int]) -> None:
    engine = bind.engine if isinstance(bind, Connection) else bind
    try:
        publish_owed(engine, ids=ids)
    except Exception as exc:
        # The rows are committed: the relay publishes them once the broker (or database)
        # answers again. The request that enqueued them has succeeded either way.
        log.warning("job_publish_deferred", jobs=len(ids), error=f"{type(exc).__name__}: {exc}")


def publish_owed(
    engine: Engine, *, ids: Sequence[int] | None = None, limit: int = RELAY_BATCH
) -> int:
    """Publish owed jobs (those in `ids`, or the oldest `limit`) and delete them; the number
    published. Stops at the first publish that fails, keeping that row and the ones after it."""
    query = select(JobOutbox).order_by(JobOutbox.id).limit(limit)
    if ids is not None:
        query = query.where(JobOutbox.id.in_(list(ids)))
    with Session(engine) as session, session.begin():
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        if not rows:
            return 0
        published: list[int] = []
        error: Exception | None = None
        with _publishers.connection() as publisher:
            for row in rows:
                try:
                    publisher.send(row)
                except Exception as exc:
                    error = exc
                    break
                published.append(row.id)
        if published:
            session.execute(delete(JobOutbox).where(JobOutbox.id.in_(published)))
    if error is not None:
        raise error
    return len(published)


def _new_publisher_connection() -> Any:
    """A broker connection for publishing only, that gives up fast (PUBLISH_TIMEOUT_SECONDS)."""
    return celery_app.connection_for_write(
        connect_timeout=PUBLISH_TIMEOUT_SECONDS,
        transport_options={
            "max_retries": 0,
            "connect_retries_timeout": PUBLISH_TIMEOUT_SECONDS,
            "socket_connect_timeout": PUBLISH_TIMEOUT_SECONDS,
            "socket_timeout": PUBLISH_TIMEOUT_SECONDS * 2,
        },
    )


class _Publisher:
    """One thread's use of a publishing connection: a kept one, replaced by a new one (once)
    when it fails, since a kept connection may have died with a broker restart since."""

    def __init__(self, connection: Any, *, kept: bool) -> None:
        self.connection = connection
        self.kept = kept
        self.failed = False

    def send(self, row: JobOutbox) -> None:
        try:
            _send(self.connection, row)
        except Exception as exc:
            if not self.kept or _timed_out(exc):  # a broker that hangs hangs a new one too
                self.failed = True
                raise
            _release_quietly(self.connection)
            self.connection, self.kept = _new_publisher_connection(), False
            try:
                _send(self.connection, row)
            except Exception:
                self.failed = True
                raise


def _timed_out(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError | redis.TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _PublisherConnections:
    """Publishing connections kept between publishes, a few per process.

    Opening one costs more than what is published on it (measured against Redis: 4-5 ms of CPU
    for a connection and its channel, 0.4 ms for a publish on a kept one), and every request
    or task that enqueues publishes. Not shared across a fork: a child (Celery's pool
    processes) starts with none, and leaves the parent's alone."""

    KEEP = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._pid = os.getpid()
        # Connections a forked child inherited: never used, never closed (the parent's).
        self._inherited: list[Any] = []

    @contextmanager
    def connection(self) -> Iterator[_Publisher]:
        with self._lock:
            if self._pid != os.getpid():
                self._inherited.extend(self._idle)
                self._idle, self._pid = [], os.getpid()
            kept = self._idle.pop() if self._idle else None
        publisher = _Publisher(kept or _new_publisher_connection(), kept=kept is not None)
        try:
            yield publisher
        except BaseException:
            publisher.failed = True
            raise
        finally:
            self._give_back(publisher)

    def _give_back(self, publisher: _Publisher) -> None:
        if not publisher.failed:
            with self._lock:
                if self._pid == os.getpid() and len(self._idle) < self.KEEP:
                    self._idle.append(publisher.connection)
                    return
        _release_quietly(publisher.connection)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            _release_quietly(connection)


def _release_quietly(connection: Any) -> None:
    try:
        connection.release()
    except Exception:  # a dead connection has nothing left to give back
        log.debug("job_publisher_release_failed", exc_info=True)


_publishers = _PublisherConnections()


def _send(connection: Any, row: JobOutbox) -> None:
    countdown = None
    if row.not_before is not None:
        countdown = max(0.0, (row.not_before - utcnow()).total_seconds()) or None
    # The request id travels in the message headers (core.queue adds it on publish).
    token = request_id_var.set(row.request_id)
    try:
        celery_app.send_task(
            row.task,
            args=row.args,
            countdown=countdown,
            retries=row.retries,
            connection=connection,
            retry=False,
            add_to_parent=False,
        )
    finally:
        request_id_var.reset(token)


# -- the relay ------------------------------------------------------------------------------


class Relay:
    """A daemon thread that publishes owed jobs every RELAY_INTERVAL_SECONDS."""

    def __init__(self, engine: Engine, *, interval: float = RELAY_INTERVAL_SECONDS) -> None:
        self.engine = engine
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="job-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> int:
        """Publish everything owed now; the number published."""
        total = 0
        while True:
            sent = publish_owed(self.engine)
            total += sent
            if sent < RELAY_BATCH:
                return total

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                sent = self.run_once()
            except Exception as exc:
                if not self._failing:  # once per outage, not once a second
                    log.warning("job_relay_failing", error=f"{type(exc).__name__}: {exc}")
                self._failing = True
                continue
            if self._failing:
                log.info("job_relay_recovered", published=sent)
            elif sent:
                log.info("job_relay_published", published=sent)
            self._failing = False


@dataclass
class _WorkerRelay:
    relay: Relay | None = None


_worker_relay = _WorkerRelay()


def _start_worker_relay(**_: Any) -> None:
    """In the worker's main process, once its pool is up: pool processes forked later must not
    share a pooled database connection with the relay, so the relay's engine keeps none."""
    settings = get_settings()
    engine = make_engine(settings.database_url_resolved, pooled=False)
    _worker_relay.relay = Relay(engine)
    _worker_relay.relay.start()


def _stop_worker_relay(**_: Any) -> None:
    if _worker_relay.relay is not None:
        _worker_relay.relay.stop()
        _worker_relay.relay.engine.dispose()
        _worker_relay.relay = None


signals.worker_ready.connect(_start_worker_relay, weak=False)
signals.worker_shutdown.connect(_stop_worker_relay, weak=False)
