# cvm-operator image: the operator and cvm-emulator (same wheel), non-root, no build tools.
#   docker build -t ghcr.io/cvm-operator/cvm-operator:0.1.0 .
#   make image      # with podman on a Debian base made from Debian packages (hack/image.py)
# BASE_IMAGE: any Debian-like image with python3 (3.11) and its venv module.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies pinned with hashes. image/wheels/, when present (`make image` downloads it on the
# host), holds them as files, so the build needs no network. The runtime venv gets no pip or
# setuptools. The operator uses the synchronous Kubernetes client only; kubernetes.aio is a second,
# asyncio copy of it (68 MB).
COPY image/ image/
RUN if [ -d image/wheels ]; then set -- --no-index --find-links image/wheels; fi \
 && python3 -m venv /opt/build \
 && /opt/build/bin/pip install --quiet "$@" --require-hashes -r image/build-requirements.txt \
 && python3 -m venv --without-pip /opt/venv \
 && /opt/build/bin/pip --python /opt/venv/bin/python install --quiet "$@" --require-hashes -r image/requirements.txt \
 && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio
# The project last, so a change of the sources rebuilds only this layer; pip compiles the byte code.
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY emulator/ emulator/
RUN /opt/build/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /tmp/dist . \
 && /opt/build/bin/pip --python /opt/venv/bin/python install --quiet --no-index --no-deps /tmp/dist/*.whl \
 && /opt/build/bin/pip --python /opt/venv/bin/python check

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="cvm-operator" \
      org.opencontainers.image.description="Kubernetes operator for Tencent Cloud CVM images and instances" \
      org.opencontainers.image.source="https://github.com/cvm-operator/cvm-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# Byte code is compiled at build time; the root filesystem is read-only at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["cvm-operator"]
CMD ["run", "--all-namespaces", "--standalone"]
