"""What a login costs: argon2id with the production default parameters, and `POST
/api/v1/auth/token` end to end through a real `opsdeck web` on loopback.

    .venv/bin/python bench/auth_login.py [--verifies 50] [--logins 30] [--concurrency 1]

Prints the figures and the conditions they were taken in; it asserts nothing. The raw
argon2 hash time is the floor under a login: a verify recomputes one hash, and the endpoint
adds the session, the audit entry and the HTTP round trip on top.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
from argon2 import PasswordHasher, Type

from _common import cpu_model
from opsdeck.core.security import Passwords
from opsdeck.settings import Settings, usable_cores

PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark's own throwaway user
USERNAME = "bench"


@dataclass(frozen=True)
class HashParameters:
    time_cost: int
    memory_kib: int
    parallelism: int

    @classmethod
    def production_defaults(cls) -> HashParameters:
        fields = Settings.model_fields
        return cls(
            time_cost=int(fields["password_hash_time_cost"].default),
            memory_kib=int(fields["password_hash_memory_kib"].default),
            parallelism=int(fields["password_hash_parallelism"].default),
        )

    def describe(self) -> str:
        return (
            f"argon2id t={self.time_cost}, m={self.memory_kib} KiB "
            f"({self.memory_kib // 1024} MiB), p={self.parallelism}"
        )


@dataclass(frozen=True)
class Figures:
    name: str
    seconds: list[float]

    def row(self) -> str:
        ms = sorted(s * 1000 for s in self.seconds)
        p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
        return (
            f"{self.name:<44} {len(ms):>5} {statistics.median(ms):>9.1f} {p95:>9.1f} "
            f"{ms[0]:>9.1f} {ms[-1]:>9.1f}"
        )


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def conditions(params: HashParameters, args: argparse.Namespace) -> list[str]:
    usable = usable_cores()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?", "?", "?")
    return [
        f"CPU           {cpu_model()}",
        f"cores         {os.cpu_count()} online, {usable} usable by this process",
        f"load average  {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min, at start)"
        if isinstance(load[0], float)
        else "load average  unknown",
        f"Python        {platform.python_version()} ({platform.python_implementation()})",
        f"argon2-cffi   {version('argon2-cffi')} (bindings {version('argon2-cffi-bindings')})",
        f"parameters    {params.describe()}  (Settings defaults, as in production)",
        f"database      {args.database_url or 'embedded SQLite (WAL) in a temporary folder'}",
        "logins        sequential client"
        + (f", then {args.concurrency} concurrent clients" if args.concurrency > 1 else ""),
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def opsdeck_env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDECK_")}
    env.update(
        OPSDECK_ENVIRONMENT="development",
        OPSDECK_DATA_DIR=str(data_dir),
        OPSDECK_DATABASE_URL=database_url,
        OPSDECK_SECRET_KEY=secrets.token_urlsafe(48),
        OPSDECK_LOG_LEVEL="WARNING",
        PROMETHEUS_MULTIPROC_DIR=str(data_dir / "metrics"),
    )
    (data_dir / "metrics").mkdir(parents=True, exist_ok=True)
    return env


def opsdeck(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opsdeck", *args],
        env=env,
        cwd=env["OPSDECK_DATA_DIR"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"opsdeck {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


@contextmanager
def running_server(database_url: str) -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="opsdeck-bench-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        env = opsdeck_env(data_dir, database_url)
        opsdeck(env, "db", "upgrade")
        opsdeck(
            env,
            "users",
            "create",
            "--username",
            USERNAME,
            "--email",
            "bench@example.com",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        port = free_port()
        log = (data_dir / "web.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "opsdeck", "web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"opsdeck web exited:\n{(data_dir / 'web.log').read_text()}")
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("opsdeck web did not answer /health within 60 s")
            time.sleep(0.1)
        yield base_url
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def login(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": USERNAME, "password": PASSWORD}, timeout=30
    )
    if response.status_code != 200:
        raise SystemExit(f"login failed: {response.status_code} {response.text}")


def concurrent_logins(base_url: str, clients: int, total: int) -> tuple[list[float], float]:
    per_client = max(1, total // clients)

    def run_client() -> list[float]:
        with httpx.Client(base_url=base_url) as client:
            return timed(lambda: login(client), per_client)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        samples = [s for result in pool.map(lambda _: run_client(), range(clients)) for s in result]
    return samples, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verifies", type=int, default=50, help="argon2 verifies to time")
    parser.add_argument("--logins", type=int, default=30, help="POST /auth/token calls to time")
    parser.add_argument("--concurrency", type=int, default=1, help="also run N clients at once")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()

    params = HashParameters.production_defaults()
    print("OpsDeck login benchmark")
    for line in conditions(params, args):
        print(f"  {line}")

    hasher = PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        type=Type.ID,
    )
    passwords = Passwords(
        time_cost=params.time_cost, memory_kib=params.memory_kib, parallelism=params.parallelism
    )
    stored = passwords.hash(PASSWORD)
    hasher.hash(PASSWORD)  # warm-up: first touch of the memory
    # Interleaved, so a change in the machine's load during the run hits every variant alike.
    variants: dict[str, Callable[[], object]] = {
        "argon2id hash (raw, the lower bound)": lambda: hasher.hash(PASSWORD),
        "Passwords.verify, right password": lambda: passwords.verify(stored, PASSWORD),
        "Passwords.verify, wrong password": lambda: passwords.verify(stored, "nope-nope"),
        "Passwords.verify, unknown user (dummy hash)": lambda: passwords.verify(None, PASSWORD),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.verifies):
        for name, action in variants.items():
            samples[name] += timed(action, 1)
    results = [Figures(name, values) for name, values in samples.items()]

    throughput = ""
    with running_server(args.database_url) as base_url, httpx.Client(base_url=base_url) as client:
        timed(lambda: login(client), 3)  # warm-up: imports, pools, first pages of the database
        results.append(
            Figures(
                "POST /api/v1/auth/token, one client", timed(lambda: login(client), args.logins)
            )
        )
        if args.concurrency > 1:
            together, wall = concurrent_logins(base_url, args.concurrency, args.logins)
            name = f"POST /api/v1/auth/token, {args.concurrency} clients"
            results.append(Figures(name, together))
            throughput = (
                f"  {len(together)} logins by {args.concurrency} clients in {wall:.1f} s: "
                f"{len(together) / wall:.1f} logins/s"
            )

    print()
    print(f"{'measurement':<44} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'max ms':>9}")
    for figures in results:
        print(figures.row())
    if throughput:
        print(throughput)
    hash_p50 = statistics.median(results[0].seconds) * 1000
    verify_p50 = statistics.median(results[1].seconds) * 1000
    login_p50 = statistics.median(results[4].seconds) * 1000
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n  p50: raw hash {hash_p50:.1f} ms, verify {verify_p50:.1f} ms, whole login "
        f"{login_p50:.1f} ms (HTTP, session, audit entry and token on top of one verify)."
        f"\n  load average at the end: {load:.2f}; on a busy machine the figures spread, "
        "so compare runs taken at a similar load."
    )


if __name__ == "__main__":
    main()
