# shellcheck shell=bash
# Podman without a Docker engine or a registry, for the CI scripts (source it, then call
# podman_setup and podman_base_image, and podman_build_opsdeck for the OpsDeck image). In short:
#   - storage.conf and containers.conf are generated in a work dir under the repository's
#     gitignored build/ (OPSDECK_PODMAN_DIR), so images and the layer cache survive between runs;
#   - runc (crun refuses hybrid cgroups), cgroupfs, a file events log (no systemd), ulimits that
#     fit the sandbox's hard limits, and the host's CA bundle mounted into build and run steps
#     (outbound TLS may go through a proxy with its own CA; the mount never ends up in a layer);
#   - the base image is made with debootstrap from the machine's Debian mirror when no registry
#     is reachable, and imported as localhost/debian-python:bookworm.
# Needs: REPO_ROOT set by the caller.

PODMAN_BASE_IMAGE=${OPSDECK_BASE_IMAGE:-localhost/debian-python:bookworm}

podman_log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

podman_die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# Install the Debian packages named, as root, when a command is missing.
podman_apt_install() {
    local missing=() pair command package
    for pair in "$@"; do
        command=${pair%%:*}
        package=${pair#*:}
        # type -P: a program on PATH. `command -v` would also accept a shell function of the
        # same name, such as the smoke scripts' podman wrapper, and install nothing.
        if ! type -P "$command" >/dev/null 2>&1 && [[ ! -x $command ]]; then
            missing+=("$package")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        podman_die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
    fi
    podman_log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local attempt
    for attempt in 1 2 3; do
        if apt-get update -qq; then
            break
        fi
        [[ $attempt -eq 3 ]] && podman_die "apt-get update failed"
        sleep $((attempt * 10))
    done
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

podman_setup() {
    podman_apt_install podman:podman buildah:buildah debootstrap:debootstrap runc:runc
    PODMAN_DIR=${OPSDECK_PODMAN_DIR:-$REPO_ROOT/build/podman}
    mkdir -p "$PODMAN_DIR"
    PODMAN_DIR=$(cd "$PODMAN_DIR" && pwd)
    cat >"$PODMAN_DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$PODMAN_DIR/run"
graphroot = "$PODMAN_DIR/storage"
EOF
    local ca_volume=""
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        ca_volume='"/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"'
    fi
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [[ $nofile == unlimited || $nofile -gt 20000 ]] && nofile=20000
    [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
    cat >"$PODMAN_DIR/containers.conf" <<EOF
[containers]
volumes = [$ca_volume]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_STORAGE_CONF=$PODMAN_DIR/storage.conf
    export CONTAINERS_CONF=$PODMAN_DIR/containers.conf
    podman_log "podman $(podman version --format '{{.Client.Version}}'), storage in $PODMAN_DIR"
}

# The machine's Debian mirror (deb822 .sources or one-line .list), else deb.debian.org.
podman_debian_mirror() {
    local suffix=${1:-debian} found
    found=$(
        {
            cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^[[:space:]]*URIs:/ {
                for (i = 2; i <= NF; i++) print $i }'
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                | sed -E 's/\[[^]]*\]//' | awk '$1 == "deb" { print $2 }'
        } | grep -E "/${suffix}/?\$" | head -n1 || true
    )
    printf '%s\n' "${found:-http://deb.debian.org/$suffix}"
}

# Make the base image (Debian 12 + python3 + venv) when it is missing: a registry-free stand-in
# for the official Python image. Cached in the podman storage.
podman_base_image() (
    if podman image exists "$PODMAN_BASE_IMAGE"; then
        podman_log "base image $PODMAN_BASE_IMAGE: cached"
        return 0
    fi
    [[ $PODMAN_BASE_IMAGE == localhost/debian-python:bookworm ]] \
        || podman_die "base image $PODMAN_BASE_IMAGE not found (OPSDECK_BASE_IMAGE); pull or load it first"
    local mirror security rootfs
    mirror=$(podman_debian_mirror debian)
    security=$(podman_debian_mirror debian-security)
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/opsdeck-rootfs-XXXXXX")
    chmod 0755 "$rootfs" # apt's _apt user downloads into it
    podman_log "debootstrapping $PODMAN_BASE_IMAGE from $mirror"
    # shellcheck disable=SC2064  # expand now: this subshell's trap removes this rootfs
    trap "rm -rf '$rootfs' '$rootfs.log'" EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 30 "$rootfs.log" >&2; podman_die "debootstrap failed"; }
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    chroot "$rootfs" sh -c 'export DEBIAN_FRONTEND=noninteractive &&
        apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates &&
        apt-get clean && rm -rf /var/lib/apt/lists/*' >"$rootfs.log" 2>&1 \
        || { tail -n 30 "$rootfs.log" >&2; podman_die "installing python3 into the base image failed"; }
    : >"$rootfs/etc/resolv.conf"
    tar -C "$rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$PODMAN_BASE_IMAGE" >"$rootfs.log" 2>&1 \
        || { tail -n 30 "$rootfs.log" >&2; podman_die "podman import failed"; }
    podman_log "base image $PODMAN_BASE_IMAGE made ($(podman run --rm --pull never "$PODMAN_BASE_IMAGE" python3 --version))"
)

# podman_build_opsdeck IMAGE [DOCKERFILE]: build the OpsDeck image from the repository (layers
# cached in the podman storage) on the base image, with the OCI labels (version from
# pyproject.toml, revision = the git commit, source = OPSDECK_IMAGE_SOURCE or the origin URL
# without credentials). Sets PODMAN_IMAGE_VERSION and PODMAN_IMAGE_REVISION. The three labels
# go on the command line too: podman 4.3 reuses a cached LABEL step whose ARG values changed,
# so a rebuild with an unchanged context kept the previous commit's revision.
podman_build_opsdeck() {
    local image=$1 dockerfile=${2:-Dockerfile} source ca_args=()
    PODMAN_IMAGE_VERSION=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$REPO_ROOT/pyproject.toml")
    PODMAN_IMAGE_REVISION=$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
    source=${OPSDECK_IMAGE_SOURCE:-$(git -C "$REPO_ROOT" config --get remote.origin.url 2>/dev/null || echo unknown)}
    source=$(sed -E 's#//[^/@]*@#//#' <<<"$source")
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        # containers.conf mounts the host bundle into every build step; npm reads it from here.
        ca_args=(--build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
    fi
    (
        cd "$REPO_ROOT" || exit 1
        podman build --format docker --network host --pull=never \
            -f "$dockerfile" \
            --build-arg "BASE_IMAGE=$PODMAN_BASE_IMAGE" \
            --build-arg "VERSION=$PODMAN_IMAGE_VERSION" \
            --build-arg "REVISION=$PODMAN_IMAGE_REVISION" \
            --build-arg "SOURCE=$source" \
            --label "org.opencontainers.image.version=$PODMAN_IMAGE_VERSION" \
            --label "org.opencontainers.image.revision=$PODMAN_IMAGE_REVISION" \
            --label "org.opencontainers.image.source=$source" \
            "${ca_args[@]}" \
            -t "$image" .
    )
}
