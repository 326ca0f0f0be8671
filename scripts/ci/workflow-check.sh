#!/usr/bin/env bash
# The GitHub Actions gate, and the Prometheus rules shipped with the repository:
#   1. zizmor (offline, default persona) on .github/: no finding at all, or the gate fails;
#   2. check-jsonschema: every workflow against the GitHub workflow schema, dependabot.yml
#      against Dependabot's;
#   3. the house rules zizmor does not enforce: every `uses:` pinned to a 40-hex commit SHA
#      with a `# vX.Y.Z` comment, `timeout-minutes` and `permissions` on every job, no `${{ }}` inside
#      `run:`, checkout without persisted credentials, and ci-cd.yml's stage graph
#      lint -> security -> test -> e2e -> build -> deploy-staging / deploy-production, notify
#      after all of them;
#   4. promtool check rules / test rules / check config on deploy/prometheus/ (promtool is
#      taken from Debian's prometheus package without installing it: no server is started).
# Tools come from .venv-gates (make gate-tools); `make workflow-check` puts it on PATH.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
GATES_VENV=${GATES_VENV:-.venv-gates}
if [[ -d $GATES_VENV/bin ]]; then
    PATH="$ROOT/$GATES_VENV/bin:$PATH"
fi
WORKFLOWS=.github/workflows

say() { printf '==> %s\n' "$*"; }
fail() { printf 'workflow-check: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in zizmor check-jsonschema; do
    command -v "$tool" >/dev/null || fail "$tool not found; run 'make gate-tools' (or 'make workflow-check')"
done
python=$(command -v python3)
if [[ -x $GATES_VENV/bin/python ]]; then
    python=$ROOT/$GATES_VENV/bin/python
fi
"$python" -c 'import yaml' 2>/dev/null || fail "PyYAML missing from $python; run 'make gate-tools'"

mapfile -t workflow_files < <(find "$WORKFLOWS" -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
[[ ${#workflow_files[@]} -gt 0 ]] || fail "no workflow in $WORKFLOWS"
[[ -f $WORKFLOWS/ci-cd.yml ]] || fail "$WORKFLOWS/ci-cd.yml is missing"

# -- 1. zizmor -------------------------------------------------------------------------------
say "zizmor $(zizmor --version | awk '{print $2}') (offline, default persona) on .github/"
# Offline: the online audits need a GitHub token and network; the result must not depend on
# either. --no-exit-codes is not used: any finding at the default level fails the gate.
if ! zizmor --offline --no-progress --color never .github; then
    fail "zizmor reported findings on .github/ (see above)"
fi

# -- 2. schemas ------------------------------------------------------------------------------
say "check-jsonschema: ${workflow_files[*]} against vendor.github-workflows"
check-jsonschema --builtin-schema vendor.github-workflows "${workflow_files[@]}" \
    || fail "a workflow does not match the GitHub Actions workflow schema"
if [[ -f .github/dependabot.yml ]]; then
    say "check-jsonschema: .github/dependabot.yml against vendor.dependabot"
    check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml \
        || fail ".github/dependabot.yml does not match the Dependabot schema"
fi

# -- 3. house rules and the stage graph ------------------------------------------------------
say "pins, timeouts, permissions, run: expressions, checkout credentials, ci-cd.yml stage graph"
"$python" - "${workflow_files[@]}" <<'PY' || fail "workflow rules (see above)"
import re
import sys
from pathlib import Path

import yaml

SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
VERSION_COMMENT = re.compile(r"^\s+#\s*v\d+(\.\d+)*\b")
STAGES = {
    "lint": set(),
    "security": {"lint"},
    "test": {"security"},
    "e2e": {"test"},
    "build": {"e2e"},
    "deploy-staging": {"build"},
    "deploy-production": {"build"},
}
problems: list[str] = []


def needs_of(job: dict) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def check_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        problems.append(f"{path}: no jobs")
        return

    for number, line in enumerate(text.splitlines(), 1):
        match = USES_LINE.match(line)
        if not match:
            continue
        ref = match["ref"].strip("'\"")
        if ref.startswith("./"):
            continue  # a local action, versioned with this repository
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"{path}:{number}: {ref} is not pinned by digest")
            continue
        if not SHA_PIN.match(ref):
            problems.append(f"{path}:{number}: {ref} is not pinned to a full commit SHA")
        elif not VERSION_COMMENT.match(match["rest"]):
            problems.append(f"{path}:{number}: {ref} has no '# vX.Y.Z' comment naming the release")

    top_permissions = data.get("permissions")
    if top_permissions not in ({}, {"contents": "read"}):
        problems.append(f"{path}: top-level permissions must be {{}} or {{contents: read}}")

    for name, job in data["jobs"].items():
        where = f"{path}: job {name}"
        timeout = job.get("timeout-minutes")
        if not isinstance(timeout, int) or timeout <= 0:
            problems.append(f"{where}: no timeout-minutes")
        permissions = job.get("permissions")
        if "uses" not in job and not isinstance(permissions, dict):
            problems.append(f"{where}: no permissions block (least privilege per job)")
        if isinstance(permissions, dict):
            for scope, level in permissions.items():
                if level == "write" and (scope, name) not in {("packages", "build")}:
                    problems.append(f"{where}: {scope}: write is not needed here")
        elif isinstance(permissions, str):
            problems.append(f"{where}: permissions: {permissions} (list the scopes)")
        for index, step in enumerate(job.get("steps", []), 1):
            label = f"{where}, step {index} ({step.get('name') or step.get('uses', 'run')})"
            run = step.get("run")
            if isinstance(run, str) and "${{" in run:
                problems.append(f"{label}: a ${{{{ }}}} expression inside run: (pass it via env:)")
            uses = str(step.get("uses", ""))
            if uses.startswith("actions/checkout@"):
                if (step.get("with") or {}).get("persist-credentials") is not False:
                    problems.append(f"{label}: checkout without persist-credentials: false")


def check_stages(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    jobs = data.get("jobs", {})
    triggers = data.get("on", data.get(True)) or {}
    push = triggers.get("push") or {}
    if not {"main", "develop"} <= set(push.get("branches", [])) or not push.get("tags"):
        problems.append(f"{path}: on.push must cover the main and develop branches and tags")
    if "pull_request" not in triggers:
        problems.append(f"{path}: on.pull_request is missing")
    if "published" not in ((triggers.get("release") or {}).get("types") or []):
        problems.append(f"{path}: on.release.types must include published")
    concurrency = data.get("concurrency") or {}
    if not concurrency.get("group") or "cancel-in-progress" not in concurrency:
        problems.append(f"{path}: top-level concurrency with cancel-in-progress is missing")

    expected = set(STAGES) | {"notify"}
    if set(jobs) != expected:
        problems.append(
            f"{path}: jobs are {sorted(jobs)}, expected {sorted(expected)}"
        )
    for name, needs in STAGES.items():
        if name in jobs and needs_of(jobs[name]) != needs:
            problems.append(
                f"{path}: job {name} needs {sorted(needs_of(jobs[name]))}, expected {sorted(needs)}"
            )
    notify = jobs.get("notify", {})
    if needs_of(notify) != set(STAGES):
        problems.append(f"{path}: notify must need every other job, it needs {sorted(needs_of(notify))}")
    if str(notify.get("if", "")).replace("${{", "").replace("}}", "").strip() != "always()":
        problems.append(f"{path}: notify must run with if: always()")

    test = jobs.get("test", {})
    pythons = {str(v) for v in ((test.get("strategy") or {}).get("matrix") or {}).get("python", [])}
    if not {"3.11", "3.12", "3.13"} <= pythons:
        problems.append(f"{path}: the test matrix must cover Python 3.11, 3.12 and 3.13")
    services = test.get("services") or {}
    for service, image in (("postgres", "postgres:16"), ("redis", "redis:7")):
        spec = services.get(service) or {}
        if not str(spec.get("image", "")).startswith(image):
            problems.append(f"{path}: test needs a {image} service container")
        if "--health-cmd" not in str(spec.get("options", "")):
            problems.append(f"{path}: the {service} service has no health check")
    test_steps = yaml.safe_dump(test.get("steps", []))
    if "actions/upload-artifact@" not in test_steps or "coverage.xml" not in test_steps:
        problems.append(f"{path}: test must upload coverage.xml as an artifact")

    e2e = yaml.safe_dump(jobs.get("e2e", {}))
    if "chromium" not in e2e or "make e2e" not in e2e:
        problems.append(f"{path}: e2e must install Chromium and run make e2e")

    build = jobs.get("build", {})
    build_steps = build.get("steps", [])
    used = {str(step.get("uses", "")).split("@")[0] for step in build_steps}
    for action in (
        "docker/setup-qemu-action",
        "docker/setup-buildx-action",
        "docker/metadata-action",
        "docker/build-push-action",
    ):
        if action not in used:
            problems.append(f"{path}: build does not use {action}")
    push_step = next(
        (s for s in build_steps if str(s.get("uses", "")).startswith("docker/build-push-action@")),
        {},
    )
    options = push_step.get("with") or {}
    if set(str(options.get("platforms", "")).split(",")) != {"linux/amd64", "linux/arm64"}:
        problems.append(f"{path}: build must target linux/amd64 and linux/arm64")
    if options.get("cache-from") != "type=gha" or options.get("cache-to") != "type=gha,mode=max":
        problems.append(f"{path}: build must use the GitHub Actions layer cache")
    if "pull_request" not in str(options.get("push", "")):
        problems.append(f"{path}: build must not push on pull requests")

    for name, environment, condition in (
        ("deploy-staging", "staging", "refs/heads/develop"),
        ("deploy-production", "production", "release"),
    ):
        job = jobs.get(name, {})
        env_spec = job.get("environment")
        env_name = env_spec.get("name") if isinstance(env_spec, dict) else env_spec
        if env_name != environment or not (isinstance(env_spec, dict) and env_spec.get("url")):
            problems.append(f"{path}: {name} must deploy through the {environment} environment (with a url)")
        if condition not in str(job.get("if", "")):
            problems.append(f"{path}: {name} must run only for {condition}")
        runs = "\n".join(str(step.get("run", "")) for step in job.get("steps", []))
        for needle in (
            'kubectl apply -k "deploy/k8s/overlays/$DEPLOY_ENV"',
            "kustomize edit set image",
            "kubectl rollout status",
            "/health /ready",
            "--fail",
        ):
            if needle not in runs:
                problems.append(f"{path}: {name} does not run {needle!r}")
        if (job.get("env") or {}).get("DEPLOY_ENV") != environment:
            problems.append(f"{path}: {name} must set DEPLOY_ENV: {environment}")
        if (job.get("concurrency") or {}).get("cancel-in-progress") is not False:
            problems.append(f"{path}: {name} must never be cancelled half-way")


files = [Path(arg) for arg in sys.argv[1:]]
for file in files:
    check_file(file)
check_stages(next(f for f in files if f.name == "ci-cd.yml"))
for problem in problems:
    print(f"  {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"  ok: {len(files)} workflow file(s)")
PY

# -- 4. Prometheus scrape config and alert rules ---------------------------------------------
find_promtool() {
    if command -v promtool >/dev/null; then
        command -v promtool
        return
    fi
    local cache="$ROOT/$GATES_VENV/opt/prometheus"
    if [[ -x $cache/usr/bin/promtool ]]; then
        echo "$cache/usr/bin/promtool"
        return
    fi
    # promtool is a static binary inside Debian's prometheus package: unpack the package
    # rather than install it (installing would create a user and start a server).
    local work
    work=$(mktemp -d)
    chmod 755 "$work"  # apt's download sandbox user must be able to write there
    if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update -qq >/dev/null
            (cd "$work" && apt-get download prometheus >/dev/null) || true
        fi
    fi
    local deb
    deb=$(find "$work" -name 'prometheus_*.deb' | head -n1)
    if [[ -z $deb ]]; then
        rm -rf "$work"
        return 1
    fi
    mkdir -p "$cache"
    dpkg-deb -x "$deb" "$cache"
    rm -rf "$work"
    echo "$cache/usr/bin/promtool"
}

if [[ -d deploy/prometheus ]]; then
    promtool=$(find_promtool) || fail "promtool not found and Debian's prometheus package could" \
        "not be downloaded; install it (apt-get install prometheus) or put promtool on PATH"
    say "$("$promtool" --version 2>&1 | head -n1)"
    say "promtool check rules deploy/prometheus/alerts.yml"
    "$promtool" check rules deploy/prometheus/alerts.yml || fail "deploy/prometheus/alerts.yml"
    if [[ -f deploy/prometheus/alerts.test.yml ]]; then
        say "promtool test rules deploy/prometheus/alerts.test.yml"
        (cd deploy/prometheus && "$promtool" test rules alerts.test.yml) \
            || fail "the alert rules' unit tests (deploy/prometheus/alerts.test.yml)"
    fi
    say "promtool check config deploy/prometheus/prometheus.yml"
    # The config names alerts.yml relative to itself: check it from its own folder.
    if ! output=$(cd deploy/prometheus && "$promtool" check config prometheus.yml 2>&1); then
        if ! grep -q 'field kubernetes_sd_configs not found' <<< "$output"; then
            printf '%s\n' "$output"
            fail "deploy/prometheus/prometheus.yml"
        fi
        # Debian builds Prometheus without Kubernetes service discovery: check everything
        # else, the Kubernetes scrape jobs left out of a copy.
        say "  this promtool has no kubernetes_sd_configs (Debian's build): checking the rest"
        scratch=$(mktemp -d)
        trap 'rm -rf "$scratch"' EXIT
        cp deploy/prometheus/alerts.yml "$scratch/"
        "$python" - deploy/prometheus/prometheus.yml "$scratch/prometheus.yml" <<'PY'
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as source:
    config = yaml.safe_load(source)
jobs = config.get("scrape_configs", [])
kept = [job for job in jobs if "kubernetes_sd_configs" not in job]
for job in jobs:
    if job not in kept:
        sd = job["kubernetes_sd_configs"]
        assert isinstance(sd, list) and all(item.get("role") for item in sd), job["job_name"]
        print(f"  left out for this promtool: job {job['job_name']} (kubernetes_sd_configs)")
config["scrape_configs"] = kept
with open(sys.argv[2], "w", encoding="utf-8") as target:
    yaml.safe_dump(config, target, sort_keys=False)
PY
        (cd "$scratch" && "$promtool" check config prometheus.yml) \
            || fail "deploy/prometheus/prometheus.yml"
    else
        printf '%s\n' "$output"
    fi
fi

say "workflow-check: ok"
