"""Secrets only where a namespace grants them: the kustomize component manifests/components/tenant, and
the operator under its ServiceAccount (no Secret in its ClusterRole) with namespaces bound to different
accounts, one not bound, and one whose grant is withdrawn."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.ship.conftest import MANIFESTS, OPERATOR_NAMESPACE, SERVICE_ACCOUNT, SERVICE_ACCOUNT_USER, kustomize
from tests.ship.test_rbac import can_i
from tests.support.controlplane import release_objects
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess

TENANT = MANIFESTS / "components" / "tenant"
UBUNTU = "img-487zeit5"


def tenant_dir(tmp_path: Path, namespace: str) -> Path:
    """A tenant's own kustomization: its namespace plus the component."""
    folder = tmp_path / f"tenant-{namespace}"
    folder.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "components": [os.path.relpath(TENANT, folder)],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


def test_the_component_binds_the_operator_in_the_tenant_namespace(controlplane: Any, tmp_path: Path) -> None:
    objects = kustomize(tenant_dir(tmp_path, "team-a"))
    kinds = sorted((o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objects)
    assert kinds == [("Role", "cvm-operator-secrets", "team-a"), ("RoleBinding", "cvm-operator-secrets", "team-a")]
    role = next(o for o in objects if o["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},  # Instance userData.configMapRef
    ]
    binding = next(o for o in objects if o["kind"] == "RoleBinding")
    # The subject stays the operator's ServiceAccount in its own namespace.
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": OPERATOR_NAMESPACE}]


def test_the_component_grants_get_on_secrets_in_one_namespace_only(
    operator_rbac: Any, namespace: str, tmp_path: Path, k8s_api: kubernetes.client.ApiClient
) -> None:
    assert can_i("get", "secrets", None, namespace) == "no"
    kubectl("apply", "-k", str(tenant_dir(tmp_path, namespace)))
    assert can_i("get", "secrets", None, namespace) == "yes"
    assert can_i("get", "configmaps", None, namespace) == "yes"
    for verb in ("list", "watch", "create", "update", "delete"):
        assert can_i(verb, "secrets", None, namespace) == "no", verb
        assert can_i(verb, "configmaps", None, namespace) == "no", verb
    other = f"t-o-{uuid.uuid4().hex[:8]}"
    assert can_i("get", "secrets", None, other) == "no"
    assert can_i("get", "secrets", None, OPERATOR_NAMESPACE) == "no"


# ---------------------------------------------------------------- the operator under its ServiceAccount


@pytest.fixture
def extra_namespaces(k8s_api: kubernetes.client.ApiClient) -> Iterator[Callable[[], str]]:
    core = kubernetes.client.CoreV1Api(k8s_api)
    made: list[str] = []

    def make() -> str:
        name = f"t-x-{uuid.uuid4().hex[:10]}"
        core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
        made.append(name)
        return name

    yield make
    for name in made:
        release_objects(k8s_api, name)
        core.delete_namespace(name)


@pytest.fixture
def sa_kubeconfig(controlplane: Any, operator_rbac: Any, tmp_path: Path) -> Path:
    token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=1h").stdout.strip()
    path: Path = controlplane.kubeconfig_for_token(token, SERVICE_ACCOUNT, tmp_path / "operator.kubeconfig")
    return path


def account_secret(objects: Objects, emulator: EmulatorProcess, account: int) -> None:
    keys = emulator.accounts[account]
    objects.core.create_namespaced_secret(
        objects.namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="account"),
            string_data={"secretId": keys.secret_id, "secretKey": keys.secret_key},
        ),
    )


def instance(name: str) -> dict[str, Any]:
    return {
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {
            "region": "ap-guangzhou", "zone": "ap-guangzhou-3", "instanceType": "S5.SMALL2", "imageId": UBUNTU,
            "loginSettings": {"keyIds": ["skey-abcdefgh"]}, "credentialsSecretRef": {"name": "account"},
        },
    }  # fmt: skip


def visible_to(emulator: EmulatorProcess, account: int, instance_id: str) -> bool:
    answer = sdk_client(emulator, account).call_json("DescribeInstances", {"InstanceIds": [instance_id]})
    return bool(answer["Response"]["InstanceSet"])


@pytest.mark.operator
@pytest.mark.timeout(300)
def test_namespaces_read_only_the_secrets_they_grant(
    sa_kubeconfig: Path,
    emulator: EmulatorProcess,
    namespace: str,
    extra_namespaces: Callable[[], str],
    k8s_api: kubernetes.client.ApiClient,
    tmp_path: Path,
) -> None:
    team_a, team_b, team_c = namespace, extra_namespaces(), extra_namespaces()
    objects = {ns: Objects(k8s_api, ns) for ns in (team_a, team_b, team_c)}
    for index, ns in enumerate((team_a, team_b, team_c)):
        account_secret(objects[ns], emulator, index)
    for ns in (team_a, team_b):
        kubectl("apply", "-k", str(tenant_dir(tmp_path, ns)))
    operator = OperatorProcess(
        sa_kubeconfig, emulator.endpoint, [team_a, team_b, team_c], tmp_path / "operator.log",
        secret_id=None, secret_key=None, extra_args=["--log-format", "json"],
    ).start()  # fmt: skip
    try:
        for ns in (team_a, team_b, team_c):
            objects[ns].create("instances", instance("web"))
        ids = {ns: objects[ns].wait_condition("instances", "web", timeout=120)["status"]["instanceId"]
               for ns in (team_a, team_b)}  # fmt: skip
        # Each bound namespace acts as the account of its own Secret.
        assert visible_to(emulator, 0, ids[team_a]) and not visible_to(emulator, 0, ids[team_b])
        assert visible_to(emulator, 1, ids[team_b]) and not visible_to(emulator, 1, ids[team_a])

        # Not bound: RBAC refuses the read, and the object says how to grant it.
        stalled = objects[team_c].wait_condition("instances", "web", "Stalled", reason="SecretForbidden")
        message = next(c["message"] for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
        assert "manifests/components/tenant" in message and f"-n {team_c}" in message
        assert "spec.credentialsSecretRef" in message
        assert emulator.request_count("RunInstances") == 2

        # B withdraws its grant: A's grant does not stand in for it.
        kubectl("delete", "rolebinding", "cvm-operator-secrets", "-n", team_b)
        objects[team_b].wait_condition("instances", "web", "Stalled", reason="SecretForbidden")
        assert objects[team_a].condition("instances", "web", "Ready")["status"] == "True"  # type: ignore[index]

        # C grants it: the object goes on at once after a nudge.
        kubectl("apply", "-k", str(tenant_dir(tmp_path, team_c)))
        objects[team_c].patch("instances", "web", {"metadata": {"annotations": {"example.com/nudge": "1"}}})
        ready = objects[team_c].wait_condition("instances", "web", timeout=120)
        assert visible_to(emulator, 2, ready["status"]["instanceId"])
        assert operator.process is not None and operator.process.poll() is None, "the operator exited"
    finally:
        operator.stop()
    log = operator.log()
    assert "Traceback" not in log, log[-6000:]
    # The refusals are reported on the objects, not as RBAC errors of the operator's own calls.
    assert f'{SERVICE_ACCOUNT_USER}\\" cannot' not in log and f'{SERVICE_ACCOUNT_USER}" cannot' not in log
