#!/usr/bin/env bash
# Secret scan of the working tree: the tracked files plus the untracked ones git does not
# ignore (what the next commit could contain), without node_modules, virtualenvs, build/ or var/.
#   1. detect-secrets (from .venv-gates), no network verification: every finding must be in
#      .secrets.baseline *and* audited there as a false positive (`is_secret: false`); a new
#      finding, or an entry nobody audited, fails the gate;
#   2. a dependency-free second opinion: private key blocks and well-known token formats
#      (AWS access key ids, GitHub, GitLab, Slack, Google, Stripe, npm, PyPI tokens) are never
#      allowed, baseline or not.
#
#   scripts/ci/secret-scan.sh                    the gate (make secret-scan)
#   scripts/ci/secret-scan.sh --update-baseline  re-catalogue the findings into .secrets.baseline,
#       keeping earlier audit decisions; then review the new entries one by one with
#       `.venv-gates/bin/detect-secrets audit .secrets.baseline` and commit the result.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
GATES_VENV=${GATES_VENV:-.venv-gates}
if [[ -d $GATES_VENV/bin ]]; then
    PATH="$ROOT/$GATES_VENV/bin:$PATH"
fi
BASELINE=.secrets.baseline
MODE=check
case "${1:-}" in
    "") ;;
    --update-baseline) MODE=update ;;
    *) echo "usage: $0 [--update-baseline]" >&2; exit 2 ;;
esac

say() { printf '==> %s\n' "$*"; }
fail() { printf 'secret-scan: FAILED: %s\n' "$*" >&2; exit 1; }

command -v detect-secrets >/dev/null \
    || fail "detect-secrets not found; run 'make gate-tools' (or 'make secret-scan')"
python=$(command -v python3)
if [[ -x $GATES_VENV/bin/python ]]; then
    python=$ROOT/$GATES_VENV/bin/python
fi

started=$SECONDS
files=()
while IFS= read -r -d '' file; do
    case $file in
        frontend/node_modules/* | .venv* | */.venv*/* | build/* | var/* | "$BASELINE") continue ;;
    esac
    [[ -f $file && ! -L $file ]] && files+=("$file")
done < <(git ls-files -z --cached --others --exclude-standard)
[[ ${#files[@]} -gt 0 ]] || fail "no file to scan (not a git checkout?)"
say "scanning ${#files[@]} files (tracked, and untracked but not ignored)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# -- 1. detect-secrets against the audited baseline ------------------------------------------
say "detect-secrets $(detect-secrets --version) (no network verification)"
if [[ $MODE == update ]]; then
    if [[ -f $BASELINE ]]; then
        detect-secrets scan --no-verify --baseline "$BASELINE" "${files[@]}"
    else
        # A Kubernetes `secretName:` names a Secret object, it never holds a value.
        # (YAML lines reach the filter with the value quoted.)
        detect-secrets scan --no-verify \
            --exclude-lines "^\\s*secretName:\\s*[\"']?[a-z0-9.-]+[\"']?\\s*\$" \
            "${files[@]}" > "$BASELINE"
    fi
    catalogue=$BASELINE
else
    if [[ -f $BASELINE ]]; then
        cp "$BASELINE" "$scratch/baseline.json"
        # Updates the copy: findings keep their audit decision when the baseline has them,
        # new ones arrive without one.
        detect-secrets scan --no-verify --baseline "$scratch/baseline.json" "${files[@]}"
    else
        detect-secrets scan --no-verify "${files[@]}" > "$scratch/baseline.json"
    fi
    catalogue=$scratch/baseline.json
fi

if ! "$python" - "$catalogue" "$MODE" "$BASELINE" <<'PY'
import json
import sys

catalogue, mode, baseline = sys.argv[1:4]
with open(catalogue, encoding="utf-8") as handle:
    results = json.load(handle)["results"]
audited = unaudited = 0
lines = []
for filename, secrets in sorted(results.items()):
    for secret in secrets:
        if secret.get("is_secret") is False:
            audited += 1
            continue
        unaudited += 1
        verdict = "marked as a REAL secret" if secret.get("is_secret") else "not audited"
        lines.append(f"  {filename}:{secret['line_number']}: {secret['type']} ({verdict})")
print(f"  {audited} finding(s) audited as false positives in {baseline}")
if unaudited:
    if mode == "update":
        print(f"  {unaudited} finding(s) to review in {baseline}:", *lines, sep="\n")
        print(f"  review them: detect-secrets audit {baseline}  (then commit the baseline)")
    else:
        print(f"  {unaudited} finding(s) not in the audited baseline:", *lines, sep="\n",
              file=sys.stderr)
        print("  remove the secret (and rotate it if it was real); a false positive goes into "
              f"{baseline}: scripts/ci/secret-scan.sh --update-baseline, then "
              f"detect-secrets audit {baseline}", file=sys.stderr)
        sys.exit(1)
PY
then
    fail "detect-secrets found secrets that are not audited false positives"
fi
if [[ $MODE == update ]]; then
    say "baseline updated: $BASELINE"
    exit 0
fi

# -- 2. private keys and token formats: never allowed ----------------------------------------
say "private key blocks and well-known token formats"
patterns=(
    "private key block|-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----"
    "AWS access key id|\\b(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\\b"
    "GitHub token|\\bgh[pousr]_[A-Za-z0-9]{36,255}\\b"
    "GitHub fine-grained token|\\bgithub_pat_[A-Za-z0-9_]{60,}"
    "GitLab token|\\bglpat-[A-Za-z0-9_-]{20,}"
    "Slack token|\\bxox[abposr]-[A-Za-z0-9-]{10,}"
    "Slack webhook|hooks\\.slack\\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+"
    "Google API key|\\bAIza[0-9A-Za-z_-]{35}\\b"
    "Stripe live key|\\b[rs]k_live_[0-9A-Za-z]{20,}"
    "npm token|\\bnpm_[A-Za-z0-9]{36}\\b"
    "PyPI token|\\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"
)
found=0
for entry in "${patterns[@]}"; do
    kind=${entry%%|*}
    regex=${entry#*|}
    while IFS= read -r hit; do
        # file:line:match; show where, never the whole value.
        location=${hit%:*}
        value=${hit##*:}
        printf '  %s: %s (%s...)\n' "$location" "$kind" "${value:0:8}" >&2
        found=$((found + 1))
    done < <(printf '%s\0' "${files[@]}" | xargs -0 grep -I -n -o -H -E -e "$regex" -- 2>/dev/null || true)
done
[[ $found -eq 0 ]] || fail "$found private key block(s) or token(s) in the tree (see above)"
echo "  none"

say "secret-scan: ok ($((SECONDS - started)) s)"
