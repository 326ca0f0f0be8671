#!/usr/bin/env bash
# The container image is really built and run, with podman (no Docker engine, no registry):
#   1. a registry-free base image (debootstrap, cached) and the build context check;
#   2. `podman build` of the Dockerfile (layers cached under build/podman), image size, labels;
#   3. the embedded role: `serve` answers /health and /ready, every process runs as the fixed
#      non-root UID, the image's HEALTHCHECK passes, SIGTERM stops it quickly (no SIGKILL);
#   4. the distributed roles against a private PostgreSQL and Redis on loopback (host network),
#      in production mode with every secret in a read-only *_FILE: `migrate`, then `web`,
#      `worker` and `beat`; an image batch submitted to the web is processed by the worker, and an
#      output image and output.csv are downloaded and checked.
# Everything started is removed on exit. Runs as root on Debian 12 (installs podman, buildah,
# debootstrap, runc, redis-server and postgresql when missing).
#
# Environment: OPSDECK_DOCKERFILE (default Dockerfile; relative paths from the repository root), OPSDECK_IMAGE (localhost/opsdeck:ci),
# OPSDECK_BASE_IMAGE (default: the debootstrapped localhost/debian-python:bookworm),
# OPSDECK_PODMAN_DIR (podman storage, default build/podman), OPSDECK_SMOKE_BATCH_TIMEOUT (120 s),
# OPSDECK_IMAGE_MAX_MB (600), OPSDECK_CONTEXT_MAX_KB (20000), OPSDECK_IMAGE_SOURCE (the source label),
# OPSDECK_PODMAN_MAX_GB (10: dangling cache images are pruned above it).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
# shellcheck source=scripts/ci/lib-podman.sh
. scripts/ci/lib-podman.sh
# shellcheck source=scripts/ci/lib-smoke.sh
. scripts/ci/lib-smoke.sh

DOCKERFILE=${OPSDECK_DOCKERFILE:-Dockerfile}
IMAGE=${OPSDECK_IMAGE:-localhost/opsdeck:ci}
APP_UID=10001
STOP_TIMEOUT=15
BATCH_TIMEOUT=${OPSDECK_SMOKE_BATCH_TIMEOUT:-120}
IMAGE_MAX_MB=${OPSDECK_IMAGE_MAX_MB:-600}
CONTEXT_MAX_KB=${OPSDECK_CONTEXT_MAX_KB:-20000}
RUN_ID=opsdeck-smoke-$$
RUN_OPTS=(--pull=never)
STARTED=$SECONDS
TIMINGS=()
CONTAINERS=()
VOLUMES=()
SERVER_PIDS=()
PG_BIN=""
PG_DATA=""
CURRENT_STEP=""
STEP_STARTED=$SECONDS

WORK=$(mktemp -d "${TMPDIR:-/tmp}/opsdeck-smoke-XXXXXX")
chmod 0755 "$WORK" # the postgres user and the container's UID traverse it

cleanup() {
    local status=$?
    set +e
    if [[ -n $CURRENT_STEP ]]; then
        TIMINGS+=("$(printf 'FAILED  %-34s %4ds' "$CURRENT_STEP" $((SECONDS - STEP_STARTED)))")
    fi
    if [[ $status -ne 0 ]]; then
        local container
        for container in "${CONTAINERS[@]}"; do
            if podman container exists "$container" 2>/dev/null; then
                printf '\n--- last log lines of %s ---\n' "$container" >&2
                podman logs --tail 40 "$container" >&2 2>&1
            fi
        done
    fi
    local item
    for item in "${CONTAINERS[@]}"; do
        podman rm --force --time 0 "$item" >/dev/null 2>&1
    done
    for item in "${VOLUMES[@]}"; do
        podman volume rm --force "$item" >/dev/null 2>&1
    done
    for item in "${SERVER_PIDS[@]}"; do
        kill "$item" 2>/dev/null && wait "$item" 2>/dev/null
    done
    if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
        as_postgres "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w >/dev/null 2>&1
    fi
    podman rmi --force "localhost/$RUN_ID-context" >/dev/null 2>&1
    # An interrupted build leaves its working containers (and their layers) behind.
    buildah containers --quiet 2>/dev/null | xargs -r buildah rm >/dev/null 2>&1
    rm -rf "$WORK"
    smoke_finish "$status" image "$(basename "$DOCKERFILE"), $IMAGE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fetch() {
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}

# wait_http URL CONTAINER [TIMEOUT]: until URL answers 200; fail early if the container stops.
wait_http() {
    local url=$1 container=$2 timeout=${3:-90} deadline status="000" running
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        status=$(http_status "$url")
        [[ $status == 200 ]] && { ok "$url -> 200"; return 0; }
        running=$(podman inspect --format '{{.State.Running}}' "$container" 2>/dev/null || echo false)
        [[ $running == true ]] || fail "container $container exited while waiting for $url"
        sleep 0.5
    done
    fail "$url did not answer 200 within ${timeout}s (last: $status)"
}

# stop_quickly CONTAINER: SIGTERM must stop it well before podman falls back to SIGKILL.
stop_quickly() {
    local container=$1 started ended took code
    started=$(date +%s%N)
    podman stop --time "$STOP_TIMEOUT" "$container" >/dev/null
    ended=$(date +%s%N)
    took=$(((ended - started) / 1000000))
    code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
    if [[ $code -eq 137 ]] || ((took >= STOP_TIMEOUT * 1000)); then
        fail "$container did not stop on SIGTERM: exit status $code after ${took} ms (SIGKILL after ${STOP_TIMEOUT}s)"
    fi
    ok "$container stopped on SIGTERM in ${took} ms (exit status $code)"
}

# check_uids CONTAINER: every process in the container runs as the image's non-root UID.
check_uids() {
    local container=$1 listing
    listing=$(podman exec "$container" python3 -c '
import os
for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
    try:
        status = open(f"/proc/{pid}/status").read()
        command = " ".join(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().split())
    except OSError:
        continue
    uid = next(line.split()[1:3] for line in status.splitlines() if line.startswith("Uid:"))
    print(pid, ",".join(uid), command[:100])
') || fail "cannot list the processes of $container"
    printf '%s\n' "$listing" | sed 's/^/      /'
    if awk -v want="$APP_UID,$APP_UID" '$2 != want { bad = 1 } END { exit !bad }' <<<"$listing"; then
        fail "$container: a process does not run as UID $APP_UID (real,effective shown above)"
    fi
    ok "$container: $(wc -l <<<"$listing") processes, all UID $APP_UID"
}

# ---------------------------------------------------------------------------------------------

prepare() {
    [[ -f $DOCKERFILE ]] || fail "no Dockerfile at $DOCKERFILE"
    podman_setup
    podman_apt_install redis-server:redis-server
    if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
        podman_apt_install /usr/lib/postgresql/15/bin/initdb:postgresql
    fi
    PG_BIN=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n1 | xargs dirname)
}

base_image() { podman_base_image; }

# What the build sees: .dockerignore must keep it small and free of local state.
context_check() {
    printf 'FROM %s\nCOPY . /context\n' "$PODMAN_BASE_IMAGE" >"$WORK/Context.Dockerfile"
    podman build --quiet --pull=never --network none -f "$WORK/Context.Dockerfile" \
        -t "localhost/$RUN_ID-context" . >/dev/null
    local report size files unwanted
    report=$(podman run --rm "${RUN_OPTS[@]}" --network none "localhost/$RUN_ID-context" sh -c '
        du -sk /context | cut -f1
        find /context -type f | wc -l
        cd /context && find . \( -name .git -o -name .venv -o -name ".venv-*" -o -name node_modules \
            -o -path ./frontend/dist -o -path ./build -o -path ./var -o -name test-results \
            -o -name __pycache__ -o -name .env \) -prune -print | head -n 5')
    size=$(sed -n 1p <<<"$report")
    files=$(sed -n 2p <<<"$report")
    unwanted=$(sed -n '3,$p' <<<"$report" | xargs)
    say "build context: ${size} kB, ${files} files"
    [[ -z $unwanted ]] || fail "the build context contains $unwanted; fix .dockerignore"
    ((size <= CONTEXT_MAX_KB)) || fail "the build context is ${size} kB (> ${CONTEXT_MAX_KB} kB); fix .dockerignore"
    ok "no local state (.git, virtualenvs, node_modules, dist, build, var) in the context"
}

build() {
    podman_build_opsdeck "$IMAGE" "$DOCKERFILE"
    EXPECTED_VERSION=$PODMAN_IMAGE_VERSION
    EXPECTED_REVISION=$PODMAN_IMAGE_REVISION
}

# The layer cache lives in dangling intermediate images; drop them when the store grows big.
prune_cache() {
    local used_mb limit_mb=$((${OPSDECK_PODMAN_MAX_GB:-10} * 1000))
    used_mb=$(du -sm "$PODMAN_DIR/storage" | cut -f1)
    if ((used_mb > limit_mb)); then
        say "podman storage at ${used_mb} MB (> ${limit_mb} MB): pruning dangling images"
        podman image prune --force >/dev/null
    fi
}

inspect_image() {
    local size_mb labels user health entrypoint
    size_mb=$(($(podman image inspect --format '{{.Size}}' "$IMAGE") / 1000000))
    say "image $IMAGE: ${size_mb} MB"
    ((size_mb <= IMAGE_MAX_MB)) || fail "the image is ${size_mb} MB (> ${IMAGE_MAX_MB} MB)"
    labels=$(podman image inspect --format '{{range $k, $v := .Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}' "$IMAGE")
    local name value
    for name in source version revision title licenses; do
        value=$(sed -n "s/^org\.opencontainers\.image\.$name=//p" <<<"$labels")
        [[ -n $value ]] || fail "label org.opencontainers.image.$name is missing or empty"
        ok "label org.opencontainers.image.$name=$value"
    done
    grep -qx "org.opencontainers.image.revision=$EXPECTED_REVISION" <<<"$labels" \
        || fail "label org.opencontainers.image.revision is not $EXPECTED_REVISION"
    grep -qx "org.opencontainers.image.version=$EXPECTED_VERSION" <<<"$labels" \
        || fail "label org.opencontainers.image.version is not $EXPECTED_VERSION"
    user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
    [[ ${user%%:*} == "$APP_UID" ]] || fail "the image's USER is '${user}', not $APP_UID"
    ok "USER $user"
    health=$(podman image inspect --format '{{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}' "$IMAGE")
    [[ -n $health ]] || fail "the image has no HEALTHCHECK (was it built with --format docker?)"
    ok "HEALTHCHECK $health"
    entrypoint=$(podman image inspect --format '{{join .Config.Entrypoint " "}} | {{join .Config.Cmd " "}}' "$IMAGE")
    ok "ENTRYPOINT | CMD: $entrypoint"
    podman run --rm "${RUN_OPTS[@]}" --network none "$IMAGE" --version
}

production_refusal() {
    local output
    if output=$(podman run --rm "${RUN_OPTS[@]}" --network none -e OPSDECK_ENVIRONMENT=production \
        "$IMAGE" migrate 2>&1); then
        fail "production mode started without a secret key or PostgreSQL"
    fi
    grep -q "refusing to start in production" <<<"$output" \
        || fail "production mode without secrets failed, but not with the expected message: $output"
    ok "production mode without secrets is refused"
}

embedded_serve() {
    local volume=$RUN_ID-serve container=$RUN_ID-serve port
    port=$(free_port)
    VOLUMES+=("$volume")
    podman volume create "$volume" >/dev/null
    podman run --rm "${RUN_OPTS[@]}" --network none -v "$volume:/var/lib/opsdeck" "$IMAGE" migrate
    CONTAINERS+=("$container")
    podman run -d "${RUN_OPTS[@]}" --name "$container" --network host -e "OPSDECK_PORT=$port" \
        -v "$volume:/var/lib/opsdeck" "$IMAGE" >/dev/null
    wait_http "http://127.0.0.1:$port/health" "$container"
    wait_http "http://127.0.0.1:$port/ready" "$container"
    grep -q '<div id="root">' <(fetch "http://127.0.0.1:$port/") \
        || fail "/ does not serve the built front end (OPSDECK_FRONTEND_DIST)"
    ok "/ serves the built front end"
    check_uids "$container"
    local health
    health=$(podman healthcheck run "$container" 2>&1 | grep -v 'systemd' || true)
    podman healthcheck run "$container" >/dev/null 2>&1 \
        || fail "podman healthcheck run $container: ${health:-unhealthy}"
    ok "the image's HEALTHCHECK passes (${health:-healthy})"
    stop_quickly "$container"
}

start_postgres() {
    local root=$WORK/postgres password
    PG_PORT=$(free_port)
    mkdir -p "$root"
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    printf '%s\n' "$password" >"$root/password"
    [[ $(id -u) -eq 0 ]] && chown -R postgres: "$root"
    chmod 0700 "$root"
    PG_DATA=$root/data
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U opsdeck --pwfile="$root/password" \
        --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --locale=C --no-sync \
        >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; fail "initdb failed"; }
    printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\n" \
        "$root" >>"$PG_DATA/postgresql.conf"
    as_postgres "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$root/postgres.log" -w -t 60 \
        -o "-p $PG_PORT" >/dev/null || { cat "$root/postgres.log" >&2; fail "PostgreSQL did not start"; }
    as_postgres "$PG_BIN/createdb" -h "$root" -p "$PG_PORT" -U opsdeck opsdeck
    DATABASE_URL="postgresql+psycopg://opsdeck:$password@127.0.0.1:$PG_PORT/opsdeck"
    ok "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (password auth)"
}

as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_redis() {
    local port password
    port=$(free_port)
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    mkdir -p "$WORK/redis"
    printf 'bind 127.0.0.1\nport %s\nsave ""\nappendonly no\ndir %s\nrequirepass %s\n' \
        "$port" "$WORK/redis" "$password" >"$WORK/redis/redis.conf"
    chmod 0600 "$WORK/redis/redis.conf"
    redis-server "$WORK/redis/redis.conf" >"$WORK/redis/redis.log" 2>&1 &
    SERVER_PIDS+=("$!")
    local deadline=$((SECONDS + 30))
    until REDISCLI_AUTH=$password redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
        ((SECONDS < deadline)) || { cat "$WORK/redis/redis.log" >&2; fail "Redis did not start"; }
        sleep 0.2
    done
    REDIS_URL="redis://:$password@127.0.0.1:$port/0"
    ok "Redis $(redis-server --version | awk '{print $3}') on 127.0.0.1:$port (password auth)"
}

write_secrets() {
    local dir=$WORK/secrets
    mkdir -p "$dir"
    printf '%s\n' "$DATABASE_URL" >"$dir/database_url"
    printf '%s\n' "$REDIS_URL" >"$dir/redis_url"
    python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$dir/secret_key"
    python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$dir/webhook_secret"
    chmod 0400 "$dir"/*
    chmod 0500 "$dir"
    [[ $(id -u) -eq 0 ]] && chown -R "$APP_UID:$APP_UID" "$dir"
    ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    ok "secrets in read-only files (database_url, redis_url, secret_key, webhook_secret)"
}

serve_test_images() {
    local dir=$WORK/images
    mkdir -p "$dir"
    # Made with the image's own libvips: a PNG and a JPEG.
    podman run --rm "${RUN_OPTS[@]}" --network none --entrypoint python3 "$IMAGE" -c '
import sys, pyvips
xy = pyvips.Image.xyz(120, 80)
image = xy.bandjoin((xy[0] + xy[1]) / 2).cast("uchar")
sys.stdout.buffer.write(image.write_to_buffer(sys.argv[1]))' .png >"$dir/gradient.png"
    podman run --rm "${RUN_OPTS[@]}" --network none --entrypoint python3 "$IMAGE" -c '
import sys, pyvips
image = (pyvips.Image.black(160, 90, bands=3) + [30, 90, 200]).cast("uchar")
sys.stdout.buffer.write(image.write_to_buffer(sys.argv[1], Q=90))' .jpg >"$dir/blue.jpg"
    IMAGES_PORT=$(free_port)
    python3 -m http.server --bind 127.0.0.1 --directory "$dir" "$IMAGES_PORT" \
        >"$WORK/http-server.log" 2>&1 &
    SERVER_PIDS+=("$!")
    local deadline=$((SECONDS + 15))
    until [[ $(http_status "http://127.0.0.1:$IMAGES_PORT/gradient.png") == 200 ]]; do
        ((SECONDS < deadline)) || fail "the test image server did not start"
        sleep 0.2
    done
    ok "test images (PNG $(stat -c %s "$dir/gradient.png") B, JPEG $(stat -c %s "$dir/blue.jpg") B) on 127.0.0.1:$IMAGES_PORT"
}

distributed_roles() {
    local volume=$RUN_ID-data web=$RUN_ID-web worker=$RUN_ID-worker beat=$RUN_ID-beat
    WEB_PORT=$(free_port)
    VOLUMES+=("$volume")
    podman volume create "$volume" >/dev/null
    local common=(
        "${RUN_OPTS[@]}" --network host
        -v "$volume:/var/lib/opsdeck"
        -v "$WORK/secrets:/run/secrets:ro"
        -e OPSDECK_ENVIRONMENT=production
        -e OPSDECK_DATABASE_URL_FILE=/run/secrets/database_url
        -e OPSDECK_REDIS_URL_FILE=/run/secrets/redis_url
        -e OPSDECK_SECRET_KEY_FILE=/run/secrets/secret_key
        -e OPSDECK_WEBHOOK_SECRET_FILE=/run/secrets/webhook_secret
        -e OPSDECK_FETCH_ALLOWED_NETWORKS=127.0.0.0/8
        -e "OPSDECK_PORT=$WEB_PORT"
        -e "OPSDECK_PUBLIC_URL=http://127.0.0.1:$WEB_PORT"
    )
    podman run --rm "${common[@]}" "$IMAGE" migrate
    ok "migrate role: PostgreSQL at head"
    CONTAINERS+=("$web" "$worker" "$beat")
    podman run -d --name "$web" "${common[@]}" "$IMAGE" web --workers 2 >/dev/null
    podman run -d --name "$worker" "${common[@]}" "$IMAGE" worker --concurrency 2 >/dev/null
    podman run -d --name "$beat" "${common[@]}" "$IMAGE" beat >/dev/null
    wait_http "http://127.0.0.1:$WEB_PORT/ready" "$web"
    check_uids "$web"
    check_uids "$worker"
    printf '%s\n' "$ADMIN_PASSWORD" | podman exec -i "$web" opsdeck users create \
        --username smoke --email smoke@example.com --admin --password-stdin
    OPSDECK_SMOKE_PASSWORD=$ADMIN_PASSWORD python3 "$REPO_ROOT/scripts/ci/smoke_batch.py" "http://127.0.0.1:$WEB_PORT" \
        "http://127.0.0.1:$IMAGES_PORT" "$BATCH_TIMEOUT"
    [[ $(podman inspect --format '{{.State.Running}}' "$beat") == true ]] || fail "the beat role exited"
    ok "beat role running"
    stop_quickly "$web"
    stop_quickly "$worker"
    stop_quickly "$beat"
}

step "prepare podman and servers" prepare
step "base image" base_image
step "build context" context_check
step "build $IMAGE" build
step "prune the layer cache" prune_cache
step "inspect image" inspect_image
step "production refusal" production_refusal
step "embedded role (serve)" embedded_serve
step "PostgreSQL" start_postgres
step "Redis" start_redis
step "secrets" write_secrets
step "test image server" serve_test_images
step "distributed roles" distributed_roles
