"""Session fixture installing the project's CRDs (every file in crds/) on the test control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.kube import kubectl

ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = ROOT / "crds"


def crd_names(directory: Path = CRDS_DIR) -> list[str]:
    names: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document and document.get("kind") == "CustomResourceDefinition":
                names.append(document["metadata"]["name"])
    return names


@pytest.fixture(scope="session")
def crds_installed(controlplane: Any) -> list[str]:
    """Apply crds/ server-side and wait until every CRD is Established; returns the CRD names."""
    names = crd_names()
    if not names:
        pytest.fail(f"no CustomResourceDefinitions found in {CRDS_DIR}", pytrace=False)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS_DIR))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{name}" for name in names))
    return names
