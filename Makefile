# cvm-operator: `make demo` runs the product locally, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Three test processes, each with its own control plane: most tests wait on the operator and the cloud.
PYTEST_ARGS ?= -n 3 --dist worksteal

.PHONY: all setup controlplane image test unit lint crds demo bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) controlplane

controlplane: $(STAMP)
	$(PY) hack/controlplane.py build

lint: $(STAMP)
	$(VENV)/bin/ruff check operator emulator tests hack benchmarks
	$(VENV)/bin/ruff format --check operator emulator tests hack benchmarks
	$(VENV)/bin/mypy

# Builds, scans and exports the container image (podman, Debian base; see hack/image.py).
image: $(STAMP)
	$(PY) hack/image.py build

test: setup lint image
	$(VENV)/bin/pytest $(PYTEST_ARGS)

crds: $(STAMP)
	$(VENV)/bin/cvm-operator crds --output-dir crds
	$(VENV)/bin/cvm-operator crds --output-dir manifests/crds

demo: setup
	$(PY) hack/demo.py

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache build/image image/wheels
