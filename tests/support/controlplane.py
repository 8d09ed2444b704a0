"""pytest fixtures for the real control plane: one per test session, a fresh namespace per test."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import kubernetes
import pytest

from tests.support import kube

ROOT = Path(__file__).resolve().parents[2]
GROUP = "cvm.operator.dev"


def load_controlplane_module() -> ModuleType:
    """Import hack/controlplane.py, the same code `make demo` and users run."""
    name = "cvm_controlplane"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "hack" / "controlplane.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    module = load_controlplane_module()
    plane = module.ControlPlane(tmp_path_factory.mktemp("controlplane"))
    try:
        plane.up()
    except Exception as error:  # a missing real part fails loudly, never skips
        plane.down()
        pytest.fail(f"the real control plane could not start: {error}", pytrace=False)
    kube.configure(plane.kubectl, plane.kubeconfig)
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(plane.kubeconfig)
    try:
        yield plane
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        plane.down()


@pytest.fixture(scope="session")
def k8s_api(controlplane: Any) -> Iterator[kubernetes.client.ApiClient]:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(controlplane.kubeconfig), client_configuration=config)
    with kubernetes.client.ApiClient(config) as client:
        yield client


def release_objects(api: kubernetes.client.ApiClient, namespace: str) -> None:
    """Teardown for objects an operator left behind: drop finalizers, then delete."""
    custom = kubernetes.client.CustomObjectsApi(api)
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    try:
        crds = extensions.list_custom_resource_definition().items
    except kubernetes.client.ApiException:
        return
    for crd in crds:
        if crd.spec.group != GROUP:
            continue
        plural = crd.spec.names.plural
        version = crd.spec.versions[0].name
        listed = cast(dict[str, Any], custom.list_namespaced_custom_object(GROUP, version, namespace, plural))
        for item in listed["items"]:
            name = item["metadata"]["name"]
            try:
                custom.patch_namespaced_custom_object(
                    GROUP, version, namespace, plural, name, {"metadata": {"finalizers": None}}
                )
                custom.delete_namespaced_custom_object(GROUP, version, namespace, plural, name)
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise


@pytest.fixture
def namespace(k8s_api: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace with a unique name; teardown releases what an operator left and deletes it."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        release_objects(k8s_api, name)
        try:
            core.delete_namespace(name)
        except kubernetes.client.ApiException as error:
            if error.status not in (404, 409):  # a test may have deleted it already
                raise
