# syntax=docker/dockerfile:1
# Two images from one build context:
#   docker build --target worker   -t ghcr.io/dbprovision/dbops-worker:v0.1.0 .
#   docker build --target function -t ghcr.io/dbprovision/function-dbops-runtime:v0.1.0 .
# The wheel is built once; each image installs it into a clean venv at /venv with its own extra: the worker
# `[worker]` (SQLAlchemy and the database drivers, no gRPC), the function `[function]` (the SDK and gRPC, no database
# driver). The venvs get no pip of their own: the stage's pip
# installs into them, so the runtime images carry no installer. Every stage runs the same Python minor version,
# so the venv's interpreter links stay valid when it is copied into the runtime stage.
# tests/test_packaging.py executes these RUN and COPY steps (in order, paths mapped into a temporary directory)
# and checks the stages, targets, user and Python version, so keep the steps here and nowhere else.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build==1.2.2.post1"
COPY pyproject.toml README.md ./
COPY dbops_api/ dbops_api/
COPY function/ function/
COPY worker/ worker/
COPY dbops_local/ dbops_local/
RUN python -m build --wheel --outdir /dist .

FROM ${PYTHON_IMAGE} AS worker-venv
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /dist/ /dist/
RUN python -m venv --without-pip /venv && python -m pip --python /venv/bin/python install "$(echo /dist/*.whl)[worker]"

FROM ${PYTHON_IMAGE} AS function-venv
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /dist/ /dist/
RUN python -m venv --without-pip /venv && python -m pip --python /venv/bin/python install "$(echo /dist/*.whl)[function]"

# The dump and restore tools of the backup and restore actions, from the base's Debian release (trixie:
# PostgreSQL 17 and MariaDB 11.8 clients, proven against the test servers by tests/test_backup_clients.py;
# docs/worker.md, "The clients in the worker image"). A stage of its own:
# tests/test_packaging.py executes the other stages' steps without Docker but cannot run apt-get, so it checks this
# one's step as written.
FROM ${PYTHON_IMAGE} AS worker-os
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client mariadb-client \
 && rm -rf /var/lib/apt/lists/*

# The Job's container: `dbops-worker <action>`; the root filesystem is read-only, so no bytecode is written.
FROM worker-os AS worker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH
COPY --from=worker-venv /venv /venv
USER 65532:65532
ENTRYPOINT ["dbops-worker"]

# The Function package's runtime: gRPC on 9443 (mTLS from TLS_SERVER_CERTS_DIR, which Crossplane sets), Prometheus
# metrics on 8080 (/metrics; docs/operations.md).
FROM ${PYTHON_IMAGE} AS function
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH DBOPS_METRICS_ADDRESS=:8080
COPY --from=function-venv /venv /venv
USER 65532:65532
EXPOSE 9443
EXPOSE 8080
ENTRYPOINT ["function"]
