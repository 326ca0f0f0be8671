"""Where a worker's time goes: py-spy samples the worker processes while a batch runs, and the
samples are summed by what the code was doing (libvips, fetching, the database, Celery, ...).

py-spy (from PyPI, in a private virtualenv under the bench cache) reads the processes from the
outside (`--nonblocking`: it never pauses them), 250 times a second, and counts only samples
where a thread was running, not waiting: the shares are shares of the worker's busy time. A
sample goes to the first category found walking its stack from the innermost frame outwards,
so a JSON encoder called by the logger counts as logging and libvips called by the image code
counts as image work.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from _common import private_tool

PY_SPY_REQUIREMENT = "py-spy==0.4.*"
RATE = 250

# (category, substrings of a frame "function (file:line)"), checked in this order per frame.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image work (libvips, opsdeck.images.processing)", ("pyvips", "images/processing.py")),
    ("fetch (httpx, outbound client, host slots)", ("httpx", "httpcore", "core/outbound", "h11")),
    ("database (SQLAlchemy, psycopg, sqlite3)", ("sqlalchemy", "psycopg", "sqlite3")),
    ("Redis client", ("redis/",)),
    ("media store (write, hash, fsync)", ("core/storage.py", "hashlib")),
    ("logging (structlog, logging, JSON)", ("structlog", "logging/", "core/logging")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("Celery, kombu, billiard", ("celery/", "kombu/", "billiard/", "vine/")),
    ("OpsDeck task code (claim, record, jobs)", ("opsdeck/",)),
)
OTHER = "other (interpreter, stdlib)"


def categorise(stack: Sequence[str]) -> str:
    """The category of one sampled stack, innermost frame first."""
    for frame in stack:
        for category, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return category
    return OTHER


class WorkerProfile:
    """`with WorkerProfile(pids) as profile:` samples those processes until the block ends."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.executable = private_tool("py-spy-venv", PY_SPY_REQUIREMENT, "py-spy")
        self.folder = Path(tempfile.mkdtemp(prefix="opsdeck-profile-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.samples: Counter[str] = Counter()
        self.leaves: Counter[str] = Counter()
        self.total = 0

    def __enter__(self) -> WorkerProfile:
        for pid in self.pids:
            self.processes.append(
                subprocess.Popen(
                    [
                        str(self.executable),
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        str(RATE),
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(self.folder / f"{pid}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for output in self.folder.glob("*.txt"):
            self._read(output.read_text())
            output.unlink()
        self.folder.rmdir()

    def _read(self, text: str) -> None:
        # raw (collapsed) format: "outer;...;inner count" per distinct stack
        for line in text.splitlines():
            frames, _, count = line.rpartition(" ")
            if not frames or not count.isdigit():
                continue
            stack = frames.split(";")[::-1]
            self.samples[categorise(stack)] += int(count)
            self.leaves[stack[0]] += int(count)
            self.total += int(count)

    def report(self, images: int, top: int = 12) -> str:
        if not self.total:
            return "  profile: no samples (py-spy could not read the worker processes)"
        busy_ms = self.total / RATE * 1000 / max(images, 1)
        lines = [
            f"  profile of {len(self.pids)} worker processes (py-spy, {RATE} Hz, running samples "
            f"only): {self.total} samples = {busy_ms:.1f} ms of busy time per image"
        ]
        for category, count in self.samples.most_common():
            lines.append(
                f"    {count / self.total:6.1%}  {count / RATE * 1000 / max(images, 1):6.1f} ms"
                f"  {category}"
            )
        lines.append(f"  the {top} innermost frames with the most samples:")
        for frame, count in self.leaves.most_common(top):
            lines.append(f"    {count / self.total:6.1%}  {frame}")
        return "\n".join(lines)
