"""`opsdeck web --workers N`: a listening socket per process (SO_REUSEPORT), so connections
that arrive together are spread over every process instead of mostly landing in the one whose
accept loop woke first; uvicorn's supervision (signals, replacing a dead worker) is kept.

Which process serves a connection is read from outside, as an operator would: the sockets in
/proc/<pid>/fd matched with the connections in /proc/net/tcp."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from opsdeck import cli
from opsdeck.core import webserver
from opsdeck.core.shutdown import child_pids
from opsdeck.settings import Settings
from tests.stack import free_port, tail, wait_until
from tests.test_cli import _alive, _isolated_env, _opsdeck

CONNECTIONS = 32
STOP_BOUND = 30.0  # catches a hang; not a speed claim


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _tcp_by_inode() -> dict[int, tuple[int, int, int]]:
    """inode -> (local port, remote port, state) of every TCP socket of this network
    namespace."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
                found[inode] = (
                    int(local.rsplit(":", 1)[1], 16),
                    int(remote.rsplit(":", 1)[1], 16),
                    int(state, 16),
                )
    return found


def _owners(workers: list[int], client_ports: set[int]) -> dict[int, set[int]]:
    """worker pid -> the client ports of the connections it holds."""
    tcp = _tcp_by_inode()
    return {
        pid: {tcp[i][1] for i in _socket_inodes(pid) if i in tcp and tcp[i][1] in client_ports}
        for pid in workers
    }


def _health(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    return response.status


@contextmanager
def _connections(port: int, count: int) -> Iterator[list[http.client.HTTPConnection]]:
    """`count` keep-alive connections, each answered once (so each is accepted), held open."""
    with ExitStack() as stack:
        connections = []
        for _ in range(count):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            stack.callback(connection.close)
            connection.connect()
            connections.append(connection)
        assert all(_health(c) == 200 for c in connections)
        yield connections


def _client_ports(connections: list[http.client.HTTPConnection]) -> set[int]:
    return {c.sock.getsockname()[1] for c in connections}


def _listening(pid: int, port: int) -> set[int]:
    """The inodes of the sockets `pid` listens on `port` with."""
    tcp = _tcp_by_inode()
    listening = 0x0A
    return {
        i for i in _socket_inodes(pid) if i in tcp and tcp[i][0] == port and tcp[i][2] == listening
    }


def _workers(server: subprocess.Popen[bytes], port: int) -> list[int]:
    """The processes below `server` that listen on `port`."""
    return sorted(pid for pid in child_pids(server.pid) if _listening(pid, port))


@contextmanager
def _web(tmp_path: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    env = _isolated_env(tmp_path)
    assert _opsdeck("db", "upgrade", env=env).returncode == 0
    env["OPSDECK_LOG_LEVEL"] = "INFO"
    port = free_port()
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsdeck",
                "web",
                "--workers",
                str(workers),
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen = {server.pid}
    try:
        yield server, port, log_path
    finally:
        seen |= set(child_pids(server.pid))
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for pid in seen:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _serving_workers(server: subprocess.Popen[bytes], port: int, log: Path, n: int) -> list[int]:
    def ready() -> list[int] | None:
        assert server.poll() is None, tail(log)
        workers = _workers(server, port)
        if len(workers) != n:
            return None
        try:
            with _connections(port, 1):
                return workers
        except OSError:
            return None

    return wait_until(ready, timeout=90, message=f"{n} web workers", diagnostics=lambda: tail(log))


def _assert_every_worker_serves(port: int, workers: list[int]) -> None:
    # A listening socket each (uvicorn's workers shared one).
    sockets = [_listening(pid, port) for pid in workers]
    assert all(len(s) == 1 for s in sockets), sockets
    assert len(set.union(*sockets)) == len(workers), sockets
    # Each connection's owner is read as soon as it is answered: on a busy machine opening all
    # of them can outlast the server's keep-alive timeout, which closes the first ones.
    owners: dict[int, set[int]] = {pid: set() for pid in workers}
    with ExitStack() as stack:
        for _ in range(CONNECTIONS):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            stack.callback(connection.close)
            connection.connect()
            assert _health(connection) == 200
            [(client_port, held)] = [
                (p, [pid for pid, ports in _owners(workers, {p}).items() if ports])
                for p in _client_ports([connection])
            ]
            assert len(held) == 1, f"connection from port {client_port} held by {held}"
            owners[held[0]].add(client_port)
    # The kernel's hash gives each of 2 sockets none of 32 connections with a chance of 2^-32.
    assert all(owners[pid] for pid in workers), {pid: len(p) for pid, p in owners.items()}


def test_web_workers_each_serve_a_share_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    with _web(tmp_path, workers=2) as (server, port, log):
        workers = _serving_workers(server, port, log, 2)
        _assert_every_worker_serves(port, workers)

        # A worker killed (say, for memory) is replaced, on the socket it served.
        os.kill(workers[0], signal.SIGKILL)
        wait_until(lambda: not _alive(workers[0]), timeout=STOP_BOUND, message="the kill")
        wait_until(
            lambda: workers[0] not in _workers(server, port),
            timeout=STOP_BOUND,
            message="the dead worker to be reaped",
        )
        replaced = _serving_workers(server, port, log, 2)
        assert workers[1] in replaced
        _assert_every_worker_serves(port, replaced)

        processes = {server.pid, *child_pids(server.pid)}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=STOP_BOUND) == 0, tail(log)
        wait_until(
            lambda: not any(_alive(pid) for pid in processes),
            timeout=STOP_BOUND,
            message="every web process to end",
        )
    assert "SO_REUSEPORT" in log.read_text()


def test_ctrl_c_to_the_group_stops_every_web_worker(tmp_path: Path) -> None:
    with _web(tmp_path, workers=2) as (server, port, log):
        _serving_workers(server, port, log, 2)
        processes = {server.pid, *child_pids(server.pid)}
        os.killpg(server.pid, signal.SIGINT)
        assert server.wait(timeout=STOP_BOUND) == 0, tail(log)
        wait_until(
            lambda: not any(_alive(pid) for pid in processes),
            timeout=STOP_BOUND,
            message="every web process to end",
        )


def test_web_workers_refuse_a_port_something_listens_on(tmp_path: Path) -> None:
    """SO_REUSEPORT would let a second server of the same user join the first one's port and
    take a share of its connections; the port is checked free first, as before."""
    env = _isolated_env(tmp_path)
    assert _opsdeck("db", "upgrade", env=env).returncode == 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "opsdeck", "web", "--workers", "2", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode != 0
    assert "in use" in result.stdout + result.stderr


def _calls(monkeypatch: pytest.MonkeyPatch, *, supported: bool) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(webserver, "reuse_port_supported", lambda: supported)
    monkeypatch.setattr(webserver, "run_workers", lambda config: calls.append(("reuse", config)))
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(("uvicorn", kw)))
    return calls


@pytest.mark.parametrize("workers", [1, 2])
def test_without_so_reuseport_web_runs_as_uvicorn_does(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    calls = _calls(monkeypatch, supported=False)
    cli._run_web(base_settings, "127.0.0.1", 1234, workers)
    assert [(kind, kw["workers"]) for kind, kw in calls] == [("uvicorn", workers)]


def test_one_web_worker_runs_as_uvicorn_does(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _calls(monkeypatch, supported=True)
    cli._run_web(base_settings, "127.0.0.1", 1234, 1)
    assert [kind for kind, _ in calls] == ["uvicorn"]


def test_several_web_workers_get_a_socket_each(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _calls(monkeypatch, supported=True)
    cli._run_web(base_settings, "127.0.0.1", 1234, 3)
    [(kind, config)] = calls
    assert kind == "reuse"
    assert (config.workers, config.port, config.server_header) == (3, 1234, False)
