"""Several web processes, each with a listening socket of its own (SO_REUSEPORT).

uvicorn's `--workers` shares one listening socket between its processes: every process waits in
`accept` on it and whichever wakes first takes the connection. Keep-alive clients that connect
at once (a load balancer's pool, a benchmark's 32 connections) mostly land in one process, and
the others sit idle. With SO_REUSEPORT each worker slot gets a socket of its own, bound to the
same address; the kernel spreads incoming connections over them by a hash of the addresses, as
nginx's `listen ... reuseport` does.

The supervision is uvicorn's (`uvicorn.supervisors.Multiprocess`): SIGTERM / SIGINT stop every
worker, a worker that dies or hangs is replaced, a worker that fails at start-up stops the
server. The only change: a worker is started with its slot's socket, and a replacement gets the
socket of the worker it replaces, so connections queued on it while no one accepted are served,
not reset. The supervisor keeps its copy of each socket open for that reason.

Where the platform has no SO_REUSEPORT, `reuse_port_supported()` says so and the caller falls
back to uvicorn's shared socket."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("uvicorn.error")


def reuse_port_supported() -> bool:
    """Whether this platform spreads connections over sockets bound with SO_REUSEPORT (Linux
    since 3.9; elsewhere the option may exist without the balancing, or not at all)."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        return False
    return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _claim_port(config: Config) -> int:
    """The port to share, checked free the way uvicorn checks it: a plain bind, which fails
    while anything listens there. Without this check, a second `opsdeck web` started by the
    same user on the same port would silently join the first one's group and take a share of
    its connections. Port 0 picks a free port."""
    with socket.socket(_family(config.host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, config.port))
        except OSError as exc:
            logger.error(exc)
            sys.exit(STARTUP_FAILURE)
        return int(probe.getsockname()[1])


def _bind(config: Config, port: int) -> socket.socket:
    sock = socket.socket(_family(config.host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((config.host, port))
    except OSError as exc:
        sock.close()
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)
    sock.set_inheritable(True)
    return sock


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's supervisor with one listening socket per worker slot (see the module's
    docstring). Every place uvicorn starts a worker is overridden to pass the slot's socket;
    the rest (signals, health checks, the loop) is uvicorn's."""

    def __init__(self, config: Config) -> None:
        self.port = _claim_port(config)
        self.slot_sockets = [_bind(config, self.port) for _ in range(config.workers)]
        super().__init__(config, sockets=self.slot_sockets[:1])
        scheme = "https" if config.is_ssl else "http"
        host = f"[{config.host}]" if ":" in config.host else config.host
        logger.info(
            "Uvicorn running on %s://%s:%d (Press CTRL+C to quit), %d sockets (SO_REUSEPORT)",
            scheme,
            host,
            self.port,
            len(self.slot_sockets),
        )

    def _sockets(self, slot: int) -> list[socket.socket]:
        while len(self.slot_sockets) <= slot:
            self.slot_sockets.append(_bind(self.config, self.port))
        return [self.slot_sockets[slot]]

    def _start(self, slot: int) -> Process:
        process = Process(self.config, self._sockets(slot))
        process.start()
        return process

    def init_processes(self) -> None:
        for slot in range(self.processes_num):
            self.processes.append(self._start(slot))

    def keep_subprocess_alive(self) -> None:
        # uvicorn's, with the slot's socket for the replacement.
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error(
                    f"Child process [{process.pid}] failed to start, stopping the parent process."
                )
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Child process [{process.pid}] died")
            self.processes[slot] = self._start(slot)

    def restart_all(self) -> None:
        # uvicorn's (SIGHUP): each replacement serves before the worker it replaces retires.
        for slot, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self._start(slot)
            if not new_process.wait_until_ready(
                self.config.timeout_worker_healthcheck, self.should_exit
            ):
                new_process.kill()
                new_process.join()
                if not self.should_exit.is_set():
                    logger.error(
                        f"New child process [{new_process.pid}] was not ready in time; "
                        f"keeping worker [{old_process.pid}] and aborting the restart."
                    )
                return
            old_process.terminate()
            old_process.join()
            self.processes[slot] = new_process

    def handle_ttin(self) -> None:
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.processes_num += 1
        self.processes.append(self._start(len(self.processes)))

    def handle_ttou(self) -> None:
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if self.processes_num <= 1:
            logger.info("Already reached one process, cannot decrease the number of processes.")
            return
        self.processes_num -= 1
        process = self.processes.pop()
        process.terminate()
        process.join()
        # Its socket leaves the group: new connections go to the remaining ones.
        self.slot_sockets.pop().close()

    def run(self) -> None:
        try:
            super().run()
        finally:
            for sock in self.slot_sockets:
                sock.close()


def run_workers(config: Config) -> None:
    """`uvicorn.run(..., workers=N)` with a socket per worker (N > 1, app given as an import
    string, as uvicorn requires for workers)."""
    with contextlib.suppress(KeyboardInterrupt):
        ReusePortMultiprocess(config).run()
