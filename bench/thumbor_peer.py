"""thumbor, the dedicated image server, as the peer of the images pipeline: the same files, the
same operation, on the same cores, in the same run.

    .venv/bin/python bench/thumbor_peer.py DIRECTORY [--width 512] [--height 512] [--quality 80]

thumbor 7 is installed from PyPI into a private virtualenv (`thumbor-venv` under the bench
cache: `OPSDECK_BENCH_CACHE`, or `opsdeck-bench-cache` in the temporary folder) the first time,
and started as it runs in production behind a load balancer: one single-process server per
core, each on its own port (`--processes` of them), Pillow (its default engine), the file loader
reading DIRECTORY, no storage and no result storage (every request does the whole work), unsafe
URLs. Clients ask for `/unsafe/fit-in/WxH/filters:quality(Q)/<file>` from `--clients`
keep-alive connections spread evenly over the servers (4 by default, twice the cores: enough to
keep every process busy) and the rate is the files served over the wall time. Nothing is
written outside the cache and a temporary folder; the servers are stopped at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from _common import private_tool

THUMBOR_REQUIREMENT = "thumbor==7.*"
STARTUP_TIMEOUT = 60.0


def thumbor_executable() -> Path:
    """The `thumbor` command of the private virtualenv, installed on first use."""
    return private_tool("thumbor-venv", THUMBOR_REQUIREMENT, "thumbor")


def thumbor_version(command: Path) -> str:
    answer = subprocess.run([str(command), "--version"], capture_output=True, text=True)
    return (answer.stdout or answer.stderr).strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ThumborRun:
    images: int
    wall: float
    failures: int
    bytes_out: int
    version: str
    processes: int
    clients: int

    @property
    def rate(self) -> float:
        return self.images / self.wall


class Thumbor:
    """thumbor over `root`, one process per core, until `stop()`: one single-process server per
    core, each on its own port, and the clients spread evenly over them, as a load balancer in
    front of them would. (One server with `--processes=N` shares one listening socket between
    its processes, and which process accepts a keep-alive connection is the kernel's pick: in
    some runs every connection went to one process and thumbor used one core of two, 58-64
    images/s against 119-124 with both.)"""

    def __init__(self, root: Path, processes: int, quality: int) -> None:
        self.root = root
        self.processes = processes
        self.quality = quality
        self.ports = [free_port() for _ in range(processes)]
        self.command = thumbor_executable()
        self.version = thumbor_version(self.command)
        self.folder = Path(tempfile.mkdtemp(prefix="opsdeck-thumbor-"))
        self.servers: list[subprocess.Popen[bytes]] = []

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}"

    def start(self) -> None:
        conf = self.folder / "thumbor.conf"
        conf.write_text(
            "LOADER = 'thumbor.loaders.file_loader'\n"
            f"FILE_LOADER_ROOT_PATH = {str(self.root)!r}\n"
            "STORAGE = 'thumbor.storages.no_storage'\n"
            "RESULT_STORAGE = None\n"
            "ENGINE = 'thumbor.engines.pil'\n"
            "ALLOW_UNSAFE_URL = True\n"
            f"QUALITY = {self.quality}\n"
            "AUTO_WEBP = False\n"
            "PRESERVE_EXIF_INFO = False\n"
            "MAX_AGE = 0\n"
        )
        for index, port in enumerate(self.ports):
            self.servers.append(
                subprocess.Popen(
                    [
                        str(self.command),
                        "--ip=127.0.0.1",
                        f"--port={port}",
                        f"--conf={conf}",
                        "--processes=1",
                        "--log-level=error",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=(self.folder / f"thumbor-{index}.log").open("wb"),
                    start_new_session=True,
                )
            )
        for index, server in enumerate(self.servers):
            self._wait_healthy(index, server)

    def _wait_healthy(self, index: int, server: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        log = self.folder / f"thumbor-{index}.log"
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"thumbor exited: {log.read_text()}")
            try:
                if httpx.get(f"{self.url(index)}/healthcheck", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("thumbor did not answer /healthcheck in time")

    def stop(self) -> None:
        for server in self.servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
        for path in sorted(self.folder.rglob("*"), reverse=True):
            path.unlink()
        self.folder.rmdir()

    def __enter__(self) -> Thumbor:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def path(self, name: str, width: int, height: int) -> str:
        return f"/unsafe/fit-in/{width}x{height}/filters:quality({self.quality})/{name}"

    def run(self, names: Sequence[str], width: int, height: int, clients: int) -> ThumborRun:
        """Every file once, from `clients` connections; the wall time of the whole set."""
        return asyncio.run(self._run(names, width, height, clients))

    async def _run(self, names: Sequence[str], width: int, height: int, clients: int) -> ThumborRun:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in names:
            queue.put_nowait(name)
        failures = 0
        bytes_out = 0

        async def client_loop(client: httpx.AsyncClient) -> None:
            nonlocal failures, bytes_out
            while True:
                try:
                    name = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                answer = await client.get(self.path(name, width, height))
                if answer.status_code != 200 or not answer.content.startswith(b"\xff\xd8"):
                    failures += 1
                bytes_out += len(answer.content)

        # One client connection at a time per loop, the loops spread evenly over the servers.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with contextlib.AsyncExitStack() as stack:
            sessions = [
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=self.url(index), limits=limits, timeout=60)
                )
                for index in range(clients)
            ]
            started = time.perf_counter()
            await asyncio.gather(*(client_loop(session) for session in sessions))
            wall = time.perf_counter() - started
        return ThumborRun(
            images=len(names),
            wall=wall,
            failures=failures,
            bytes_out=bytes_out,
            version=self.version,
            processes=self.processes,
            clients=clients,
        )


def thumbor_rate(
    root: Path,
    names: Sequence[str],
    warm_up: Sequence[str],
    *,
    processes: int,
    width: int,
    height: int,
    quality: int,
    clients: int,
) -> ThumborRun:
    """Start thumbor over `root`, warm every process up, time `names`, stop it."""
    with Thumbor(root, processes, quality) as server:
        server.run(warm_up, width, height, clients)
        run = server.run(names, width, height, clients)
    if run.failures:
        raise RuntimeError(f"thumbor failed {run.failures} of {run.images} images")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="a folder of JPEG files")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--clients", type=int, default=0, help="default: 2 x --processes")
    args = parser.parse_args()
    jpegs = (path for path in args.directory.iterdir() if path.suffix.lower() in {".jpg", ".jpeg"})
    names = sorted(path.name for path in jpegs)
    if not names:
        parser.error(f"no JPEG file in {args.directory}")
    clients = args.clients or 2 * args.processes
    run = thumbor_rate(
        args.directory.resolve(),
        names,
        names[: 2 * args.processes],
        processes=args.processes,
        width=args.width,
        height=args.height,
        quality=args.quality,
        clients=clients,
    )
    print(
        f"{run.version}: {run.images} images fit in {args.width}x{args.height} at quality "
        f"{args.quality} in {run.wall:.2f} s = {run.rate:.1f} images/s "
        f"({run.processes} processes, {run.clients} clients, {run.bytes_out / 2**20:.1f} MiB out)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
