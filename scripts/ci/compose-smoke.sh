#!/usr/bin/env bash
# The compose stack, really brought up with podman-compose (no Docker engine, no registry):
#   1. the OpsDeck image (reused when localhost/opsdeck:ci was built from this commit, else built
#      as scripts/ci/image-smoke.sh does) and local stand-ins for the PostgreSQL and Redis images
#      (deploy/compose/standins/: Debian's PostgreSQL 15 and Redis 7.0, built on the same base);
#   2. a scratch project directory holding compose.yaml and deploy/compose/init-secrets.sh as a
#      clean clone has them, with `cp .env.example .env` plus the test's own values (a free
#      OPSDECK_PORT, OPSDECK_FETCH_ALLOWED_NETWORKS for the test image server);
#   3. `podman-compose up` with OPSDECK_IMAGE, POSTGRES_IMAGE and REDIS_IMAGE pointing at the
#      local images, a unique project name and two worker containers; init-secrets and migrate
#      must exit 0, db and redis pass their health checks, web its health check and /ready;
#   4. a user is created (`podman-compose exec -T web opsdeck users create --password-stdin`), a
#      CSV batch of images served by a `python3 -m http.server` on the host is processed by the
#      workers, and an output image and output.csv are downloaded through the published port;
#   5. `podman-compose down -v` (also on failure, after printing every container's log).
#
# Podman 4.3 (Debian 12) cannot run `up` in one go: podman-compose ignores `service_healthy`
# before podman 4.6, health checks only run on their own with systemd, and podman's
# dependency graph rejects starting a container whose exited dependency (migrate) depends on a
# running one (db): "depends on container ... not found in input list" (podman-compose issue
# 921, fixed in podman in 2025). So the stack is brought up in compose's own dependency order,
# one stage per `up --no-deps`, this script doing the waiting compose would do (exited 0,
# `podman healthcheck run` until healthy). OPSDECK_COMPOSE_SMOKE_ONE_UP=1 runs a single
# `up -d` instead (a podman and podman-compose that handle the conditions themselves).
#
# Runs as root on Debian 12 (installs podman, buildah, debootstrap, runc and, for podman's CNI
# networks, the dnsname plugin when missing); podman-compose comes from .venv-gates (make
# compose-smoke puts it on PATH).
# Environment: OPSDECK_IMAGE (localhost/opsdeck:ci), OPSDECK_COMPOSE_FILE (compose.yaml),
# OPSDECK_BASE_IMAGE, OPSDECK_PODMAN_DIR (build/podman, shared with image-smoke.sh),
# OPSDECK_SMOKE_BATCH_TIMEOUT (120 s), OPSDECK_COMPOSE_SMOKE_START_TIMEOUT (180 s per stage),
# OPSDECK_COMPOSE_SMOKE_BUILD: auto (default: reuse OPSDECK_IMAGE when its revision label is
# HEAD and the files it is built from are unchanged, else build it), always, or never (use the
# existing OPSDECK_IMAGE as it is, e.g. one built by image-smoke.sh or loaded from elsewhere).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
# shellcheck source=scripts/ci/lib-podman.sh
. scripts/ci/lib-podman.sh
# shellcheck source=scripts/ci/lib-smoke.sh
. scripts/ci/lib-smoke.sh

IMAGE=${OPSDECK_IMAGE:-localhost/opsdeck:ci}
COMPOSE_FILE=${OPSDECK_COMPOSE_FILE:-compose.yaml}
POSTGRES_STANDIN=localhost/opsdeck-standin-postgres:15
REDIS_STANDIN=localhost/opsdeck-standin-redis:7
BATCH_TIMEOUT=${OPSDECK_SMOKE_BATCH_TIMEOUT:-120}
START_TIMEOUT=${OPSDECK_COMPOSE_SMOKE_START_TIMEOUT:-180}
WORKERS=2
PROJECT=opsdeck-compose-smoke-$$
STARTED=$SECONDS
TIMINGS=()
SERVER_PIDS=()
CURRENT_STEP=""
STEP_STARTED=$SECONDS
STACK_UP=false
PODMAN_COMPOSE=""

WORK=$(mktemp -d "${TMPDIR:-/tmp}/opsdeck-compose-smoke-XXXXXX")
PROJECT_DIR=$WORK/project

# compose ARGS...: podman-compose on the scratch project, its environment free of the caller's
# OPSDECK_* variables (compose would prefer them to .env), the image names pointing at the local
# images.
compose() {
    local unset_args=() name
    for name in $(compgen -e); do
        [[ $name == OPSDECK_* || $name == POSTGRES_* || $name == REDIS_* ]] && unset_args+=(-u "$name")
    done
    (
        cd "$PROJECT_DIR"
        env "${unset_args[@]}" OPSDECK_IMAGE="$IMAGE" POSTGRES_IMAGE="$POSTGRES_STANDIN" \
            REDIS_IMAGE="$REDIS_STANDIN" \
            "$PODMAN_COMPOSE" -p "$PROJECT" -f compose.yaml "$@"
    ) 2> >(grep -v --line-buffered -e 'unable to get systemd connection' \
        -e "doesn't support healthy" >&2)
}

# containers SERVICE: the names of the project's containers of that service.
containers() {
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort
}

cleanup() {
    local status=$?
    set +e
    if [[ -n $CURRENT_STEP ]]; then
        TIMINGS+=("$(printf 'FAILED  %-36s %4ds' "$CURRENT_STEP" $((SECONDS - STEP_STARTED)))")
    fi
    if [[ $STACK_UP == true ]]; then
        local names name volumes
        names=$(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}' | sort)
        if [[ $status -ne 0 ]]; then
            printf '\n--- podman ps -a (project %s) ---\n' "$PROJECT" >&2
            podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
                --format '{{.Names}}  {{.Status}}' >&2
            for name in $names; do
                printf '\n--- last log lines of %s ---\n' "$name" >&2
                podman logs --tail 30 "$name" >&2 2>&1
            done
        fi
        # Anonymous volumes (the PostgreSQL image's VOLUME in init-secrets) are not removed by
        # podman-compose's `down -v`: collect them first.
        volumes=$(for name in $names; do
            podman inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{"\n"}}{{end}}{{end}}' "$name"
        done | sort -u)
        say "podman-compose down -v"
        compose down -v -t 10 >"$WORK/down.log" 2>&1 || tail -n 20 "$WORK/down.log" >&2
        for name in $volumes; do
            podman volume exists "$name" && podman volume rm --force "$name" >/dev/null
        done
        podman network exists "${PROJECT}_default" && podman network rm --force "${PROJECT}_default" >/dev/null
    fi
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
    smoke_finish "$status" compose "$(basename "$COMPOSE_FILE"), $IMAGE, project $PROJECT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# state CONTAINER: running, exited:<code>, created, ...
state() {
    podman inspect --format '{{.State.Status}}{{if eq .State.Status "exited"}}:{{.State.ExitCode}}{{end}}' "$1" 2>/dev/null \
        || echo missing
}

# wait_exited SERVICE: its one container must exit with status 0 (service_completed_successfully).
wait_exited() {
    local service=$1 name code
    name=$(containers "$service")
    [[ -n $name ]] || fail "no container for service $service"
    code=$(timeout "$START_TIMEOUT" podman wait "$name") \
        || fail "$service did not exit within ${START_TIMEOUT}s ($(state "$name"))"
    [[ $code == 0 ]] || fail "$service exited with status $code (service_completed_successfully expected)"
    ok "$service exited 0"
}

# wait_healthy SERVICE: run its health check until it passes (service_healthy).
wait_healthy() {
    local service=$1 name current deadline=$((SECONDS + START_TIMEOUT)) started=$SECONDS
    name=$(containers "$service")
    [[ -n $name ]] || fail "no container for service $service"
    until podman healthcheck run "$name" >/dev/null 2>&1; do
        current=$(state "$name")
        [[ $current == running ]] || fail "$service is $current while waiting for its health check"
        ((SECONDS < deadline)) || fail "$service not healthy after ${START_TIMEOUT}s"
        sleep 1
    done
    ok "$service healthy after $((SECONDS - started))s ($(podman inspect --format '{{.Config.Image}}' "$name"))"
}

# ---------------------------------------------------------------------------------------------

prepare() {
    [[ -f $COMPOSE_FILE ]] || fail "no compose file at $COMPOSE_FILE"
    PODMAN_COMPOSE=$(command -v podman-compose || true)
    if [[ -z $PODMAN_COMPOSE && -x .venv-gates/bin/podman-compose ]]; then
        PODMAN_COMPOSE=$REPO_ROOT/.venv-gates/bin/podman-compose
    fi
    [[ -n $PODMAN_COMPOSE ]] || fail "podman-compose not found; run \`make gate-tools\` (or \`make compose-smoke\`)"
    podman_setup
    # Compose's service names (db, redis) are resolved by the network's DNS: with podman's CNI
    # backend that is the dnsname plugin (netavark has aardvark-dns). A network made before the
    # plugin was installed has none; this run's project network is new.
    if [[ $(podman info --format '{{.Host.NetworkBackend}}') == cni ]]; then
        podman_apt_install /usr/lib/cni/dnsname:golang-github-containernetworking-plugin-dnsname
    fi
    say "$("$PODMAN_COMPOSE" --version 2>/dev/null | grep -i podman-compose | head -n1)"
}

base_image() { podman_base_image; }

opsdeck_image() {
    local policy=${OPSDECK_COMPOSE_SMOKE_BUILD:-auto} head label dirty
    case $policy in
        auto | always | never) ;;
        *) fail "OPSDECK_COMPOSE_SMOKE_BUILD=$policy: auto, always or never" ;;
    esac
    head=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    if podman image exists "$IMAGE"; then
        label=$(podman image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' "$IMAGE")
        if [[ $policy == never ]]; then
            ok "$IMAGE (revision ${label:-unknown}) used as it is (OPSDECK_COMPOSE_SMOKE_BUILD=never)"
            return 0
        fi
        dirty=$(git status --porcelain -- Dockerfile .dockerignore pyproject.toml requirements.lock \
            README.md src frontend 2>/dev/null || true)
        if [[ $policy == auto && $head != unknown && $label == "$head" && -z $dirty ]]; then
            ok "$IMAGE was built from $head: reused"
            return 0
        fi
        say "$IMAGE is from ${label:-an unknown commit}; HEAD is $head${dirty:+ with local changes}: building"
    elif [[ $policy == never ]]; then
        fail "$IMAGE does not exist (OPSDECK_COMPOSE_SMOKE_BUILD=never)"
    fi
    podman_build_opsdeck "$IMAGE" Dockerfile >"$WORK/build.log" 2>&1 \
        || { tail -n 40 "$WORK/build.log" >&2; fail "podman build of $IMAGE failed"; }
    ok "$IMAGE built ($(grep -c 'Using cache' "$WORK/build.log") cached steps)"
}

standin_images() {
    local name image
    for name in postgres redis; do
        image=$POSTGRES_STANDIN
        [[ $name == redis ]] && image=$REDIS_STANDIN
        podman build --format docker --network host --pull=never \
            --build-arg "BASE_IMAGE=$PODMAN_BASE_IMAGE" -t "$image" \
            "deploy/compose/standins/$name" >"$WORK/build-$name.log" 2>&1 \
            || { tail -n 30 "$WORK/build-$name.log" >&2; fail "podman build of the $name stand-in failed"; }
        ok "$image ($(($(podman image inspect --format '{{.Size}}' "$image") / 1000000)) MB)"
    done
}

# The address the containers reach the host at: its first global IPv4 address (the default
# bridge routes to it; no loopback from a container).
host_address() {
    local address
    address=$(ip -4 -o addr show scope global 2>/dev/null | awk '$2 !~ /^(cni-|podman|veth)/ { sub(/\/.*/, "", $4); print $4; exit }')
    [[ -n $address ]] || address=$(hostname -I 2>/dev/null | awk '{print $1}')
    [[ -n $address ]] || fail "no non-loopback IPv4 address on this machine for the test image server"
    printf '%s\n' "$address"
}

test_images() {
    local dir=$WORK/images
    mkdir -p "$dir"
    # Made with the image's own libvips: a PNG and a JPEG.
    podman run --rm --pull=never --network none --entrypoint python3 "$IMAGE" -c '
import sys, pyvips
xy = pyvips.Image.xyz(120, 80)
image = xy.bandjoin((xy[0] + xy[1]) / 2).cast("uchar")
sys.stdout.buffer.write(image.write_to_buffer(".png"))' >"$dir/gradient.png"
    podman run --rm --pull=never --network none --entrypoint python3 "$IMAGE" -c '
import sys, pyvips
image = (pyvips.Image.black(160, 90, bands=3) + [30, 90, 200]).cast("uchar")
sys.stdout.buffer.write(image.write_to_buffer(".jpg", Q=90))' >"$dir/blue.jpg"
    HOST_ADDRESS=$(host_address)
    IMAGES_PORT=$(free_port)
    python3 -m http.server --bind "$HOST_ADDRESS" --directory "$dir" "$IMAGES_PORT" \
        >"$WORK/http-server.log" 2>&1 &
    SERVER_PIDS+=("$!")
    local deadline=$((SECONDS + 15))
    until [[ $(http_status "http://$HOST_ADDRESS:$IMAGES_PORT/gradient.png") == 200 ]]; do
        ((SECONDS < deadline)) || fail "the test image server did not start"
        sleep 0.2
    done
    ok "test images on http://$HOST_ADDRESS:$IMAGES_PORT/"
}

project() {
    mkdir -p "$PROJECT_DIR/deploy/compose"
    cp "$COMPOSE_FILE" "$PROJECT_DIR/compose.yaml"
    cp deploy/compose/init-secrets.sh "$PROJECT_DIR/deploy/compose/"
    cp .env.example "$PROJECT_DIR/.env"
    WEB_PORT=$(free_port)
    {
        printf '\n# compose-smoke.sh\n'
        printf 'OPSDECK_PORT=%s\n' "$WEB_PORT"
        printf 'OPSDECK_FETCH_ALLOWED_NETWORKS=%s/32\n' "$HOST_ADDRESS"
    } >>"$PROJECT_DIR/.env"
    BASE_URL=http://127.0.0.1:$WEB_PORT
    compose config >"$WORK/config.yaml" 2>"$WORK/config.err" \
        || { cat "$WORK/config.err" >&2; fail "podman-compose config failed"; }
    grep -q "OPSDECK_FETCH_ALLOWED_NETWORKS: $HOST_ADDRESS/32" "$WORK/config.yaml" \
        || fail ".env's OPSDECK_FETCH_ALLOWED_NETWORKS did not reach the containers' environment"
    ok "project $PROJECT: compose.yaml, init-secrets.sh, .env from .env.example (port $WEB_PORT)"
}

# up ARGS...: podman-compose up -d, its output kept for the failure report.
up() {
    STACK_UP=true
    compose up -d --no-build "$@" >>"$WORK/up.log" 2>&1 \
        || { tail -n 30 "$WORK/up.log" >&2; fail "podman-compose up -d $* failed"; }
}

bring_up() {
    if [[ ${OPSDECK_COMPOSE_SMOKE_ONE_UP:-0} == 1 ]]; then
        up --scale "worker=$WORKERS"
    else
        # Compose's dependency order: init-secrets; db, redis (healthy); migrate (exited 0); web,
        # worker, beat.
        up --no-deps init-secrets
        wait_exited init-secrets
        up --no-deps db redis
        wait_healthy db
        wait_healthy redis
        up --no-deps migrate
    fi
    wait_exited migrate
    [[ ${OPSDECK_COMPOSE_SMOKE_ONE_UP:-0} == 1 ]] || up --no-deps --scale "worker=$WORKERS" web worker beat
    wait_healthy web
    local status deadline=$((SECONDS + START_TIMEOUT))
    until status=$(http_status "$BASE_URL/ready") && [[ $status == 200 ]]; do
        [[ $(state "$(containers web)") == running ]] || fail "web stopped while waiting for /ready"
        ((SECONDS < deadline)) || fail "$BASE_URL/ready answered $status, not 200, for ${START_TIMEOUT}s"
        sleep 1
    done
    ok "$BASE_URL/ready -> 200"
}

check_services() {
    local service name current count
    for service in db redis web beat worker; do
        count=0
        for name in $(containers "$service"); do
            current=$(state "$name")
            [[ $current == running ]] || fail "$name is $current, not running"
            count=$((count + 1))
        done
        ((count > 0)) || fail "no container for service $service"
    done
    count=$(containers worker | wc -l)
    ((count == WORKERS)) || fail "$count worker containers, expected $WORKERS (--scale worker=$WORKERS)"
    ok "$WORKERS worker containers running: $(containers worker | xargs)"
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '      {{.Names}}  {{.Status}}'
    # What compose.yaml asks of the OpsDeck containers reached podman.
    local settings
    for name in $(containers web) $(containers worker) $(containers beat); do
        [[ $(podman exec "$name" id -u) == 10001 ]] || fail "$name does not run as UID 10001"
        settings=$(podman inspect --format 'read-only={{.HostConfig.ReadonlyRootfs}} memory={{.HostConfig.Memory}} cpus={{.HostConfig.NanoCpus}} {{.HostConfig.SecurityOpt}}' "$name")
        settings+=" $(podman exec "$name" grep -E '^(CapBnd|NoNewPrivs):' /proc/1/status | xargs)"
        [[ $settings == read-only=true\ memory=[1-9]*\ cpus=[1-9]*no-new-privileges*CapBnd:\ 0000000000000000\ NoNewPrivs:\ 1 ]] \
            || fail "$name: not confined as compose.yaml asks: $settings"
        podman exec "$name" sh -c 'touch /run/secrets/x' 2>/dev/null && fail "$name: /run/secrets is writable"
    done
    ok "web, workers and beat: UID 10001, read-only root, CPU and memory limits, no capabilities, no-new-privileges, read-only secrets"
    # No container leaves an anonymous volume behind (init-secrets runs in the PostgreSQL image,
    # which declares a VOLUME).
    for name in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
        if podman inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{"\n"}}{{end}}{{end}}' "$name" \
            | grep -qvE "^${PROJECT}_"; then
            fail "$name has an anonymous volume (left behind by down): $(podman inspect --format '{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}' "$name")"
        fi
    done
    ok "no anonymous volumes"
}

# Every long-running container stops on its stop signal (tini -> OpsDeck; PostgreSQL's fast
# shutdown; Redis), well before podman falls back to SIGKILL; dependants first, as compose does.
stop_services() {
    local service name started took code limit=30
    for service in web worker beat redis db; do
        for name in $(containers "$service"); do
            started=$(date +%s%N)
            podman stop --time "$limit" "$name" >/dev/null
            took=$((($(date +%s%N) - started) / 1000000))
            code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
            if [[ $code -eq 137 ]] || ((took >= limit * 1000)); then
                fail "$name did not stop on its stop signal: exit status $code after ${took} ms"
            fi
            ok "$name stopped in ${took} ms (exit status $code)"
        done
    done
}

batch() {
    ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    printf '%s\n' "$ADMIN_PASSWORD" | compose exec -T web opsdeck users create \
        --username smoke --email smoke@example.com --admin --password-stdin \
        || fail "podman-compose exec web opsdeck users create failed"
    OPSDECK_SMOKE_PASSWORD=$ADMIN_PASSWORD python3 "$REPO_ROOT/scripts/ci/smoke_batch.py" "$BASE_URL" \
        "http://$HOST_ADDRESS:$IMAGES_PORT" "$BATCH_TIMEOUT"
}

step "prepare podman and podman-compose" prepare
step "base image" base_image
step "OpsDeck image" opsdeck_image
step "stand-in images (PostgreSQL, Redis)" standin_images
step "test image server" test_images
step "project directory and .env" project
step "podman-compose up (worker=$WORKERS)" bring_up
step "services" check_services
step "user, token and image batch" batch
step "stop on the stop signal" stop_services
