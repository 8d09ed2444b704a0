# cvm-operator image: the operator and cvm-emulator (same wheel), non-root, no build tools.
#   docker build -t ghcr.io/cvm-operator/cvm-operator:0.1.0 .
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY emulator/ emulator/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/*.whl \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM python:3.11-slim
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
