"""What the benchmarks in bench/ share: the conditions they print (CPU, memory, load), waiting
for a quiet machine, the CPU time of the processes taking part (read from /proc), the private
PostgreSQL + Redis of tests/stack.py, and percentiles.

bench/ is a folder of scripts, not a package: each script imports this module by its name
(`from _common import ...`), which works because Python puts a script's own folder first on
`sys.path`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- conditions ------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def meminfo_gib(name: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def print_machine(load_at_start: str) -> None:
    """The lines of a report's "Conditions" that describe the machine (after its title)."""
    from datetime import UTC, datetime

    from opsdeck.settings import usable_cores

    print(f"  date          {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, host {platform.node()}")
    print(f"  CPU           {cpu_model()}")
    print(f"  cores         {os.cpu_count()} online, {usable_cores()} usable")
    print(
        f"  RAM           {meminfo_gib('MemTotal'):.1f} GiB, "
        f"{meminfo_gib('MemAvailable'):.1f} GiB available at the start"
    )
    print(f"  load average  {load_at_start} at the start")
    print(f"  Python        {platform.python_version()} ({platform.python_implementation()})")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"


def filesystem_of(path: Path) -> str:
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            mount, fstype = line.split()[1:3]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    return f"{kind} (mounted at {best or '?'})"


def wait_for_quiet(seconds: float, cores: int) -> None:
    """Give other work on the machine up to `seconds` to finish (1-minute load < cores / 4)."""
    deadline = time.monotonic() + seconds
    reported = 0.0
    while os.getloadavg()[0] >= cores / 4 and time.monotonic() < deadline:
        if time.monotonic() - reported >= 30:
            print(f"  waiting for a quiet machine: load average {load_average()}", flush=True)
            reported = time.monotonic()
        time.sleep(5)


# -- /proc: CPU and memory of the processes taking part --------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # From field 3 on; the command name in field 2 may hold spaces and parentheses.
    return text[text.rindex(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """Busy and idle CPU seconds of the whole machine since boot, summed over every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, (
        idle + iowait
    ) / CLOCK_TICKS


def postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- the servers and processes a benchmark starts --------------------------------------------


def stack_helpers() -> ModuleType:
    """tests/stack.py: the private PostgreSQL + Redis and the process helpers the tests use."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import tests.stack

    return tests.stack


class BenchFailed(RuntimeError):
    """The run itself failed: the figures would mean nothing."""


def run_opsdeck(env: dict[str, str], cwd: Path, *args: str) -> None:
    """`opsdeck ARGS` in this interpreter, with `env`; BenchFailed with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "opsdeck", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise BenchFailed(f"opsdeck {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def bench_cache() -> Path:
    """Where benchmarks keep what is slow to make (`OPSDECK_BENCH_CACHE`, or
    `opsdeck-bench-cache` in the temporary folder)."""
    return Path(
        os.environ.get("OPSDECK_BENCH_CACHE") or Path(tempfile.gettempdir()) / "opsdeck-bench-cache"
    )


def private_tool(name: str, requirement: str, command: str) -> Path:
    """`command` from a private virtualenv `<bench cache>/<name>` holding `requirement` from
    PyPI, made on first use: a benchmark's peer or profiler never touches the project's venv."""
    venv = bench_cache() / name
    executable = venv / "bin" / command
    if not executable.exists():
        print(f"installing {requirement} into a private virtualenv (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        install = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", requirement],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0 or not executable.exists():
            raise RuntimeError(f"pip could not install {requirement}:\n{install.stderr}")
    return executable


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    # Between fork and exec: if the benchmark is killed outright, its servers go with it.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP clean up like Ctrl-C: every `finally` and ExitStack callback runs."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- reporting -------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(share * 100) - 1]
