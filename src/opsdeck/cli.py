"""The `opsdeck` command."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal

# `serve` starts our own worker: a fixed argument list, our own interpreter.
import subprocess  # nosec B404
import sys
import threading
import time
from typing import Any

import click

from opsdeck import __version__
from opsdeck.core.commands import load_settings, require_head
from opsdeck.core.shutdown import PARENT_PID_ENV
from opsdeck.modules import MODULES
from opsdeck.settings import Settings


def _use_metrics_dir(settings: Settings, *, wipe: bool) -> None:
    """Several processes share counters through PROMETHEUS_MULTIPROC_DIR; it must be set before
    prometheus_client is imported, which is why the heavier imports below are lazy."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = settings.metrics_dir or settings.data_dir / "metrics"
    if wipe and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())


def _configure_logging(settings: Settings) -> None:
    from opsdeck.core.observability import configure_logging_for

    configure_logging_for(settings)


@click.group()
@click.version_option(__version__, prog_name="opsdeck")
def main() -> None:
    """OpsDeck: a self-hosted operations platform; each module adds its commands below."""


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's forwarding-header options: X-Forwarded-For/-Proto are believed only from the
    proxies OPSDECK_FORWARDED_ALLOW_IPS names. Unset, none is: any local process could claim
    any address otherwise, and step around the per-address sign-in limit."""
    trusted = settings.forwarded_allow_ips.strip()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}


def _run_web(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    import uvicorn

    options: dict[str, Any] = {
        "factory": True,
        "host": host or settings.host,
        "port": port or settings.port,
        "workers": workers,
        **proxy_options(settings),
        "log_config": None,
        "server_header": False,
    }
    from opsdeck.core.webserver import reuse_port_supported, run_workers

    if workers > 1 and reuse_port_supported():
        # A listening socket per process: uvicorn's shared one lets one process take most
        # of the connections that arrive together (core/webserver.py).
        run_workers(uvicorn.Config("opsdeck.app:serve_app", **options))
    else:
        uvicorn.run("opsdeck.app:serve_app", **options)


@main.command()
@click.option("--host", default=None, help="Interface to bind (default OPSDECK_HOST).")
@click.option("--port", type=int, default=None, help="Port (default OPSDECK_PORT, 8004).")
@click.option("--workers", type=int, default=1, show_default=True, help="Web processes.")
def web(host: str | None, port: int | None, workers: int) -> None:
    """Serve the web application and API (no worker)."""
    settings = load_settings()
    _use_metrics_dir(settings, wipe=False)
    _configure_logging(settings)
    require_head(settings)
    _run_web(settings, host, port, workers)


def _worker_argv(
    settings: Settings, concurrency: int | None, loglevel: str, *, beat: bool = False
) -> list[str]:
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency or settings.celery_concurrency}",
        "--queues=opsdeck",
        "--hostname=opsdeck@%h",
    ]
    if settings.embedded:
        # The filesystem transport has no broadcast channel for these.
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    if beat:
        argv += ["--beat", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    return argv


@main.command()
@click.option("--concurrency", type=int, default=None, help="Worker processes (default: cores).")
@click.option(
    "--beat", is_flag=True, help="Also run the periodic scheduler (single-node deployments only)."
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve /metrics on this port (default OPSDECK_WORKER_METRICS_PORT; 0: off).",
)
def worker(concurrency: int | None, beat: bool, metrics_port: int | None) -> None:
    """Run a Celery worker for every module's tasks."""
    settings = load_settings()
    _use_metrics_dir(settings, wipe=False)
    _configure_logging(settings)
    require_head(settings)
    from opsdeck.core.queue import configure_celery, queue_depths
    from opsdeck.core.shutdown import die_with_parent, install_worker_stop
    from opsdeck.modules import task_modules

    die_with_parent()
    install_worker_stop(settings.worker_stop_timeout_seconds)
    app = configure_celery(settings, task_modules())
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    if port:
        from opsdeck.core.metrics import serve_metrics

        serve_metrics(port, lambda: queue_depths(settings))
        click.echo(f"Worker metrics on http://0.0.0.0:{port}/metrics", err=True)
    app.worker_main(_worker_argv(settings, concurrency, settings.log_level, beat=beat))


@main.command()
def beat() -> None:
    """Run the Celery beat scheduler (one per deployment)."""
    settings = load_settings()
    _configure_logging(settings)
    from opsdeck.core.queue import configure_celery
    from opsdeck.modules import task_modules

    app = configure_celery(settings, task_modules())
    schedule = settings.data_dir / "celerybeat-schedule"
    app.start(["beat", f"--loglevel={settings.log_level}", f"--schedule={schedule}"])


@main.command()
@click.option("--host", default=None, help="Interface to bind (default OPSDECK_HOST).")
@click.option("--port", type=int, default=None, help="Port (default OPSDECK_PORT, 8004).")
def serve(host: str | None, port: int | None) -> None:
    """Web server and an embedded worker in one command; Ctrl-C stops both. Pending
    migrations are applied first."""
    settings = load_settings()
    _use_metrics_dir(settings, wipe=True)
    _configure_logging(settings)
    from opsdeck.core.db import upgrade_database

    # The single-node role migrates by itself, as `make run` does, so `docker run IMAGE serve`
    # works on a fresh volume. The distributed roles (web, worker) refuse a database that is
    # behind: there, one `opsdeck migrate` job runs before them.
    upgrade_database(settings.database_url_resolved)
    bound = f"http://{host or settings.host}:{port or settings.port}"
    click.echo(f"OpsDeck {__version__} listening on {bound}", err=True)
    click.echo(
        "First admin: opsdeck users create --username admin --email you@example.com --admin",
        err=True,
    )
    if settings.environment != "production":
        click.echo("Example data to look around: opsdeck seed demo", err=True)
    worker = _Supervised(
        [sys.executable, "-m", "opsdeck", "worker", "--beat"],
        stop_timeout=settings.worker_stop_timeout_seconds + 2,
    )
    # uvicorn handles SIGTERM itself, then restores this handler and raises the signal again:
    # with the default handler `serve` would die there, before stopping its worker.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    worker.start()
    try:
        _run_web(settings, host, port, workers=1)
    finally:
        worker.stop()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


class _Supervised:
    """A child process started again whenever it dies (say, killed for memory), after a pause
    that grows while it keeps dying young. On restart the modules' start-up hooks re-queue what
    the dead worker had taken.

    The child leads a process group of its own, so a signal to `serve`'s group does not reach
    it (or its pool) behind the supervisor's back: `stop` sends it SIGTERM, waits
    `stop_timeout` seconds, then kills its whole group. It gets SIGTERM from the kernel if the
    supervisor dies without stopping it (core.shutdown.die_with_parent)."""

    def __init__(self, argv: list[str], *, stop_timeout: float) -> None:
        self.argv = argv
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                argv, env = self.argv, os.environ.copy()
                env[PARENT_PID_ENV] = str(os.getpid())
                self.process = subprocess.Popen(  # noqa: S603  # nosec B603
                    argv, env=env, start_new_session=True
                )

    def _run(self) -> None:
        pause = 1.0
        while self.process is not None:
            started = time.monotonic()
            status = self.process.wait()
            if self._stopping.is_set():
                return
            pause = 1.0 if time.monotonic() - started > 60 else min(pause * 2, 30.0)
            click.echo(
                f"The worker exited with status {status}; starting it again in {pause:g} s.",
                err=True,
            )
            if self._stopping.wait(pause):
                return
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
        if self.process is not None:
            _stop(self.process, self.stop_timeout)


def _stop(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM (Celery's warm shutdown: finish the tasks in hand), then, after `timeout`
    seconds, SIGKILL to the process's whole group (it leads one: start_new_session)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            click.echo(f"The worker did not stop in {timeout:g} s; killing it.", err=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what the worker left: its pool, its beat
    process.wait()


@main.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = load_settings()
    from opsdeck.core.db import head_revision, upgrade_database

    upgrade_database(settings.database_url_resolved)
    click.echo(f"database at head ({head_revision()})")


# The container image's `migrate` role: the same command under a top-level name, so a one-shot
# job or init container runs `opsdeck migrate`.
main.add_command(db_upgrade, name="migrate")


@db.command("check")
def db_check() -> None:
    """Exit 0 when the database is at head, 1 (with the revisions) when it is not."""
    settings = load_settings()
    require_head(settings)
    from opsdeck.core.db import head_revision

    click.echo(f"database at head ({head_revision()})")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does, in a few words.")
def db_revision(message: str) -> None:
    """Write the next migration from the models (for developers adding a table or column).

    Alembic compares the models with a scratch SQLite database at head and writes what
    differs to src/opsdeck/migrations/versions/<next number>_<message>.py. Read it before
    committing: autogenerate cannot see everything (PostgreSQL-only types, data moves)."""
    import tempfile
    from pathlib import Path

    from alembic import command

    from opsdeck.core.db import alembic_config, head_revision, upgrade_database

    current = head_revision() or "0000"
    next_id = f"{int(current) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'scratch.db'}"
        upgrade_database(url)
        command.revision(alembic_config(url), message=message, autogenerate=True, rev_id=next_id)


@main.group()
def seed() -> None:
    """Example data, to try OpsDeck out (never in production)."""


# The exit status when `seed demo` refuses to run in production (a usage error, like click's).
REFUSED_IN_PRODUCTION = 2


@seed.command("demo")
def seed_demo() -> None:
    """Every module's demo data: users, incidents with their timelines, ... Idempotent: a
    second run adds nothing. Refused when OPSDECK_ENVIRONMENT is production."""
    settings = load_settings()
    if settings.environment == "production":
        click.echo(
            "Refusing to seed demo data: this deployment is production "
            "(OPSDECK_ENVIRONMENT=production). Demo users with a shared password and invented "
            "incidents do not belong there.",
            err=True,
        )
        raise SystemExit(REFUSED_IN_PRODUCTION)
    require_head(settings)
    from opsdeck.core.db import make_engine, make_sessionmaker, transaction

    engine = make_engine(settings.database_url_resolved)
    created: dict[str, int] = {}
    started = time.monotonic()
    try:
        factory = make_sessionmaker(engine)
        for module in MODULES:
            if module.demo_seed is None:
                continue
            with transaction(factory) as session:
                counts = module.demo_seed(session, settings)
            for what, count in counts.items():
                if count:
                    created[what] = created.get(what, 0) + count
                    click.echo(f"  {module.name}: {count} {what}")
    finally:
        engine.dispose()
    if created:
        click.echo(f"Demo data created in {time.monotonic() - started:.1f} s.")
    else:
        click.echo("Nothing to add: the demo data is there already.")


for _module in MODULES:
    if _module.cli is not None:
        _groups = _module.cli()
        for _group in (_groups,) if isinstance(_groups, click.Group) else _groups:
            main.add_command(_group)  # under the group's own name, not the module's
