# items-service image: FastAPI app under Gunicorn + Uvicorn workers; also runs the migrations.
#
#   docker build -t items-service:dev .              (hack/images build does this for you)
#   docker run --rm -e DATABASE_URL=mysql+pymysql://... items-service:dev migrate
#   docker run --rm -p 8000:8000 items-service:dev   (serve; embedded SQLite in /var/lib/items)
#
# Build args:
#   EXTRA_CA_CERT_PEM  optional PEM text of extra CA certificates, for networks whose outbound
#                      HTTPS goes through an intercepting proxy. Empty by default: CI unaffected.
#                      Only the builder stage sees it; it is appended to a temporary bundle for the
#                      pip/uv steps and removed again, and the builder stage is not shipped.
#   UV_VERSION         the uv used to install the locked dependencies (from PyPI).
#
# Works with the legacy builder and with BuildKit (no `# syntax=` line, no RUN --mount): the
# local engine here has no registry to fetch a BuildKit frontend from.
#
# Base: debian:12.N-slim (bookworm), written out in every FROM line, the same in both Dockerfiles,
# so Dependabot can read and bump it (it does not follow an ARG in FROM) at each Debian point
# release. With no registry, hack/base-image makes the image under that name from the mirror.

FROM debian:12.15-slim AS builder
# Marks every image these builds leave behind, so `hack/images prune` can find the dangling ones.
LABEL io.items-platform.build="true"

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*

# `with-extra-ca CMD...` runs CMD with SSL_CERT_FILE/PIP_CERT pointing at the system bundle plus
# $EXTRA_CA_CERT_PEM (when set), then deletes that temporary bundle whatever CMD's outcome.
RUN printf '%s\n' \
      '#!/bin/sh' \
      'set -eu' \
      'if [ -z "${EXTRA_CA_CERT_PEM:-}" ]; then exec "$@"; fi' \
      'bundle="$(mktemp /tmp/ca-bundle.XXXXXX)"' \
      'trap '"'"'rm -f "$bundle"'"'"' EXIT' \
      'cat /etc/ssl/certs/ca-certificates.crt >"$bundle"' \
      'printf "%s\n" "$EXTRA_CA_CERT_PEM" >>"$bundle"' \
      'SSL_CERT_FILE="$bundle" PIP_CERT="$bundle" "$@"' \
      >/usr/local/bin/with-extra-ca \
 && chmod +x /usr/local/bin/with-extra-ca

ARG EXTRA_CA_CERT_PEM=""
ARG UV_VERSION=0.13.9
RUN python3 -m venv /opt/uv \
 && with-extra-ca /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check \
      "uv==${UV_VERSION}"

# uv builds /opt/venv on Debian's interpreter, which the runtime stage installs at the same path.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_FROZEN=1
WORKDIR /src

# Dependencies first, from the lock only: rebuilt only when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN with-extra-ca /opt/uv/bin/uv sync --no-default-groups --no-install-project

# Then the project itself, as a regular (non-editable) install, bytecode compiled.
COPY README.md ./
COPY service ./service
COPY migrations ./migrations
COPY operator ./operator
COPY items_logging ./items_logging
RUN with-extra-ca /opt/uv/bin/uv sync --no-default-groups --no-editable \
 && /opt/venv/bin/python -c 'import service, migrations, items_operator, items_logging'

# Smaller image: drop debug symbols from the compiled extensions (about 45 MB) and the C/Cython
# sources some wheels ship (about 14 MB); then prove the extensions still load.
RUN find /opt/venv -type f -name '*.so*' -exec strip --strip-debug {} + \
 && find /opt/venv/lib -type f \( -name '*.c' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.h' \) \
      -delete \
 && /opt/venv/bin/python -c 'import asyncmy.connection, sqlalchemy.engine, uvloop, httptools, \
      pydantic_core, greenlet, cryptography.hazmat.bindings._rust'


FROM debian:12.15-slim
LABEL io.items-platform.build="true"

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 items \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/items --no-create-home \
      --shell /usr/sbin/nologin items \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/items

COPY --from=builder /opt/venv /opt/venv

# PYTHONDONTWRITEBYTECODE: everything is compiled at build time, so a read-only root filesystem
# works; /tmp (an emptyDir in Kubernetes) holds the Prometheus multiprocess files.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/items

# Numeric user so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# The embedded SQLite file lives here when DATABASE_URL is not set.
WORKDIR /var/lib/items
EXPOSE 8000
ENTRYPOINT ["items-service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

LABEL org.opencontainers.image.title="items-service" \
      org.opencontainers.image.description="Item REST service (FastAPI, SQLModel, MySQL)" \
      org.opencontainers.image.licenses="Apache-2.0"
