ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS build
# envmgr/envmgr — the envmgr CLI and daemon in an image, for a CI sidecar or compose/envmgr-daemon.yml, talking to
# the engine through the mounted Docker socket (the docker SDK; no docker CLI inside). Works on a Python base image
# (python:3.11-slim-bookworm: its python3 is used) and on a plain Debian bookworm base (Debian's python3 3.11 is
# installed), in both stages alike so the venv's interpreter exists in the final image.
#
#   DOCKER_BUILDKIT=0 docker build -t envmgr/envmgr:dev .
#   DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=envmgr/debian-base:bookworm -t envmgr/envmgr:dev .
#   --build-arg EXTRAS=aws,wiremock,celery    envmgr extras (default: all, so every service can be probed)
#
# Behind a TLS-intercepting proxy put its CA certificate(s) in ./extra-ca.crt before building (git-ignored; may be
# empty or absent): `cat /usr/local/share/ca-certificates/*.crt > extra-ca.crt`. Only this stage sees it.
#
# Run it (see README.md, "The envmgr image"):
#   docker run --rm --init -v /var/run/docker.sock:/var/run/docker.sock envmgr/envmgr:dev doctor
# Containers envmgr starts publish their ports on the HOST's 127.0.0.1: to reach them (readiness probes, `up`,
# `status` health), run with `--network host`, and with `--pid host` so that the owner pid envmgr labels its
# environments with means the same on the host (else a host-side `envmgr gc` takes them for orphans). A project
# must be mounted at the same path as on the host (`-v "$PWD:$PWD" -w "$PWD"`): bind mounts are resolved by the
# host's engine.

ARG EXTRAS=aws,wiremock,celery
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120

RUN need=""; \
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then \
      need="python3 python3-venv"; \
    fi; \
    if [ ! -f /etc/ssl/certs/ca-certificates.crt ]; then need="$need ca-certificates"; fi; \
    if [ -n "$need" ]; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need \
      && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 --version

# Extra CA (PEM, may be empty or absent): trusted by pip in this stage only.
# "Dockerfile" makes the COPY valid when extra-ca.crt does not exist.
COPY Dockerfile extra-ca.cr[t] /tmp/ca/
RUN cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca/bundle.pem \
 && if [ -s /tmp/ca/extra-ca.crt ]; then cat /tmp/ca/extra-ca.crt >> /tmp/ca/bundle.pem; fi
ENV PIP_CERT=/tmp/ca/bundle.pem

# Dependencies first (from pyproject.toml alone), so that a change of envmgr's code reuses this layer.
COPY pyproject.toml /src/pyproject.toml
RUN python3 -m venv /opt/envmgr \
 && python3 -c 'import sys, tomllib; \
project = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; \
extras = [name for name in sys.argv[1].split(",") if name]; \
deps = list(project["dependencies"]); \
deps += [d for name in extras for d in project["optional-dependencies"][name] if not d.startswith("envmgr")]; \
print("\n".join(deps))' "$EXTRAS" > /tmp/requirements.txt \
 && cat /tmp/requirements.txt \
 && /opt/envmgr/bin/pip install -r /tmp/requirements.txt

# envmgr itself, with the image build contexts (each service's image/ folder is package data).
# No CA file of a developer's earlier builds may end up in the wheel.
COPY README.md /src/README.md
COPY envmgr /src/envmgr
RUN find /src -name extra-ca.crt -delete \
 && find /src -name __pycache__ -type d -prune -exec rm -rf {} + \
 && /opt/envmgr/bin/pip install --no-deps /src \
 && { /opt/envmgr/bin/pip uninstall -y -q setuptools 2>/dev/null || true; } \
 && /opt/envmgr/bin/python -c 'from envmgr.images import local_images; \
images = local_images(); \
missing = [n for n, i in images.items() if not (i.folder / "Dockerfile").is_file()]; \
assert not missing and all("site-packages" in str(i.folder) for i in images.values()), missing; \
assert not [f for i in images.values() for f in i.folder.rglob("extra-ca.crt")]; \
print("build contexts:", sorted(images))' \
 && /opt/envmgr/bin/envmgr --help >/dev/null


ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

RUN if ! command -v python3 >/dev/null 2>&1; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
      && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log; \
    fi; \
    python3 --version

COPY --from=build /opt/envmgr /opt/envmgr

# PYTHONDONTWRITEBYTECODE: never write __pycache__ into a mounted project (migrations, seeds, Celery code).
ENV PATH=/opt/envmgr/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# root, deliberately: the mounted socket's group differs from host to host (docker, 999, 998, root on Docker
# Desktop ...), so no fixed non-root user can open it. Access to the socket is root on the host anyway. To run as
# someone else, give the socket's group: `docker run --user "$(id -u):$(id -g)"
# --group-add "$(stat -c %g /var/run/docker.sock)" ...` (compose/envmgr-daemon.yml does that with variables).
USER root
LABEL org.opencontainers.image.title="envmgr/envmgr" \
      org.opencontainers.image.description="envmgr CLI and daemon: ephemeral test environments on the mounted Docker engine"
ENTRYPOINT ["envmgr"]
CMD ["--help"]
