#!/usr/bin/env bash
# Gate: compose.yaml is a valid Compose file and follows the project's rules.
#   1. podman-compose parses it, interpolates it and resolves it (`config`), with and without the
#      optional `flower` profile; --dry-run, so no container engine is needed.
#   2. The file and its resolved form validate against the Compose Specification's JSON schema
#      (the copy vendored in check-jsonschema, pinned in scripts/ci/requirements-gates.txt).
#   3. Project rules (python3 + PyYAML, both in .venv-gates): no inline secret values; secrets
#      come from files under /run/secrets; every dependency on db/redis waits for
#      service_healthy and on the one-shot services for service_completed_successfully; image
#      names are overridable variables; worker is scalable; resource limits everywhere; every
#      OPSDECK_* setting of .env.example is either passed through or deliberately fixed.
# Usage: scripts/ci/compose-check.sh [COMPOSE_FILE]   (default: compose.yaml of the repository)
# Tools: podman-compose, check-jsonschema and a python3 with PyYAML on PATH (make compose-check
# puts .venv-gates/bin first).
set -euo pipefail

cd "$(dirname "$0")/../.."
COMPOSE_FILE=${1:-compose.yaml}
ENV_EXAMPLE=.env.example

fail() {
    echo "compose-check: FAILED: $*" >&2
    exit 1
}

for tool in podman-compose check-jsonschema python3; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH (run: make gate-tools, then put .venv-gates/bin on PATH, or use make compose-check)"
done
python3 -c 'import yaml' 2>/dev/null \
    || fail "python3 ($(command -v python3)) has no PyYAML; use .venv-gates/bin/python3"
[[ -f $COMPOSE_FILE ]] || fail "$COMPOSE_FILE not found"

work=$(mktemp -d -t opsdeck-compose-check-XXXXXX)
trap 'rm -rf "$work"' EXIT

# The checks must not depend on the developer's own .env: run them on the file as a clean
# clone sees it (defaults only), from a scratch project directory holding the same paths.
echo "==> podman-compose $(podman-compose --dry-run version 2>/dev/null | head -n1 | awk '{print $NF}'): config of $COMPOSE_FILE"
project=$work/project
mkdir -p "$project/deploy/compose"
cp "$COMPOSE_FILE" "$project/compose.yaml"
cp deploy/compose/init-secrets.sh "$project/deploy/compose/"
[[ -f Dockerfile ]] && cp Dockerfile "$project/"
for profile in "" flower; do
    args=(--dry-run -f "$project/compose.yaml")
    [[ -n $profile ]] && args+=(--profile "$profile")
    out=$work/resolved${profile:+-$profile}.yaml
    if ! (cd "$project" && env -u OPSDECK_IMAGE -u POSTGRES_IMAGE -u REDIS_IMAGE \
            podman-compose "${args[@]}" config) >"$out" 2>"$work/config.err"; then
        tail -n 5 "$work/config.err" >&2
        fail "podman-compose config rejected $COMPOSE_FILE${profile:+ (profile $profile)}"
    fi
    echo "    ok${profile:+ (profile $profile)}: services $(python3 -c \
        'import sys, yaml; print(" ".join(sorted(yaml.safe_load(open(sys.argv[1]))["services"])))' "$out")"
done

echo "==> check-jsonschema $(check-jsonschema --version | awk '{print $NF}'): Compose Specification schema"
check-jsonschema --builtin-schema vendor.compose-spec "$COMPOSE_FILE" "$work/resolved.yaml" \
    "$work/resolved-flower.yaml" \
    || fail "$COMPOSE_FILE does not match the Compose Specification"

echo "==> project rules"
python3 - "$COMPOSE_FILE" "$ENV_EXAMPLE" "$work/resolved-flower.yaml" <<'PY' \
    || fail "$COMPOSE_FILE breaks the project rules above"
import re
import sys

import yaml

raw_path, env_example, resolved_path = sys.argv[1:4]
raw = yaml.safe_load(open(raw_path, encoding="utf-8"))  # anchors and << merges resolved
resolved = yaml.safe_load(open(resolved_path, encoding="utf-8"))
services = raw.get("services") or {}
problems: list[str] = []

OPSDECK_ROLES = {"migrate": "migrate", "web": "web", "worker": "worker", "beat": "beat"}
ONE_SHOT = {"init-secrets", "migrate"}
HEALTHY = {"db", "redis"}
# A name that holds a secret itself (OPSDECK_SECRET_KEY, POSTGRES_PASSWORD), not a setting about
# one (OPSDECK_ACCESS_TOKEN_TTL_SECONDS, OPSDECK_PASSWORD_HASH_TIME_COST).
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIALS?|API_?KEY|PRIVATE_KEY)(_KEY)?$")
# A literal that looks like a generated key or token.
RANDOM_LOOKING = re.compile(r"[A-Za-z0-9+/_=-]{32,}")
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^@\s]+@")
# OPSDECK_* names of .env.example that compose fixes or replaces on purpose (not passed through).
NOT_PASSED = {
    "OPSDECK_ENVIRONMENT": "fixed: production",
    "OPSDECK_DATA_DIR": "fixed: the data volume",
    # Not in the containers' environment at all: podman-compose also substitutes ${...} from a
    # service's own environment, which would change the published address.
    "OPSDECK_HOST": "web's --host 0.0.0.0; .env's value is the published address",
    "OPSDECK_PORT": "web's --port 8004; .env's value is the published port",
    "OPSDECK_FRONTEND_DIST": "the image sets it",
    "OPSDECK_DATABASE_URL": "a secret file",
    "OPSDECK_REDIS_URL": "fixed: the redis service",
    "OPSDECK_SECRET_KEY": "a secret file",
    "OPSDECK_WEBHOOK_SECRET": "a secret file",
    "OPSDECK_WORKER_CONCURRENCY": "the worker's --concurrency (OPSDECK_WORKER_PROCESSES)",
    "OPSDECK_LOG_FILE": "containers log to stdout",
    "OPSDECK_METRICS_DIR": "fixed: per container, under /tmp",
    "OPSDECK_WORKER_METRICS_PORT": "fixed: the worker's --metrics-port 9808",
    "OPSDECK_SMTP_PASSWORD": "not passed: a secret; to use SMTP AUTH, add a file to the secrets "
    "volume and set OPSDECK_SMTP_PASSWORD_FILE=/run/secrets/<name> (docs/deployment.md)",
}


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): ("" if v is None else str(v)) for k, v in env.items()}


for name, service in services.items():
    where = f"services.{name}"
    # Image names are variables, so a mirror or a locally built image can stand in.
    image = str(service.get("image", ""))
    if not re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*_IMAGE:-[^}]+\}", image):
        problems.append(f"{where}.image {image!r} is not overridable (use ${{NAME_IMAGE:-default}})")
    if name in OPSDECK_ROLES and not image.startswith("${OPSDECK_IMAGE:-"):
        problems.append(f"{where}.image must be ${{OPSDECK_IMAGE:-...}} (one image, every role)")
    # No inline secrets, in any form.
    for key, value in env_of(service).items():
        if key.endswith("_FILE"):
            if SECRET_NAME.search(key) or key == "OPSDECK_DATABASE_URL_FILE":
                if not value.startswith("/run/secrets/"):
                    problems.append(f"{where}.environment.{key} must point under /run/secrets/")
            continue
        if SECRET_NAME.search(key) and value != "":
            problems.append(f"{where}.environment.{key} has an inline value: secrets come from *_FILE")
        if RANDOM_LOOKING.fullmatch(value) and not value.startswith("/"):
            problems.append(f"{where}.environment.{key} looks like an inline key or token")
        if URL_WITH_PASSWORD.search(value):
            problems.append(f"{where}.environment.{key} holds a URL with a password")
        if key in ("OPSDECK_DATABASE_URL", "DATABASE_URL") and value:
            problems.append(f"{where}.environment.{key} must be empty: use OPSDECK_DATABASE_URL_FILE")
    for text in map(str, service.get("command") or []):
        if URL_WITH_PASSWORD.search(text):
            problems.append(f"{where}.command holds a URL with a password")
    if "env_file" in service:
        problems.append(f"{where}.env_file: .env holds embedded-mode values; pass settings one by one")
    # Dependencies wait for health, or for the one-shot services to finish.
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        if depends:
            problems.append(f"{where}.depends_on is a list: give each dependency a condition")
        depends = {}
    for dep, spec in depends.items():
        condition = (spec or {}).get("condition")
        if dep in HEALTHY and condition != "service_healthy":
            problems.append(f"{where}.depends_on.{dep} must wait for service_healthy")
        if dep in ONE_SHOT and condition != "service_completed_successfully":
            problems.append(f"{where}.depends_on.{dep} must wait for service_completed_successfully")
        if dep not in services:
            problems.append(f"{where}.depends_on.{dep}: no such service")
        if condition == "service_healthy":
            check = (services.get(dep) or {}).get("healthcheck") or {}
            if check.get("disable") or not check.get("test"):
                problems.append(f"{where} waits for {dep} to be healthy, but {dep} has no healthcheck")
    # Resource limits on every service.
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not limits.get("memory") or not limits.get("cpus"):
        problems.append(f"{where}.deploy.resources.limits needs cpus and memory")
    if name in ONE_SHOT and str(service.get("restart", "")) != "no":
        problems.append(f'{where}.restart must be "no" (one-shot)')

# Every OpsDeck role: one image, production, secrets from files, hardened.
for name, sub in OPSDECK_ROLES.items():
    service = services.get(name)
    if service is None:
        problems.append(f"services.{name} is missing")
        continue
    where = f"services.{name}"
    command = " ".join(map(str, service.get("command") or []))
    if not command.startswith(sub):
        problems.append(f"{where}.command must run `opsdeck {sub}`, not {command!r}")
    env = env_of(service)
    for key in ("OPSDECK_HOST", "OPSDECK_PORT"):
        if key in env:
            problems.append(f"{where}.environment.{key}: keep it out of the environment (it is "
                            "the published address/port; podman-compose would substitute it)")
    expected = {
        "OPSDECK_ENVIRONMENT": "production",
        "OPSDECK_DATA_DIR": "/var/lib/opsdeck",
        "OPSDECK_SECRET_KEY_FILE": "/run/secrets/secret_key",
        "OPSDECK_WEBHOOK_SECRET_FILE": "/run/secrets/webhook_secret",
        "OPSDECK_DATABASE_URL_FILE": "/run/secrets/database_url",
    }
    for key, value in expected.items():
        if env.get(key) != value:
            problems.append(f"{where}.environment.{key} must be {value!r}, not {env.get(key)!r}")
    if not env.get("OPSDECK_REDIS_URL", "").startswith("redis://redis:"):
        problems.append(f"{where}.environment.OPSDECK_REDIS_URL must point at the redis service")
    if not env.get("OPSDECK_METRICS_DIR", "").startswith("/tmp/"):
        problems.append(f"{where}.environment.OPSDECK_METRICS_DIR must be per container (/tmp)")
    volumes = [str(v) for v in service.get("volumes") or []]
    if "data:/var/lib/opsdeck" not in volumes:
        problems.append(f"{where}.volumes must mount the shared `data` volume at /var/lib/opsdeck")
    if "secrets:/run/secrets:ro" not in volumes:
        problems.append(f"{where}.volumes must mount `secrets` read-only at /run/secrets")
    if service.get("read_only") is not True:
        problems.append(f"{where}.read_only must be true")
    if "ALL" not in (service.get("cap_drop") or []):
        problems.append(f"{where}.cap_drop must contain ALL")
    if "no-new-privileges:true" not in (service.get("security_opt") or []):
        problems.append(f"{where}.security_opt must contain no-new-privileges:true")
    if name != "web" and not (service.get("healthcheck") or {}).get("disable"):
        problems.append(f"{where}.healthcheck: disable the image's web HEALTHCHECK for this role")
    if name == "web" and not (service.get("healthcheck") or {}).get("test"):
        problems.append(f"{where}.healthcheck.test is missing")
    if name == "web" and "--host 0.0.0.0 --port 8004" not in command:
        problems.append(f"{where}.command must listen on --host 0.0.0.0 --port 8004")

# Scalable workers: nothing that pins one container.
worker = services.get("worker") or {}
for key in ("container_name", "ports", "hostname"):
    if key in worker:
        problems.append(f"services.worker.{key} would stop `--scale worker=N`")
for name, service in services.items():
    if "container_name" in service:
        problems.append(f"services.{name}.container_name: let compose name containers")
    if service.get("ports") and name not in ("web", "flower"):
        problems.append(f"services.{name}.ports: only web (and flower) are published")
    if name not in OPSDECK_ROLES and name != "init-secrets":
        for volume in map(str, service.get("volumes") or []):
            if volume.startswith("secrets:") and not volume.endswith(":ro"):
                problems.append(f"services.{name}.volumes: mount `secrets` read-only")
if "flower" in services and (services["flower"].get("profiles") or []) != ["flower"]:
    problems.append("services.flower must be optional: profiles: [flower]")
for volume in ("pgdata", "redisdata", "data", "secrets"):
    if volume not in (raw.get("volumes") or {}):
        problems.append(f"volumes.{volume} (a named volume) is missing")
if "flower" not in (resolved.get("services") or {}):
    problems.append("the flower profile does not resolve to a flower service")

# Drift: every OPSDECK_* setting of .env.example reaches the containers or is fixed on purpose.
documented = re.findall(r"^(OPSDECK_[A-Z0-9_]+)=", open(env_example, encoding="utf-8").read(), re.M)
passed = env_of(services.get("web") or {})
for key in documented:
    if key not in passed and key not in NOT_PASSED:
        problems.append(f"{key} (in {env_example}) is neither passed to the containers nor "
                        "listed as fixed in scripts/ci/compose-check.sh")

if problems:
    for problem in problems:
        print(f"    rule broken: {problem}", file=sys.stderr)
    sys.exit(1)
print(f"    ok: {len(services)} services, {len(documented)} settings of {env_example} accounted for")
PY

echo "compose-check: passed"
