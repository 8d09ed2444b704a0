"""The kustomize base and the emulator overlay: complete, hardened, and accepted by a real API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.ship.conftest import MANIFESTS, OPERATOR_NAMESPACE, ROOT, find, kustomize
from tests.support.kube import kubectl

CRDS = ROOT / "crds"
EMULATOR_OVERLAY = MANIFESTS / "overlays" / "emulator"
IMAGE = "ghcr.io/cvm-operator/cvm-operator:0.1.0"


def test_manifest_crds_are_the_generated_ones() -> None:
    """manifests/crds/ holds byte-identical copies of crds/ (`make crds` writes both) and lists each."""
    generated = {path.name: path.read_text() for path in CRDS.glob("*.yaml")}
    copies = {path.name: path.read_text() for path in (MANIFESTS / "crds").glob("*.yaml")}
    copies.pop("kustomization.yaml")
    assert generated, "crds/ is empty"
    assert copies == generated, "manifests/crds/ differs from crds/: run `make crds`"
    listed = yaml.safe_load((MANIFESTS / "crds" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(generated)


def test_base_has_every_part(controlplane: Any) -> None:
    objects = kustomize(MANIFESTS)
    kinds = sorted({(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] != "CustomResourceDefinition"})
    assert kinds == [
        ("ClusterRole", "cvm-operator"),
        ("ClusterRoleBinding", "cvm-operator"),
        ("Deployment", "cvm-operator"),
        ("Namespace", OPERATOR_NAMESPACE),
        ("Service", "cvm-operator-metrics"),
        ("ServiceAccount", "cvm-operator"),
    ]
    crds = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition")
    assert [crd for crd in crds if crd.endswith(".kopf.dev")] == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ]
    crds = [crd for crd in crds if crd.endswith(".cvm.operator.dev")]
    assert crds == [
        "imagecopies.cvm.operator.dev",
        "images.cvm.operator.dev",
        "imageschedules.cvm.operator.dev",
        "imageshares.cvm.operator.dev",
        "instances.cvm.operator.dev",
        "instancesets.cvm.operator.dev",
    ]
    for item in objects:
        cluster_scoped = (
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterKopfPeering",
        )
        if item["kind"] not in cluster_scoped:
            assert item["metadata"]["namespace"] == OPERATOR_NAMESPACE, item["metadata"]


def test_operator_deployment_is_hardened(controlplane: Any) -> None:
    deployment = find(kustomize(MANIFESTS), "Deployment", "cvm-operator")
    spec = deployment["spec"]
    # Active/standby: two replicas through Kopf's peering, never both down during a rollout.
    assert spec["replicas"] == 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "cvm-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["args"][:3] == ["run", "--all-namespaces", "--peering=cvm-operator"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert {"--metrics-port=8080", "--health-port=8081"} <= set(container["args"])
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}
    secrets = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in container["env"] if "valueFrom" in env}
    assert secrets == {
        "TENCENTCLOUD_SECRET_ID": {"name": "cvm-operator-credentials", "key": "secretId", "optional": False},
        "TENCENTCLOUD_SECRET_KEY": {"name": "cvm-operator-credentials", "key": "secretKey", "optional": False},
    }
    assert not any(env["name"] == "CVM_ENDPOINT" for env in container["env"]), "the base talks to Tencent Cloud"


def test_emulator_overlay_points_the_operator_at_the_emulator(controlplane: Any) -> None:
    objects = kustomize(EMULATOR_OVERLAY)
    operator = find(objects, "Deployment", "cvm-operator")["spec"]["template"]["spec"]["containers"][0]
    endpoint = {env["name"]: env.get("value") for env in operator["env"]}["CVM_ENDPOINT"]
    service = find(objects, "Service", "cvm-emulator")
    (port,) = service["spec"]["ports"]
    assert endpoint == f"http://cvm-emulator.{OPERATOR_NAMESPACE}.svc:{port['port']}"
    emulator = find(objects, "Deployment", "cvm-emulator")["spec"]["template"]["spec"]
    assert service["spec"]["selector"].items() <= emulator_labels(objects).items()
    (container,) = emulator["containers"]
    assert container["command"] == ["cvm-emulator"]
    assert "--host=0.0.0.0" in container["args"]
    assert any(arg.startswith("--db=/data/") for arg in container["args"])
    assert {volume["name"]: volume for volume in emulator["volumes"]}["data"]["emptyDir"] is not None
    secret = find(objects, "Secret", "cvm-operator-credentials")
    assert secret["stringData"] == {
        "secretId": "AKIDcvmEmulatorAccount000000000001",
        "secretKey": "cvmEmulatorSecretKey0000000000001",
    }


def emulator_labels(objects: list[dict[str, Any]]) -> dict[str, str]:
    labels: dict[str, str] = find(objects, "Deployment", "cvm-emulator")["spec"]["template"]["metadata"]["labels"]
    return labels


def _server_dry_run(path: Path) -> str:
    # Namespaced objects need their namespace to exist even for a dry run: create it for real first.
    namespace = find(kustomize(path), "Namespace", OPERATOR_NAMESPACE)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
    result = kubectl("apply", "-k", str(path), "--dry-run=server")
    return result.stdout


def test_base_passes_server_dry_run(controlplane: Any) -> None:
    output = _server_dry_run(MANIFESTS)
    for applied in (
        "customresourcedefinition.apiextensions.k8s.io/images.cvm.operator.dev",
        "serviceaccount/cvm-operator",
        "clusterrole.rbac.authorization.k8s.io/cvm-operator",
        "clusterrolebinding.rbac.authorization.k8s.io/cvm-operator",
        "deployment.apps/cvm-operator",
        "service/cvm-operator-metrics",
    ):
        assert applied in output, output
    assert "(server dry run)" in output


def test_emulator_overlay_passes_server_dry_run(controlplane: Any) -> None:
    output = _server_dry_run(EMULATOR_OVERLAY)
    for applied in ("deployment.apps/cvm-emulator", "service/cvm-emulator", "secret/cvm-operator-credentials"):
        assert applied in output, output


def test_the_shards_component_splits_the_operator_in_two_by_label(controlplane: Any) -> None:
    objects = kustomize(MANIFESTS / "overlays" / "shards")
    deployments = [item for item in objects if item["kind"] == "Deployment"]
    selectors, peerings = {}, set()
    for deployment in deployments:
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        flags = dict(arg.split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)
        selectors[deployment["metadata"]["name"]] = flags["--selector"]
        peerings.add(flags["--peering"])
        assert "--standalone" not in args
    assert selectors == {
        "cvm-operator": "cvm.operator.dev/shard=a",
        "cvm-operator-shard-b": "cvm.operator.dev/shard=b",
    }
    assert peerings == {"cvm-operator-shard-a", "cvm-operator-shard-b"}
