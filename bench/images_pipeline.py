"""What an image batch costs end to end: a real OpsDeck (web, Celery worker, database, broker)
on this machine, against the raw libvips throughput of the same work on the same cores.

    .venv/bin/python bench/images_pipeline.py [--images 500] [--quick] [--stacks ...] [--embedded]

Generates photographic JPEGs (smooth light, soft colour shapes and grain, quality 90; every
image distinct, so the content-addressed store never skips a write), serves them from a threaded
HTTP server on 127.0.0.1, and runs every scenario below on each stack in turn, side by side in
one run: the distributed stack (a private PostgreSQL + Redis started the way tests/stack.py does,
when their binaries exist), then the embedded default (SQLite + Celery's filesystem broker;
`--embedded` runs it alone). Each stack is a private OpsDeck in a temporary folder, one
`opsdeck web` and one `opsdeck worker --concurrency <2 x cores>` (the worker's default: two
processes per core). The scenarios, through the real API:

1. a batch of `--images` URLs (90 % 2K, 10 % 24 MP) with the default operation {"quality": 50}:
   images/s, megapixels/s, per-image latency, time to first output, where the CPU went;
2. every 2K image of that set -> 512 px thumbnail (quality 80): images/s per core, and thumbor
   on the same files (bench/thumbor_peer.py; in the first stack's run, `--no-thumbor` skips it);
3. a handful of 50 MP images, default operation: peak RSS of each worker process;
4. `POST` of a 1,000-row CSV, timed (the worker stopped first; the URLs 404 and each batch is
   cancelled at once, so nothing is processed).

Scenarios 1-3 also run the same operation on the same files in a pool of <cores> processes
calling `opsdeck.images.processing.process` on the bytes (no HTTP, database or broker), just
before and just after the pipeline, and print the ratio pipeline / raw. It asserts nothing and
exits non-zero only when the run itself fails (a batch that does not complete, a process that
dies). Everything it starts and every folder it makes is removed at exit, on Ctrl-C and SIGTERM
too; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pyvips
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from _common import (
    BenchFailed,
    children_of,
    cpu_model,
    cpu_seconds,
    die_with_parent,
    filesystem_of,
    interrupts_as_keyboard_interrupt,
    load_average,
    machine_cpu,
    meminfo_gib,
    percentile,
    postmaster_pid,
    stack_helpers,
    wait_for_quiet,
)
from opsdeck import __version__ as opsdeck_version
from opsdeck.core.db import make_engine
from opsdeck.images.models import ImageBatch, ImageItem
from opsdeck.images.processing import Operations, configure_libvips, libvips_version, process
from opsdeck.settings import Settings, usable_cores
from thumbor_peer import ThumborRun, thumbor_rate
from worker_profile import WorkerProfile

SIZES = {"2K": (2048, 1536), "24MP": (6000, 4000), "50MP": (8660, 5773)}
SHARE_24MP = 0.10
DEFAULT_OPS: dict[str, Any] = {"quality": 50}
# Quality 80 for the thumbnails: thumbor's default, so both sides do the same work.
THUMBNAIL_OPS: dict[str, Any] = {"max_width": 512, "max_height": 512, "quality": 80}
FINAL_STATUSES = ("completed", "completed_with_errors", "failed", "cancelled")
# Issue 15: the default operation keeps pipeline / raw >= 0.9; thumbnails reach 0.85.
TARGET_RATIO = 0.9
TARGET_THUMBNAIL_RATIO = 0.85
TARGET_THUMBOR_RATIO = 1.0
TARGET_THUMBNAILS_PER_CORE = 40.0
TARGET_RSS_MIB = 256.0
TARGET_POST_P95_MS = 200.0
CSV_ROWS = 1000
USERNAME = "bench"
STARTUP_TIMEOUT = 120.0
REQUEST_TIMEOUT = 60.0
RSS_SAMPLE_INTERVAL = 0.05


# -- /proc: memory of the worker processes ---------------------------------------------------


def status_kib(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Linux >= 4.0: writing 5 to clear_refs sets VmHWM back to the current RSS."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples VmRSS of the worker's processes in a thread, keeping each one's maximum, and reads
    VmHWM at the end, so that a peak shorter than the sampling interval is not missed."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._find_pids = pids
        self._pids: list[int] = []
        self._peaks: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.hwm_reset = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self._pids = self._find_pids()
            self._peaks.clear()
            for pid in self._pids:
                self.hwm_reset = reset_peak_rss(pid) and self.hwm_reset

    def _run(self) -> None:
        samples = 0
        while not self._stop.wait(RSS_SAMPLE_INTERVAL):
            samples += 1
            if samples % 40 == 0:  # a pool process that died is replaced; scanning /proc costs
                with self._lock:
                    self._pids = self._find_pids()
            self.sample()

    def sample(self) -> None:
        with self._lock:
            for pid in self._pids:
                rss = status_kib(pid, "VmRSS")
                if rss:
                    self._peaks[pid] = max(self._peaks.get(pid, 0), rss)

    def peaks_mib(self) -> dict[int, float]:
        self.sample()
        with self._lock:
            peaks = dict(self._peaks)
        if self.hwm_reset:
            for pid in peaks:
                peaks[pid] = max(peaks[pid], status_kib(pid, "VmHWM"))
        return {pid: kib / 1024 for pid, kib in sorted(peaks.items())}


# -- test images -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFile:
    name: str
    path: Path
    kind: str
    width: int
    height: int
    size: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def photo(width: int, height: int, seed: int) -> Any:
    """Something a JPEG encoder treats like a photograph: smooth light, soft colour shapes and
    sensor grain; about 0.3 bytes a pixel at quality 90, like a camera's JPEG."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    light = (x * (200.0 / width)).bandjoin(
        [y * (200.0 / height), (x + y) * (120.0 / (width + height)) + 60]
    )

    def noise(w: int, h: int, sigma: float, first_seed: int) -> Any:
        bands = [
            pyvips.Image.gaussnoise(w, h, sigma=sigma, mean=0, seed=first_seed + band)
            for band in range(3)
        ]
        return bands[0].bandjoin(bands[1:])

    cell = 96
    clouds = noise(width // cell + 2, height // cell + 2, 45, seed)
    clouds = clouds.resize(cell, kernel="cubic").crop(0, 0, width, height)
    grain = noise(width, height, 14, seed + 3).gaussblur(0.7)
    return (light + clouds + grain).cast("uchar").copy(interpretation="srgb")


def generate_images(
    directory: Path, kind: str, count: int, seed: int, prefix: str = ""
) -> list[ImageFile]:
    """`count` distinct JPEGs of one size: crops of one larger photo at distinct offsets."""
    if count <= 0:
        return []
    width, height = SIZES[kind]
    margin = 64
    base = photo(width + margin, height + margin, seed).copy_memory()
    files = []
    for index in range(count):
        left, top = index % margin, (index // margin) % margin
        name = f"{prefix}{kind.lower()}-{index:04d}.jpg"
        path = directory / name
        base.crop(left, top, width, height).jpegsave(str(path), Q=90, keep="none")
        files.append(ImageFile(name, path, kind, width, height, path.stat().st_size))
    return files


@dataclass
class ImageSet:
    mix: list[ImageFile]  # scenario 1, in batch order
    two_k: list[ImageFile]  # the 2K images of the mix: scenario 2
    big: list[ImageFile]  # 50 MP: scenario 3
    warm_up: list[ImageFile]
    seconds: float

    @property
    def every_file(self) -> list[ImageFile]:
        return self.mix + self.big + self.warm_up

    def describe(self) -> str:
        groups: dict[str, list[ImageFile]] = {}
        for file in self.mix + self.big:
            groups.setdefault(file.kind, []).append(file)
        return "; ".join(
            f"{len(files)} x {kind} {SIZES[kind][0]}x{SIZES[kind][1]} (mean "
            f"{statistics.fmean(f.size for f in files) / 2**20:.2f} MiB, "
            f"{statistics.fmean(f.size / (f.width * f.height) for f in files):.2f} bytes/pixel)"
            for kind, files in groups.items()
        )


def make_images(directory: Path, images: int, big: int, cores: int) -> ImageSet:
    started = time.perf_counter()
    n24 = max(1, round(images * SHARE_24MP)) if images >= 10 else 0
    two_k = generate_images(directory, "2K", images - n24, seed=11)
    large = generate_images(directory, "24MP", n24, seed=23)
    huge = generate_images(directory, "50MP", big, seed=37)
    warm_up = generate_images(directory, "2K", 2 * cores, seed=53, prefix="warm-up-")
    # The 24 MP images spread evenly through the batch, not bunched at one end.
    mix: list[ImageFile] = []
    queue_2k, queue_24 = iter(two_k), iter(large)
    for index in range(images):
        takes_large = n24 and (index + 1) * n24 // images > index * n24 // images
        mix.append(next(queue_24) if takes_large else next(queue_2k))
    return ImageSet(mix, two_k, huge, warm_up, time.perf_counter() - started)


# -- the image server ------------------------------------------------------------------------


class ImageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__(("127.0.0.1", 0), ImageHandler)
        self.files = files
        self.lock = threading.Lock()
        self.requests = 0
        self.not_found = 0
        self.bytes_sent = 0
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, file: ImageFile) -> str:
        return f"{self.base_url}/{file.name}"

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.shutdown()
            self.thread.join(timeout=10)
        self.server_close()


class ImageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a CDN would
    server: ImageServer

    def do_GET(self) -> None:
        path = self.server.files.get(self.path.split("?", 1)[0].lstrip("/"))
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with self.server.lock:
                self.server.requests += 1
                self.server.not_found += 1
            return
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with path.open("rb") as handle:
            self.connection.sendfile(handle)
        with self.server.lock:
            self.server.requests += 1
            self.server.bytes_sent += size

    def log_message(self, format: str, *args: Any) -> None:
        return


# -- the OpsDeck under test ------------------------------------------------------------------


@dataclass
class OpsDeck:
    helpers: ModuleType
    root: Path
    concurrency: int
    embedded: bool
    stack: Any = None
    env: dict[str, str] = field(default_factory=dict)
    base_url: str = ""
    web: Any = None
    worker: Any = None
    engine: Engine | None = None
    token: str = ""
    described: str = ""

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        helpers = self.helpers
        if self.embedded:
            self.described = "embedded: SQLite (WAL) + Celery filesystem broker"
        else:
            helpers.sweep_stale_stacks()
            self.stack = helpers.TestStack("integration")
            self.stack.start()
            self.described = (
                f"distributed: PostgreSQL {self.stack.postgres.version} + Redis "
                f"{self.stack.redis.version}, private servers on 127.0.0.1 started by "
                "tests/stack.py (PostgreSQL with its throwaway-cluster settings: fsync, "
                "synchronous_commit and full_page_writes off)"
            )
        self.data_dir.mkdir(parents=True)
        metrics = self.root / "metrics"
        metrics.mkdir()
        port = helpers.free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OPSDECK_", "VIPS_"))
            and key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"}
            and not key.endswith("_FILE")
        }
        env.update(
            OPSDECK_ENVIRONMENT="development",
            OPSDECK_DATA_DIR=str(self.data_dir),
            OPSDECK_PUBLIC_URL=self.base_url,
            OPSDECK_SECRET_KEY=secrets.token_urlsafe(48),
            OPSDECK_WEBHOOK_SECRET=secrets.token_urlsafe(48),
            OPSDECK_FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
            OPSDECK_ACCESS_TOKEN_TTL_SECONDS=str(2 * 3600),  # outlives the run
            OPSDECK_LOG_FORMAT="json",
            OPSDECK_LOG_LEVEL="INFO",
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
            PYTHONUNBUFFERED="1",
        )
        if self.stack is not None:
            env["OPSDECK_DATABASE_URL"] = self.stack.database_url
            env["OPSDECK_REDIS_URL"] = self.stack.redis_url
        self.env = env
        password = secrets.token_urlsafe(18)
        self.run("db", "upgrade")
        self.run(
            "users",
            "create",
            "--username",
            USERNAME,
            "--email",
            "bench@example.com",
            "--password-stdin",
            stdin=password + "\n",
        )
        database_url = (
            self.stack.database_url if self.stack else f"sqlite:///{self.data_dir / 'opsdeck.db'}"
        )
        self.engine = make_engine(database_url, pool_size=2)
        self.web = self.launch("web", ["web", "--host", "127.0.0.1", "--port", str(port)])
        helpers.wait_until(
            self._web_answers,
            timeout=STARTUP_TIMEOUT,
            message=f"opsdeck web on {self.base_url}",
            diagnostics=self.web.diagnostics,
        )
        self.worker = self.launch("worker", ["worker", "--concurrency", str(self.concurrency)])
        self.worker.wait_for_record(
            _worker_ready, message="the Celery worker's 'ready' line", timeout=STARTUP_TIMEOUT
        )
        helpers.wait_until(
            lambda: len(self.worker_children()) >= self.concurrency,
            timeout=STARTUP_TIMEOUT,
            message=f"{self.concurrency} worker processes",
        )
        response = httpx.post(
            f"{self.base_url}/api/v1/auth/token",
            data={"username": USERNAME, "password": password},
            timeout=REQUEST_TIMEOUT,
        )
        if response.status_code != 200:
            raise BenchFailed(f"sign-in failed: {response.status_code} {response.text[:300]}")
        self.token = response.json()["access_token"]

    def _web_answers(self) -> bool:
        self.web.assert_running()
        return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200

    def run(self, *args: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "opsdeck", *args],
            env=self.env,
            cwd=self.root,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise BenchFailed(f"opsdeck {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def launch(self, name: str, args: list[str]) -> Any:
        log_path = self.root / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "opsdeck", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        return self.helpers.ManagedProcess(name, process, log_path, self.env)

    def worker_children(self) -> list[int]:
        if self.worker is None or self.worker.process.poll() is not None:
            return []
        return children_of(self.worker.process.pid)

    def worker_log_lines(self) -> int:
        if self.worker is None:
            return 0
        with self.worker.log_path.open("rb") as log:
            return sum(1 for _ in log)

    def check_running(self) -> None:
        for managed in (self.web, self.worker):
            if managed is not None and managed.process.poll() is not None:
                raise BenchFailed(
                    f"{managed.name} exited with status {managed.process.returncode}\n"
                    f"{managed.diagnostics()}"
                )

    def cpu_by_group(self) -> dict[str, float]:
        groups: dict[str, float] = {}
        if self.worker is not None and self.worker.process.poll() is None:
            main = self.worker.process.pid
            groups["worker processes"] = sum(cpu_seconds(pid) for pid in children_of(main))
            groups["worker main process"] = cpu_seconds(main)
        if self.web is not None and self.web.process.poll() is None:
            groups["web"] = cpu_seconds(self.web.process.pid, reaped_children=True)
        if self.stack is not None:
            postmaster = postmaster_pid(self.stack.postgres.data)
            if postmaster:
                groups["PostgreSQL"] = cpu_seconds(postmaster, reaped_children=True) + sum(
                    cpu_seconds(pid) for pid in children_of(postmaster)
                )
            if self.stack.redis.process is not None:
                groups["Redis"] = cpu_seconds(self.stack.redis.process.pid)
        groups["this script (image server, client)"] = cpu_seconds(os.getpid())
        return groups

    def stop_worker(self) -> None:
        if self.worker is not None:
            _stop_process(self.worker)

    def stop(self) -> None:
        problems = []
        for managed in (self.worker, self.web):
            if managed is not None:
                try:
                    _stop_process(managed)
                except Exception as exc:
                    problems.append(f"{managed.name}: {exc}")
        if self.engine is not None:
            self.engine.dispose()
        if self.stack is not None:
            try:
                self.stack.stop()
            except Exception as exc:
                problems.append(str(exc))
        if problems:
            print("  cleanup problems: " + "; ".join(problems), file=sys.stderr)

    def keep_logs(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for log in self.root.glob("*.log"):
            shutil.copy2(log, target / log.name)


def _worker_ready(record: dict[str, Any]) -> bool:
    return record.get("logger") == "celery.apps.worker" and str(record.get("event", "")).endswith(
        " ready."
    )


def _stop_process(managed: Any) -> None:
    process = managed.process
    if process.poll() is None:
        managed.stop(timeout=30)
    # The worker's prefork children share its process group: none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# -- the raw baseline ------------------------------------------------------------------------


def _raw_init() -> None:
    configure_libvips()


def _own_hwm_mib() -> float:
    return status_kib(os.getpid(), "VmHWM") / 1024


def _raw_one(job: tuple[str, dict[str, Any]]) -> tuple[float, float, int, float]:
    """One image: wall seconds, CPU seconds (every thread of the process), pid, VmHWM."""
    path, ops = job
    data = Path(path).read_bytes()
    started, cpu = time.perf_counter(), time.process_time()
    process(data, Operations(**ops))
    return (
        time.perf_counter() - started,
        time.process_time() - cpu,
        os.getpid(),
        _own_hwm_mib(),
    )


def _raw_baseline(_: int) -> tuple[int, float]:
    time.sleep(0.2)  # so that every process of the pool takes one of these
    return os.getpid(), _own_hwm_mib()


@dataclass(frozen=True)
class RawRun:
    seconds: float
    per_image: list[float]
    cpu: float
    peak_mib: dict[int, float]
    baseline_mib: dict[int, float]

    @property
    def rate(self) -> float:
        return len(self.per_image) / self.seconds


def raw_run(cores: int, files: Sequence[ImageFile], ops: dict[str, Any]) -> RawRun:
    """`process` on the same files in `cores` fresh processes, each with libvips' default
    threads, as in a worker; started and warmed up before the clock starts."""
    context = multiprocessing.get_context("spawn")
    jobs = [(str(file.path), ops) for file in files]
    with context.Pool(cores, initializer=_raw_init) as pool:
        baseline = dict(pool.map(_raw_baseline, range(cores), chunksize=1))
        pool.map(_raw_one, [jobs[i % len(jobs)] for i in range(cores)], chunksize=1)
        started = time.perf_counter()
        results = list(pool.imap_unordered(_raw_one, jobs, chunksize=1))
        seconds = time.perf_counter() - started
        pool.close()
        pool.join()
    peaks: dict[int, float] = {}
    for _, _, pid, hwm in results:
        peaks[pid] = max(peaks.get(pid, 0.0), hwm)
    return RawRun(seconds, [r[0] for r in results], sum(r[1] for r in results), peaks, baseline)


# -- batches through the API -----------------------------------------------------------------


def products_csv(urls: Sequence[str], per_row: Callable[[int], int]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["S. No.", "Product Name", "Input Image Urls"])
    position, row = 0, 0
    while position < len(urls):
        row += 1
        take = per_row(row)
        writer.writerow([row, f"Product {row}", ",".join(urls[position : position + take])])
        position += take
    return out.getvalue().encode()


def one_or_two(row: int) -> int:
    return 1 + (row - 1) % 2


def post_batch(client: httpx.Client, data: bytes, ops: dict[str, Any]) -> httpx.Response:
    return client.post(
        "/api/v1/images/batches",
        files={"file": ("products.csv", data, "text/csv")},
        data={"operations": json.dumps(ops)},
        timeout=REQUEST_TIMEOUT,
    )


@dataclass
class MetricsSnapshot:
    values: dict[str, float]

    @classmethod
    def scrape(cls, client: httpx.Client) -> MetricsSnapshot:
        text = client.get("/metrics", timeout=REQUEST_TIMEOUT).text
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                label = sample.labels.get("phase") or sample.labels.get("task") or ""
                key = f"{sample.name}{{{label}}}"
                values[key] = values.get(key, 0.0) + float(sample.value)
        return cls(values)

    def mean_since(self, before: MetricsSnapshot, name: str, label: str) -> tuple[float, int]:
        def delta(suffix: str) -> float:
            key = f"{name}_{suffix}{{{label}}}"
            return self.values.get(key, 0.0) - before.values.get(key, 0.0)

        count = delta("count")
        return (delta("sum") / count if count else float("nan")), int(count)


@dataclass
class BatchRun:
    label: str
    files: list[ImageFile]
    post_ms: float
    wall: float  # POST sent -> the batch's finished_at
    observed: float  # POST sent -> the status poll that saw it finished
    first_output: float
    service: list[float]  # per image, in the worker: claimed -> finished
    service_by_kind: dict[str, list[float]]
    attempts: int
    bytes_in: int
    bytes_out: int
    polls: list[float]
    cpu: dict[str, float]
    machine_busy: float
    machine_idle: float
    rss_mib: dict[int, float]
    phase_fetch: float
    phase_process: float
    task_seconds: float  # process_item and process_items (chunks) together
    tasks: int
    log_lines: int
    profile: str = ""

    @property
    def megapixels(self) -> float:
        return sum(file.megapixels for file in self.files)

    @property
    def rate(self) -> float:
        return len(self.files) / self.wall


@dataclass
class Bench:
    deck: OpsDeck
    client: httpx.Client
    server: ImageServer
    sampler: RssSampler
    cores: int
    concurrency: int
    poll_interval: float
    thumbor: bool = True
    profile: bool = False

    def run_batch(self, label: str, files: Sequence[ImageFile], ops: dict[str, Any]) -> BatchRun:
        """POST a CSV of the files' URLs, poll the status API until the batch is finished,
        then read each image's times from the database."""
        deck, client = self.deck, self.client
        data = products_csv([self.server.url(file) for file in files], one_or_two)
        metrics_before = MetricsSnapshot.scrape(client)
        log_lines = deck.worker_log_lines()
        self.sampler.reset()
        cpu_before = deck.cpu_by_group()
        busy_before, idle_before = machine_cpu()
        with contextlib.ExitStack() as profiling:
            # py-spy (--profile) samples from the outside without pausing the workers; its own
            # CPU shows as "other processes on the machine".
            profile = (
                profiling.enter_context(WorkerProfile(deck.worker_children()))
                if self.profile and label != "warm-up"
                else None
            )
            sent = time.time()
            started = time.perf_counter()
            response = post_batch(client, data, ops)
            post_ms = (time.perf_counter() - started) * 1000
            if response.status_code != 202:
                raise BenchFailed(f"{label}: POST answered {response.status_code}: {response.text}")
            batch_id = response.json()["request_id"]
            polls, status = self._wait(batch_id, sum(file.megapixels for file in files))
            observed = time.time() - sent
        busy_after, idle_after = machine_cpu()
        cpu_after = deck.cpu_by_group()
        rss = self.sampler.peaks_mib()
        metrics_after = MetricsSnapshot.scrape(client)
        if status != "completed":
            raise BenchFailed(self._failure(label, batch_id, status, observed))
        if deck.engine is None:
            raise BenchFailed("no database engine")
        with Session(deck.engine) as session:
            batch = session.get(ImageBatch, batch_id)
            items = list(session.scalars(select(ImageItem).where(ImageItem.batch_id == batch_id)))
        if batch is None or batch.finished_at is None:
            raise BenchFailed(f"{label}: batch {batch_id} has no finish time in the database")
        kinds = {self.server.url(file): file.kind for file in files}
        service: list[float] = []
        by_kind: dict[str, list[float]] = {}
        finished: list[datetime] = []
        for item in items:
            if item.started_at is None or item.finished_at is None:
                raise BenchFailed(f"{label}: image {item.id} has no start or finish time")
            seconds = (item.finished_at - item.started_at).total_seconds()
            service.append(seconds)
            by_kind.setdefault(kinds.get(item.input_url or "", "?"), []).append(seconds)
            finished.append(item.finished_at)

        def mean(name: str, label: str) -> tuple[float, int]:
            return metrics_after.mean_since(metrics_before, name, label)

        return BatchRun(
            label=label,
            files=list(files),
            post_ms=post_ms,
            wall=batch.finished_at.timestamp() - sent,
            observed=observed,
            first_output=min(finished).timestamp() - sent,
            service=service,
            service_by_kind=by_kind,
            attempts=sum(item.attempts for item in items),
            bytes_in=sum(item.bytes_in or 0 for item in items),
            bytes_out=sum(item.bytes_out or 0 for item in items),
            polls=polls,
            cpu={name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after},
            machine_busy=busy_after - busy_before,
            machine_idle=idle_after - idle_before,
            rss_mib=rss,
            phase_fetch=mean("opsdeck_image_phase_seconds", "fetch")[0],
            phase_process=mean("opsdeck_image_phase_seconds", "process")[0],
            task_seconds=sum(
                mean_ * count
                for mean_, count in (
                    mean("opsdeck_task_duration_seconds", task)
                    for task in ("images.process_item", "images.process_items")
                )
                if count
            ),
            tasks=sum(
                mean("opsdeck_task_duration_seconds", task)[1]
                for task in ("images.process_item", "images.process_items")
            ),
            log_lines=deck.worker_log_lines() - log_lines,
            profile=profile.report(len(files)) if profile else "",
        )

    def _wait(self, batch_id: str, megapixels: float) -> tuple[list[float], str]:
        """Poll the batch list (the newest batch is this one: a summary, cheaper to serve than
        the whole batch) until the batch is finished; bounded in time."""
        polls: list[float] = []
        deadline = time.monotonic() + 120 + 2 * megapixels
        status = "pending"
        while status not in FINAL_STATUSES and time.monotonic() < deadline:
            time.sleep(self.poll_interval)
            self.deck.check_running()
            started = time.perf_counter()
            answer = self.client.get("/api/v1/images/batches?limit=1", timeout=REQUEST_TIMEOUT)
            polls.append(time.perf_counter() - started)
            answer.raise_for_status()
            newest = answer.json()["items"][0]
            if newest["request_id"] != batch_id:
                raise BenchFailed(f"another batch ({newest['request_id']}) appeared")
            status = newest["status"]
        return polls, status

    def _failure(self, label: str, batch_id: str, status: str, after: float) -> str:
        detail = self.client.get(f"/api/v1/images/batches/{batch_id}", timeout=REQUEST_TIMEOUT)
        failures = [
            f"{image['input_url']}: {image['error']}"
            for product in detail.json().get("products", [])
            for image in product["images"]
            if image["status"] == "failed"
        ]
        text = f"{label}: batch {batch_id} is {status!r} after {after:.0f} s"
        return text + ("; failures:\n  " + "\n  ".join(failures[:10]) if failures else "")


# -- reporting -------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def p50_p95(values: Sequence[float]) -> str:
    return f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.95))}"


@dataclass(frozen=True)
class Comparison:
    run: BatchRun
    raws: list[RawRun]

    @property
    def raw_rate(self) -> float:
        return statistics.fmean(raw.rate for raw in self.raws)

    @property
    def ratio(self) -> float:
        return self.run.rate / self.raw_rate

    @property
    def cpu_per_image(self) -> tuple[float, float]:
        """CPU seconds per image: every process of the stack (and the image server), and raw."""
        count = len(self.run.files)
        raw = statistics.fmean(raw.cpu for raw in self.raws) / count
        return sum(self.run.cpu.values()) / count, raw


def describe(comparison: Comparison, cores: int, concurrency: int) -> None:
    run, raws = comparison.run, comparison.raws
    count = len(run.files)
    print(
        f"  pipeline  {count} images, {run.megapixels:.0f} MP in {run.wall:.2f} s (POST sent -> "
        f"batch finished): {run.rate:.2f} images/s, {run.megapixels / run.wall:.1f} MP/s, "
        f"{run.rate / cores:.2f} images/s per core"
    )
    print(
        f"            POST answered in {ms(run.post_ms / 1000)}; first output after "
        f"{run.first_output:.2f} s; finish seen by polling after {run.observed:.2f} s "
        f"({len(run.polls)} polls of the batch list, median {ms(statistics.median(run.polls))})"
    )
    print(
        f"            per-image latency in the worker (claimed -> finished), p50 / p95: "
        f"{p50_p95(run.service)}"
    )
    if len(run.service_by_kind) > 1:
        print(
            "              by size: "
            + "; ".join(f"{kind} {p50_p95(v)}" for kind, v in sorted(run.service_by_kind.items()))
        )
    print(
        f"            bytes in {run.bytes_in / 2**20:.1f} MiB, out {run.bytes_out / 2**20:.1f} "
        f"MiB; {run.attempts} attempts for {count} images; {run.log_lines} worker log lines"
    )
    for index, raw in enumerate(raws):
        print(
            f"  raw       {count} images in {raw.seconds:.2f} s "
            f"({'before' if index == 0 else 'after'}): {raw.rate:.2f} images/s, "
            f"{run.megapixels / raw.seconds:.1f} MP/s; process() p50 / p95 {p50_p95(raw.per_image)}"
        )
    print(
        f"  ratio     pipeline / raw = {run.rate:.2f} / {comparison.raw_rate:.2f} = "
        f"{comparison.ratio:.2f}"
    )
    raw_process = statistics.fmean(value for raw in raws for value in raw.per_image)
    per_image = run.task_seconds / count
    other = per_image - run.phase_fetch - run.phase_process
    print(
        f"  the worker's time per image ({count} images in {run.tasks} tasks): "
        f"{ms(per_image)} = fetch {ms(run.phase_fetch)} + process {ms(run.phase_process)} (raw: "
        f"{ms(raw_process)}) + database, store, Celery and the rest {ms(other)}; the worker "
        f"processes were inside a task "
        f"{run.task_seconds / (concurrency * run.wall):.0%} of {concurrency} x "
        f"{run.wall:.1f} s"
    )
    capacity = run.machine_busy + run.machine_idle
    accounted = sum(run.cpu.values())
    others = max(run.machine_busy - accounted, 0.0)
    shares = ", ".join(
        f"{name} {seconds:.1f}" for name, seconds in sorted(run.cpu.items(), key=lambda i: -i[1])
    )
    print(
        f"  CPU seconds during the batch ({capacity:.0f} available): {shares}; other processes "
        f"on the machine {others:.1f}; idle {run.machine_idle:.1f} "
        f"({run.machine_idle / capacity:.0%})"
    )
    pipeline_cpu, raw_cpu = comparison.cpu_per_image
    print(
        f"  CPU per image: pipeline {ms(pipeline_cpu)} (worker processes "
        f"{ms(run.cpu.get('worker processes', 0.0) / count)}), raw process() {ms(raw_cpu)}"
    )
    if run.profile:
        print(run.profile)


def describe_rss(peaks: dict[int, float]) -> str:
    if not peaks:
        return "(no processes sampled)"
    each = ", ".join(f"{mib:.0f}" for mib in peaks.values())
    return f"max {max(peaks.values()):.0f} MiB (each process: {each} MiB)"


@dataclass
class Summary:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)

    def note_noise(self, label: str, run: BatchRun) -> None:
        others = max(run.machine_busy - sum(run.cpu.values()), 0.0)
        capacity = run.machine_busy + run.machine_idle
        self.noise.append(f"{label} {others / capacity:.0%}")

    def add(self, figure: str, pipeline: str, raw: str = "", target: str = "") -> None:
        self.rows.append((figure, pipeline, raw, target))

    def print(self, title: str) -> None:
        print(f"\n{title}\n")
        print(f"| {'figure':<48} | {'pipeline':>17} | {'raw':>17} | {'target':>12} |")
        print(f"|{'-' * 50}|{'-' * 18}:|{'-' * 18}:|{'-' * 13}:|")
        for figure, pipeline, raw, target in self.rows:
            print(f"| {figure:<48} | {pipeline:>17} | {raw:>17} | {target:>12} |")
        if self.noise:
            print(
                "\n  CPU taken by other processes on the machine during the batches: "
                + ", ".join(self.noise)
            )


# -- scenarios -------------------------------------------------------------------------------


def compare(
    bench: Bench, label: str, files: Sequence[ImageFile], ops: dict[str, Any]
) -> Comparison:
    raws = [raw_run(bench.cores, files, ops)]
    run = bench.run_batch(label, files, ops)
    raws.append(raw_run(bench.cores, files, ops))
    return Comparison(run, raws)


def scenario_default(bench: Bench, images: ImageSet, summary: Summary) -> float:
    kinds = [file.kind for file in images.mix]
    print(
        f"\n1. A batch of {len(images.mix)} image URLs, operation {json.dumps(DEFAULT_OPS)} (keep "
        f"format and size): {kinds.count('2K')} x 2K + {kinds.count('24MP')} x 24MP, "
        f"{sum(f.megapixels for f in images.mix):.0f} MP in all, 1-2 URLs per CSV row"
    )
    comparison = compare(bench, "default", images.mix, DEFAULT_OPS)
    describe(comparison, bench.cores, bench.concurrency)
    summary.note_noise("default op", comparison.run)
    run = comparison.run
    print(f"  peak RSS per worker process: {describe_rss(run.rss_mib)}")
    raw_seconds = statistics.fmean(raw.seconds for raw in comparison.raws)
    summary.add(
        "default op: images/s",
        f"{run.rate:.2f}",
        f"{comparison.raw_rate:.2f}",
    )
    summary.add(
        "default op: megapixels/s",
        f"{run.megapixels / run.wall:.1f}",
        f"{run.megapixels / raw_seconds:.1f}",
    )
    summary.add(
        "default op: ratio pipeline / raw", f"{comparison.ratio:.2f}", "", f">= {TARGET_RATIO}"
    )
    summary.add(
        "default op: per-image latency p50 / p95",
        p50_p95(run.service),
        p50_p95([v for raw in comparison.raws for v in raw.per_image]),
    )
    summary.add("default op: CPU per image", *(ms(v) for v in comparison.cpu_per_image))
    summary.add("default op: time to first output", f"{run.first_output:.2f} s")
    summary.add("default op: total wall time", f"{run.wall:.1f} s", f"{raw_seconds:.1f} s")
    summary.add(
        "default op: peak RSS per worker process", f"{max(run.rss_mib.values(), default=0):.0f} MiB"
    )
    return run.rate


def scenario_thumbnails(bench: Bench, images: ImageSet, summary: Summary) -> float:
    print(f"\n2. Thumbnails: {len(images.two_k)} 2K JPEGs -> {json.dumps(THUMBNAIL_OPS)}")
    comparison = compare(bench, "thumbnails", images.two_k, THUMBNAIL_OPS)
    describe(comparison, bench.cores, bench.concurrency)
    summary.note_noise("thumbnails", comparison.run)
    summary.add(
        "2K -> 512 px thumbnail: images/s per core",
        f"{comparison.run.rate / bench.cores:.1f}",
        f"{comparison.raw_rate / bench.cores:.1f}",
        f">= {TARGET_THUMBNAILS_PER_CORE:.0f}",
    )
    summary.add(
        "2K -> 512 px thumbnail: ratio pipeline / raw",
        f"{comparison.ratio:.2f}",
        "",
        f">= {TARGET_THUMBNAIL_RATIO}",
    )
    summary.add("2K -> 512 px thumbnail: CPU per image", *(ms(v) for v in comparison.cpu_per_image))
    if bench.thumbor:
        peer = thumbor_peer(bench, images)
        print(
            f"  thumbor   {peer.images} images in {peer.wall:.2f} s: {peer.rate:.2f} images/s "
            f"({peer.version}, Pillow, file loader, no storage, {peer.processes} processes, "
            f"{peer.clients} clients)"
        )
        print(
            f"  ratio     pipeline / thumbor = {comparison.run.rate:.2f} / {peer.rate:.2f} = "
            f"{comparison.run.rate / peer.rate:.2f}"
        )
        summary.add(
            "2K -> 512 px thumbnail: images/s, thumbor",
            f"{comparison.run.rate:.1f}",
            f"thumbor {peer.rate:.1f}",
        )
        summary.add(
            "2K -> 512 px thumbnail: ratio pipeline / thumbor",
            f"{comparison.run.rate / peer.rate:.2f}",
            "",
            f">= {TARGET_THUMBOR_RATIO:.1f}",
        )
    return comparison.run.rate


def thumbor_peer(bench: Bench, images: ImageSet) -> ThumborRun:
    """The same 2K files, the same fit and quality, through thumbor on the same cores."""
    root = images.two_k[0].path.parent
    return thumbor_rate(
        root,
        [file.name for file in images.two_k],
        [file.name for file in images.warm_up],
        processes=bench.cores,
        width=THUMBNAIL_OPS["max_width"],
        height=THUMBNAIL_OPS["max_height"],
        quality=THUMBNAIL_OPS["quality"],
        clients=2 * bench.cores,
    )


def scenario_memory(bench: Bench, images: ImageSet, summary: Summary) -> None:
    if not images.big:
        print("\n3. Peak RSS with 50 MP inputs: skipped (--quick)")
        return
    print(
        f"\n3. Memory: {len(images.big)} x 50MP JPEGs, {json.dumps(DEFAULT_OPS)}; peak RSS of each "
        "worker process (VmHWM reset before the batch"
        + ("" if bench.sampler.hwm_reset else "; the reset was refused: sampled VmRSS only")
        + f", VmRSS also sampled every {RSS_SAMPLE_INTERVAL * 1000:.0f} ms)"
    )
    comparison = compare(bench, "50MP", images.big, DEFAULT_OPS)
    describe(comparison, bench.cores, bench.concurrency)
    summary.note_noise("50 MP", comparison.run)
    raw = comparison.raws[0]
    print(f"  pipeline, peak RSS per worker process: {describe_rss(comparison.run.rss_mib)}")
    print(
        f"  raw pool, peak RSS per process: {describe_rss(raw.peak_mib)}; after importing the "
        f"library {max(raw.baseline_mib.values()):.0f} MiB"
    )
    summary.add(
        "50 MP, default op: peak RSS per worker process",
        f"{max(comparison.run.rss_mib.values(), default=0):.0f} MiB",
        f"{max(raw.peak_mib.values()):.0f} MiB",
        f"<= {TARGET_RSS_MIB:.0f} MiB",
    )


class HealthProbe:
    """GET /health back to back from a thread: how long other requests wait meanwhile."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)
        self.latencies: list[float] = []

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        with httpx.Client(base_url=self._base_url) as client:
            while not self._stop.wait(0.01):
                started = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    client.get("/health", timeout=10)
                self.latencies.append(time.perf_counter() - started)


def scenario_posts(bench: Bench, posts: int, summary: Summary) -> None:
    print(
        f"\n4. POST /api/v1/images/batches with a {CSV_ROWS:,}-row CSV (1-2 URLs a row), "
        f"{posts} times after one untimed; the worker stopped first, every URL 404s and each "
        "batch is cancelled at once; meanwhile another client calls GET /health back to back"
    )
    bench.deck.stop_worker()
    samples: list[float] = []
    with HealthProbe(bench.deck.base_url) as idle:
        time.sleep(2)
    with HealthProbe(bench.deck.base_url) as busy:
        for attempt in range(posts + 1):
            urls = [
                f"{bench.server.base_url}/missing/{attempt}-{row}-{k}.jpg"
                for row in range(1, CSV_ROWS + 1)
                for k in range(one_or_two(row))
            ]
            data = products_csv(urls, one_or_two)
            started = time.perf_counter()
            response = post_batch(bench.client, data, DEFAULT_OPS)
            elapsed = time.perf_counter() - started
            if response.status_code != 202:
                raise BenchFailed(f"POST answered {response.status_code}: {response.text[:500]}")
            batch_id = response.json()["request_id"]
            cancel = bench.client.post(
                f"/api/v1/images/batches/{batch_id}/cancel", timeout=REQUEST_TIMEOUT
            )
            if cancel.status_code != 200:
                raise BenchFailed(f"cancel answered {cancel.status_code}: {cancel.text[:300]}")
            if attempt:
                samples.append(elapsed)
    print(
        f"  {len(data) / 1024:.0f} KiB, {len(urls):,} URLs each: p50 / p95 {p50_p95(samples)}, "
        f"min {ms(min(samples))}, max {ms(max(samples))}"
    )
    print(
        f"  GET /health meanwhile: p50 / p95 {p50_p95(busy.latencies)}, max "
        f"{ms(max(busy.latencies, default=0))} ({len(busy.latencies)} calls); with no POST: "
        f"p50 / p95 {p50_p95(idle.latencies)}"
    )
    summary.add(
        f"POST of a {CSV_ROWS:,}-row CSV: p50 / p95",
        p50_p95(samples),
        "",
        f"p95 < {TARGET_POST_P95_MS:.0f} ms",
    )
    summary.add(
        "GET /health during those POSTs: p95 / max",
        f"{ms(percentile(busy.latencies, 0.95))} / {ms(max(busy.latencies, default=0))}",
    )


# -- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500, help="images in the main batch")
    parser.add_argument("--quick", action="store_true", help="40 images, no 50 MP: a smoke run")
    parser.add_argument(
        "--stacks",
        default="distributed,embedded",
        help="the stacks to run, in order: distributed (PostgreSQL + Redis, when installed), "
        "embedded (SQLite + the filesystem broker)",
    )
    parser.add_argument(
        "--embedded", action="store_true", help="the embedded stack only (--stacks embedded)"
    )
    parser.add_argument(
        "--cores", type=int, default=usable_cores(), help="processes of the raw pool; per core"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="worker processes (default: 2 x --cores, as the worker's own default)",
    )
    parser.add_argument("--big", type=int, default=0, help="50 MP images (default: 2 per core)")
    parser.add_argument("--posts", type=int, default=30, help="CSV POSTs to time")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, help="wait up to this many seconds for load to drop"
    )
    parser.add_argument(
        "--no-thumbor",
        action="store_true",
        help="skip the thumbor peer (it is installed from PyPI into the bench cache on first use)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the worker processes with py-spy during each scenario's batch and print "
        "where their time goes (py-spy is installed from PyPI into the bench cache on first use)",
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the OpsDeck logs here at the end")
    args = parser.parse_args()
    if args.embedded:
        args.stacks = "embedded"
    if args.quick:
        args.images = min(args.images, 40)
        args.big = 0
        args.posts = min(args.posts, 10)
    elif args.big <= 0:
        args.big = max(4, 2 * args.cores)
    args.concurrency = args.concurrency or 2 * args.cores
    if args.images < 2 or args.cores < 1 or args.concurrency < 1 or args.posts < 1:
        parser.error("--images must be at least 2, --cores and --posts at least 1")
    return args


def print_conditions(
    args: argparse.Namespace, deck: OpsDeck, images: ImageSet, server: ImageServer, load: str
) -> None:
    defaults = Settings.model_fields
    print("Conditions")
    print(f"  date          {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, host {platform.node()}")
    print(f"  CPU           {cpu_model()}")
    print(
        f"  cores         {os.cpu_count()} online, {usable_cores()} usable; worker --concurrency "
        f"{args.concurrency}, raw pool of {args.cores} processes; per-core figures divide by "
        f"{args.cores}"
    )
    print(
        f"  RAM           {meminfo_gib('MemTotal'):.1f} GiB, "
        f"{meminfo_gib('MemAvailable'):.1f} GiB available at the start"
    )
    print(f"  load average  {load} at the start")
    print(f"  Python        {platform.python_version()} ({platform.python_implementation()})")
    print(
        f"  libvips       {libvips_version()} (pyvips {pyvips.__version__}, pyvips-binary "
        f"{version('pyvips-binary')}); VIPS_CONCURRENCY unset: {pyvips.concurrency_get()} "
        "threads per process, in the worker and in the raw pool"
    )
    print(
        f"  OpsDeck       {opsdeck_version}, Celery {version('celery')}, SQLAlchemy "
        f"{version('sqlalchemy')}, psycopg {version('psycopg')}; default settings (per-host "
        f"fetch slots {defaults['fetch_per_host_concurrency'].default}), JSON logs at INFO"
    )
    print(f"  stack         {deck.described}")
    print(f"  data dir      {filesystem_of(deck.root)}")
    print(f"  images        generated in {images.seconds:.1f} s, JPEG q90: {images.describe()}")
    print(f"  image server  {server.base_url}: threaded, HTTP/1.1 keep-alive, sendfile")


@dataclass(frozen=True)
class StackFigures:
    """The headline figures of one stack, for the side-by-side line at the end."""

    name: str
    default_rate: float
    thumbnail_rate: float


def run_stack(
    args: argparse.Namespace,
    helpers: ModuleType,
    root: Path,
    images: ImageSet,
    server: ImageServer,
    embedded: bool,
    *,
    with_thumbor: bool,
    load_before: str,
) -> StackFigures:
    """Every scenario on one stack, started in `root` and stopped (and removed) at the end."""
    with contextlib.ExitStack() as cleanup:
        deck = OpsDeck(helpers, root, args.concurrency, embedded)
        deck.root.mkdir()
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        if args.keep_logs:
            cleanup.callback(deck.keep_logs, args.keep_logs / root.name)
        cleanup.callback(deck.stop)
        deck.start()
        print_conditions(args, deck, images, server, load_before)
        at_rest = [status_kib(pid, "VmRSS") / 1024 for pid in deck.worker_children()]
        print(
            "  worker        RSS of each worker process at rest, before any image: "
            + ", ".join(f"{mib:.0f}" for mib in at_rest)
            + " MiB"
        )
        sampler = RssSampler(deck.worker_children)
        sampler.start()
        cleanup.callback(sampler.stop)
        client = cleanup.enter_context(
            httpx.Client(base_url=deck.base_url, headers={"Authorization": f"Bearer {deck.token}"})
        )
        bench = Bench(
            deck,
            client,
            server,
            sampler,
            args.cores,
            args.concurrency,
            args.poll_interval,
            thumbor=with_thumbor,
            profile=args.profile,
        )
        # Every worker process opens its connections and touches its code paths once.
        bench.run_batch("warm-up", images.warm_up, DEFAULT_OPS)
        summary = Summary()
        default = scenario_default(bench, images, summary)
        thumbnails = scenario_thumbnails(bench, images, summary)
        scenario_memory(bench, images, summary)
        scenario_posts(bench, args.posts, summary)
        name = deck.described.split(":")[0]
        summary.print(
            f"Summary: {name} stack, {args.concurrency} worker processes and a raw pool of "
            f"{args.cores} on {usable_cores()} x {cpu_model()}, {datetime.now(UTC):%Y-%m-%d}"
        )
        return StackFigures(name, default, thumbnails)


def stacks_to_run(args: argparse.Namespace, helpers: ModuleType) -> list[bool]:
    """Which stacks run, as `embedded` flags: the distributed one first when it can start."""
    has_servers = (
        helpers.find_postgres_bindir() is not None and helpers.find_redis_server() is not None
    )
    wanted = [name.strip() for name in args.stacks.split(",") if name.strip()]
    stacks: list[bool] = []
    for name in wanted:
        if name == "distributed" and not has_servers:
            print("  PostgreSQL or Redis server binaries not found: no distributed stack")
        elif name in ("distributed", "embedded"):
            stacks.append(name == "embedded")
    return stacks


def main() -> int:
    args = parse_args()
    helpers = stack_helpers()
    print("OpsDeck images pipeline benchmark")
    wait_for_quiet(args.wait_idle, args.cores)
    load_before = load_average()
    stacks = stacks_to_run(args, helpers)
    if not stacks:
        print("no stack to run", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="opsdeck-bench-pipeline-"))
    root.chmod(0o755)  # the postgres user must reach its cluster inside
    figures: list[StackFigures] = []
    try:
        with interrupts_as_keyboard_interrupt(), contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, root, ignore_errors=True)
            (root / "images").mkdir()
            images = make_images(
                root / "images", args.images, args.big, max(args.cores, args.concurrency)
            )
            server = ImageServer({file.name: file.path for file in images.every_file})
            server.start()
            cleanup.callback(server.stop)
            for index, embedded in enumerate(stacks):
                if index:
                    print("\n" + "=" * 100 + "\n")
                figures.append(
                    run_stack(
                        args,
                        helpers,
                        root / ("embedded" if embedded else "distributed"),
                        images,
                        server,
                        embedded,
                        # thumbor does not depend on the stack: once, in the first one.
                        with_thumbor=not args.no_thumbor and index == 0,
                        load_before=load_before if index == 0 else load_average(),
                    )
                )
            if len(figures) > 1:
                first = figures[0]
                print(f"\nSide by side (images/s; ratio to the {first.name} stack)")
                for stack in figures:
                    print(
                        f"  {stack.name:<12} default op {stack.default_rate:.2f} "
                        f"({stack.default_rate / first.default_rate:.2f}), 2K -> 512 px "
                        f"thumbnails {stack.thumbnail_rate:.2f} "
                        f"({stack.thumbnail_rate / first.thumbnail_rate:.2f})"
                    )
            print(
                f"\n  image server: {server.requests} requests ({server.not_found} not found), "
                f"{server.bytes_sent / 2**20:.0f} MiB sent"
            )
            print(f"  load average at the end: {load_average()}")
    except BenchFailed as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; everything it started was stopped and removed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
