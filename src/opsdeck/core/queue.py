"""The one Celery application. Embedded mode uses Celery's filesystem transport under the data
directory; with `OPSDECK_REDIS_URL` the same tasks go through Redis. Job state lives in our own
tables, so there is no result backend."""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from queue import Empty
from typing import Any

import structlog
from celery import Celery, signals
from sqlalchemy.orm import Session, sessionmaker

from opsdeck.core import live
from opsdeck.core.db import make_engine, make_sessionmaker, transaction
from opsdeck.core.metrics import TASK_FAILURES, TASK_LATENCY, TASKS
from opsdeck.core.observability import bind_request_id, clear_request_id, current_request_id
from opsdeck.core.redis import redis_client
from opsdeck.settings import Settings, get_settings

DEFAULT_QUEUE = "opsdeck"
REQUEST_ID_HEADER = "opsdeck_request_id"
log = structlog.get_logger("opsdeck.queue")

celery_app = Celery("opsdeck")
_queues: set[str] = {DEFAULT_QUEUE}
# Task name -> seconds between runs, declared by the jobs themselves (core.jobs.job(every=...)).
_periodic: dict[str, float] = {}


def register_periodic(task_name: str, every: float) -> None:
    _periodic[task_name] = every


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {name: {"task": name, "schedule": every} for name, every in sorted(_periodic.items())}


def configure_celery(settings: Settings, task_modules: Iterable[str] = ()) -> Celery:
    """Configure the Celery app and import the task modules, so every task (and every periodic
    one, for beat) is declared."""
    live.configure(settings)
    modules = tuple(task_modules)
    for module in modules:
        importlib.import_module(module)
    transport_options: dict[str, Any]
    if settings.embedded:
        folder = str(settings.broker_dir / "queue")
        transport_options = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            # Exchange bindings; kombu's default is ./control in the working directory.
            "control_folder": str(settings.broker_dir / "control"),
            # How long a consumer sleeps when the folder had nothing for it. A worker whose
            # slots were all busy waits this long for its next task once one frees, so 0.2 s
            # left the embedded worker processes in a task 61 % of a thumbnail batch (79 % at
            # 0.02 s); an idle worker at 0.05 s costs about 0.7 % of a core (0.4 % at 0.2 s,
            # 1.4 % at 0.02 s). docs/benchmarks.md, images section.
            "polling_interval": 0.05,
        }
    else:
        transport_options = {"visibility_timeout": settings.task_time_limit_seconds * 2}
    celery_app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # No result backend, so Celery's nightly result clean-up task has nothing to do.
        result_expires=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=max(1, settings.task_time_limit_seconds - 30),
        task_default_queue=DEFAULT_QUEUE,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_enable_remote_control=not settings.embedded,
        worker_concurrency=settings.celery_concurrency,
        imports=modules,
        beat_schedule=beat_schedule(),
        timezone="UTC",
        enable_utc=True,
    )
    return celery_app


def register_queue(name: str) -> None:
    """Modules that route tasks to their own queue declare it so depth is reported."""
    _queues.add(name)


# -- a kombu Redis channel that outlives its connection's transport ------------------------


def _keep_redis_channels_connectable() -> None:
    """Let a kombu Redis channel reconnect after kombu detached its transport from the
    connection.

    When Redis goes away, Celery's consumer closes the broken connection: kombu's
    `Connection.collect()` / `_close()` set `transport.client = None`
    (`Connection._do_close_transport`), and `Channel.close()` drops the channel's pools
    (`_disconnect_pools`). A channel of that transport that is used afterwards (a late task
    acknowledged on the channel it came from, unacknowledged messages restored on close)
    rebuilds its pool from `self.connection.client`, which is now None: `_connparams` raises
    `AttributeError: 'NoneType' object has no attribute 'hostname'`, which is not one of the
    connection errors Celery expects there, so the worker stops with "Unrecoverable error"
    (kombu 5.7, kombu/transport/redis.py `Channel._connparams` and
    `Transport.supports_batch_publish`; the same detach makes Celery log "Error on restarting
    Gossip: ... no attribute 'connection_errors'"). Each channel keeps the connection it was
    made for and reconnects through it, so the late acknowledgement or restore reaches Redis
    (or fails with a ConnectionError Celery handles). Remove once kombu does not read the
    detached client."""
    from kombu.transport import redis as kombu_redis

    channel_class: Any = kombu_redis.Channel
    transport_class: Any = kombu_redis.Transport
    if getattr(channel_class, "_opsdeck_keeps_conninfo", False):
        return
    original_init = channel_class.__init__
    original_connparams = channel_class._connparams
    original_batch = transport_class.supports_batch_publish

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._opsdeck_conninfo = self.connection.client

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is not None:
            return original_connparams(self, asynchronous=asynchronous)
        transport.client = self._opsdeck_conninfo
        try:
            return original_connparams(self, asynchronous=asynchronous)
        finally:
            transport.client = None

    def supports_batch_publish(self: Any) -> bool:
        if self.client is None:  # detached: publish one message at a time
            return False
        return bool(original_batch.fget(self))

    channel_class.__init__ = init
    channel_class._connparams = _connparams
    channel_class._opsdeck_keeps_conninfo = True
    transport_class.supports_batch_publish = property(supports_batch_publish)


_keep_redis_channels_connectable()


def _write_filesystem_messages_atomically() -> None:
    """Make kombu's filesystem broker (embedded mode) publish a message file, and create an
    exchange table, whole; and outlive its queue folder going away for a while (`_get`).

    kombu 5.7's `filesystem.Channel._put` creates `<name>.<queue>.msg` under its final name,
    then writes the message into it; a worker polling the folder can take the file in
    between (`_get` moves it away without the lock), read it empty and stop with
    `Unrecoverable error: JSONDecodeError('Expecting value: line 1 column 1 (char 0)')`, while
    the message is written into the moved file and lost. Here the message is written to a
    name `_get` does not take (`.msg.part`) and renamed into place, which is atomic in one
    folder. Remove once kombu writes its message files atomically."""
    from kombu.exceptions import ChannelError
    from kombu.transport import filesystem
    from kombu.utils import json as kombu_json

    channel_class: Any = filesystem.Channel
    dumps: Any = kombu_json.dumps  # kombu's JSON (dates, UUIDs), as its own _put uses
    if getattr(channel_class, "_opsdeck_atomic_put", False):
        return

    def _put(self: Any, queue: str, payload: Any, **_: Any) -> None:
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = Path(self.data_folder_out) / name
        partial = final.with_name(name + ".part")
        try:
            partial.write_bytes(str(dumps(payload)).encode())
            partial.rename(final)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ChannelError(f"Cannot add file {str(final)!r} to directory") from exc

    def _queue_bind(self: Any, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        # kombu creates a missing exchange table empty, then locks and fills it: a publisher
        # reading the table in between (get_table) finds it empty and fails the same way. A new
        # table is made whole under a private name and linked into place (link fails if the
        # table appeared meanwhile: kombu's own locked update then adds to it).
        table = self._exchange_file(exchange)
        if not table.exists():
            self.control_folder.mkdir(exist_ok=True)
            partial = table.with_name(f"{table.name}.{uuid.uuid4().hex}.part")
            try:
                partial.write_bytes(
                    str(dumps([[routing_key or "", pattern or "", queue or ""]])).encode()
                )
                with contextlib.suppress(FileExistsError):
                    os.link(partial, table)
                    return
            except OSError as exc:
                raise ChannelError(f"Cannot open {table}") from exc
            finally:
                partial.unlink(missing_ok=True)
        original_bind(self, exchange, routing_key, pattern, queue)

    def _get(self: Any, queue: str) -> Any:
        # kombu lists the queue folder first; with the folder gone (moved away, its volume
        # unmounted: the embedded broker's outage) that raised FileNotFoundError, and the
        # worker stopped with "Unrecoverable error" and exit status 0. No folder is no message:
        # the worker keeps polling and takes up the queue when the folder is back.
        try:
            return original_get(self, queue)
        except FileNotFoundError:
            if Path(self.data_folder_in).is_dir():
                raise
            raise Empty() from None

    original_bind = channel_class._queue_bind
    original_get = channel_class._get
    channel_class._put = _put
    channel_class._get = _get
    channel_class._queue_bind = _queue_bind
    channel_class._opsdeck_atomic_put = True


_write_filesystem_messages_atomically()


# -- worker-side database access -----------------------------------------------------------


@lru_cache(maxsize=1)
def _worker_sessionmaker() -> sessionmaker[Session]:
    settings = get_settings()
    return make_sessionmaker(
        make_engine(settings.database_url_resolved, pool_size=settings.database_pool_size)
    )


@contextmanager
def task_session() -> Iterator[Session]:
    """A short unit of work inside a task; keep slow I/O outside it."""
    with transaction(_worker_sessionmaker()) as session:
        yield session


# -- broker introspection for /ready and /metrics ------------------------------------------


def check_broker(settings: Settings) -> None:
    if settings.embedded:
        folder = settings.broker_dir / "queue"
        probe = folder / ".ready-probe"
        probe.write_bytes(b"")
        probe.unlink()
        return
    redis_client(settings.broker_url, timeout=2).ping()


def queued_tasks(settings: Settings) -> Iterator[tuple[str, list[Any]]]:
    """(task name, positional arguments) of every message the broker holds: waiting in a
    queue, and (Redis) taken by a worker but not yet acknowledged, countdowns included. A
    message a worker of the filesystem broker (embedded mode) has taken is in that worker's
    memory only, and not listed."""
    if settings.embedded:
        for path in (settings.broker_dir / "queue").glob("*.msg"):
            try:
                found = _task_of(json.loads(path.read_bytes()))
            except (OSError, ValueError):
                continue  # taken by a worker while we read it
            if found is not None:
                yield found
        return
    client = redis_client(settings.broker_url)
    raw: list[Any] = []
    for queue in sorted(_queues):
        raw.extend(client.lrange(queue, 0, -1))
    # kombu keeps each unacknowledged message as [message, exchange, routing key].
    unacked = [json.loads(value)[0] for value in client.hvals(REDIS_UNACKED_KEY)]
    for message in [*(json.loads(value) for value in raw), *unacked]:
        found = _task_of(message)
        if found is not None:
            yield found


# The hash where kombu's Redis transport keeps the messages workers hold unacknowledged.
REDIS_UNACKED_KEY = "unacked"


def _task_of(message: Any) -> tuple[str, list[Any]] | None:
    """(task name, arguments) of a Celery message as the broker stores it; None otherwise."""
    try:
        name = str(message["headers"]["task"])
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return name, list(args)


def _task_from_bytes(raw: bytes) -> tuple[str, list[Any]] | None:
    """(task name, positional arguments) of a kombu message as the broker stores it, raw."""
    try:
        return _task_of(json.loads(raw))
    except ValueError:
        return None  # not JSON: not a Celery task message


def discard_queued(matches: Callable[[str, list[Any]], bool]) -> int:
    """Delete the messages waiting in the broker (not those a worker has taken) for which
    `matches(task name, positional arguments)` is true; how many. For work that has become
    pointless (a cancelled batch's chunks): each would cost a task for nothing. Best effort:
    a message taken meanwhile runs (and finds nothing to do)."""
    conf = celery_app.conf
    url = str(conf.broker_url or "")
    removed = 0
    if url.startswith("filesystem"):
        folder = Path(conf.broker_transport_options["data_folder_in"])
        for path in folder.glob("*.msg"):
            try:
                task = _task_from_bytes(path.read_bytes())
                if task is not None and matches(*task):
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # taken by a worker meanwhile
        return removed
    client = redis_client(url, timeout=2)
    for queue in sorted(_queues):
        with client.pipeline(transaction=False) as pipe:
            for raw in client.lrange(queue, 0, -1):
                task = _task_from_bytes(raw)
                if task is not None and matches(*task):
                    pipe.lrem(queue, 1, raw)
            removed += sum(int(count) for count in pipe.execute())
    return removed


def queue_depths(settings: Settings) -> dict[str, int]:
    if settings.embedded:
        folder = settings.broker_dir / "queue"
        names = [path.name for path in folder.glob("*.msg")]
        return {queue: sum(1 for n in names if n.endswith(f".{queue}.msg")) for queue in _queues}
    client = redis_client(settings.broker_url, timeout=2)
    return {queue: int(client.llen(queue)) for queue in _queues}


# -- correlation ids and task metrics ------------------------------------------------------

_started: dict[str, float] = {}


def _attach_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if headers is not None and request_id:
        headers[REQUEST_ID_HEADER] = request_id


def _task_started(task_id: str, task: Any, **_: Any) -> None:
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) or task_id
    bind_request_id(request_id)
    structlog.contextvars.bind_contextvars(task=task.name, task_id=task_id)
    _started[task_id] = time.perf_counter()
    log.debug("task_started")


def _task_finished(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    seconds = None if started is None else time.perf_counter() - started
    if seconds is not None:
        TASK_LATENCY.labels(task.name).observe(seconds)
    TASKS.labels(task.name, state or "UNKNOWN").inc()
    log.info(
        "task_finished",
        state=state,
        duration_ms=None if seconds is None else round(seconds * 1000, 1),
    )
    structlog.contextvars.unbind_contextvars("task", "task_id")
    clear_request_id()


def _task_failed(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    name = getattr(sender, "name", "unknown")
    TASK_FAILURES.labels(name, type(exception).__name__).inc()
    log.error("task_failed", exc_info=exception)


# Connected explicitly rather than by decorator: Celery's decorators are untyped.
signals.before_task_publish.connect(_attach_request_id)
signals.task_prerun.connect(_task_started)
signals.task_postrun.connect(_task_finished)
signals.task_failure.connect(_task_failed)
