"""The test control plane is a real kube-apiserver + etcd: CRUD, watch, CEL, /status, RBAC, lifecycle."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest

from tests.support.controlplane import ROOT, load_controlplane_module

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.cvm.operator.dev"},
    "spec": {
        "group": "test.cvm.operator.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}, "color": {"type": "string"}},
                                "x-kubernetes-validations": [
                                    {"rule": "self.size <= 10", "message": "spec.size must be at most 10"}
                                ],
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def test_serves_version_built_from_pinned_modules(k8s_api: kubernetes.client.ApiClient) -> None:
    version = kubernetes.client.VersionApi(k8s_api).get_code()
    module = load_controlplane_module()
    assert version.git_version == module.KUBERNETES_VERSION


def test_namespace_and_configmap_crud_and_watch(k8s_api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    read = core.read_namespace(namespace)
    assert read.metadata is not None and read.metadata.name == namespace
    assert namespace in [ns.metadata.name for ns in core.list_namespace().items if ns.metadata is not None]

    seen: list[tuple[str, dict[str, str]]] = []
    listed = core.list_namespaced_config_map(namespace)
    assert listed.metadata is not None
    start = listed.metadata.resource_version

    def watch() -> None:
        stream = kubernetes.watch.Watch()
        for event in stream.stream(
            core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=20
        ):
            seen.append((event["type"], dict(event["object"].data or {})))
            if event["type"] == "DELETED":
                stream.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    body = kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="settings"), data={"a": "1"})
    core.create_namespaced_config_map(namespace, body)
    assert core.read_namespaced_config_map("settings", namespace).data == {"a": "1"}
    core.patch_namespaced_config_map("settings", namespace, {"data": {"a": "2"}})
    assert [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items if cm.metadata] == ["settings"]
    core.delete_namespaced_config_map("settings", namespace)
    watcher.join(timeout=30)
    assert [kind for kind, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert seen[1][1] == {"a": "2"}


@pytest.fixture(scope="module")
def widget_crd(k8s_api: kubernetes.client.ApiClient) -> str:
    extensions = kubernetes.client.ApiextensionsV1Api(k8s_api)
    try:
        extensions.create_custom_resource_definition(WIDGET_CRD)  # type: ignore[arg-type]
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise

    def established() -> bool:
        crd = extensions.read_custom_resource_definition(WIDGET_CRD["metadata"]["name"])  # type: ignore[index]
        conditions = crd.status.conditions if crd.status is not None else None
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    wait_for(established)
    return "widgets"


def test_cel_rule_rejects_with_its_message(
    k8s_api: kubernetes.client.ApiClient, widget_crd: str, namespace: str
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    body = {
        "apiVersion": "test.cvm.operator.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "big"},
        "spec": {"size": 11},
    }

    # A CRD just established may take a moment to be served.
    def create() -> kubernetes.client.ApiException | None:
        try:
            custom.create_namespaced_custom_object("test.cvm.operator.dev", "v1", namespace, widget_crd, body)
        except kubernetes.client.ApiException as error:
            return None if error.status == 404 else error
        raise AssertionError("a widget violating the CEL rule was accepted")

    error = wait_for(create)
    assert error.status == 422
    assert "spec.size must be at most 10" in error.body


def test_status_subresource_separates_spec_and_status(
    k8s_api: kubernetes.client.ApiClient, widget_crd: str, namespace: str
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    group, version = "test.cvm.operator.dev", "v1"
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 3, "color": "red"},
    }
    wait_for(lambda: _try_create(custom, namespace, widget_crd, body))
    custom.patch_namespaced_custom_object_status(
        group, version, namespace, widget_crd, "w", {"spec": {"color": "blue"}, "status": {"phase": "Ready"}}
    )
    stored = cast(dict[str, Any], custom.get_namespaced_custom_object(group, version, namespace, widget_crd, "w"))
    assert stored["status"] == {"phase": "Ready"}
    assert stored["spec"]["color"] == "red"
    # And a main-resource patch does not touch status.
    custom.patch_namespaced_custom_object(group, version, namespace, widget_crd, "w", {"status": {"phase": "X"}})
    again = cast(dict[str, Any], custom.get_namespaced_custom_object(group, version, namespace, widget_crd, "w"))
    assert again["status"] == {"phase": "Ready"}


def _try_create(custom: kubernetes.client.CustomObjectsApi, namespace: str, plural: str, body: dict[str, Any]) -> bool:
    try:
        custom.create_namespaced_custom_object("test.cvm.operator.dev", "v1", namespace, plural, body)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_rbac_refuses_until_a_role_grants(
    controlplane: Any, k8s_api: kubernetes.client.ApiClient, namespace: str
) -> None:
    module = load_controlplane_module()
    state = controlplane.state()
    config = kubernetes.client.Configuration()
    config.host = state.server
    config.ssl_ca_cert = str(controlplane.ca_file)
    config.api_key = {"authorization": f"Bearer {state.user_tokens[module.UNPRIVILEGED_USER]}"}
    with kubernetes.client.ApiClient(config) as user_client:
        user = kubernetes.client.CoreV1Api(user_client)
        with pytest.raises(kubernetes.client.ApiException) as refused:
            user.list_namespaced_config_map(namespace)
        assert refused.value.status == 403

        rbac = kubernetes.client.RbacAuthorizationV1Api(k8s_api)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "read-configmaps"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            },  # type: ignore[arg-type]
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "tester-reads-configmaps"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
                "subjects": [
                    {"kind": "User", "name": module.UNPRIVILEGED_USER, "apiGroup": "rbac.authorization.k8s.io"}
                ],
            },  # type: ignore[arg-type]
        )

        def allowed() -> bool:
            try:
                user.list_namespaced_config_map(namespace)
            except kubernetes.client.ApiException as error:
                assert error.status == 403
                return False
            return True

        wait_for(allowed)
        # Only what the role grants: writing is still refused.
        with pytest.raises(kubernetes.client.ApiException) as write:
            user.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})  # type: ignore[arg-type]
        assert write.value.status == 403


def test_controller_manager_collects_garbage_and_finishes_namespaces(k8s_api: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    name = f"gc-{time.monotonic_ns()}"
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    # The serviceaccount controller gives every namespace its default ServiceAccount.
    wait_for(lambda: core.list_namespaced_service_account(name).items, timeout=30)
    owner = core.create_namespaced_config_map(
        name, kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="owner"))
    )
    assert owner.metadata is not None
    reference = kubernetes.client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, controller=True
    )
    for child, references in (("owned", [reference]), ("free", None)):
        meta = kubernetes.client.V1ObjectMeta(name=child, owner_references=references)
        core.create_namespaced_config_map(name, kubernetes.client.V1ConfigMap(metadata=meta))
    core.delete_namespaced_config_map("owner", name)

    def names() -> set[str]:
        return {str(cm.metadata.name) for cm in core.list_namespaced_config_map(name).items if cm.metadata}

    wait_for(lambda: "owned" not in names(), timeout=60)
    assert "free" in names()  # only dependents are collected

    core.delete_namespace(name)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(name)
        except kubernetes.client.ApiException as error:
            return bool(error.status == 404)
        return False

    wait_for(namespace_gone, timeout=60)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "hack" / "controlplane.py"), *args], capture_output=True, text=True, timeout=300
    )


def test_up_down_lifecycle_leaves_no_process(tmp_path: Path) -> None:
    module = load_controlplane_module()
    directory = tmp_path / "plane"
    assert _run_cli("status", "--dir", str(directory)).returncode == 3

    first = _run_cli("up", "--dir", str(directory))
    assert first.returncode == 0, first.stderr
    assert Path(first.stdout.strip()) == directory / "kubeconfig"
    state = module.ControlPlane(directory).state()
    pids = list(state.pids)
    assert len(pids) == 3 and all(module._alive(pid) for pid in pids)
    assert _run_cli("status", "--dir", str(directory)).returncode == 0

    again = _run_cli("up", "--dir", str(directory))
    assert again.returncode == 0
    assert "already running" in again.stderr
    assert module.ControlPlane(directory).state() == state  # nothing restarted

    assert _run_cli("down", "--dir", str(directory)).returncode == 0
    assert not any(module._group_alive(pid) for pid in pids)
    assert _run_cli("down", "--dir", str(directory)).returncode == 0  # idempotent
    assert _run_cli("status", "--dir", str(directory)).returncode == 3

    restarted = _run_cli("up", "--dir", str(directory))
    assert restarted.returncode == 0, restarted.stderr
    new_state = module.ControlPlane(directory).state()
    assert new_state.apiserver_pid not in pids
    assert _run_cli("down", "--dir", str(directory)).returncode == 0
    assert not any(module._group_alive(pid) for pid in new_state.pids)
