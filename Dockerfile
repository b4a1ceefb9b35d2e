# gatekeeper's image: the sidecar in a small Python image, no build tools, not root.
#
#   docker build --build-arg VERSION=0.1.0 -t gatekeeper:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v "$PWD/deploy-config:/etc/gatekeeper:ro" \
#       -p 4180:4180 -p 9901:9901 gatekeeper:0.1.0
#
# Contract (tests/packaging/test_container.py checks it, and runs the same install without an engine):
#   - config: /etc/gatekeeper/gatekeeper.yaml; policies: /etc/gatekeeper/policies/ (a relative
#     policy path is read from the config file's directory). Mount both, e.g. from a ConfigMap.
#   - ports: 4180 (the proxy, `listen`), 9901 (/healthz /readyz /metrics, `admin_listen`).
#   - user 65532:65532 (numeric, so `runAsNonRoot: true` can check it); the filesystem can be
#     read-only: nothing is written outside /tmp, and /tmp only with `workers` > 1 (the metrics
#     directory) or for `gatekeeper demo`. With `readOnlyRootFilesystem: true`, mount an
#     emptyDir at /tmp.
#   - SIGTERM: stop accepting, drain for up to `drain_seconds`, exit 0. gatekeeper is PID 1
#     (exec-form ENTRYPOINT, no shell in between).
#   - no HEALTHCHECK: Kubernetes ignores it (probes: startup/liveness on /healthz, readiness on
#     /readyz) and OCI-format builds drop it. For docker compose:
#     python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9901/healthz')"

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY gatekeeper/ gatekeeper/

# The wheel of this tree; a venv without pip; into it exactly the locked dependencies, each file
# checked against its hash (requirements.lock), then the wheel with nothing more. Binary wheels
# only: every dependency has them for amd64 and arm64, so no compiler is ever needed.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/gatekeeper \
    && pip --python /opt/gatekeeper/bin/python install --only-binary :all: --require-hashes \
        -r requirements.lock \
    && pip --python /opt/gatekeeper/bin/python install --no-deps /wheels/gatekeeper-*.whl

FROM python:3.11-slim

# CI passes these: --build-arg VERSION=… REVISION=$(git rev-parse HEAD) SOURCE=<repository URL>.
# SOURCE's default is a placeholder until the repository's public URL is settled.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/OWNER/gatekeeper
LABEL org.opencontainers.image.title="gatekeeper" \
      org.opencontainers.image.description="Authentication/authorization reverse-proxy sidecar: JWT/OIDC in, Casbin policy, identity headers out." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# Owned by root and read-only for the process; compiled at install, so nothing is written later.
COPY --from=build /opt/gatekeeper /opt/gatekeeper

ENV PATH="/opt/gatekeeper/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

WORKDIR /etc/gatekeeper
USER 65532:65532
EXPOSE 4180 9901
STOPSIGNAL SIGTERM
ENTRYPOINT ["gatekeeper"]
CMD ["run", "--config", "/etc/gatekeeper/gatekeeper.yaml"]
