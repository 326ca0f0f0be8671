# shellcheck shell=bash
# What the smoke scripts (image-smoke.sh, compose-smoke.sh) share: step bookkeeping, messages and
# small HTTP helpers. Source it after lib-podman.sh; the caller sets STARTED=$SECONDS, declares
# TIMINGS=() and CURRENT_STEP, and ends its EXIT trap with smoke_finish.

say() { podman_log "$@"; }
fail() {
    printf '\nFAILED: %s\n' "$*" >&2
    exit 1
}
ok() { printf '    ok: %s\n' "$*"; }

# step NAME FUNCTION...: run a step in this shell and record how long it took.
step() {
    local name=$1
    shift
    CURRENT_STEP=$name
    STEP_STARTED=$SECONDS
    say "$name"
    "$@"
    TIMINGS+=("$(printf 'ok      %-36s %4ds' "$name" $((SECONDS - STEP_STARTED)))")
    CURRENT_STEP=""
}

# podman without systemd logs an error for every container with a HEALTHCHECK (it cannot
# schedule the checks; `podman healthcheck run` runs one): keep those lines out of the log.
podman() {
    command podman "$@" 2> >(grep -v --line-buffered 'unable to get systemd connection' >&2)
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_status URL: the HTTP status code, 000 when nothing answers.
http_status() {
    python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
        print(response.status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except Exception:
    print("000")
PY
}

# smoke_finish STATUS WHAT DESCRIPTION: the closing summary (step timings, total, verdict) of
# the "WHAT smoke test", then exit with STATUS. For the caller's EXIT trap, after its cleanup.
smoke_finish() {
    local status=$1 what=$2 description=$3
    say "summary ($description), total $((SECONDS - STARTED))s"
    printf '  %s\n' "${TIMINGS[@]}"
    if [[ $status -eq 0 ]]; then
        say "$what smoke test passed"
    else
        say "$what smoke test FAILED (exit status $status)"
    fi
    exit "$status"
}
