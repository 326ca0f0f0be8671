"""What the incidents API costs on a big database: a private PostgreSQL holding 1,000,000
incidents with their timelines, a real `opsdeck web` in front of it, and the same SQL through
psycopg alone, measured in the same run.

    .venv/bin/python bench/incidents_api.py [--incidents 1000000] [--duration 10]

1. Starts PostgreSQL the way tests/stack.py does (private, on 127.0.0.1), in a data directory
   kept between runs under `--cache-dir`, keyed by the schema head, the incident count and the
   generator's version: the first run creates the schema with `opsdeck migrate` and loads the
   data with COPY (secondary indexes and foreign keys are dropped for the load and created again
   after it, then VACUUM ANALYZE); later runs start the cached cluster and load nothing.
   The data: incidents spread over three years (numbers rising with time), each with 3-8
   timeline events (declared, status changes stamped as the workflow stamps them, hand-over,
   assignees, severity changes, comments), comments, tags, assignees and watchers; 3 % of them
   restricted; 1,000 users (each takes part in about 1,800 incidents), 12 categories, 40 tags.
   The benchmark's own user is a member (not an admin), so every query carries the visibility
   rule, and signs in with an API token.
2. Starts `opsdeck web --workers <usable cores>` (production settings, JSON logs at INFO) and a
   private Redis, as deployed.
3. For each endpoint (GET by number, first page of the list, a deep keyset page, a filtered
   list, full-text search, stats over 90 days cached and cold) it first runs a sample of its
   requests through the application in this process while recording every SQL statement the
   request sends
   (SQLAlchemy's `before_cursor_execute`), then, for `--duration` seconds each after a warm-up:
   - HTTP: `--concurrency` keep-alive connections from an asyncio (uvloop) client writing raw
     HTTP/1.1, cycling through the sample;
   - raw: the endpoint's query on incidents (every recorded statement reading FROM incidents)
     through psycopg alone, `--concurrency` connections, the same sample and concurrency;
   and prints requests/s, p50 / p95 / p99, the ratio HTTP / raw and the targets of issue 13.
   Stats twice: `stats` asks one period (answered by the stats cache after the sample's first
   request: hits), `stats-cold` a period never asked before at every request (`since` a second
   later each time: every answer computed; raw: the SQL of a few of them).
   GET /health is measured first: the client's and the server's floor.
   `--profile N` also runs N GET, list and cached stats requests in this process under cProfile
   and prints the CPU by package and the functions with the most self time (where the web
   process's time goes).

An endpoint the server does not offer yet (404/405/422, or `q` ignored) is reported as not
available. It asserts nothing; it exits non-zero only when the run itself fails. Everything it
starts is stopped at exit (Ctrl-C and SIGTERM too); only the cache stays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import queue
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import uvloop
from sqlalchemy import event
from sqlalchemy.engine import Engine

from _common import (
    BenchFailed,
    bench_cache,
    children_of,
    cpu_seconds,
    die_with_parent,
    filesystem_of,
    interrupts_as_keyboard_interrupt,
    load_average,
    machine_cpu,
    meminfo_gib,
    percentile,
    postmaster_pid,
    print_machine,
    run_opsdeck,
    stack_helpers,
    wait_for_quiet,
)
from opsdeck import __version__ as opsdeck_version
from opsdeck.core.db import head_revision
from opsdeck.core.markdown import render
from opsdeck.core.pagination import encode_cursor
from opsdeck.incidents.service.incidents import INCIDENT_SORTS
from opsdeck.settings import usable_cores

# Bump when the generated data or the cluster's layout changes: the cache key includes it.
DATA_VERSION = 2
DEFAULT_INCIDENTS = 1_000_000
USERS = 1000
BENCH_USER = "bench"
SPAN_DAYS = 3 * 365
STATS_DAYS = 90
# stats-cold: periods recorded in this process (their SQL is the raw line's), and periods the
# HTTP load asks (more than it can send in a run, so none is asked twice).
STATS_COLD_SAMPLES = 3
STATS_COLD_PERIODS = 20_000
BATCH = 5_000
STARTUP_TIMEOUT = 120.0
REQUEST_TIMEOUT = 60.0
API = "/api/v1/incidents"
# How many functions --profile lists after the packages, by self time.
PROFILE_FUNCTIONS = 12
SEARCH_TABLE = "incident_search"
TABLES = (
    "incidents",
    "incident_events",
    "incident_comments",
    "incident_tag_links",
    "incident_participants",
)


# -- the data --------------------------------------------------------------------------------

SERVICES = (
    "payments-api", "checkout", "auth", "search", "catalog", "orders", "billing", "ledger",
    "notifications", "mailer", "cdn", "edge-proxy", "dns", "kafka", "postgres-main",
    "postgres-replica", "redis-cache", "object-store", "image-resizer", "recommendations",
    "inventory", "shipping", "tax-service", "fraud-scoring", "feature-flags", "sso", "vpn",
    "ci-runners", "artifact-registry", "k8s-control-plane", "ingress", "metrics-pipeline",
    "log-shipping", "tracing", "alerting", "backup", "data-warehouse", "etl-nightly",
    "mobile-gateway", "web-frontend", "admin-console", "reporting", "webhooks-out",
    "partner-api", "rate-limiter", "session-store", "queue-workers", "scheduler",
)  # fmt: skip
SYMPTOMS = (
    "elevated 5xx error rate", "p99 latency above SLO", "timeouts to upstream",
    "connection pool exhausted", "disk almost full", "certificate expiring",
    "replication lag growing", "memory leak after deploy", "CPU saturation",
    "pods crash-looping", "queue backlog growing", "stale cache entries served",
    "failed health checks", "DNS resolution failures", "TLS handshake errors",
    "deadlocks in transactions", "slow queries on hot table", "partial outage",
    "complete outage", "data inconsistency reported", "login failures",
    "webhook deliveries failing", "rate limit misconfigured", "job runs twice",
    "backup did not complete", "packet loss between zones", "OOM kills",
    "config drift detected", "high error budget burn", "degraded search relevance",
)  # fmt: skip
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1", "ap-east-1")
SENTENCES = (
    "Alerts fired for the {service} dashboard shortly after the {hour}:00 deploy.",
    "Customers in {region} report errors when they try to pay.",
    "The on-call engineer paged the **{service}** team and opened a bridge.",
    "Error rate climbed from 0.1% to {pct}% within ten minutes.",
    "Rolling back the last release of `{service}` is being considered.",
    "Grafana shows the connection pool at its limit on every replica.",
    "The load balancer marks half of the backends unhealthy.",
    "A configuration change to the feature flags preceded the first alert.",
    "Upstream provider status page reports degraded performance in {region}.",
    "Disk usage on the primary reached {pct}% and keeps growing.",
    "Queue depth passed 50k messages; consumers cannot keep up.",
    "The nightly batch job overlapped with peak traffic.",
    "Retry storms from mobile clients amplify the load.",
    "Memory of the `{service}` pods grows until the OOM killer steps in.",
    "Certificates for the internal CA expire in three days.",
    "Latency is normal again but the root cause is unknown.",
    "Database failover happened automatically; writes paused for {pct} seconds.",
    "Cache hit ratio dropped after the key format changed.",
    "Synthetic checks from {region} fail intermittently.",
    "See the runbook: restart the workers one zone at a time.",
    "A slow query on the orders table holds locks for seconds.",
    "Kafka consumer lag is rising on the events topic.",
    "Traffic doubled after a marketing campaign went live.",
    "The vendor confirmed an incident on their side.",
    "Autoscaling reached its maximum node count.",
    "Logs show TLS handshake failures from one ingress node.",
    "Webhook receivers answer 429 and deliveries pile up.",
    "A cron job deleted temporary files still in use.",
    "DNS TTLs were lowered ahead of the migration.",
    "The error budget for this quarter is half spent.",
)  # fmt: skip
COMMENTS = (
    "Looking into it now.", "Rolled back to the previous version; watching the graphs.",
    "Error rate is back to normal.", "I can reproduce it from {region}.",
    "Paging the database on-call.", "Opened a ticket with the vendor.",
    "The fix is deployed to canary; looks good so far.", "Still seeing timeouts on `{service}`.",
    "Root cause: a missing index after the last migration.",
    "Customers notified through the status page.", "Scaling the pool from 20 to 40 connections.",
    "Monitoring for another hour before resolving.", "Postmortem scheduled for Thursday.",
    "This looks like a duplicate of an earlier incident.",
    "Disk cleaned up, 40% free again.", "**Do not** restart the primary during business hours.",
    "Traffic shifted away from {region}.", "The canary shows the same error, rolling back.",
    "Added a dashboard panel for this metric.", "Closing: no impact on customers.",
)  # fmt: skip
CATEGORIES = (
    "Availability", "Performance", "Security", "Data", "Network", "Database",
    "Deployment", "Third party", "Capacity", "Configuration", "Hardware", "Other",
)  # fmt: skip
TAGS = (
    "customer-facing", "internal", "payments", "auth", "database", "network", "deploy",
    "rollback", "vendor", "capacity", "latency", "errors", "security", "data-loss", "dns",
    "certificates", "kubernetes", "cache", "queue", "storage", "mobile", "web", "api",
    "batch", "monitoring", "false-positive", "recurring", "sla-breach", "eu", "us", "apac",
    "on-call", "postmortem-needed", "hotfix", "config", "third-party", "cost", "compliance",
    "backup", "migration",
)  # fmt: skip
# Search terms from rare to common in the generated text, each as a user would type them.
SEARCH_TERMS = ("certificates expire", "kafka lag", "replication", "rollback", "timeouts")
FILTERS = (
    ("investigating", "SEV1"),
    ("resolved", "SEV2"),
    ("closed", "SEV1"),
    ("monitoring", "SEV3"),
)

for _text in (*SERVICES, *SYMPTOMS, *REGIONS, *SENTENCES, *COMMENTS, *CATEGORIES, *TAGS):
    # Written into COPY's text format and JSON unescaped: nothing needing an escape allowed.
    assert not set(_text) & set('\t\n\r\\"'), _text


NULL = "\\N"  # COPY text format


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


@dataclass
class Catalog:
    """The rows the loader made through the services, that the generated rows point at."""

    users: list[str]
    names: dict[str, str]
    bench_user: str
    categories: list[str]
    tags: list[str]
    anchor: datetime


def _inline_html(markdown: str) -> str:
    html = render(markdown)
    assert html.startswith("<p>"), html
    assert html.endswith("</p>\n"), html
    return html[3:-5]


class Generator:
    """Deterministic rows for one batch of incidents, as COPY text, for each bulk table."""

    def __init__(self, catalog: Catalog, total: int, seed: int) -> None:
        self.catalog = catalog
        self.total = total
        self.seed = seed
        # Whole days, so that an offset's day and time of day are a division away.
        self.start_day = (catalog.anchor - timedelta(days=SPAN_DAYS)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.shift = (catalog.anchor - timedelta(days=SPAN_DAYS) - self.start_day).total_seconds()
        self._days: dict[int, str] = {}
        self.span = SPAN_DAYS * 86400.0
        self.next_event = 1
        # Markdown rendered once per template: the values filled in need no escaping, so the
        # HTML of a filled sentence is its template's HTML filled the same way.
        self._html = {text: _inline_html(text) for text in (*SENTENCES, *COMMENTS)}

    def _ts(self, offset: float) -> str:
        """`offset` seconds after the data's start (anchor - SPAN_DAYS) as PostgreSQL reads a
        timestamptz; a day's date is formatted once (datetime.isoformat for each of ~15
        timestamps per incident was a third of the generator's time)."""
        micros = int((offset + self.shift) * 1_000_000)
        day, rest = divmod(micros, 86_400_000_000)
        date = self._days.get(day)
        if date is None:
            date = self._days[day] = (self.start_day + timedelta(days=day)).strftime("%Y-%m-%d")
        seconds, micro = divmod(rest, 1_000_000)
        hour, seconds = divmod(seconds, 3600)
        minute, second = divmod(seconds, 60)
        return f"{date} {hour:02d}:{minute:02d}:{second:02d}.{micro:06d}+00"

    def _fill(self, template: str, rng: random.Random) -> tuple[str, str]:
        """A sentence and the inline HTML it renders to."""
        values = {
            "service": rng.choice(SERVICES),
            "region": rng.choice(REGIONS),
            "hour": rng.randrange(24),
            "pct": rng.randrange(2, 99),
        }
        return template.format(**values), self._html[template].format(**values)

    def batch(self, first: int, last: int) -> dict[str, str]:
        rng = random.Random(self.seed * 1_000_003 + first)
        out: dict[str, list[str]] = {table: [] for table in TABLES}
        users, categories, tags = self.catalog.users, self.catalog.categories, self.catalog.tags
        names = self.catalog.names
        horizon = self.span - 60.0
        for number in range(first, last + 1):
            declared = min(horizon, self.span * number / (self.total + 1) + rng.uniform(0, 40))
            age_days = (self.span - declared) / 86400
            severity = rng.choices(("SEV1", "SEV2", "SEV3", "SEV4"), (5, 15, 45, 35))[0]
            status = self._status(rng, age_days)
            reporter = rng.choice(users)
            commander = rng.choice(users) if rng.random() < 0.7 else None
            restricted = rng.random() < 0.03
            source = rng.choices(("manual", "alertmanager", "generic"), (70, 25, 5))[0]
            service = rng.choice(SERVICES)
            title = f"{service}: {rng.choice(SYMPTOMS)} in {rng.choice(REGIONS)}"
            paragraphs = []
            description_html = ""
            for _ in range(rng.randint(1, 3)):
                (first_md, first_html), (second_md, second_html) = (
                    self._fill(rng.choice(SENTENCES), rng),
                    self._fill(rng.choice(SENTENCES), rng),
                )
                paragraphs.append(f"{first_md} {second_md}")
                description_html += f"<p>{first_html} {second_html}</p>\n"
            description = "\n\n".join(paragraphs)
            category = rng.choice(categories) if rng.random() < 0.9 else None

            # The workflow, as service.workflow stamps it.
            events: list[tuple[float, str, str | None, str | None, str | None, str]] = []
            title_json = json.dumps({"title": title, "source": source})
            events.append((declared, "declared", None, severity, reporter, title_json))
            t = declared
            ack = mitigated = resolved = closed = None
            path = self._path(rng, status)
            previous = "triage"
            for step in path:
                t += (
                    rng.lognormvariate(5.5, 1.0)
                    if previous == "triage"
                    else (rng.lognormvariate(7.5, 1.0))
                )
                t = min(t, horizon)
                actor = commander or reporter
                events.append((t, "status_changed", previous, step, actor, "{}"))
                if ack is None:
                    ack = t
                if step == "monitoring" and mitigated is None:
                    mitigated = t
                if step == "resolved":
                    resolved = t
                    mitigated = mitigated or t
                if step == "closed":
                    closed = t + rng.uniform(3600, 3 * 86400)
                    closed = min(closed, horizon)
                    events[-1] = (closed, "status_changed", previous, step, actor, "{}")
                previous = step
            end = events[-1][0]
            if commander is not None:
                at = min(declared + rng.uniform(30, 900), end)
                events.append((at, "commander_changed", None, names[commander], reporter, "{}"))
            if rng.random() < 0.1:
                changed_to = rng.choice(("SEV1", "SEV2", "SEV3", "SEV4"))
                at = rng.uniform(declared, end)
                events.append((at, "severity_changed", severity, changed_to, None, "{}"))
            people: dict[tuple[str, str], float] = {(reporter, "watcher"): declared}
            for _ in range(rng.choices((0, 1, 2), (55, 35, 10))[0]):
                user = rng.choice(users)
                if (user, "assignee") not in people:
                    at = rng.uniform(declared, end)
                    people[(user, "assignee")] = at
                    events.append(
                        (
                            at,
                            "assignee_added",
                            None,
                            names[user],
                            commander,
                            json.dumps({"user_id": user}),
                        )
                    )
            if rng.random() < 0.3:
                people.setdefault((rng.choice(users), "watcher"), rng.uniform(declared, end))
            for _ in range(rng.choices((0, 1, 2, 3), (60, 25, 10, 5))[0]):
                comment_id = f"{rng.getrandbits(128):032x}"
                at = rng.uniform(declared, end)
                body, body_html = self._fill(rng.choice(COMMENTS), rng)
                author = rng.choice(users)
                out["incident_comments"].append(
                    f"{comment_id}\t{number}\t{author}\t{_copy_text(body)}\t"
                    f"<p>{body_html}</p>\\n\t{self._ts(at)}\t\\N\t\\N\n"
                )
                events.append(
                    (at, "comment_added", None, None, author, f'{{"comment_id": "{comment_id}"}}')
                )
            events.sort(key=lambda e: e[0])
            for at, kind, old, new, who, data in events:
                out["incident_events"].append(
                    f"{self.next_event}\t{number}\t{self._ts(at)}\t{who or NULL}\t{kind}\t"
                    f"{old or NULL}\t{new or NULL}\t\t\t{data}\tf\n"
                )
                self.next_event += 1
            for (user, role), at in people.items():
                out["incident_participants"].append(f"{number}\t{user}\t{role}\t{self._ts(at)}\n")
            for tag in rng.sample(tags, rng.choices((0, 1, 2, 3), (30, 35, 25, 10))[0]):
                out["incident_tag_links"].append(f"{number}\t{tag}\n")

            def stamp(value: float | None) -> str:
                return NULL if value is None else self._ts(value)

            out["incidents"].append(
                f"{number}\t{title}\t{_copy_text(description)}\t{_copy_text(description_html)}\t"
                f"{severity}\t{status}\t{'restricted' if restricted else 'public'}\t"
                f"{category or NULL}\t{reporter}\t{commander or NULL}\t{source}\t"
                f"{self._ts(declared)}\t{stamp(ack)}\t{stamp(mitigated)}\t"
                f"{stamp(resolved if status in ('resolved', 'closed') else None)}\t"
                f"{stamp(closed)}\t{self._ts(end)}\n"
            )
        return {table: "".join(lines) for table, lines in out.items()}

    @staticmethod
    def _status(rng: random.Random, age_days: float) -> str:
        statuses = ("triage", "investigating", "identified", "monitoring", "resolved", "closed")
        if age_days > 14:
            weights: tuple[float, ...] = (0, 0.5, 0, 0, 11.5, 88)
        elif age_days > 2:
            weights = (2, 4, 4, 5, 35, 50)
        else:
            weights = (15, 20, 15, 15, 25, 10)
        return rng.choices(statuses, weights)[0]

    @staticmethod
    def _path(rng: random.Random, status: str) -> list[str]:
        """The statuses an incident went through after triage to reach `status`."""
        if status == "triage":
            return []
        if status in ("resolved", "closed") and rng.random() < 0.3:
            path = ["resolved"]  # a false alarm, or an alert that recovered on its own
        else:
            path = ["investigating"]
            if rng.random() < 0.4:
                path.append("identified")
            if rng.random() < 0.6 or status == "monitoring":
                path.append("monitoring")
            path += ["resolved", "closed"]
            if status in ("investigating", "identified", "monitoring"):
                path = path[: path.index(status) + 1] if status in path else path[:1]
                if path[-1] != status:
                    path.append(status)
        if status == "resolved" and path[-1] == "closed":
            path.pop()
        return path


COPY_COLUMNS = {
    "incidents": (
        "number, title, description, description_html, severity, status, visibility, "
        "category_id, reporter_id, commander_id, source, declared_at, acknowledged_at, "
        "mitigated_at, resolved_at, closed_at, updated_at"
    ),
    "incident_events": (
        "id, incident_number, at, actor_id, kind, old_value, new_value, body, body_html, data, "
        "pinned"
    ),
    "incident_comments": (
        "id, incident_number, author_id, body, body_html, created_at, edited_at, deleted_at"
    ),
    "incident_tag_links": "incident_number, tag_id",
    "incident_participants": "incident_number, user_id, role, created_at",
}


# -- the private PostgreSQL, cached between runs ---------------------------------------------


def postgres_settings() -> str:
    """Production-like settings for this machine (the tests' throwaway-cluster settings, fsync
    and synchronous_commit off, stay under them: they change writes, not these reads)."""
    ram_mib = int(meminfo_gib("MemTotal") * 1024)
    shared = min(ram_mib // 4, 4096)
    return (
        "# opsdeck bench/incidents_api.py, rewritten at every start\n"
        f"shared_buffers = {shared}MB\n"
        f"effective_cache_size = {ram_mib // 2}MB\n"
        "work_mem = 16MB\n"
        "maintenance_work_mem = 1GB\n"
        "max_wal_size = 8GB\n"
        # Used WAL segments are removed rather than kept for reuse: the load writes gigabytes
        # of WAL that would otherwise stay in the cache entry.
        "wal_recycle = off\n"
        "checkpoint_timeout = 30min\n"
        "random_page_cost = 1.1\n"
        "max_connections = 200\n"
    )


@dataclass
class Database:
    """The PostgreSQL cluster of one cache entry (tests/stack.py's PostgresCluster)."""

    helpers: ModuleType
    folder: Path
    cluster: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    loaded_now: bool = False
    _lock: Any = None

    @property
    def ready_file(self) -> Path:
        return self.folder / "ready.json"

    @property
    def url(self) -> str:
        return str(self.cluster.url)

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.cluster.port} user=opsdeck dbname=opsdeck_test"

    def lock(self) -> None:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.folder.parent.chmod(0o755)
        self._lock = (self.folder.parent / f"{self.folder.name}.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("  another run uses this cache entry; waiting for it", flush=True)
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def start(self) -> None:
        helpers = self.helpers
        bindir = helpers.find_postgres_bindir()
        if bindir is None:
            raise BenchFailed("PostgreSQL server binaries (initdb, pg_ctl) not found")
        run_as = helpers._server_user()
        if self.ready_file.exists():
            self.info = json.loads(self.ready_file.read_text())
            self.cluster = helpers.PostgresCluster(bindir, self.folder / "postgres", run_as=run_as)
            self.cluster.version = self.info["postgres"]
            # A run killed outright leaves its postmaster behind; nobody else holds the lock.
            helpers._kill_postmaster(self.cluster.data)
            self._configure()
            self.cluster.start()
            return
        if self.folder.exists():
            print("  removing an incomplete cache entry", flush=True)
            pid = postmaster_pid(self.folder / "postgres" / "data")
            if pid:
                helpers._kill_postmaster(self.folder / "postgres" / "data")
            shutil.rmtree(self.folder)
        self.folder.mkdir(mode=0o755)
        self.folder.chmod(0o755)
        self.cluster = helpers.PostgresCluster(bindir, self.folder / "postgres", run_as=run_as)
        self.cluster.init()
        with (self.cluster.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("include_if_exists = 'opsdeck-bench.conf'\n")
        self._configure()
        self.cluster.start()
        self.cluster.create_database()
        self.loaded_now = True

    def _configure(self) -> None:
        path = self.cluster.data / "opsdeck-bench.conf"
        # The socket folder again (tests/stack.py wrote the one of the day of the load), so a
        # cache entry still starts after its folder moved.
        path.write_text(
            postgres_settings() + f"unix_socket_directories = '{self.cluster.root}'\n",
            encoding="utf-8",
        )
        if self.cluster.run_as:
            stat = self.cluster.data.stat()
            os.chown(path, stat.st_uid, stat.st_gid)

    def mark_ready(self, info: dict[str, Any]) -> None:
        self.info = info
        self.ready_file.write_text(json.dumps(info, indent=2, sort_keys=True))

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        if self._lock is not None:
            self._lock.close()


def opsdeck_env(root: Path, database_url: str, redis_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OPSDECK_")
        and key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"}
        and not key.endswith("_FILE")
    }
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    env.update(
        OPSDECK_ENVIRONMENT="production",
        OPSDECK_DATA_DIR=str(root / "data"),
        OPSDECK_DATABASE_URL=database_url,
        OPSDECK_SECRET_KEY=secrets.token_urlsafe(48),
        OPSDECK_WEBHOOK_SECRET=secrets.token_urlsafe(48),
        OPSDECK_LOG_FORMAT="json",
        OPSDECK_LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(root / "metrics"),
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["OPSDECK_REDIS_URL"] = redis_url
    return env


# -- loading ---------------------------------------------------------------------------------


def make_catalog(database_url: str) -> tuple[Catalog, str]:
    """Users, categories and tags through the services (hashing, audit, as the app does), and
    the benchmark user's API token."""
    from opsdeck.accounts import service as accounts
    from opsdeck.core.db import make_engine, make_sessionmaker
    from opsdeck.core.security import Passwords
    from opsdeck.incidents.models import Category, Tag

    engine = make_engine(database_url, pool_size=1)
    # Nobody signs in with these passwords: the cheapest argon2 parameters will do.
    passwords = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
    try:
        with make_sessionmaker(engine)() as session:
            users = []
            for index in range(USERS):
                name = BENCH_USER if index == 0 else f"engineer{index:02d}"
                user = accounts.create_user(
                    session,
                    passwords,
                    username=name,
                    email=f"{name}@example.com",
                    password=secrets.token_urlsafe(18),
                    role="admin" if index in (1, 2) else "member",
                )
                users.append(user)
            token = accounts.create_api_token(session, users[0], name="bench").token
            categories = [Category(name=name) for name in CATEGORIES]
            tags = [Tag(name=name) for name in TAGS]
            session.add_all([*categories, *tags])
            session.flush()
            catalog = Catalog(
                users=[user.id for user in users],
                names={user.id: user.username for user in users},
                bench_user=users[0].id,
                categories=[category.id for category in categories],
                tags=[tag.id for tag in tags],
                anchor=datetime.now(UTC).replace(microsecond=0),
            )
            session.commit()
    finally:
        engine.dispose()
    return catalog, token


def _writer(dsn: str, table: str, chunks: queue.Queue[bytes | None], errors: list[str]) -> None:
    try:
        with (
            psycopg.connect(dsn, autocommit=True) as connection,
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({COPY_COLUMNS[table]}) FROM STDIN") as copy,
        ):
            while (chunk := chunks.get()) is not None:
                copy.write(chunk)
    except Exception as exc:
        errors.append(f"{table}: {exc}")
        while chunks.get() is not None:  # let the producer finish
            pass


def schema_key() -> str:
    """The schema head and a digest of every migration: a migration merged below the head
    (they are numbered by branch) changes the schema without changing the head."""
    from opsdeck import migrations

    digest = hashlib.sha256()
    for path in sorted((Path(migrations.__file__).parent / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{head_revision() or 'none'}-{digest.hexdigest()[:8]}"


def fill_search_index(database_url: str) -> str:
    """The full-text index, built by the search service from the loaded rows, when there is
    one (service.search.rebuild_index, migration 0006)."""
    try:
        search = importlib.import_module("opsdeck.incidents.service.search")
    except ModuleNotFoundError:
        return "no search index in this schema"
    rebuild = getattr(search, "rebuild_index", None)
    if rebuild is None:
        return "no search.rebuild_index: search index left as it is"
    from opsdeck.core.db import make_engine, make_sessionmaker

    started = time.perf_counter()
    engine = make_engine(database_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            rebuild(session)
            session.commit()
    finally:
        engine.dispose()
    return f"search index rebuilt (search.rebuild_index) in {time.perf_counter() - started:.0f} s"


def one(connection: psycopg.Connection[Any], sql: str, *params: Any) -> Any:
    row = connection.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def load(database: Database, env: dict[str, str], root: Path, total: int, seed: int) -> None:
    started = time.perf_counter()
    print(f"  loading {total:,} incidents (first run with this schema and count)", flush=True)
    run_opsdeck(env, root, "migrate")
    catalog, token = make_catalog(database.url)
    print(
        f"    schema (opsdeck migrate), users, categories and tags in "
        f"{time.perf_counter() - started:.0f} s; COPY",
        flush=True,
    )
    dsn = database.dsn
    with psycopg.connect(dsn, autocommit=True) as connection:
        # The search index (migration 0006) is rebuilt from the loaded rows: its indexes and
        # key go and come back with the others.
        tables = [*TABLES, SEARCH_TABLE]
        indexes = connection.execute(
            "SELECT c.relname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relname = ANY(%s) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            (tables,),
        ).fetchall()
        foreign_keys = connection.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            (tables,),
        ).fetchall()
        for table, name, _ in foreign_keys:
            connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for _, name, _ in indexes:
            connection.execute(f"DROP INDEX {name}")

    queues: dict[str, queue.Queue[bytes | None]] = {t: queue.Queue(maxsize=8) for t in TABLES}
    errors: list[str] = []
    writers = [
        threading.Thread(target=_writer, args=(dsn, t, queues[t], errors), daemon=True)
        for t in TABLES
    ]
    for writer in writers:
        writer.start()
    generator = Generator(catalog, total, seed)
    rows = dict.fromkeys(TABLES, 0)
    reported = time.perf_counter()
    try:
        for first in range(1, total + 1, BATCH):
            last = min(total, first + BATCH - 1)
            for table, text in generator.batch(first, last).items():
                rows[table] += text.count("\n")
                queues[table].put(text.encode())
            if errors:
                raise BenchFailed("COPY failed: " + "; ".join(errors))
            if time.perf_counter() - reported > 15:
                elapsed = time.perf_counter() - started
                print(f"    {last:,} incidents after {elapsed:.0f} s", flush=True)
                reported = time.perf_counter()
    finally:
        for table in TABLES:
            queues[table].put(None)
        for writer in writers:
            writer.join()
    if errors:
        raise BenchFailed("COPY failed: " + "; ".join(errors))
    copied = time.perf_counter() - started
    print(f"    copied in {copied:.0f} s; building indexes and foreign keys", flush=True)

    def build(connection: psycopg.Connection[Any], search_table: bool) -> None:
        for table, _, definition in indexes:
            if (table == SEARCH_TABLE) == search_table:
                connection.execute(definition)
        for table, name, definition in foreign_keys:
            if (table == SEARCH_TABLE) == search_table:
                connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '1GB'")
        connection.execute("SET max_parallel_maintenance_workers = 2")
        build(connection, search_table=False)
        # The search documents are built by the search service once the comments are indexed
        # (it reads each incident's comments), and their GIN index after them.
        print(f"    {fill_search_index(database.url)}", flush=True)
        build(connection, search_table=True)
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('incidents', 'number'), max(number)) "
            "FROM incidents"
        )
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('incident_events', 'id'), max(id)) "
            "FROM incident_events"
        )
        indexed = time.perf_counter()
        print(
            f"    indexes and keys in {indexed - started - copied:.0f} s; VACUUM ANALYZE",
            flush=True,
        )
        connection.execute("VACUUM (ANALYZE)")
        connection.execute("CHECKPOINT")
        sizes = {
            table: one(connection, "SELECT pg_total_relation_size(%s::regclass)", table)
            for table in TABLES
        }
    seconds = time.perf_counter() - started
    print(f"    loaded in {seconds:.0f} s", flush=True)
    database.mark_ready(
        {
            "postgres": database.cluster.version,
            "head": head_revision(),
            "incidents": total,
            "rows": rows,
            "bytes": sizes,
            "token": token,
            "bench_user": catalog.bench_user,
            "anchor": catalog.anchor.isoformat(),
            "load_seconds": round(seconds, 1),
            "copy_seconds": round(copied, 1),
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seed": seed,
            "data_version": DATA_VERSION,
        }
    )


# -- what each request sends to the database -------------------------------------------------

FROM_INCIDENTS = re.compile(r"\bFROM\s+incidents\b", re.IGNORECASE)
ANY_INCIDENT_TABLE = re.compile(r"\bFROM\s+incident", re.IGNORECASE)
Statement = tuple[str, Any]


class SqlRecorder:
    """Every statement any SQLAlchemy engine of this process sends, while `statements` is set."""

    def __init__(self) -> None:
        self.statements: list[Statement] | None = None

    def __call__(
        self,
        _conn: object,
        _cursor: object,
        statement: str,
        parameters: Any,
        _context: object,
        _executemany: bool,
    ) -> None:
        # The job relay (core.jobs) polls the outbox from its own thread: not the request's.
        if self.statements is not None and threading.current_thread().name != "job-relay":
            self.statements.append((statement, parameters))


def is_read(statement: str) -> bool:
    return statement.lstrip().upper().startswith(("SELECT", "WITH"))


@dataclass
class Sample:
    path: str
    status: int
    body: Any
    statements: list[Statement]

    @property
    def reads(self) -> list[Statement]:
        return [s for s in self.statements if is_read(s[0])]

    @property
    def main(self) -> list[Statement]:
        """The endpoint's query on incidents: each read whose FROM names the incidents table
        (else, say for a search index of its own, each read naming an incident table)."""
        found = [s for s in self.reads if FROM_INCIDENTS.search(s[0])]
        return found or [s for s in self.reads if ANY_INCIDENT_TABLE.search(s[0])]


@dataclass
class Endpoint:
    key: str
    label: str
    paths: list[str]
    note: str
    target: str = ""
    min_rate: float | None = None
    max_ms: tuple[float, float] | None = None  # (percentile, ms)
    samples: list[Sample] = field(default_factory=list)
    unavailable: str = ""
    # What the HTTP load cycles through when it is not the sampled paths (stats-cold: periods
    # never asked before, so no answer is cached).
    load_paths: list[str] | None = None


class InProcessApp:
    """The application built in this process on the same database and settings as the server,
    to record the SQL of sample requests (the server's own processes cannot be watched)."""

    def __init__(self, env: dict[str, str], token: str) -> None:
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

        from opsdeck.app import create_app
        from opsdeck.core.observability import configure_logging
        from opsdeck.settings import Settings

        configure_logging(level="WARNING", fmt="console")  # not a line per sample request
        self.recorder = SqlRecorder()
        event.listen(Engine, "before_cursor_execute", self.recorder)
        settings = Settings(
            environment="production",
            data_dir=Path(env["OPSDECK_DATA_DIR"]),
            database_url=env["OPSDECK_DATABASE_URL"],
            redis_url=env.get("OPSDECK_REDIS_URL", ""),
            secret_key=env["OPSDECK_SECRET_KEY"],
            webhook_secret=env["OPSDECK_WEBHOOK_SECRET"],
            log_level="WARNING",
        )
        self.client = TestClient(
            create_app(settings),
            base_url="http://127.0.0.1",
            headers={"Authorization": f"Bearer {token}"},
        )
        self.client.__enter__()

    def sample(self, path: str) -> Sample:
        self.recorder.statements = []
        try:
            response = self.client.get(path)
        finally:
            statements, self.recorder.statements = self.recorder.statements, None
        try:
            body = response.json()
        except ValueError:
            body = response.text[:300]
        return Sample(path, response.status_code, body, statements or [])

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        event.remove(Engine, "before_cursor_execute", self.recorder)


def _package_of(filename: str) -> str:
    """Who a profiled function belongs to: a site-packages distribution, an opsdeck module, the
    standard library, or C built-ins."""
    if filename == "~" or filename.startswith("<"):
        return "built-ins (C: json, hashing, sockets, ...)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if "opsdeck" in parts:
        rest = parts[parts.index("opsdeck") + 1 :]
        return "opsdeck." + (rest[0].removesuffix(".py") if rest else "")
    return "stdlib " + Path(filename).stem


def profile_endpoint(app: InProcessApp, endpoint: Endpoint, requests: int) -> None:
    """Run `requests` of the endpoint's sample requests through the application in this process
    under cProfile (timed by process CPU time) and print where the CPU goes, by package (self
    time). The ASGI app is called
    in this thread (httpx's ASGITransport on one event loop, sync routes inline: cProfile sees
    one thread), so the client's share (httpx) is in it too and named as such; no uvicorn, no
    sockets to the client (the database's are real)."""
    import cProfile
    import pstats

    paths = endpoint.paths
    headers = dict(app.client.headers)

    async def run(count: int, profiler: cProfile.Profile | None) -> None:
        transport = httpx.ASGITransport(app=app.client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=headers
        ) as client:
            if profiler is not None:
                profiler.enable()
            for index in range(count):
                response = await client.get(paths[index % len(paths)])
                if response.status_code >= 500:
                    raise BenchFailed(f"profiling {paths[index % len(paths)]}: {response.text}")
            if profiler is not None:
                profiler.disable()

    import anyio.to_thread

    async def inline(func: Callable[..., Any], *args: Any, **_options: Any) -> Any:
        return func(*args)

    # Sync routes and dependencies run in anyio's worker threads, which cProfile does not see:
    # while profiling they run in this thread (the same work, without the hand-over).
    offload = anyio.to_thread.run_sync
    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    try:
        asyncio.run(run(20, None))  # warm caches (compiled SQL, pydantic) outside the profile
        profiler = cProfile.Profile(time.process_time)  # CPU, not waiting on the database
        started = time.process_time()
        asyncio.run(run(requests, profiler))
        cpu_ms = (time.process_time() - started) * 1000 / requests
    finally:
        anyio.to_thread.run_sync = offload
    by_package: dict[str, float] = {}
    raw_stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, self_time, _cum, _callers) in raw_stats.items():
        package = _package_of(filename)
        by_package[package] = by_package.get(package, 0.0) + self_time
    total = sum(by_package.values()) or 1.0
    print(
        f"  {endpoint.label}: {requests} requests in this process under cProfile, "
        f"{cpu_ms:.1f} ms of CPU each (profiling inflates it); self time by package:"
    )
    for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:14]:
        print(f"    {100 * seconds / total:5.1f} %  {package}")
    print("    the functions with the most self time (where what is left goes):")
    ranked = sorted(raw_stats.items(), key=lambda item: -item[1][2])[:PROFILE_FUNCTIONS]
    for (filename, line, name), (_cc, calls, self_time, _cum, _callers) in ranked:
        where = f"{_package_of(filename)}: {Path(filename).name}:{line}" if line else "built-in"
        print(
            f"    {100 * self_time / total:5.1f} %  {calls / requests:6.1f} calls/request  "
            f"{name} ({where})"
        )


def endpoints(info: dict[str, Any], samples: int, seed: int) -> list[Endpoint]:
    total = int(info["incidents"])
    rng = random.Random(seed)
    anchor = datetime.fromisoformat(info["anchor"])
    numbers = [rng.randint(1, total) for _ in range(samples)]
    # A deep page: the page after a key far down the default order (-number), as the cursor of
    # the page before it would name it (core.pagination's own encoder).
    deep = [rng.randint(1, max(1, total // 2)) for _ in range(samples)]

    def cursor(number: int) -> str:
        return encode_cursor(INCIDENT_SORTS, "-number", SimpleNamespace(number=number))

    since, until = anchor - timedelta(days=STATS_DAYS), anchor
    stats_query = urlencode({"since": since.isoformat(), "until": until.isoformat()})

    def cold_stats(shift: int) -> str:
        start = since + timedelta(seconds=shift)
        return f"{API}/stats?{urlencode({'since': start.isoformat(), 'until': until.isoformat()})}"

    return [
        Endpoint(
            "get",
            "GET /incidents/{number}",
            [f"{API}/{n}" for n in numbers],
            f"{len(set(numbers))} numbers drawn at random from 1..{total:,}",
            "≥ 1,000 req/s, p99 ≤ 100 ms",
            1000.0,
            (0.99, 100.0),
        ),
        Endpoint(
            "list",
            "GET /incidents?limit=25",
            [f"{API}?limit=25"],
            "the first page, default order (-number)",
            "≥ 800 req/s, p99 ≤ 100 ms",
            800.0,
            (0.99, 100.0),
        ),
        Endpoint(
            "deep",
            "GET /incidents?limit=25&cursor=…",
            [f"{API}?{urlencode({'limit': 25, 'cursor': cursor(n)})}" for n in deep],
            f"{len(set(deep))} cursors after keys drawn from 1..{total // 2:,} (the older half)",
            "p95 ≤ 50 ms",
            None,
            (0.95, 50.0),
        ),
        Endpoint(
            "filtered",
            "GET /incidents?status=&severity=&limit=25",
            [f"{API}?{urlencode({'status': s, 'severity': v, 'limit': 25})}" for s, v in FILTERS],
            "in turn: " + ", ".join(f"{s}+{v}" for s, v in FILTERS),
        ),
        Endpoint(
            "search",
            "GET /incidents?q=…&limit=25",
            [f"{API}?{urlencode({'q': term, 'limit': 25})}" for term in SEARCH_TERMS],
            "in turn: " + ", ".join(repr(term) for term in SEARCH_TERMS),
            "p95 ≤ 100 ms",
            None,
            (0.95, 100.0),
        ),
        Endpoint(
            "stats",
            f"GET /incidents/stats ({STATS_DAYS} days, cached)",
            [f"{API}/stats?{stats_query}"],
            f"since {since:%Y-%m-%d %H:%M} until {until:%Y-%m-%d %H:%M} UTC (the data's end); "
            "the same period every time and no change: cache hits (the change marker and one "
            "Redis GET a request), the answer computed once by the sample before",
            "p95 ≤ 250 ms",
            None,
            (0.95, 250.0),
        ),
        Endpoint(
            "stats-cold",
            f"GET /incidents/stats ({STATS_DAYS} days, cold)",
            # From 1 s: `since` itself is the cached line's period.
            [cold_stats(1 + shift) for shift in range(STATS_COLD_SAMPLES)],
            f"the same {STATS_DAYS} days, `since` a second later at every request (periods "
            f"never asked before: every answer computed); raw: the SQL of "
            f"{STATS_COLD_SAMPLES} of them",
            "p95 ≤ 250 ms",
            None,
            (0.95, 250.0),
            load_paths=[
                cold_stats(shift)
                for shift in range(
                    1 + STATS_COLD_SAMPLES, 1 + STATS_COLD_SAMPLES + STATS_COLD_PERIODS
                )
            ],
        ),
    ]


def take_samples(app: InProcessApp, endpoint: Endpoint) -> None:
    """Run the sample requests once; an endpoint the server does not have yet is marked."""
    if endpoint.key == "search":
        probe = app.sample(f"{API}?{urlencode({'q': 'zqxjvbnonsense', 'limit': 25})}")
        if probe.status != 200:
            endpoint.unavailable = f"q= answered {probe.status}"
            return
        if isinstance(probe.body, dict) and probe.body.get("items"):
            endpoint.unavailable = "q= is ignored (a nonsense word matched every incident)"
            return
    if endpoint.key == "stats":
        # Fill the cache first: what is measured (and recorded) is a request it answers.
        app.sample(endpoint.paths[0])
    hidden = 0
    for path in endpoint.paths:
        sample = app.sample(path)
        if endpoint.key == "get" and sample.status == 404:
            hidden += 1  # restricted, and the benchmark's user takes no part in it
            continue
        if sample.status != 200:
            detail = json.dumps(sample.body)[:200]
            endpoint.unavailable = f"{path.split('?')[0]} answered {sample.status}: {detail}"
            endpoint.samples = []
            return
        endpoint.samples.append(sample)
    if hidden:
        endpoint.note += f"; {hidden} of them restricted (404 for this member) left out"
    if endpoint.key == "search" and endpoint.samples:
        found = [
            len(s.body.get("items", [])) if isinstance(s.body, dict) else 0
            for s in endpoint.samples
        ]
        if not any(found):
            endpoint.unavailable = (
                "every search found nothing: the search index is not filled by COPY (teach the "
                "loader how the search schema is populated)"
            )
            endpoint.samples = []
        else:
            endpoint.note += "; items on the first page: " + ", ".join(map(str, found))
    if not endpoint.samples and not endpoint.unavailable:
        endpoint.unavailable = "no sample answered 200"


# -- load: HTTP and psycopg ------------------------------------------------------------------


@dataclass
class Load:
    """What one timed load saw. A request started in the measured window counts in the
    latencies even when it ends after it (a slow tail is not cut off); the rate counts the
    requests that ended inside the window."""

    latencies: list[float] = field(default_factory=list)
    completed: int = 0
    total: int = 0  # every request of the call, warm-up and tail included (for CPU per request)
    errors: dict[int, int] = field(default_factory=dict)

    def record(self, started: float, done: float, window: tuple[float, float], ok: bool) -> None:
        self.total += 1
        if started < window[0]:
            return
        if ok:
            self.latencies.append(done - started)
            if done <= window[1]:
                self.completed += 1


@dataclass
class Run:
    latencies: list[float]
    completed: int
    total: int
    seconds: float
    errors: dict[int, int]
    cpu: dict[str, float]  # cores busy on average over the call
    cpu_per_request: dict[str, float]  # ms of CPU per request, over the call
    busy_cores: float

    @property
    def rate(self) -> float:
        return self.completed / self.seconds

    def p(self, share: float) -> float:
        return percentile(self.latencies, share) * 1000


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lower.index(b"\r\n", start + 2)
        await reader.readexactly(int(lower[start + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, b"\r\nconnection: close" in lower


async def _http_load(
    port: int, token: str, paths: Sequence[str], concurrency: int, warmup: float, duration: float
) -> Load:
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\n\r\n"
        ).encode()
        for path in paths
    ]
    load = Load()
    counter = iter(range(10**12))
    measure_from = time.perf_counter() + warmup
    stop = measure_from + duration
    window = (measure_from, stop)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (started := time.perf_counter()) < stop:
                writer.write(requests[next(counter) % len(requests)])
                status, close = await _read_response(reader)
                load.record(started, time.perf_counter(), window, status == 200)
                if status != 200 and started >= measure_from:
                    load.errors[status] = load.errors.get(status, 0) + 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return load


async def _raw_load(
    dsn: str,
    plans: Sequence[Sequence[Statement]],
    concurrency: int,
    warmup: float,
    duration: float,
) -> Load:
    connections = [
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(concurrency)
    ]
    load = Load()
    counter = iter(range(10**12))
    measure_from = time.perf_counter() + warmup
    stop = measure_from + duration
    window = (measure_from, stop)

    async def worker(connection: psycopg.AsyncConnection[Any]) -> None:
        async with connection.cursor() as cursor:
            while (started := time.perf_counter()) < stop:
                for sql, params in plans[next(counter) % len(plans)]:
                    await cursor.execute(sql, params)
                    await cursor.fetchall()
                load.record(started, time.perf_counter(), window, True)

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for connection in connections:
            await connection.close()
    return load


@dataclass
class Processes:
    """Whose CPU time is counted: the web server, PostgreSQL, Redis, this script."""

    web: int
    postgres_data: Path
    redis: int | None

    def cpu(self) -> dict[str, float]:
        groups = {"web": cpu_seconds(self.web, reaped_children=True)}
        groups["web"] += sum(cpu_seconds(pid) for pid in children_of(self.web))
        master = postmaster_pid(self.postgres_data)
        if master:
            groups["PostgreSQL"] = cpu_seconds(master, reaped_children=True) + sum(
                cpu_seconds(pid) for pid in children_of(master)
            )
        if self.redis:
            groups["Redis"] = cpu_seconds(self.redis)
        groups["client (this script)"] = cpu_seconds(os.getpid())
        return groups


def measure(processes: Processes, run_load: Callable[[], Load], duration: float) -> Run:
    cpu_before, (busy_before, _) = processes.cpu(), machine_cpu()
    started = time.perf_counter()
    load = run_load()
    wall = time.perf_counter() - started
    cpu_after, (busy_after, _) = processes.cpu(), machine_cpu()
    # Over the whole call (warm-up and tail included): cores busy on average, and CPU time
    # divided by every request the call made.
    used = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    return Run(
        latencies=load.latencies,
        completed=load.completed,
        total=load.total,
        seconds=duration,
        errors=load.errors,
        cpu={name: seconds / wall for name, seconds in used.items()},
        cpu_per_request={
            name: seconds * 1000 / max(load.total, 1) for name, seconds in used.items()
        },
        busy_cores=(busy_after - busy_before) / wall,
    )


# -- the OpsDeck under test ------------------------------------------------------------------


@dataclass
class Server:
    helpers: ModuleType
    root: Path
    env: dict[str, str]
    workers: int
    port: int = 0
    managed: Any = None

    def start(self) -> None:
        self.port = self.helpers.free_port()
        log_path = self.root / "web.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "opsdeck",
                    "web",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.managed = self.helpers.ManagedProcess("web", process, log_path, self.env)
        self.helpers.wait_until(
            self._answers,
            timeout=STARTUP_TIMEOUT,
            message=f"opsdeck web on 127.0.0.1:{self.port}",
            diagnostics=self.managed.diagnostics,
        )
        # uvicorn's supervisor answers before every worker has started: wait for all of them.
        self.helpers.wait_until(
            lambda: len(children_of(process.pid)) >= self.workers,
            timeout=STARTUP_TIMEOUT,
            message=f"{self.workers} web processes",
        )

    def _answers(self) -> bool:
        self.managed.assert_running()
        return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.managed is None:
            return
        process = self.managed.process
        if process.poll() is None:
            self.managed.stop(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


# -- reporting -------------------------------------------------------------------------------


def cpu_text(run: Run) -> str:
    """CPU time per request of each process group: on a shared machine it moves far less than
    the rates do (a busy neighbour takes cores, not instructions)."""
    parts = [
        f"{name} {run.cpu_per_request[name]:.2f} ms"
        for name, cores in run.cpu.items()
        if cores >= 0.005
    ]
    others = max(0.0, run.busy_cores - sum(run.cpu.values()))
    return (
        f"CPU per request: {', '.join(parts)}; cores busy: "
        + ", ".join(f"{name} {cores:.2f}" for name, cores in run.cpu.items() if cores >= 0.005)
        + f", other processes {others:.2f}"
    )


def figures(run: Run) -> str:
    errors = sum(run.errors.values())
    error_text = (
        f", {errors} errors ({', '.join(f'{k}: {v}' for k, v in sorted(run.errors.items()))})"
        if errors
        else ""
    )
    return (
        f"{run.rate:>7.0f} req/s  p50 {run.p(0.5):6.1f}  p95 {run.p(0.95):6.1f}  "
        f"p99 {run.p(0.99):6.1f} ms  ({run.completed} in {run.seconds:.0f} s{error_text})"
    )


def ratio(http: Run, raw: Run) -> str:
    """HTTP req/s over raw req/s; n/a when the raw run completed nothing in its window."""
    return f"{http.rate / raw.rate:.2f}" if raw.completed else "n/a"


def verdict(endpoint: Endpoint, run: Run) -> str:
    if not endpoint.target:
        return "no target"
    problems = []
    if endpoint.min_rate is not None and run.rate < endpoint.min_rate:
        problems.append(f"{run.rate:.0f} req/s")
    if endpoint.max_ms is not None:
        share, limit = endpoint.max_ms
        value = run.p(share)
        if value > limit:
            problems.append(f"p{round(share * 100)} {value:.0f} ms")
    return "met" if not problems else "NOT met (" + ", ".join(problems) + ")"


def table_of(statement: str) -> str:
    """What a statement reads or writes, in a word: its verb and first table."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    if verb in ("SELECT", "WITH"):
        found = re.search(r"\bFROM\s+(\w+)", statement, re.IGNORECASE)
        return found.group(1) if found else "SELECT"
    found = re.search(r"^\s*(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(\w+)", statement, re.I)
    return f"{verb} {found.group(1)}" if found else verb


def short_sql(statement: str) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass
class Result:
    endpoint: Endpoint
    http: Run | None = None
    raw: Run | None = None
    raw_all: Run | None = None


def print_conditions(
    args: argparse.Namespace, database: Database, server: Server, load_at_start: str, redis: str
) -> None:
    info = database.info
    rows = info["rows"]
    sizes = info["bytes"]
    print("Conditions")
    print_machine(load_at_start)
    print(
        f"  OpsDeck       {opsdeck_version} at schema {info['head']}; FastAPI "
        f"{version('fastapi')}, uvicorn {version('uvicorn')}, SQLAlchemy {version('sqlalchemy')}, "
        f"psycopg {version('psycopg')}, pydantic {version('pydantic')}"
    )
    print(
        f"  PostgreSQL    {info['postgres']}, private on 127.0.0.1 (tests/stack.py), "
        + ", ".join(line.replace(" = ", " ") for line in postgres_settings().splitlines()[1:4])
        + "; fsync off (tests' cluster settings: reads unaffected)"
    )
    print(f"  Redis         {redis}")
    print(
        f"  data          {info['incidents']:,} incidents ({sizes['incidents'] / 2**20:,.0f} MiB "
        f"with indexes), {rows['incident_events']:,} timeline events "
        f"({sizes['incident_events'] / 2**20:,.0f} MiB), {rows['incident_comments']:,} comments, "
        f"{rows['incident_tag_links']:,} tag links, {rows['incident_participants']:,} "
        f"participants; {USERS} users, {len(CATEGORIES)} categories, {len(TAGS)} tags"
    )
    cache_note = "loaded by this run" if database.loaded_now else "from the cache"
    print(
        f"  load          {info['load_seconds']:.0f} s ({info['copy_seconds']:.0f} s COPY, the "
        f"rest indexes, keys, VACUUM ANALYZE) on {info['loaded_at']}; {cache_note}; "
        f"{filesystem_of(database.folder)}"
    )
    print(
        f"  web           opsdeck web --workers {server.workers} (production settings, JSON "
        "logs at INFO, database pool 10 per process), signed in as a member with an API token"
    )
    print(
        f"  load client   asyncio (uvloop {version('uvloop')}) in this process, raw HTTP/1.1 "
        f"keep-alive, {args.concurrency} connections; raw: psycopg {version('psycopg')} "
        f"AsyncConnection x {args.concurrency}, autocommit, the same concurrency"
    )
    print(
        f"  runs          {args.warmup:.0f} s warm-up + {args.duration:.0f} s measured per line, "
        "one after the other on the same machine (client, server and database share its cores)"
    )


def print_summary(results: list[Result], health: Run | None, args: argparse.Namespace) -> None:
    print("\nSummary (HTTP through opsdeck web; raw: the same query on incidents, psycopg alone)")
    print(
        f"{'endpoint':<44} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6}  {'raw/s':>7} "
        f"{'raw p95':>7} {'ratio':>6}  target"
    )
    if health is not None:
        print(
            f"{'GET /health (floor: client + server)':<44} {health.rate:>7.0f} "
            f"{health.p(0.5):>6.1f} {health.p(0.95):>6.1f} {health.p(0.99):>6.1f}"
        )
    for result in results:
        endpoint = result.endpoint
        if result.http is None:
            print(f"{endpoint.label:<44} not available: {endpoint.unavailable[:90]}")
            continue
        http = result.http
        raw_text = ""
        if result.raw is not None:
            raw = result.raw
            raw_text = f"{raw.rate:>7.0f} {raw.p(0.95):>7.1f} {ratio(http, raw):>6}"
        print(
            f"{endpoint.label:<44} {http.rate:>7.0f} {http.p(0.5):>6.1f} {http.p(0.95):>6.1f} "
            f"{http.p(0.99):>6.1f}  {raw_text:<22}  {endpoint.target or '-'}: "
            f"{verdict(endpoint, http)}"
        )
    print(f"  (ms; {args.concurrency} concurrent connections; ratio = HTTP req/s / raw req/s)")


# -- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--incidents", type=int, default=DEFAULT_INCIDENTS, help="incidents to load (1,000,000)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--concurrency", type=int, default=32, help="connections, HTTP and raw")
    parser.add_argument(
        "--web-workers", type=int, default=usable_cores(), help="opsdeck web --workers"
    )
    parser.add_argument("--samples", type=int, default=500, help="numbers and cursors drawn")
    parser.add_argument("--seed", type=int, default=13, help="of the generated data")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=bench_cache(),
        help="where loaded clusters are kept (env OPSDECK_BENCH_CACHE, as for every bench)",
    )
    parser.add_argument("--reload", action="store_true", help="drop the cached data, load again")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated endpoints: get,list,deep,filtered,search,stats,stats-cold",
    )
    parser.add_argument(
        "--load-only", action="store_true", help="fill the cache (load if needed), then stop"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of each query"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile N GET, list and (cached) stats requests in this process (cProfile)",
    )
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, help="wait up to this many seconds for load to drop"
    )
    args = parser.parse_args()
    if args.incidents < 100 or args.concurrency < 1 or args.duration <= 0 or args.samples < 1:
        parser.error("--incidents at least 100; --concurrency, --duration, --samples positive")
    return args


def explain(dsn: str, endpoint: Endpoint) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        for sql, params in endpoint.samples[0].main:
            print(f"\n  EXPLAIN (ANALYZE, BUFFERS) for {endpoint.label}: {short_sql(sql)}")
            plan = connection.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + sql,
                params,
            ).fetchall()
            for (line,) in plan:
                print(f"    {line}")


def run_endpoint(
    endpoint: Endpoint, args: argparse.Namespace, server: Server, dsn: str, token: str,
    processes: Processes,
) -> Result:  # fmt: skip
    result = Result(endpoint)
    samples = endpoint.samples
    reads = {len(s.reads) for s in samples}
    main = {len(s.main) for s in samples}
    writes = {len(s.statements) - len(s.reads) for s in samples}
    items = samples[0].body.get("items") if isinstance(samples[0].body, dict) else None
    longest = max(samples, key=lambda s: len(s.statements))
    print(f"\n{endpoint.label}: {endpoint.note}")
    print(
        f"  per request: {'/'.join(map(str, sorted(reads)))} SELECTs, "
        f"{'/'.join(map(str, sorted(writes)))} writes, "
        f"{'/'.join(map(str, sorted(main)))} of them on incidents"
        + (f"; {len(items)} items in the first answer" if items is not None else "")
    )
    print("  statements (FROM): " + " -> ".join(table_of(sql) for sql, _ in longest.statements))
    paths = endpoint.load_paths or [s.path for s in samples]
    http = measure(
        processes,
        lambda: uvloop.run(
            _http_load(server.port, token, paths, args.concurrency, args.warmup, args.duration)
        ),
        args.duration,
    )
    print(f"  HTTP    {figures(http)}\n          {cpu_text(http)}")
    result.http = http
    plans = [s.main for s in samples if s.main]
    if plans:
        raw = measure(
            processes,
            lambda: uvloop.run(_raw_load(dsn, plans, args.concurrency, args.warmup, args.duration)),
            args.duration,
        )
        print(f"  raw     {figures(raw)}\n          {cpu_text(raw)}")
        result.raw = raw
    all_reads = [s.reads for s in samples]
    if any(len(s.reads) > len(s.main) for s in samples):
        raw_all = measure(
            processes,
            lambda: uvloop.run(
                _raw_load(dsn, all_reads, args.concurrency, args.warmup, args.duration)
            ),
            args.duration,
        )
        print(f"  raw all {figures(raw_all)}  (every SELECT of the request, in turn)")
        result.raw_all = raw_all
    if result.raw is not None:
        print(
            f"  HTTP / raw: {ratio(http, result.raw)} of the throughput, p50 "
            f"{http.p(0.5) / max(result.raw.p(0.5), 1e-6):.1f} x the raw p50"
        )
    if endpoint.target:
        print(f"  target {endpoint.target}: {verdict(endpoint, http)}")
    if args.explain:
        explain(dsn, endpoint)
    return result


def main() -> int:
    args = parse_args()
    helpers = stack_helpers()
    print("OpsDeck incidents API benchmark")
    wait_for_quiet(args.wait_idle, usable_cores())
    load_at_start = load_average()
    key = f"incidents-{schema_key()}-{args.incidents}-s{args.seed}-v{DATA_VERSION}"
    database = Database(helpers, args.cache_dir / key)
    root = Path(tempfile.mkdtemp(prefix="opsdeck-bench-incidents-"))
    root.chmod(0o755)
    try:
        with interrupts_as_keyboard_interrupt(), contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, root, ignore_errors=True)
            database.lock()
            cleanup.callback(database.stop)
            if args.reload and database.ready_file.exists():
                database.ready_file.unlink()
            database.start()
            redis_binary = helpers.find_redis_server()
            redis = None
            if redis_binary is not None:
                redis = helpers.RedisServer(redis_binary, root / "redis")
                redis.start()
                cleanup.callback(redis.stop)
            env = opsdeck_env(root, database.url, redis.url if redis else "")
            if database.loaded_now:
                load(database, env, root, args.incidents, args.seed)
            info = database.info
            token = str(info["token"])
            if args.load_only:
                print(f"  cached in {database.folder}")
                return 0
            server = Server(helpers, root, env, args.web_workers)
            cleanup.callback(server.stop)
            server.start()
            redis_text = (
                f"{redis.version}, private on 127.0.0.1 (tests/stack.py)"
                if redis
                else "none (redis-server not found): Celery's filesystem broker"
            )
            print_conditions(args, database, server, load_at_start, redis_text)

            chosen = endpoints(info, args.samples, args.seed)
            if args.only:
                wanted = {name.strip() for name in args.only.split(",")}
                chosen = [e for e in chosen if e.key in wanted]
            print("\nRecording the SQL of each endpoint's sample requests (in this process)")
            app = InProcessApp(env, token)
            try:
                for endpoint in chosen:
                    take_samples(app, endpoint)
                first = next((e for e in chosen if e.key == "list" and e.samples), None)
                if first is not None and isinstance(first.samples[0].body, dict):
                    page = first.samples[0].body
                    expected = encode_cursor(
                        INCIDENT_SORTS,
                        "-number",
                        SimpleNamespace(number=page["items"][-1]["number"]),
                    )
                    same = "equals" if page.get("next_cursor") == expected else "DIFFERS FROM"
                    print(f"  the first page's next_cursor {same} the cursor built for deep pages")
                if args.profile:
                    print("\nWhere the web process's CPU goes (cProfile, in this process)")
                    for endpoint in chosen:
                        if endpoint.key in ("get", "list", "stats"):
                            profile_endpoint(app, endpoint, args.profile)
            finally:
                app.close()

            processes = Processes(
                server.managed.process.pid,
                database.cluster.data,
                redis.process.pid if redis and redis.process else None,
            )
            print("\nGET /health: the floor (the client, uvicorn and the middleware, no database)")
            health = measure(
                processes,
                lambda: uvloop.run(
                    _http_load(
                        server.port,
                        token,
                        ["/health"],
                        args.concurrency,
                        args.warmup,
                        args.duration,
                    ),
                ),
                args.duration,
            )
            client_cpu = health.cpu.get("client (this script)", 0.0)
            client_ms = health.cpu_per_request.get("client (this script)", 0.0)
            print(f"  HTTP    {figures(health)}\n          {cpu_text(health)}")
            print(
                f"  the client's own cost: {client_ms * 1000:.0f} µs of CPU "
                f"per request ({client_cpu:.2f} cores at {health.rate:.0f} req/s)"
            )
            results = []
            for endpoint in chosen:
                if endpoint.unavailable:
                    print(
                        f"\n{endpoint.label}: not available on this server: {endpoint.unavailable}"
                    )
                    results.append(Result(endpoint))
                    continue
                results.append(run_endpoint(endpoint, args, server, database.dsn, token, processes))
            print_summary(results, health, args)
            print(f"  load average at the end: {load_average()}")
            server.managed.assert_running()
    except BenchFailed as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; everything it started was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
