"""Fixtures for the ship tests: the deployment manifests rendered by the control plane's kubectl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.kube import kubectl

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OPERATOR_NAMESPACE = "cvm-operator-system"
SERVICE_ACCOUNT = "cvm-operator"
SERVICE_ACCOUNT_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"
RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")


def kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a folder, as a list of objects."""
    rendered = kubectl("kustomize", str(path)).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="session")
def operator_rbac(controlplane: Any, crds_installed: list[str]) -> list[dict[str, Any]]:
    """The base's Namespace, ServiceAccount, ClusterRole and binding, really applied (not the CRDs or
    the Deployment, which other tests install their own way)."""
    rendered = kustomize(MANIFESTS)
    objects = [o for o in rendered if o["kind"] in RBAC_KINDS]
    # Kopf's peering CRDs too: RBAC on a resource the API server does not serve cannot be checked.
    peering = [o for o in rendered if o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "kopf.dev"]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(peering + objects))
    for crd in peering:
        kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=30s")
    return objects
