"""Chat fan-out (issue 14): N clients in one room over the websocket transport, M messages a
second, measured on a real OpsDeck and on a bare python-socketio server of the same shape in
the same run.

    .venv/bin/python bench/chat_fanout.py [--clients 200] [--rate R] [--duration 10]
    .venv/bin/python bench/chat_fanout.py --quick       # a smoke run (~1.5 min), embedded only

Modes (`--modes`, both by default), each followed by its raw counterpart:

- `embedded`: one `opsdeck web` process on SQLite, no Redis (the single-node install);
- `distributed`: two `opsdeck web` processes on a private PostgreSQL 15 + Redis (the code of
  tests/stack.py), python-socketio's Redis manager between them, clients spread over both;
- `raw`: a bare `socketio.AsyncServer` under uvicorn with the same namespace (`/chat`), the same
  events (`room:join`, `room:leave`, `message:send` answered by an ack, `message:new` broadcast
  to the room) and a message of the same shape, but no database, no authentication, no
  Markdown; for `distributed`, two such processes with the Redis manager.

For each of them:

1. idle memory: the RSS of the server process(es) before and after `--idle` (2,000) more
   connections, each authenticated and subscribed to the room (`room:join`), then closed;
2. fan-out: the `--clients` clients, all in the room, send `--rate` messages a second in
   turn (a send every 1/rate s, spread over the client processes); every client receives every
   message (`message:new`, the sender's included). Each body carries its send time
   (CLOCK_MONOTONIC, shared by the processes of this machine): delivery latency is receipt minus
   send, on every client. Deliveries/s counts the `message:new` received in the measured window;
   messages still missing after a drain are reported;
3. send -> persist -> ack: `--ack-rate` (200) messages a second into a second room from
   senders that joined it and then left it on their connection (`room:leave`: still members,
   so they may send, but nobody is subscribed: no fan-out), two messages a second each, within
   the default per-user send limit; the ack latency as the client sees it.

The clients are processes of their own (`--client-procs`, 2): asyncio (uvloop) Socket.IO clients
speaking Engine.IO 4 / Socket.IO 5 over `websockets`, packets encoded and decoded by
python-socketio's own `socketio.packet.Packet` (python-socketio's AsyncClient needs aiohttp,
which this environment does not install). They share the 2 cores with the servers: their CPU,
the servers', PostgreSQL's and Redis's, and the rest of the machine's are printed per phase.

Users and API tokens are made through the accounts services, the rooms through the REST API.
It asserts nothing and exits non-zero only when the run itself fails. Everything it starts is
stopped at exit (Ctrl-C and SIGTERM too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import html
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import uvloop
from socketio import packet as sio_packet
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from _common import (
    BenchFailed,
    children_of,
    cpu_seconds,
    die_with_parent,
    interrupts_as_keyboard_interrupt,
    load_average,
    machine_cpu,
    percentile,
    postmaster_pid,
    print_machine,
    run_opsdeck,
    stack_helpers,
    wait_for_quiet,
)

NS = "/chat"
API = "/api/v1/chat"
STARTUP_TIMEOUT = 120.0
CALL_TIMEOUT = 30.0  # a send's ack, during the measured phases
SETUP_TIMEOUT = 120.0  # connecting and joining (a loaded server may be slow to answer)
SETTLE_SECONDS = 60.0  # at most, between phases, for the server side to go quiet
CONNECT_CONCURRENCY = 32  # handshakes in flight per client process
SENDS_PER_USER_PER_SECOND = 2.0  # below the default limit (30 per 10 s) with room to spare
TARGETS = {
    "embedded": {"deliveries": 5_000.0, "p99": 100.0},
    "distributed": {"deliveries": 15_000.0, "p99": 250.0},
}
IDLE_TARGET_MB = 150.0  # for 2,000 idle connections
ACK_TARGET_P99 = 100.0


# -- the client side: a minimal asyncio Socket.IO client over websockets ---------------------


@dataclass
class Recorder:
    """What one client process saw during a phase."""

    window: tuple[float, float] = (0.0, 0.0)
    received: int = 0  # message:new, the whole phase
    received_in_window: int = 0  # message:new received inside the measured window
    latencies: list[float] = field(default_factory=list)  # ms, messages sent in the window
    sent_in_window: int = 0
    acked: int = 0  # sends answered ok, the whole phase
    answered: int = 0  # message:send acks received in the phase, late ones (timed out) too
    ack_latencies: list[float] = field(default_factory=list)  # ms, sends in the window
    send_lag: list[float] = field(default_factory=list)  # ms behind the schedule
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def message(self, data: Any) -> None:
        now = time.monotonic()
        self.received += 1
        start, end = self.window
        if start <= now < end:
            self.received_in_window += 1
        try:
            sent = float(str(data["body"]).rsplit(" ", 1)[1])
        except (KeyError, IndexError, TypeError, ValueError):
            self.error("unreadable message:new")
            return
        if start <= sent < end:
            self.latencies.append((now - sent) * 1000)


class Client:
    """One Socket.IO connection to /chat: Engine.IO 4 over a websocket, python-socketio's packet
    codec, acks by id, `message:new` handed to the recorder, pings answered."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.ws: ClientConnection | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.reader: asyncio.Task[None] | None = None

    async def connect(self, port: int, token: str) -> None:
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        self.ws = await ws_connect(
            url, compression=None, ping_interval=None, open_timeout=SETUP_TIMEOUT, max_size=2**20
        )
        opened = await asyncio.wait_for(self.ws.recv(), SETUP_TIMEOUT)
        if not str(opened).startswith("0"):
            raise BenchFailed(f"unexpected Engine.IO open packet: {opened!r}")
        auth = {"token": token} if token else {}
        await self.ws.send("4" + sio_packet.Packet(sio_packet.CONNECT, auth, namespace=NS).encode())
        while True:
            reply = str(await asyncio.wait_for(self.ws.recv(), SETUP_TIMEOUT))
            if reply == "2":
                await self.ws.send("3")
                continue
            break
        if not reply.startswith("40"):
            raise BenchFailed(f"connection to {NS} refused: {reply[:200]}")
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for text in self.ws:
                if text == "2":
                    await self.ws.send("3")
                    continue
                if not isinstance(text, str) or not text.startswith("4"):
                    continue
                packet = sio_packet.Packet(encoded_packet=text[1:])
                if packet.packet_type == sio_packet.EVENT:
                    if packet.data and packet.data[0] == "message:new":
                        self.recorder.message(packet.data[1])
                elif packet.packet_type == sio_packet.ACK:
                    answer = packet.data[0] if packet.data else None
                    if isinstance(answer, dict) and "seq" in answer:
                        self.recorder.answered += 1
                    future = self.pending.pop(packet.id, None)
                    if future is not None and not future.done():
                        future.set_result(packet.data[0] if packet.data else None)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))

    async def call(self, event: str, data: dict[str, Any], wait: float = CALL_TIMEOUT) -> Any:
        assert self.ws is not None
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        encoded = sio_packet.Packet(
            sio_packet.EVENT, [event, data], namespace=NS, id=self.next_id
        ).encode()
        await self.ws.send("4" + encoded)
        return await asyncio.wait_for(future, wait)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader


async def _open(
    recorder: Recorder, specs: Sequence[tuple[int, str]], room: str, leave: bool
) -> list[Client]:
    """Connect every (port, token), join `room` (and leave it again on the connection when
    `leave`), at most CONNECT_CONCURRENCY handshakes at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(port: int, token: str) -> Client:
        async with gate:
            client = Client(recorder)
            await client.connect(port, token)
            for event in ("room:join", "room:leave") if leave else ("room:join",):
                ack = await client.call(event, {"room_id": room}, SETUP_TIMEOUT)
                if not (isinstance(ack, dict) and ack.get("ok")):
                    raise BenchFailed(f"{event} refused: {ack!r}")
            return client

    return list(await asyncio.gather(*(one(port, token) for port, token in specs)))


async def _send_at_rate(
    recorder: Recorder,
    senders: Sequence[Client],
    room: str,
    schedule: dict[str, float],
) -> None:
    """Send one message every `interval` s from `senders` in turn, from `first` until `stop`."""
    interval, moment, stop = schedule["interval"], schedule["first"], schedule["stop"]
    start, end = recorder.window
    tasks: set[asyncio.Task[None]] = set()

    async def send(client: Client, at: float) -> None:
        sent = time.monotonic()
        in_window = start <= sent < end
        if in_window:
            recorder.sent_in_window += 1
            recorder.send_lag.append((sent - at) * 1000)
        try:
            ack = await client.call(
                "message:send",
                {"room_id": room, "client_id": uuid.uuid4().hex, "body": f"fan-out {sent!r}"},
            )
        except (TimeoutError, ConnectionError) as exc:
            recorder.error(type(exc).__name__)
            return
        if not (isinstance(ack, dict) and ack.get("ok")):
            code = ack.get("error", {}).get("code", "?") if isinstance(ack, dict) else "?"
            recorder.error(str(code))
            return
        recorder.acked += 1
        if in_window:
            recorder.ack_latencies.append((time.monotonic() - sent) * 1000)

    turn = 0
    while moment < stop:
        delay = moment - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(senders[turn % len(senders)], moment))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        turn += 1
        moment += interval
    if tasks:
        await asyncio.gather(*tasks)


async def _worker(conn: Connection) -> None:
    """A client process: runs the commands of the parent, one at a time, answering each."""
    clients: list[Client] = []
    idle: list[Client] = []
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    while True:
        command, args = await loop.run_in_executor(None, conn.recv)
        try:
            if command == "connect":
                clients = await _open(recorder, args["specs"], args["room"], leave=False)
                reply: Any = len(clients)
            elif command == "idle":
                idle = await _open(recorder, args["specs"], args["room"], leave=False)
                reply = len(idle)
            elif command == "close_idle":
                await asyncio.gather(*(client.close() for client in idle))
                idle = []
                reply = 0
            elif command in ("fanout", "ack"):
                recorder = Recorder(window=(args["window_start"], args["window_end"]))
                senders = clients
                extra: list[Client] = []
                if command == "ack":
                    extra = await _open(recorder, args["specs"], args["room"], leave=True)
                    senders = extra
                for client in clients:
                    client.recorder = recorder
                if senders:
                    await _send_at_rate(recorder, senders, args["room"], args["schedule"])
                await asyncio.sleep(max(0.0, args["drain_until"] - time.monotonic()))
                await asyncio.gather(*(client.close() for client in extra))
                reply = dataclasses.asdict(recorder)
            elif command == "stop":
                await asyncio.gather(*(client.close() for client in [*clients, *idle]))
                conn.send(("ok", 0))
                return
            else:
                raise BenchFailed(f"unknown command {command}")
            conn.send(("ok", reply))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def client_process(conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    uvloop.run(_worker(conn))


class ClientPool:
    """The client processes, driven through pipes."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=client_process, args=(child,), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def run(self, command: str, per_process: Sequence[dict[str, Any]]) -> list[Any]:
        for pipe, args in zip(self.pipes, per_process, strict=True):
            pipe.send((command, args))
        replies = []
        for pipe in self.pipes:
            if not pipe.poll(600):
                raise BenchFailed(f"a client process did not answer {command!r}")
            status, value = pipe.recv()
            if status != "ok":
                raise BenchFailed(f"client process, {command}: {value}")
            replies.append(value)
        return replies

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(("stop", {}))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    return [list(items[index::parts]) for index in range(parts)]


# -- the raw server --------------------------------------------------------------------------


def raw_server(port: int, redis_url: str) -> None:
    """A bare python-socketio server of the same shape as /chat: no database, no auth."""
    import socketio
    import uvicorn

    manager = (
        socketio.AsyncRedisManager(redis_url, channel="chat-fanout-raw") if redis_url else None
    )
    server = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins="*",
        max_http_buffer_size=1_000_000,
        logger=False,
        engineio_logger=False,
    )
    seqs: dict[str, int] = {}
    author = {"id": uuid.uuid4().hex, "username": "bench", "display_name": "Bench"}

    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        return None

    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        room = str(data["room_id"])
        await server.enter_room(sid, room, namespace=NS)
        last = seqs.get(room, 0)
        return {"ok": True, "room_id": room, "last_seq": last, "last_read_seq": last, "unread": 0}

    async def leave(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        await server.leave_room(sid, str(data["room_id"]), namespace=NS)
        return {"ok": True, "room_id": data["room_id"]}

    async def send(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        room = str(data["room_id"])
        seqs[room] = seq = seqs.get(room, 0) + 1
        body = str(data["body"])
        message = {
            "id": uuid.uuid4().hex,
            "room_id": room,
            "seq": seq,
            "client_id": data["client_id"],
            "author": author,
            "body": body,
            "body_html": f"<p>{html.escape(body)}</p>\n",
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "edited_at": None,
            "deleted": False,
            "reply_to": None,
        }
        await server.emit("message:new", message, to=room, namespace=NS)
        return {"ok": True, "id": message["id"], "seq": seq, "duplicate": False, "message": message}

    server.on("connect", connect, namespace=NS)
    server.on("room:join", join, namespace=NS)
    server.on("room:leave", leave, namespace=NS)
    server.on("message:send", send, namespace=NS)
    uvicorn.run(
        socketio.ASGIApp(server, socketio_path="socket.io"),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


# -- the servers under test ------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on (as opsdeck.settings.usable_cores)."""
    return max(1, len(os.sched_getaffinity(0)))


def base_env(root: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OPSDECK_")
        and key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"}
        and not key.endswith("_FILE")
    }
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    env.update(
        OPSDECK_DATA_DIR=str(root / "data"),
        OPSDECK_SECRET_KEY=secrets.token_urlsafe(48),
        OPSDECK_WEBHOOK_SECRET=secrets.token_urlsafe(48),
        OPSDECK_LOG_FORMAT="json",
        OPSDECK_LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(root / "metrics"),
        PYTHONUNBUFFERED="1",
    )
    return env


def make_users(database_url: str, count: int) -> list[str]:
    """`count` members with an API token each, through the accounts services."""
    from opsdeck.accounts import service as accounts
    from opsdeck.core.db import make_engine, make_sessionmaker
    from opsdeck.core.security import Passwords

    engine = make_engine(database_url, pool_size=1)
    # Nobody signs in with these passwords: the cheapest argon2 parameters will do.
    passwords = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
    tokens = []
    try:
        with make_sessionmaker(engine)() as session:
            for index in range(count):
                name = f"fanout{index:04d}"
                user = accounts.create_user(
                    session,
                    passwords,
                    username=name,
                    email=f"{name}@example.com",
                    password=secrets.token_urlsafe(18),
                    role="member",
                )
                tokens.append(accounts.create_api_token(session, user, name="bench").token)
            session.commit()
    finally:
        engine.dispose()
    return tokens


def create_room(port: int, token: str, name: str) -> str:
    response = httpx.post(
        f"http://127.0.0.1:{port}{API}/rooms",
        json={"name": name, "visibility": "public"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=CALL_TIMEOUT,
    )
    if response.status_code != 201:
        raise BenchFailed(f"POST {API}/rooms: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"])


@dataclass
class Server:
    """One server process: `opsdeck web` or the raw server."""

    name: str
    argv: list[str]
    env: dict[str, str]
    root: Path
    helpers: ModuleType
    probe: str
    port: int = 0
    managed: Any = None

    def start(self) -> None:
        self.port = self.helpers.free_port()
        log_path = self.root / f"{self.name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*self.argv, "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.managed = self.helpers.ManagedProcess(self.name, process, log_path, self.env)
        self.helpers.wait_until(
            self._answers,
            timeout=STARTUP_TIMEOUT,
            message=f"{self.name} on 127.0.0.1:{self.port}",
            diagnostics=self.managed.diagnostics,
        )

    def _answers(self) -> bool:
        self.managed.assert_running()
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{self.port}{self.probe}", timeout=2).is_success
        return False

    @property
    def pid(self) -> int:
        return int(self.managed.process.pid)

    def pids(self) -> list[int]:
        return [self.pid, *children_of(self.pid)]

    def stop(self) -> None:
        if self.managed is None:
            return
        process = self.managed.process
        if process.poll() is None:
            self.managed.stop(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def opsdeck_web(name: str, env: dict[str, str], root: Path, helpers: ModuleType) -> Server:
    argv = [sys.executable, "-m", "opsdeck", "web", "--host", "127.0.0.1", "--workers", "1"]
    return Server(name, argv, env, root, helpers, "/health")


def raw_web(name: str, redis_url: str, root: Path, helpers: ModuleType) -> Server:
    argv = [sys.executable, str(Path(__file__).resolve()), "--raw-server"]
    if redis_url:
        argv += ["--redis", redis_url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return Server(name, argv, env, root, helpers, "/socket.io/?EIO=4&transport=polling")


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Target:
    """What one line of the report measures: servers, tokens, rooms, other processes."""

    name: str
    kind: str  # "embedded" | "distributed"
    raw: bool
    servers: list[Server]
    tokens: list[str]  # one per user; the raw server takes none
    room: str
    ack_room: str
    postgres_data: Path | None = None
    redis_pid: int | None = None


@dataclass
class Phase:
    """CPU of each group of processes over a phase, in cores (CPU seconds / wall seconds)."""

    wall: float
    cores: dict[str, float]
    load: str


@dataclass
class Figures:
    target: Target
    rate: float
    clients: int
    idle: int = 0
    rss_before: float = 0.0
    rss_after: float = 0.0
    deliveries_per_s: float = 0.0
    delivery_p50: float = math.nan
    delivery_p99: float = math.nan
    delivery_max: float = math.nan
    missing: int = 0
    expected: int = 0
    sent: int = 0
    fanout_ack_p50: float = math.nan
    fanout_ack_p99: float = math.nan
    send_lag_p99: float = math.nan
    server_cpu_per_delivery_us: float = math.nan  # web + PostgreSQL + Redis
    client_cpu_per_delivery_us: float = math.nan
    fanout_phase: Phase | None = None
    fanout_errors: dict[str, int] = field(default_factory=dict)
    ack_rate: float = 0.0
    ack_sent: int = 0
    ack_p50: float = math.nan
    ack_p99: float = math.nan
    ack_max: float = math.nan
    ack_phase: Phase | None = None
    server_cpu_per_send_ms: float = math.nan  # web + PostgreSQL + Redis
    ack_errors: dict[str, int] = field(default_factory=dict)

    @property
    def mib_per_idle(self) -> float:
        return (self.rss_after - self.rss_before) / max(self.idle, 1)


def cpu_groups(target: Target, pool: ClientPool) -> dict[str, float]:
    groups = {
        "server": sum(cpu_seconds(pid) for server in target.servers for pid in server.pids()),
        "clients": sum(cpu_seconds(pid) for pid in pool.pids),
    }
    if target.postgres_data is not None:
        master = postmaster_pid(target.postgres_data)
        if master:
            groups["PostgreSQL"] = cpu_seconds(master, reaped_children=True) + sum(
                cpu_seconds(pid) for pid in children_of(master)
            )
    if target.redis_pid is not None:
        groups["Redis"] = cpu_seconds(target.redis_pid)
    groups["this script"] = cpu_seconds(os.getpid())
    return groups


def measured(target: Target, pool: ClientPool, work: Callable[[], Any]) -> tuple[Any, Phase]:
    before, (busy_before, _) = cpu_groups(target, pool), machine_cpu()
    started = time.monotonic()
    result = work()
    wall = time.monotonic() - started
    after, (busy_after, _) = cpu_groups(target, pool), machine_cpu()
    cores = {name: (after[name] - before.get(name, 0.0)) / wall for name in after}
    cores["other processes"] = max(0.0, (busy_after - busy_before) / wall - sum(cores.values()))
    return result, Phase(wall, cores, load_average())


def server_side(phase: Phase) -> float:
    """CPU seconds of the server side over a phase: web processes, PostgreSQL, Redis."""
    names = ("server", "PostgreSQL", "Redis")
    return sum(phase.cores.get(name, 0.0) for name in names) * phase.wall


def ceiling(figures: Figures) -> float:
    """Deliveries/s the usable cores would give at the measured CPU cost (NaN when too little
    CPU time was measured: /proc counts in 10 ms ticks)."""
    cost = figures.server_cpu_per_delivery_us
    return usable_cores() * 1e6 / cost if cost > 0 else math.nan


def settle(target: Target, pool: ClientPool) -> None:
    """Wait (up to SETTLE_SECONDS) until the server side is quiet: under 0.1 core over 1 s, so a
    backlog left by the previous phase does not land in the next one."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_SECONDS:
        _, phase = measured(target, pool, lambda: time.sleep(1.0))
        if server_side(phase) / phase.wall < 0.1:
            break
    waited = time.monotonic() - started
    if waited > 2.5:
        print(f"  (waited {waited:.0f} s for the server side to go quiet)")


def phase_text(phase: Phase) -> str:
    parts = ", ".join(f"{name} {cores:.2f}" for name, cores in phase.cores.items())
    return f"CPU in cores: {parts}; load average {phase.load}"


def specs_for(target: Target, users: Sequence[int]) -> list[tuple[int, str]]:
    """(port, token) of each connection: users spread over the servers in turn."""
    ports = [server.port for server in target.servers]
    return [
        (ports[index % len(ports)], "" if target.raw else target.tokens[user])
        for index, user in enumerate(users)
    ]


def run_target(target: Target, args: argparse.Namespace, rate: float) -> Figures:
    procs = args.client_procs
    figures = Figures(target, rate, args.clients)
    pool = ClientPool(procs)
    try:
        users = list(range(args.clients))
        pool.run(
            "connect",
            [
                {"specs": part, "room": target.room}
                for part in split(specs_for(target, users), procs)
            ],
        )
        print(f"  {args.clients} clients connected and in the room")

        # 1. memory per idle connection
        time.sleep(1.0)
        figures.idle = args.idle
        figures.rss_before = sum(rss_mib(pid) for s in target.servers for pid in s.pids())
        idle_users = [index % args.clients for index in range(args.idle)]
        pool.run(
            "idle",
            [
                {"specs": part, "room": target.room}
                for part in split(specs_for(target, idle_users), procs)
            ],
        )
        time.sleep(2.0)
        figures.rss_after = sum(rss_mib(pid) for s in target.servers for pid in s.pids())
        pool.run("close_idle", [{}] * procs)
        print(
            f"  idle: RSS {figures.rss_before:.1f} -> {figures.rss_after:.1f} MiB with "
            f"{args.idle:,} more connections (authenticated, in the room): "
            f"{figures.mib_per_idle * 1024:.1f} KiB each, "
            f"{figures.mib_per_idle * 2000:.0f} MiB per 2,000"
        )
        settle(target, pool)

        # 2. fan-out at `rate`
        recorders, phase = measured(
            target, pool, lambda: fanout(pool, target, args, rate, target.room, None)
        )
        merge_fanout(figures, recorders, args)
        figures.fanout_phase = phase
        total = max(1, sum(r.received for r in recorders))
        figures.server_cpu_per_delivery_us = server_side(phase) / total * 1e6
        figures.client_cpu_per_delivery_us = phase.cores["clients"] * phase.wall / total * 1e6
        print(
            f"  fan-out at {rate:g} msg/s to {args.clients} clients: "
            f"{figures.deliveries_per_s:,.0f} deliveries/s, latency p50 {figures.delivery_p50:.1f}"
            f" / p99 {figures.delivery_p99:.1f} / max {figures.delivery_max:.1f} ms; "
            f"{figures.sent:,} sent in the window, {figures.missing:,} of {figures.expected:,} "
            f"deliveries missing after the drain; send ack p50 / p99 {figures.fanout_ack_p50:.1f}"
            f" / {figures.fanout_ack_p99:.1f} ms; server CPU "
            f"{figures.server_cpu_per_delivery_us:.0f} µs a delivery (sends included; the "
            f"clients {figures.client_cpu_per_delivery_us:.0f} µs), so about "
            f"{number(ceiling(figures))} deliveries/s if the server side had the "
            f"{usable_cores()} cores to itself"
            + (f"; errors {figures.fanout_errors}" if figures.fanout_errors else "")
        )
        print(f"    {phase_text(phase)}")

        # 3. send -> persist -> ack
        settle(target, pool)
        senders = max(1, math.ceil(args.ack_rate / SENDS_PER_USER_PER_SECOND))
        ack_specs = specs_for(target, list(range(senders)))
        recorders, phase = measured(
            target,
            pool,
            lambda: fanout(pool, target, args, args.ack_rate, target.ack_room, ack_specs),
        )
        figures.ack_rate = args.ack_rate
        figures.ack_phase = phase
        acks = [value for r in recorders for value in r.ack_latencies]
        figures.ack_sent = sum(r.sent_in_window for r in recorders)
        figures.ack_p50, figures.ack_p99 = percentile(acks, 0.5), percentile(acks, 0.99)
        figures.ack_max = max(acks, default=math.nan)
        figures.ack_errors = merged_errors(recorders)
        # Divided by every send the server answered in the phase, the acks that came after
        # the client stopped waiting included: the work was done.
        figures.server_cpu_per_send_ms = (
            server_side(phase) / max(1, sum(r.answered for r in recorders)) * 1000
        )
        print(
            f"  send -> ack at {args.ack_rate:g} msg/s ({senders} senders, nobody subscribed): "
            f"p50 {figures.ack_p50:.1f} / p99 {figures.ack_p99:.1f} / max {figures.ack_max:.1f} "
            f"ms over {figures.ack_sent:,} sends; server side {figures.server_cpu_per_send_ms:.2f}"
            " ms of CPU a send" + (f"; errors {figures.ack_errors}" if figures.ack_errors else "")
        )
        print(f"    {phase_text(phase)}")
    finally:
        pool.stop()
    return figures


def fanout(
    pool: ClientPool,
    target: Target,
    args: argparse.Namespace,
    rate: float,
    room: str,
    ack_specs: list[tuple[int, str]] | None,
) -> list[Recorder]:
    procs = args.client_procs
    # Connecting the ack phase's senders takes a moment: start the clock after it.
    setup = 0.0 if ack_specs is None else 3.0 + len(ack_specs) / 100
    start = time.monotonic() + 1.0 + setup
    window_start = start + args.warmup
    window_end = window_start + args.duration
    per_process = []
    parts = split(ack_specs, procs) if ack_specs is not None else [[] for _ in range(procs)]
    for index in range(procs):
        per_process.append(
            {
                "room": room,
                "window_start": window_start,
                "window_end": window_end,
                "drain_until": window_end + args.drain,
                "specs": parts[index],
                "schedule": {
                    "interval": procs / rate,
                    "first": start + index / rate,
                    "stop": window_end,
                },
            }
        )
    replies = pool.run("ack" if ack_specs is not None else "fanout", per_process)
    return [Recorder(**reply) for reply in replies]


def merged_errors(recorders: Sequence[Recorder]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for recorder in recorders:
        for code, count in recorder.errors.items():
            errors[code] = errors.get(code, 0) + count
    return errors


def merge_fanout(figures: Figures, recorders: Sequence[Recorder], args: argparse.Namespace) -> None:
    latencies = [value for r in recorders for value in r.latencies]
    acks = [value for r in recorders for value in r.ack_latencies]
    lags = [value for r in recorders for value in r.send_lag]
    figures.sent = sum(r.sent_in_window for r in recorders)
    figures.expected = figures.sent * args.clients
    figures.missing = max(0, figures.expected - len(latencies))
    figures.deliveries_per_s = sum(r.received_in_window for r in recorders) / args.duration
    figures.delivery_p50 = percentile(latencies, 0.5)
    figures.delivery_p99 = percentile(latencies, 0.99)
    figures.delivery_max = max(latencies, default=math.nan)
    figures.fanout_ack_p50 = percentile(acks, 0.5)
    figures.fanout_ack_p99 = percentile(acks, 0.99)
    figures.send_lag_p99 = percentile(lags, 0.99)
    figures.fanout_errors = merged_errors(recorders)


# -- the run ---------------------------------------------------------------------------------


def embedded_targets(
    helpers: ModuleType, root: Path, args: argparse.Namespace, users: int
) -> tuple[list[Server], Target, Target]:
    folder = root / "embedded"
    folder.mkdir()
    env = base_env(folder)
    env.update(
        OPSDECK_ENVIRONMENT="development",  # production refuses SQLite
        OPSDECK_DATABASE_URL=f"sqlite:///{folder / 'data' / 'opsdeck.db'}",
    )
    run_opsdeck(env, folder, "migrate")
    tokens = make_users(env["OPSDECK_DATABASE_URL"], users)
    web = opsdeck_web("embedded-web", env, folder, helpers)
    web.start()
    app = Target("embedded", "embedded", False, [web], tokens, "", "")
    app.room = create_room(web.port, tokens[0], "fan-out")
    app.ack_room = create_room(web.port, tokens[0], "acks")
    raw = raw_web("embedded-raw", "", folder, helpers)
    raw.start()
    raw_target = Target("raw, 1 process", "embedded", True, [raw], [], "fan-out", "acks")
    return [web, raw], app, raw_target


def distributed_targets(
    helpers: ModuleType, stack: Any, root: Path, args: argparse.Namespace, users: int
) -> tuple[list[Server], Target, Target]:
    folder = root / "distributed"
    folder.mkdir()
    env = base_env(folder)
    env.update(
        OPSDECK_ENVIRONMENT="production",
        OPSDECK_DATABASE_URL=stack.database_url,
        OPSDECK_REDIS_URL=stack.redis_url,
    )
    run_opsdeck(env, folder, "migrate")
    tokens = make_users(stack.database_url, users)
    webs = [opsdeck_web(f"distributed-web-{n}", env, folder, helpers) for n in (1, 2)]
    raws = [raw_web(f"distributed-raw-{n}", stack.redis_url, folder, helpers) for n in (1, 2)]
    for server in (*webs, *raws):
        server.start()
    redis_pid = stack.redis.process.pid if stack.redis and stack.redis.process else None
    data = stack.postgres.data if stack.postgres else None
    app = Target("distributed", "distributed", False, webs, tokens, "", "", data, redis_pid)
    app.room = create_room(webs[0].port, tokens[0], "fan-out")
    app.ack_room = create_room(webs[0].port, tokens[0], "acks")
    name = "raw, 2 processes + Redis"
    raw = Target(name, "distributed", True, raws, [], "fan-out", "acks", None, redis_pid)
    return [*webs, *raws], app, raw


def verdict(figures: Figures) -> list[str]:
    target = TARGETS[figures.target.kind]
    met = (
        figures.deliveries_per_s >= target["deliveries"]
        and figures.delivery_p99 <= target["p99"]
        and figures.missing == 0
    )
    lines = [
        f"  {figures.target.kind}: ≥ {target['deliveries']:,.0f} deliveries/s with p99 ≤ "
        f"{target['p99']:.0f} ms: {'met' if met else 'NOT met'} "
        f"({figures.deliveries_per_s:,.0f}/s, p99 {figures.delivery_p99:.1f} ms, "
        f"{figures.missing:,} missing)"
    ]
    idle_mb = figures.mib_per_idle * 2000 * 2**20 / 1e6
    lines.append(
        f"  {figures.target.kind}: 2,000 idle connections add ≤ {IDLE_TARGET_MB:.0f} MB: "
        f"{'met' if idle_mb <= IDLE_TARGET_MB else 'NOT met'} ({idle_mb:.0f} MB)"
    )
    lines.append(
        f"  {figures.target.kind}: send -> ack p99 ≤ {ACK_TARGET_P99:.0f} ms at "
        f"{figures.ack_rate:g} msg/s: "
        f"{'met' if figures.ack_p99 <= ACK_TARGET_P99 and not figures.ack_errors else 'NOT met'}"
        f" (p99 {figures.ack_p99:.1f} ms)"
    )
    return lines


def number(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else "n/a"


def ratio(app: float, raw: float) -> str:
    if not (raw > 0 and math.isfinite(app) and math.isfinite(raw)):
        return "n/a"
    return f"{app / raw:.2f}"


def print_summary(pairs: Sequence[tuple[Figures, Figures]], args: argparse.Namespace) -> None:
    print("\nSummary")
    print(
        f"{'server':<28} {'msg/s':>6} {'deliv/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'missing':>8} "
        f"{'µs CPU/deliv':>12} {'ceiling/s':>9} {'KiB/idle':>9} {'ack p50':>8} {'ack p99':>8} "
        f"{'ms CPU/send':>11}"
    )
    for pair in pairs:
        for figures in pair:
            print(
                f"{figures.target.name:<28} {figures.rate:>6g} {figures.deliveries_per_s:>8,.0f} "
                f"{figures.delivery_p50:>7.1f} {figures.delivery_p99:>7.1f} "
                f"{figures.missing:>8,} {figures.server_cpu_per_delivery_us:>12.0f} "
                f"{number(ceiling(figures)):>9} {figures.mib_per_idle * 1024:>9.1f} "
                f"{figures.ack_p50:>8.1f} {figures.ack_p99:>8.1f} "
                f"{figures.server_cpu_per_send_ms:>11.2f}"
            )
    print(
        f"  ({args.clients} clients in one room; ack: send -> persist -> ack at "
        f"{args.ack_rate:g} msg/s, nobody subscribed; KiB/idle: server RSS per idle connection;"
        " CPU: web + PostgreSQL + Redis; ceiling: deliveries/s on the usable cores at that CPU"
        " cost, sends included)"
    )
    print("\nRatio OpsDeck / raw python-socketio (same shape, same run)")
    for app, raw in pairs:
        print(
            f"  {app.target.name}: deliveries/s {ratio(app.deliveries_per_s, raw.deliveries_per_s)}"
            f", p99 {ratio(app.delivery_p99, raw.delivery_p99)} x, server CPU per delivery "
            f"{ratio(app.server_cpu_per_delivery_us, raw.server_cpu_per_delivery_us)} x, "
            f"memory per idle connection {ratio(app.mib_per_idle, raw.mib_per_idle)} x, "
            f"send -> ack p99 {ratio(app.ack_p99, raw.ack_p99)} x, CPU per send "
            f"{ratio(app.server_cpu_per_send_ms, raw.server_cpu_per_send_ms)} x"
        )
    print("\nTargets (issue 14)")
    for app, _raw in pairs:
        for line in verdict(app):
            print(line)


def print_conditions(args: argparse.Namespace, load_at_start: str, stack_text: str) -> None:
    from opsdeck import __version__ as opsdeck_version
    from opsdeck.core.db import head_revision

    print("Conditions")
    print_machine(load_at_start)
    print(
        f"  OpsDeck       {opsdeck_version} at schema {head_revision()}; python-socketio "
        f"{version('python-socketio')}, python-engineio {version('python-engineio')}, uvicorn "
        f"{version('uvicorn')}, websockets {version('websockets')}, uvloop {version('uvloop')}"
    )
    print(f"  stack         {stack_text}")
    print(
        "  servers       opsdeck web --workers 1 per process (JSON logs at INFO; embedded: "
        "development settings on SQLite; distributed: production settings), default chat "
        "limits; raw: socketio.AsyncServer under uvicorn, same options"
    )
    print(
        f"  clients       {args.client_procs} processes (uvloop), {args.clients} connections in "
        f"one room, websocket transport, no compression; users and API tokens through the "
        f"accounts services, rooms through the REST API"
    )
    print(
        f"  phases        idle: {args.idle:,} extra connections; fan-out: {args.warmup:g} s "
        f"warm-up + {args.duration:g} s measured + {args.drain:g} s drain; send -> ack at "
        f"{args.ack_rate:g} msg/s, same timing"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--modes", default="embedded,distributed", help="embedded,distributed")
    parser.add_argument("--clients", type=int, default=200, help="connections in the room")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="messages/s (default: the target's deliveries / clients: 25 embedded, 75 "
        "distributed at 200 clients)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for stragglers")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections for memory")
    parser.add_argument("--ack-rate", type=float, default=200.0, help="send -> ack messages/s")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes")
    parser.add_argument("--quick", action="store_true", help="a smoke run (~1.5 min), embedded")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, help="wait up to this many seconds for load to drop"
    )
    parser.add_argument("--raw-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--redis", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.modes = "embedded" if args.modes == parser.get_default("modes") else args.modes
        args.clients, args.idle, args.duration, args.warmup, args.drain = 20, 100, 2.0, 1.0, 1.0
        args.ack_rate = 20.0
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or set(modes) - set(TARGETS):
        parser.error("--modes: embedded, distributed or both")
    args.mode_list = modes
    if not 2 <= args.clients <= 1000:
        parser.error("--clients between 2 and 1000 (members per room)")
    if args.duration <= 0 or args.ack_rate <= 0 or args.client_procs < 1 or args.idle < 1:
        parser.error("--duration, --ack-rate, --client-procs and --idle must be positive")
    return args


def main() -> int:
    args = parse_args()
    if args.raw_server:
        raw_server(args.port, args.redis)
        return 0
    helpers = stack_helpers()
    print("OpsDeck chat fan-out benchmark")
    wait_for_quiet(args.wait_idle, usable_cores())
    load_at_start = load_average()
    senders = math.ceil(args.ack_rate / SENDS_PER_USER_PER_SECOND)
    users = max(args.clients, senders)
    root = Path(tempfile.mkdtemp(prefix="opsdeck-bench-chat-"))
    root.chmod(0o755)
    pairs: list[tuple[Figures, Figures]] = []
    try:
        with interrupts_as_keyboard_interrupt(), contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, root, ignore_errors=True)
            stack = None
            stack_text = "embedded: SQLite, no Redis"
            if "distributed" in args.mode_list:
                stack = helpers.TestStack("integration")
                cleanup.callback(stack.stop)
                stack.start()
                stack_text += f"; distributed: {stack.describe()} (tests/stack.py settings)"
            print_conditions(args, load_at_start, stack_text)
            for mode in args.mode_list:
                rate = args.rate or TARGETS[mode]["deliveries"] / args.clients
                if args.quick and not args.rate:
                    rate = 10.0
                if rate / args.clients > SENDS_PER_USER_PER_SECOND:
                    raise BenchFailed(
                        f"{rate:g} msg/s over {args.clients} users is above the send limit "
                        "per user: use more --clients"
                    )
                if mode == "embedded":
                    servers, app, raw = embedded_targets(helpers, root, args, users)
                else:
                    servers, app, raw = distributed_targets(helpers, stack, root, args, users)
                try:
                    pair = []
                    for target in (app, raw):
                        print(f"\n{target.name} ({', '.join(s.name for s in target.servers)})")
                        pair.append(run_target(target, args, rate))
                        for server in target.servers:
                            server.managed.assert_running()
                    pairs.append((pair[0], pair[1]))
                finally:
                    for server in servers:
                        server.stop()
            print_summary(pairs, args)
            print(f"  load average at the end: {load_average()}")
    except BenchFailed as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; everything it started was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
