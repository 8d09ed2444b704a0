"""InstanceSet against the real API server (with garbage collection), the emulator and the operator."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.operator import REGION, UBUNTU, cloud_call, status
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess, wait_for

SET_LABEL = "cvm.operator.dev/instance-set"
BATCH_TAG = "cvm.operator.dev/launch-batch"
ZONES = ["ap-guangzhou-3", "ap-guangzhou-4"]


def set_body(name: str, replicas: int, *, image_id: str = UBUNTU, **spec: Any) -> dict[str, Any]:
    template = {
        "instanceType": "S5.MEDIUM2",
        "imageId": image_id,
        "loginSettings": {"keyIds": ["skey-abcdefgh"]},
        "tags": {"team": "web"},
    }
    return {
        "kind": "InstanceSet",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "replicas": replicas,
            "zones": ZONES,
            "template": {"metadata": {"labels": {"tier": "web"}}, "spec": template},
            **spec,
        },
    }


def replicas_of(objects: Objects, name: str) -> list[dict[str, Any]]:
    listed = objects.custom.list_namespaced_custom_object(
        "cvm.operator.dev", "v1alpha1", objects.namespace, "instances", label_selector=f"{SET_LABEL}={name}"
    )
    assert isinstance(listed, dict)
    return list(listed["items"])


def cloud_instances(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    """Every instance of the account that is not terminated (the emulator hides TERMINATED ones)."""
    client = sdk_client(emulator)
    found: list[dict[str, Any]] = []
    while True:
        page = cloud_call(client, "DescribeInstances", {"Offset": len(found), "Limit": 100})
        found += page.get("InstanceSet") or []
        if len(found) >= page["TotalCount"] or not page.get("InstanceSet"):
            return found


def running(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    return [item for item in cloud_instances(emulator) if item["InstanceState"] != "TERMINATING"]


def wait_settled(objects: Objects, name: str, replicas: int, timeout: float = 120) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        body = objects.get("instancesets", name)
        current = status(body)
        ready = objects.condition("instancesets", name, "Ready") or {}
        if body is None or ready.get("status") != "True":
            return None
        if ready.get("observedGeneration") != body["metadata"]["generation"]:
            return None
        if current.get("replicas") != replicas or current.get("updatedReplicas") != replicas:
            return None
        return body

    return wait_for(settled, timeout, f"instanceset/{name} Ready with {replicas} replicas")


def test_replicas_spread_over_zones_launch_in_batches_scale_and_go_with_the_set(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    created = objects.create("instancesets", set_body("web", 20))
    body = wait_settled(objects, "web", 20)
    assert status(body)["selector"] == f"{SET_LABEL}=web"
    assert status(body)["updateImageId"] == UBUNTU == status(body)["currentImageId"]

    members = replicas_of(objects, "web")
    assert len(members) == 20
    assert Counter(member["spec"]["zone"] for member in members) == {"ap-guangzhou-3": 10, "ap-guangzhou-4": 10}
    for member in members:
        assert member["metadata"]["name"].startswith("web-")
        assert member["metadata"]["labels"] == {SET_LABEL: "web", "tier": "web"}
        owner = member["metadata"]["ownerReferences"][0]
        assert owner["uid"] == created["metadata"]["uid"] and owner["controller"] is True
        assert member["spec"]["imageId"] == UBUNTU and member["spec"]["tags"] == {"team": "web"}
    # One RunInstances per zone (at most 2 would be allowed: 10 replicas fit in one batch of 500).
    assert emulator.request_count("RunInstances") == 2
    cloud = running(emulator)
    assert len(cloud) == 20
    ids = {member["status"]["instanceId"] for member in members}
    assert ids == {item["InstanceId"] for item in cloud}
    names = {member["spec"]["instanceName"] for member in members}
    assert names == {item["InstanceName"] for item in cloud}
    for item in cloud:
        tags = {tag["Key"]: tag["Value"] for tag in item["Tags"]}
        assert tags["team"] == "web" and BATCH_TAG in tags

    # The printer columns and the scale subresource.
    table = kubectl("get", "cvmset", "web", "-n", namespace).stdout
    assert table.split("\n")[0].split()[:5] == ["NAME", "DESIRED", "READY", "UP-TO-DATE", "IMAGE"]
    kubectl("scale", "instanceset/web", "--replicas=25", "-n", namespace)
    wait_settled(objects, "web", 25)
    assert Counter(m["spec"]["zone"] for m in replicas_of(objects, "web")) == {
        "ap-guangzhou-3": 13,
        "ap-guangzhou-4": 12,
    }
    assert emulator.request_count("RunInstances") == 4
    scale = kubectl("get", "--raw", f"/apis/cvm.operator.dev/v1alpha1/namespaces/{namespace}/instancesets/web/scale")
    assert '"replicas":25' in scale.stdout and f"{SET_LABEL}=web" in scale.stdout

    newest = sorted(replicas_of(objects, "web"), key=lambda m: m["metadata"]["creationTimestamp"])[-5:]
    kubectl("scale", "instanceset/web", "--replicas=5", "-n", namespace)
    wait_settled(objects, "web", 5)
    wait_for(lambda: len(replicas_of(objects, "web")) == 5, 60, "20 replicas deleted")
    wait_for(lambda: len(running(emulator)) == 5, 60, "20 instances terminated")
    left = replicas_of(objects, "web")
    assert Counter(m["spec"]["zone"] for m in left) == {"ap-guangzhou-3": 3, "ap-guangzhou-4": 2}
    assert not {m["metadata"]["name"] for m in newest} & {m["metadata"]["name"] for m in left}

    # Deleting the set removes its replicas and terminates their instances.
    objects.delete("instancesets", "web")
    objects.wait_gone("instancesets", "web", timeout=90)
    wait_for(lambda: not replicas_of(objects, "web"), 60, "replicas garbage-collected")
    wait_for(lambda: not running(emulator), 60, "instances terminated")
