"""API fuzzing gate (issue 11): schemathesis against a running OpsDeck, on both stacks.

    make fuzz                    # both stacks, embedded first
    make fuzz STACK=postgres     # or STACK=embedded

Run by the application's virtualenv (it starts OpsDeck and, for the PostgreSQL stack, reuses
tests/stack.py's private PostgreSQL + Redis); schemathesis itself comes from the delivery-gates
virtualenv (`make gate-tools`), found on PATH or through $SCHEMATHESIS, because it pins pytest
and hypothesis versions the test suite must not get.

For each stack: a fresh server on a free loopback port (embedded: `opsdeck serve` on a temporary
data directory, SQLite + the filesystem broker + its own worker; postgres: `opsdeck migrate`,
`opsdeck web` and `opsdeck worker` on a private PostgreSQL 15 and Redis), three accounts made
with `opsdeck users create --password-stdin` (a member, an admin, and a target account the
admin's PATCH /users/{user_id} is pinned to), then `schemathesis run --checks all` once as the
member and once as the admin, each with a personal API token (opd_..., see ACCOUNT_SAFETY).

The gate fails on any failed check (a 5xx, a status code, content type, header or body that
its OpenAPI entry does not describe, ...), on a schemathesis error, and on any 5xx in the
server's own access log (a second opinion that does not depend on schemathesis' reporting).

Environment:
  FUZZ_MAX_TIME       seconds per run, i.e. per user and stack (default 100): the bound
  FUZZ_MAX_EXAMPLES   test cases per operation and phase in one round (default 10)
  FUZZ_WORKERS        schemathesis workers (default 2)
  FUZZ_SEED           a seed, to replay a run (schemathesis prints the seed of each run)
  FUZZ_REPORT_DIR     where JUnit + NDJSON reports and the server logs go (default: a
                      temporary folder, printed at the end)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests/stack.py: the private PostgreSQL + Redis of the suite

import httpx  # noqa: E402
from tests.stack import (  # noqa: E402
    STARTUP_TIMEOUT,
    ManagedProcess,
    TestStack,
    _die_with_parent,
    free_port,
    hermetic_env,
    python_command,
    sweep_stale_stacks,
    wait_until,
)

API = "/api/v1"
STACKS = ("embedded", "postgres")

# -- what is fuzzed, and what is not --------------------------------------------------------

# Checks: `--checks all` minus these. Every other check is part of the gate:
# not_a_server_error, status_code_conformance, content_type_conformance,
# response_headers_conformance, response_schema_conformance, negative_data_rejection,
# missing_required_header, unsupported_method, allow_header_conformance, use_after_free,
# ensure_resource_availability, ignored_auth, object_level_authorization.
DISABLED_CHECKS: dict[str, str] = {
    "positive_data_acceptance": (
        "expects every schema-valid request to succeed, but the API deliberately refuses, with "
        "a documented 422, input a JSON Schema string cannot describe: C0 control characters "
        "and NUL in any text, path or query value (issue 11), opaque pagination cursors it did "
        "not issue, undeliverable e-mail addresses, weak passwords (length, common-password "
        "list), CSV files without the required columns. Writing all of that as patterns into "
        "the schema would make the generated client lie instead."
    ),
}

# Checks turned off for some operations only (the operation ids are found in the schema).
MULTIPART_DISABLED_CHECKS: dict[str, str] = {
    "negative_data_rejection": (
        "multipart/form-data operations only: a part is bytes, so the 'wrong type' schemathesis "
        "sends for a file (a boolean, a number) arrives as a file whose content is `true` or "
        "`-3`, which is a valid file; the file itself is checked by the route (image formats, "
        "CSV columns, sizes) and refusals there are documented"
    ),
}

# Operations that could lock the fuzzing account out or change what the rest of the run
# depends on. Each one is either excluded, pinned to a harmless target, or kept with the
# reason it is safe. Keep this list in step with the API: a new operation that can end the
# caller's own access belongs here.
ACCOUNT_SAFETY: dict[str, str] = {
    "auth-logout": (
        "kept: the fuzzer signs in with a personal API token, which has no session for logout "
        "to end; a refresh_token in the body is one the fuzzer never saw"
    ),
    "auth-session-delete": "kept: cookie sessions only, answers 401 to a bearer token",
    "users-change-password": (
        "kept: needs the current password, which the fuzzer never sees (it is given to "
        "`opsdeck users create` on stdin); wrong ones are throttled and audited, a 403/429"
    ),
    "users-2fa-setup": "kept: needs the account's password (as above), so it never starts",
    "users-2fa-confirm": "kept: without a pending setup it answers 409",
    "users-2fa-disable": "kept: needs the password and a code; 2FA is never on anyway",
    "users-2fa-recovery-codes": "kept: needs the password and a code",
    "users-revoke-token": (
        "pinned: token_id is always a decoy token of the same user, so the stateful phase "
        "cannot revoke the token the fuzzer authenticates with (GET /users/me/tokens lists it)"
    ),
    "incidents-alertmanager-webhook": (
        "own credentials: an Alertmanager integration's token (opi_...), made by the admin "
        "before the runs, instead of the user's token"
    ),
    "incidents-generic-webhook": "own credentials: a generic integration's token, as above",
    "users-update": (
        "pinned: user_id is always a third account, so the admin cannot demote or deactivate "
        "itself (or the member account) and fuzz the rest of the run as nobody"
    ),
}
EXCLUDED_OPERATIONS: dict[str, str] = {
    # None today: every operation is reachable safely, see ACCOUNT_SAFETY.
}


@dataclass
class Account:
    username: str
    role: str  # "member" | "admin"
    password: str = field(default_factory=lambda: "Fz-" + secrets.token_urlsafe(24))
    user_id: str = ""
    token: str = ""
    decoy_token_id: str = ""


@dataclass
class RunResult:
    stack: str
    user: str
    status: int
    seconds: float
    summary: str


# -- the server -------------------------------------------------------------------------------


def _settings(data_dir: Path, database_url: str, redis_url: str) -> Any:
    from opsdeck.settings import Settings

    return Settings(
        environment="test",
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secrets.token_urlsafe(48),
        webhook_secret=secrets.token_urlsafe(32),
    )


def _start(name: str, args: list[str], env: dict[str, str], workdir: Path) -> ManagedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            python_command(["opsdeck", *args], workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return ManagedProcess(name, process, log_path, env)


def _opsdeck(args: list[str], env: dict[str, str], workdir: Path, stdin: str = "") -> str:
    result = subprocess.run(  # noqa: S603
        python_command(["opsdeck", *args], workdir),
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"opsdeck {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@contextmanager
def running_server(
    stack: str, workdir: Path
) -> Iterator[tuple[str, dict[str, str], list[ManagedProcess]]]:
    """Yield the base URL, the environment of `opsdeck` commands and the processes."""
    backing: TestStack | None = None
    processes: list[ManagedProcess] = []
    try:
        if stack == "postgres":
            sweep_stale_stacks()
            backing = TestStack("integration")
            backing.start()
            print(f"fuzz[{stack}]: {backing.describe()}", flush=True)
        settings = _settings(
            workdir / "data",
            backing.database_url if backing else "",
            backing.redis_url if backing else "",
        )
        metrics = workdir / "metrics"
        metrics.mkdir(parents=True, exist_ok=True)
        env = hermetic_env(settings, metrics)
        env.update(
            {
                # Cheap password hashes: the admin's POST /users hashes every password it sends.
                "OPSDECK_PASSWORD_HASH_TIME_COST": "2",
                "OPSDECK_PASSWORD_HASH_MEMORY_KIB": "19456",
                "OPSDECK_PASSWORD_HASH_PARALLELISM": "1",
                # Batches name random addresses; nothing is fetched from this machine's networks.
                "OPSDECK_FETCH_ALLOWED_NETWORKS": "",
                "OPSDECK_FETCH_CONNECT_TIMEOUT_SECONDS": "2",
                "OPSDECK_FETCH_TOTAL_TIMEOUT_SECONDS": "5",
            }
        )
        port = free_port()
        _opsdeck(["db", "upgrade"], env, workdir)
        if stack == "embedded":
            processes.append(
                _start("serve", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, workdir)
            )
        else:
            processes.append(
                _start("web", ["web", "--host", "127.0.0.1", "--port", str(port)], env, workdir)
            )
            processes.append(_start("worker", ["worker", "--concurrency", "1"], env, workdir))
        base_url = f"http://127.0.0.1:{port}"
        web = processes[0]

        def answers() -> bool:
            web.assert_running()
            return httpx.get(f"{base_url}/health", timeout=2).status_code == 200

        wait_until(
            answers,
            timeout=STARTUP_TIMEOUT,
            message=f"opsdeck on {base_url}",
            diagnostics=web.diagnostics,
        )
        yield base_url, env, processes
    finally:
        for process in reversed(processes):
            process.stop()
        if backing is not None:
            backing.stop()


# -- accounts ---------------------------------------------------------------------------------


def make_account(
    account: Account, base_url: str, env: dict[str, str], workdir: Path, *, tokens: bool = True
) -> None:
    args = ["users", "create", "--username", account.username, "--password-stdin"]
    args += ["--email", f"{account.username}@example.com"]
    if account.role == "admin":
        args.append("--admin")
    output = _opsdeck(args, env, workdir, stdin=account.password + "\n")
    account.user_id = output.strip().rsplit("(", 1)[-1].rstrip(")")
    if not tokens:
        return
    with httpx.Client(base_url=base_url, timeout=30) as client:
        answer = client.post(
            f"{API}/auth/token", data={"username": account.username, "password": account.password}
        )
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        created = []
        for name in ("fuzzing", "decoy"):
            made = client.post(f"{API}/users/me/tokens", json={"name": name}, headers=headers)
            made.raise_for_status()
            created.append(made.json())
        account.token = created[0]["token"]
        account.decoy_token_id = created[1]["id"]
        # The access token's session is not needed any more.
        client.post(f"{API}/auth/logout", headers=headers).raise_for_status()


# -- schemathesis -----------------------------------------------------------------------------


def _schemathesis() -> str:
    found = os.environ.get("SCHEMATHESIS") or shutil.which("schemathesis")
    if not found:
        raise SystemExit(
            "schemathesis not found: run `make gate-tools` and put .venv-gates/bin on PATH "
            "(`make fuzz` does both)"
        )
    return found


def _schemathesis_command() -> list[str]:
    """schemathesis run by the Python it is installed in, through schemathesis_cli.py (which
    works around a CPython 3.11 threading bug in `ast.parse`, see there)."""
    python = Path(_schemathesis()).with_name("python")
    if not python.exists():
        return [_schemathesis()]
    return [str(python), str(Path(__file__).with_name("schemathesis_cli.py"))]


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def _config(
    account: Account, target: Account, schema: dict[str, Any], integrations: dict[str, str]
) -> str:
    """The run's schemathesis.toml: the caller's token, the pins and the per-operation checks
    of ACCOUNT_SAFETY and MULTIPART_DISABLED_CHECKS."""
    lines = [f"headers = {{ Authorization = {_toml('Bearer ' + account.token)} }}"]
    # Every check runs (schemathesis 4's default) but these; set here rather than with
    # --checks/--exclude-checks, because options on the command line take precedence over the
    # per-operation settings below, which would then never switch a check off.
    lines.extend(f"checks.{name}.enabled = false" for name in DISABLED_CHECKS)
    lines.append("")

    def operation(operation_id: str, *settings: str) -> None:
        lines.extend(["[[operations]]", f"include-operation-id = {_toml(operation_id)}"])
        lines.extend([*settings, ""])

    operation(
        "users-revoke-token",
        f'parameters = {{ "path.token_id" = {_toml(account.decoy_token_id)} }}',
    )
    operation("users-update", f'parameters = {{ "path.user_id" = {_toml(target.user_id)} }}')
    for operation_id, token in integrations.items():
        operation(operation_id, f"headers = {{ Authorization = {_toml('Bearer ' + token)} }}")
    for path_item in schema["paths"].values():
        for entry in path_item.values():
            content = (
                entry.get("requestBody", {}).get("content", {}) if isinstance(entry, dict) else {}
            )
            if "multipart/form-data" in content:
                operation(
                    entry["operationId"],
                    *(f"checks.{name}.enabled = false" for name in MULTIPART_DISABLED_CHECKS),
                )
    return "\n".join(lines)


def make_integrations(base_url: str, admin: Account, schema: dict[str, Any]) -> dict[str, str]:
    """An integration token per alert webhook the API has: {operation id: opi_... token}."""
    webhooks = {
        "incidents-alertmanager-webhook": "alertmanager",
        "incidents-generic-webhook": "generic",
    }
    present = {
        entry.get("operationId")
        for path_item in schema["paths"].values()
        for entry in path_item.values()
        if isinstance(entry, dict)
    }
    tokens = {}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for operation_id, kind in webhooks.items():
            if operation_id not in present:
                continue
            made = client.post(
                f"{API}/incidents/integrations",
                json={"name": f"fuzz {kind}", "kind": kind},
                headers={"Authorization": f"Bearer {admin.token}"},
            )
            made.raise_for_status()
            tokens[operation_id] = made.json()["token"]
    return tokens


def fuzz(
    stack: str,
    base_url: str,
    account: Account,
    target: Account,
    integrations: dict[str, str],
    out: Path,
) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    schema = httpx.get(f"{base_url}{API}/openapi.json", timeout=30).json()
    config = out / "schemathesis.toml"
    config.write_text(_config(account, target, schema, integrations), encoding="utf-8")
    argv = [
        *_schemathesis_command(),
        "--config-file",
        str(config),
        "run",
        f"{base_url}{API}/openapi.json",
        "--max-examples",
        os.environ.get("FUZZ_MAX_EXAMPLES", "10"),
        # The time bound of a run: fuzzing and stateful testing go round again until it is
        # spent, so a run takes about this long on any machine (the coverage phase first).
        "--max-time",
        os.environ.get("FUZZ_MAX_TIME", "100"),
        "--workers",
        os.environ.get("FUZZ_WORKERS", "2"),
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--report",
        "junit,ndjson",
        "--report-dir",
        str(out),
        "--no-color",
    ]
    for operation_id in EXCLUDED_OPERATIONS:
        argv += ["--exclude-operation-id", operation_id]
    if os.environ.get("FUZZ_SEED"):
        argv += ["--seed", os.environ["FUZZ_SEED"]]
    print(f"\nfuzz[{stack}]: schemathesis as the {account.role} ({account.username})", flush=True)
    started = time.monotonic()
    log = out / "schemathesis.txt"
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(  # noqa: S603
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=out
        )
        for line in process.stdout or ():
            sys.stdout.write(line)
            sink.write(line)
        status = process.wait()
    seconds = time.monotonic() - started
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("=")]
    summary = lines[-1].strip("= ") if lines else f"exit status {status}"
    return RunResult(stack, account.role, status, seconds, summary)


def server_errors(processes: list[ManagedProcess]) -> list[str]:
    """5xx answers in the access log of the web process, however schemathesis judged them."""
    found = []
    for record in processes[0].log_records():
        if record.get("event") == "request" and int(record.get("status", 0)) >= 500:
            found.append(
                f"{record.get('status')} {record.get('method')} {record.get('path')} "
                f"(request_id {record.get('request_id')})"
            )
    return found


# -- main -------------------------------------------------------------------------------------


def run_stack(stack: str, report_dir: Path) -> tuple[list[RunResult], list[str]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"opsdeck-fuzz-{stack}-"))
    results: list[RunResult] = []
    errors: list[str] = []
    try:
        with running_server(stack, workdir) as (base_url, env, processes):
            member = Account("fuzz-member", "member")
            admin = Account("fuzz-admin", "admin")
            target = Account("fuzz-target", "member")
            for account in (member, admin):
                make_account(account, base_url, env, workdir)
            make_account(target, base_url, env, workdir, tokens=False)
            schema = httpx.get(f"{base_url}{API}/openapi.json", timeout=30).json()
            integrations = make_integrations(base_url, admin, schema)
            for account in (member, admin):
                out = report_dir / f"{stack}-{account.role}"
                results.append(fuzz(stack, base_url, account, target, integrations, out))
            errors = server_errors(processes)
            for process in processes:
                shutil.copy(process.log_path, report_dir / f"{stack}-{process.name}.log")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=(*STACKS, "both"), default="both")
    args = parser.parse_args()
    stacks = STACKS if args.stack == "both" else (args.stack,)
    report_dir = Path(
        os.environ.get("FUZZ_REPORT_DIR") or tempfile.mkdtemp(prefix="opsdeck-fuzz-report-")
    ).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    print("fuzz: disabled checks:")
    for name, reason in DISABLED_CHECKS.items():
        print(f"  - {name}: {reason}")
    for name, reason in MULTIPART_DISABLED_CHECKS.items():
        print(f"  - {name}: {reason}")
    print("fuzz: operations that could lock the fuzzing account out:")
    for name, reason in {**ACCOUNT_SAFETY, **EXCLUDED_OPERATIONS}.items():
        print(f"  - {name}: {reason}")
    results: list[RunResult] = []
    stack_seconds: dict[str, float] = {}
    errors: dict[str, list[str]] = {}
    for stack in stacks:
        started = time.monotonic()
        stack_results, errors[stack] = run_stack(stack, report_dir)
        results += stack_results
        stack_seconds[stack] = time.monotonic() - started
    print(f"\n==> API fuzzing summary (reports and server logs in {report_dir})")
    failed = False
    for result in results:
        ok = result.status == 0
        failed |= not ok
        print(
            f"  {'ok    ' if ok else 'FAILED'}  {result.stack:8} as {result.user:6} "
            f"({result.seconds:.0f}s): {result.summary}"
        )
    for stack, seconds in stack_seconds.items():
        print(f"  {stack}: {seconds:.0f}s in all (server start, accounts, both runs)")
        if errors.get(stack):
            failed = True
            print(f"  FAILED  {stack}: 5xx answers in the server's access log:")
            for line in errors[stack][:50]:
                print(f"      {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
