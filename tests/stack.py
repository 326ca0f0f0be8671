"""The test stack: which database and broker the suite runs on, and the real Celery worker.

Decided once, at `pytest_configure`, and handed to tests/conftest.py through
`OPSDECK_TEST_DATABASE_URL` and `OPSDECK_TEST_REDIS_URL`:

- `OPSDECK_TEST_STACK=embedded`: nothing is started; SQLite and Celery's filesystem broker.
- both URLs already in the environment: those servers are used as they are.
- otherwise, when the machine has PostgreSQL's server binaries (`initdb`, `pg_ctl`) and
  `redis-server`: a private PostgreSQL cluster and a private Redis are started on loopback,
  on free ports, in a temporary folder that is removed at `pytest_unconfigure`.
  As root, PostgreSQL runs as the `postgres` system user (it refuses to run as root).
- `OPSDECK_TEST_STACK=integration` makes a missing binary an error instead of a fallback.

The `celery_worker` fixture starts `python -m opsdeck worker` against the same stack; tasks go
through the real broker to a real worker process, never eagerly.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

STACK_ENV = "OPSDECK_TEST_STACK"
DATABASE_ENV = "OPSDECK_TEST_DATABASE_URL"
REDIS_ENV = "OPSDECK_TEST_REDIS_URL"
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
DATABASE_NAME = "opsdeck_test"
DATABASE_USER = "opsdeck"
STACK_DIR_PREFIX = "opsdeck-test-stack-"
SERVER_USER = "postgres"

T = TypeVar("T")


class StackError(RuntimeError):
    """The test stack could not be started; the message says why and shows the server log."""


class WaitAborted(AssertionError):
    """Raised by a polled condition when waiting longer cannot help (the process died)."""


# -- small helpers ---------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.1,
    message: str = "condition",
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy and return that; fail after `timeout`
    seconds. The timeout is a safety net for a hung test, not a claim about speed."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
        except WaitAborted:
            raise
        except Exception as exc:
            last_error = exc
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else ""
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {message}{detail}{extra}"
            )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"


_PR_SET_PDEATHSIG = 1
# Looked up now: between fork and exec the child must not load libraries.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: if pytest dies (even by SIGKILL), the server
    or worker gets SIGTERM instead of living on as an orphan."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def redact(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


# -- PostgreSQL ------------------------------------------------------------------------------


def find_postgres_bindir() -> Path | None:
    """Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin."""
    candidates = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: _major(p.parent.name),
        reverse=True,
    )
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    return None


def _major(name: str) -> int:
    try:
        return int(name.split(".")[0])
    except ValueError:
        return -1


def find_redis_server() -> Path | None:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.isfile(p)), None
    )
    return Path(found) if found else None


@dataclass
class PostgresCluster:
    bindir: Path
    root: Path
    port: int = 0
    version: str = ""
    run_as: str | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{DATABASE_USER}@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def _command(self, *argv: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *argv]

    def _run(
        self, *argv: str, timeout: float = STARTUP_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(*argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
            start_new_session=True,
        )

    def init(self) -> None:
        self.root.mkdir(mode=0o700)
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            reachable = self._run("test", "-w", str(self.root))
            if reachable.returncode != 0:
                raise StackError(
                    f"the {self.run_as} user cannot write to {self.root}; point TMPDIR at a "
                    "folder every user can traverse (e.g. /tmp)"
                )
        result = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            DATABASE_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if result.returncode != 0:
            raise StackError(
                f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        # Loopback only, socket in our own folder, durability traded for speed: a test cluster
        # is thrown away, and a clean stop still checkpoints everything (the restart test).
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                "\n# opsdeck test stack\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nlog_min_messages = warning\n"
            )
        version = subprocess.run(
            [str(self.bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        found = re.search(r"\(PostgreSQL\)\s+(\S+)", version.stdout)
        self.version = found.group(1) if found else version.stdout.strip() or "?"

    def start(self) -> None:
        """Start on the current port (a new free one the first time); retried on a port race."""
        attempts = 3
        for attempt in range(1, attempts + 1):
            if not self.port or attempt > 1:  # a restart keeps its port: URLs stay valid
                self.port = free_port()
            result = self._run(
                str(self.bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(STARTUP_TIMEOUT)),
                "-o",
                f"-p {self.port}",
                timeout=STARTUP_TIMEOUT + 10,
            )
            if result.returncode == 0:
                break
            log = tail(self.log)
            if "already in use" not in log or attempt == attempts:
                raise StackError(
                    f"PostgreSQL did not start on 127.0.0.1:{self.port} "
                    f"({result.stdout.strip()} {result.stderr.strip()}); server log:\n{log}"
                )
        wait_until(
            self._accepts_connections,
            timeout=STARTUP_TIMEOUT,
            interval=0.2,
            message=f"PostgreSQL on 127.0.0.1:{self.port}",
            diagnostics=lambda: tail(self.log),
        )

    def _accepts_connections(self) -> bool:
        import psycopg

        with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
            return True

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={DATABASE_USER} dbname={database}"

    def create_database(self, name: str = DATABASE_NAME) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{DATABASE_USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """A fast shutdown: sessions are cut, committed work is checkpointed to disk."""
        if not (self.data / "postmaster.pid").exists():
            return
        pg_ctl = str(self.bindir / "pg_ctl")
        for mode in ("fast", "immediate"):
            result = self._run(
                pg_ctl, "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(STOP_TIMEOUT))
            )
            if result.returncode == 0:
                return
        _kill_postmaster(self.data)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def _kill_postmaster(data: Path) -> None:
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- Redis -----------------------------------------------------------------------------------


@dataclass
class RedisServer:
    binary: Path
    root: Path
    port: int = 0
    version: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, same_port: bool = False) -> None:
        """Start on a free port, or (a restart) on the port it had, so URLs stay valid."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        attempts = 1 if same_port else 3
        for attempt in range(1, attempts + 1):
            if not (same_port and self.port):
                self.port = free_port()
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    # Append-only, as in production (compose.yaml): a restart keeps the queued
                    # and unacknowledged messages (the Redis outage tests restart it).
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--dir",
                    str(self.root),
                    "--logfile",
                    str(self.log),
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            try:
                wait_until(
                    self._answers,
                    timeout=STARTUP_TIMEOUT,
                    message=f"Redis on 127.0.0.1:{self.port}",
                )
                return
            except AssertionError as exc:
                log = tail(self.log)
                self.stop()
                if "already in use" not in log or attempt == attempts:
                    raise StackError(f"Redis did not start: {exc}; server log:\n{log}") from None

    def _answers(self) -> bool:
        import redis

        if self.process is not None and self.process.poll() is not None:
            raise WaitAborted(f"redis-server exited with status {self.process.returncode}")
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)
        try:
            info = client.info("server")
        finally:
            client.close()
        self.version = str(info.get("redis_version", "?"))
        return True

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the stack -------------------------------------------------------------------------------


@dataclass
class TestStack:
    mode: str  # "embedded" | "integration" | "external"
    database_url: str = ""
    redis_url: str = ""
    root: Path | None = None
    postgres: PostgresCluster | None = None
    redis: RedisServer | None = None
    notes: list[str] = field(default_factory=list)
    worker_started: bool = False

    __test__ = False  # not a test class, whatever its name says

    def describe(self) -> str:
        if self.mode == "embedded" and not self.database_url and not self.redis_url:
            return "embedded: SQLite + Celery filesystem broker"
        if self.postgres is not None:
            database = (
                f"PostgreSQL {self.postgres.version} (private, 127.0.0.1:{self.postgres.port})"
            )
        elif self.database_url:
            database = f"PostgreSQL at {redact(self.database_url)}"
        else:
            database = "SQLite"
        if self.redis is not None:
            broker = f"Redis {self.redis.version} (private, 127.0.0.1:{self.redis.port})"
        elif self.redis_url:
            broker = f"Redis at {redact(self.redis_url)}"
        else:
            broker = "Celery filesystem broker"
        return f"{database} + {broker}"

    def start(self) -> None:
        pg_bindir = find_postgres_bindir() if not self.database_url else None
        redis_binary = find_redis_server() if not self.redis_url else None
        self.root = Path(tempfile.mkdtemp(prefix=STACK_DIR_PREFIX))
        self.root.chmod(0o755)  # the postgres user must traverse it to reach its own folder
        (self.root / "owner.pid").write_text(str(os.getpid()))
        if not self.database_url:
            assert pg_bindir is not None
            self.postgres = PostgresCluster(
                pg_bindir, self.root / "postgres", run_as=_server_user()
            )
            self.postgres.init()
            self.postgres.start()
            self.postgres.create_database()
            self.database_url = self.postgres.url
        if not self.redis_url:
            assert redis_binary is not None
            self.redis = RedisServer(redis_binary, self.root / "redis")
            self.redis.start()
            self.redis_url = self.redis.url

    def stop(self) -> None:
        errors: list[str] = []
        for server in (self.redis, self.postgres):
            if server is None:
                continue
            try:
                server.stop()
            except Exception as exc:
                errors.append(f"{type(server).__name__}: {exc}")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        self.redis = None
        self.postgres = None
        if errors:
            raise StackError("could not stop the test stack cleanly: " + "; ".join(errors))


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise StackError(
            f"running as root, PostgreSQL needs an unprivileged user to run as, and there is no "
            f"'{SERVER_USER}' user; install Debian's postgresql package (it creates one)"
        ) from None
    return SERVER_USER


def sweep_stale_stacks() -> None:
    """Remove what a killed test run left behind: its cluster and its folder."""
    for folder in Path(tempfile.gettempdir()).glob(f"{STACK_DIR_PREFIX}*"):
        try:
            owner = int((folder / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if owner == os.getpid() or _pid_alive(owner):
            continue
        _kill_postmaster(folder / "postgres" / "data")
        shutil.rmtree(folder, ignore_errors=True)


def decide_stack(environ: Mapping[str, str]) -> TestStack:
    requested = environ.get(STACK_ENV, "").strip().lower() or "auto"
    if requested not in {"auto", "embedded", "integration"}:
        raise pytest.UsageError(
            f"{STACK_ENV}={requested!r}: use 'embedded', 'integration' or leave it unset"
        )
    database_url = environ.get(DATABASE_ENV, "")
    redis_url = environ.get(REDIS_ENV, "")
    if requested == "embedded":
        stack = TestStack("embedded")
        if database_url or redis_url:
            stack.notes.append(f"{STACK_ENV}=embedded: ignoring {DATABASE_ENV} / {REDIS_ENV}")
        return stack
    if database_url and redis_url:
        return TestStack("external", database_url=database_url, redis_url=redis_url)
    missing = []
    if not database_url and find_postgres_bindir() is None:
        missing.append("PostgreSQL server binaries (initdb, pg_ctl; Debian package postgresql)")
    if not redis_url and find_redis_server() is None:
        missing.append("redis-server (Debian package redis-server)")
    if missing:
        if requested == "integration":
            raise pytest.UsageError(
                f"{STACK_ENV}=integration but this machine lacks: " + "; ".join(missing)
            )
        stack = TestStack("embedded", database_url=database_url, redis_url=redis_url)
        stack.notes.append("not found: " + "; ".join(missing))
        return stack
    return TestStack("integration", database_url=database_url, redis_url=redis_url)


# -- pytest hooks ----------------------------------------------------------------------------

_stack_key = pytest.StashKey[TestStack]()
_previous_sigterm: Any = None
_current: TestStack | None = None


def current_stack() -> TestStack:
    if _current is None:
        raise RuntimeError(
            "the test stack is decided in pytest_configure; tests/stack.py not loaded"
        )
    return _current


def _sigterm_to_interrupt(_signum: int, _frame: Any) -> None:
    # pytest cleans up (fixtures, pytest_unconfigure) on KeyboardInterrupt, not on SIGTERM.
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    global _current, _previous_sigterm
    stack = decide_stack(os.environ)
    if stack.mode == "integration":
        sweep_stale_stacks()
        atexit.register(stack.stop)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            _previous_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        try:
            stack.start()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                stack.stop()
            if isinstance(exc, StackError):
                raise pytest.UsageError(f"OpsDeck test stack: {exc}") from None
            raise
    if stack.database_url:
        os.environ[DATABASE_ENV] = stack.database_url
    else:
        os.environ.pop(DATABASE_ENV, None)
    if stack.redis_url:
        os.environ[REDIS_ENV] = stack.redis_url
    else:
        os.environ.pop(REDIS_ENV, None)
    config.stash[_stack_key] = stack
    _current = stack


def pytest_unconfigure(config: pytest.Config) -> None:
    global _current, _previous_sigterm
    stack = config.stash.get(_stack_key, None)
    if stack is None:
        return
    if _previous_sigterm is not None:
        signal.signal(signal.SIGTERM, _previous_sigterm)
        _previous_sigterm = None
    try:
        stack.stop()
    finally:
        atexit.unregister(stack.stop)
        _current = None


def pytest_report_header(config: pytest.Config) -> list[str]:
    stack = config.stash.get(_stack_key, None)
    if stack is None:
        return []
    lines = [f"OpsDeck test stack: {stack.describe()} + real Celery worker (started on first use)"]
    lines += [f"  note: {note}" for note in stack.notes]
    return lines


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    stack = config.stash.get(_stack_key, None)
    if stack is None:
        return
    worker = "real Celery worker" if stack.worker_started else "no Celery worker needed"
    terminalreporter.write_sep("-", "OpsDeck test stack")
    terminalreporter.write_line(f"OpsDeck test stack: {stack.describe()} + {worker}")


# -- processes started from the code under test ----------------------------------------------


def hermetic_env(settings: Any, metrics_dir: Path) -> dict[str, str]:
    """The environment of an `opsdeck` subprocess: the test settings and nothing from the
    developer's own OpsDeck configuration."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OPSDECK_")
        and key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"}
        and not key.endswith("_FILE")
    }
    env.update(
        OPSDECK_ENVIRONMENT="test",
        OPSDECK_DATA_DIR=str(Path(settings.data_dir).resolve()),
        OPSDECK_DATABASE_URL=settings.database_url,
        OPSDECK_REDIS_URL=settings.redis_url,
        OPSDECK_SECRET_KEY=settings.secret_key.get_secret_value(),
        OPSDECK_WEBHOOK_SECRET=settings.webhook_secret.get_secret_value(),
        OPSDECK_FETCH_ALLOWED_NETWORKS=",".join(settings.fetch_allowed_networks),
        OPSDECK_PASSWORD_HASH_TIME_COST=str(settings.password_hash_time_cost),
        OPSDECK_PASSWORD_HASH_MEMORY_KIB=str(settings.password_hash_memory_kib),
        OPSDECK_PASSWORD_HASH_PARALLELISM=str(settings.password_hash_parallelism),
        OPSDECK_LOG_FORMAT="json",
        OPSDECK_LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


def python_command(module_args: list[str], workdir: Path) -> list[str]:
    """`python -m <module_args>`, under coverage when this test run measures coverage, so
    code that only runs in the worker or the web server counts too."""
    try:
        import coverage
    except ImportError:  # pragma: no cover - coverage is a dev dependency
        return [sys.executable, "-m", *module_args]
    measuring = coverage.Coverage.current()
    if measuring is None:
        return [sys.executable, "-m", *module_args]
    data_file = Path(measuring.config.data_file).resolve()
    rcfile = workdir / "coveragerc"
    # A source given as a folder is relative to this process's directory, not the child's.
    sources = "\n    ".join(
        str(Path(entry).resolve()) if Path(entry).is_dir() else entry
        for entry in measuring.config.source or ["opsdeck"]
    )
    rcfile.write_text(
        "[run]\n"
        f"source =\n    {sources}\n"
        f"branch = {measuring.config.branch}\n"
        "parallel = True\n"
        f"data_file = {data_file}\n"
        # uvicorn re-raises SIGTERM after its graceful shutdown: save the data on it too.
        "sigterm = True\n"
        "patch =\n    _exit\n    fork\n",
        encoding="utf-8",
    )
    return [sys.executable, "-m", "coverage", "run", f"--rcfile={rcfile}", "-m", *module_args]


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (anything else, e.g. a banner, is left out)."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    records.append(json.loads(line))
        return records

    def wait_for_record(
        self, predicate: Callable[[dict[str, Any]], bool], *, message: str, timeout: float = 60.0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            self.assert_running()
            return next((r for r in self.log_records() if predicate(r)), None)

        return wait_until(found, timeout=timeout, message=message, diagnostics=self.diagnostics)

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            raise WaitAborted(
                f"{self.name} exited with status {self.process.returncode}\n{self.diagnostics()}"
            )

    def diagnostics(self) -> str:
        return f"--- last lines of the {self.name} log ({self.log_path}):\n{tail(self.log_path)}"

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Celery/uvicorn: warm shutdown
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_opsdeck(
    name: str,
    args: list[str],
    *,
    settings: Any,
    metrics_dir: Path,
    workdir: Path,
    env_overrides: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """Start `python -m opsdeck <args>` with the test settings (and `env_overrides`); output
    goes to a log file."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = hermetic_env(settings, metrics_dir)
    env.update(env_overrides or {})
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            python_command(["opsdeck", *args], workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,  # away from any developer .env in the repository
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return ManagedProcess(name, process, log_path, env)


def _is_ready_line(record: dict[str, Any]) -> bool:
    return record.get("logger") == "celery.apps.worker" and str(record.get("event", "")).endswith(
        " ready."
    )


@pytest.fixture(scope="session")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PROMETHEUS_MULTIPROC_DIR shared by the worker and web processes the tests start."""
    return tmp_path_factory.mktemp("prometheus-multiproc")


@pytest.fixture(scope="session")
def test_stack(pytestconfig: pytest.Config) -> TestStack:
    return pytestconfig.stash[_stack_key]


@pytest.fixture(scope="session")
def celery_worker(
    base_settings: Any,
    metrics_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    test_stack: TestStack,
) -> Iterator[ManagedProcess]:
    """A real `opsdeck worker --concurrency 2` on the test stack, ready to take tasks."""
    worker = start_opsdeck(
        "celery-worker",
        ["worker", "--concurrency", "2"],
        settings=base_settings,
        metrics_dir=metrics_dir,
        workdir=tmp_path_factory.mktemp("celery-worker"),
    )
    try:
        worker.wait_for_record(
            _is_ready_line, message="the Celery worker's 'ready' line", timeout=STARTUP_TIMEOUT
        )
        test_stack.worker_started = True
        yield worker
    finally:
        status = worker.stop()
        if status not in (0, -signal.SIGTERM):
            sys.stderr.write(
                f"\nthe Celery worker exited with status {status}\n{worker.diagnostics()}\n"
            )


def start_web(
    name: str,
    *,
    settings: Any,
    metrics_dir: Path,
    workdir: Path,
    env_overrides: Mapping[str, str] | None = None,
) -> tuple[str, ManagedProcess]:
    """`opsdeck web` on a free loopback port, once it answers `/health`: its base URL and the
    process (the caller stops it)."""
    import httpx

    port = free_port()
    server = start_opsdeck(
        name,
        ["web", "--host", "127.0.0.1", "--port", str(port)],
        settings=settings,
        metrics_dir=metrics_dir,
        workdir=workdir,
        env_overrides=env_overrides,
    )
    base_url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        server.assert_running()
        return httpx.get(f"{base_url}/health", timeout=2).status_code == 200

    try:
        wait_until(
            answers,
            timeout=STARTUP_TIMEOUT,
            message=f"{name} on {base_url}",
            diagnostics=server.diagnostics,
        )
    except BaseException:
        server.stop()
        raise
    return base_url, server


@pytest.fixture(scope="session")
def web_server(
    base_settings: Any,
    metrics_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, ManagedProcess]]:
    """A real `opsdeck web` on a free loopback port, sharing the worker's metrics folder.
    Yields its base URL and the process."""
    base_url, server = start_web(
        "opsdeck-web",
        settings=base_settings,
        metrics_dir=metrics_dir,
        workdir=tmp_path_factory.mktemp("opsdeck-web"),
    )
    try:
        yield base_url, server
    finally:
        server.stop()
