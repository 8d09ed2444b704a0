"""InstanceSet against the real API server (with garbage collection), the emulator and the operator."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import kubernetes
import urllib3

from tests.operator import REGION, UBUNTU, cloud_call, status
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess, wait_for

SET_LABEL = "cvm.operator.dev/instance-set"
BATCH_TAG = "cvm.operator.dev/launch-batch"
ZONES = ["ap-guangzhou-3", "ap-guangzhou-4"]
CRASH_ENV = "CVM_OPERATOR_CRASH_AFTER"


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


DEBIAN = "img-deb12x64"


class FleetWatcher:
    """Follows a set's replicas through a watch and records, after every event, how many were
    unavailable (short of ready for their current spec, or being deleted) and how many existed."""

    def __init__(self, objects: Objects, name: str, replicas: int) -> None:
        self.objects, self.name, self.replicas = objects, name, replicas
        self.state: dict[str, tuple[bool, bool]] = {}
        self.max_unavailable = 0
        self.max_live = 0
        self._synced = False
        self._watch = kubernetes.watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FleetWatcher:
        self._thread.start()
        wait_for(lambda: len(self.state) >= self.replicas, 30, "the watcher to see every replica")
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with contextlib.suppress(urllib3.exceptions.ProtocolError):  # the watch was stopped
            self._follow()

    def _follow(self) -> None:
        stream = self._watch.stream(
            self.objects.custom.list_namespaced_custom_object,
            "cvm.operator.dev",
            "v1alpha1",
            self.objects.namespace,
            "instances",
            label_selector=f"{SET_LABEL}={self.name}",
            timeout_seconds=600,
        )
        for event in stream:
            body = event["object"]
            name = body["metadata"]["name"]
            if event["type"] == "DELETED":
                self.state.pop(name, None)
            else:
                ready = any(
                    c["type"] == "Ready"
                    and c["status"] == "True"
                    and c.get("observedGeneration", 0) >= body["metadata"]["generation"]
                    for c in (body.get("status") or {}).get("conditions") or ()
                )
                self.state[name] = (ready, body["metadata"].get("deletionTimestamp") is not None)
            # The first events list the replicas one by one: count from when all were seen.
            self._synced = self._synced or len(self.state) >= self.replicas
            if not self._synced:
                continue
            live = [ready for ready, deleting in self.state.values() if not deleting]
            self.max_unavailable = max(self.max_unavailable, self.replicas - sum(live))
            self.max_live = max(self.max_live, len(live))


def test_rolling_reimage_stays_within_max_unavailable_and_pauses(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    strategy = {"type": "RollingReimage", "maxUnavailable": 2}
    objects.create("instancesets", set_body("web", 6, updateStrategy=strategy, paused=True))
    wait_settled(objects, "web", 6)
    before = {m["metadata"]["name"]: m["status"]["instanceId"] for m in replicas_of(objects, "web")}

    with FleetWatcher(objects, "web", 6) as watcher:
        objects.patch("instancesets", "web", {"spec": {"template": {"spec": {"imageId": DEBIAN}}}})
        objects.wait_condition("instancesets", "web", "Reconciling", reason="Paused", timeout=30)
        time.sleep(2)
        assert emulator.request_count("ResetInstance") == 0  # paused: the rollout holds
        objects.patch("instancesets", "web", {"spec": {"paused": False}})
        body = wait_settled(objects, "web", 6)
    assert 0 < watcher.max_unavailable <= 2
    assert status(body)["currentImageId"] == DEBIAN == status(body)["updateImageId"]
    after = replicas_of(objects, "web")
    assert {m["metadata"]["name"]: m["status"]["instanceId"] for m in after} == before  # reinstalled in place
    assert all(m["status"]["imageId"] == DEBIAN for m in after)
    assert emulator.request_count("ResetInstance") == 6
    assert {item["ImageId"] for item in running(emulator)} == {DEBIAN}


def test_rolling_replace_launches_new_replicas_within_the_surge(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    strategy = {"type": "RollingReplace", "maxUnavailable": 0, "maxSurge": 1}
    objects.create("instancesets", set_body("web", 4, updateStrategy=strategy))
    wait_settled(objects, "web", 4)
    old_ids = {m["status"]["instanceId"] for m in replicas_of(objects, "web")}

    with FleetWatcher(objects, "web", 4) as watcher:
        objects.patch("instancesets", "web", {"spec": {"template": {"spec": {"imageId": DEBIAN}}}})
        wait_settled(objects, "web", 4, timeout=180)
    assert watcher.max_unavailable == 0 and watcher.max_live <= 5
    wait_for(lambda: len(replicas_of(objects, "web")) == 4, 60, "old replicas gone")
    new = replicas_of(objects, "web")
    assert not old_ids & {m["status"]["instanceId"] for m in new}
    assert all(m["spec"]["imageId"] == DEBIAN for m in new)
    wait_for(lambda: {item["ImageId"] for item in running(emulator)} == {DEBIAN}, 60, "old instances terminated")
    assert len(running(emulator)) == 4
    assert emulator.request_count("ResetInstance") == 0


def test_scale_up_survives_kill_9_three_times_with_exactly_the_replicas_in_the_cloud(
    operator_factory: Callable[..., OperatorProcess], objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    # 1: the process exits right after the first RunInstances returned, before any replica knows its instance.
    process = operator_factory([namespace], extra_env={CRASH_ENV: "launch:InstanceSet"})
    objects.create("instancesets", set_body("web", 50))
    wait_for(lambda: process.process is not None and process.process.poll() is not None, 60, "the crash")
    assert process.process is not None and process.process.returncode == 86
    assert len(running(emulator)) == 25
    assert replicas_of(objects, "web") == []  # objects come after their instances, made with their ids
    recorded = status(objects.get("instancesets", "web"))["pendingLaunches"]
    assert sorted(launch["zone"] for launch in recorded) == ZONES and {launch["count"] for launch in recorded} == {25}

    # 2: SIGKILL while replicas are being adopted; 3: SIGKILL soon after a start, wherever it is.
    process.env.pop(CRASH_ENV)
    process.start()
    wait_for(lambda: sum(bool(status(m).get("instanceId")) for m in replicas_of(objects, "web")) >= 5, 60, "adoption")
    process.kill()
    process.start()
    time.sleep(1.5)
    process.kill()

    process.start()
    wait_settled(objects, "web", 50, timeout=180)
    cloud = running(emulator)
    assert len(cloud) == 50
    members = replicas_of(objects, "web")
    assert {m["status"]["instanceId"] for m in members} == {item["InstanceId"] for item in cloud}
    # Each instance carries the tag of its replica's batch; every batch is finished.
    assert status(objects.get("instancesets", "web")).get("pendingLaunches", []) == []
    batch_of = {m["status"]["instanceId"]: m["metadata"]["annotations"][BATCH_TAG] for m in members}
    for item in cloud:
        assert {"Key": BATCH_TAG, "Value": batch_of[item["InstanceId"]]} in item["Tags"]

    # With Retain, deleting the set removes its replicas and leaves their instances.
    objects.patch("instancesets", "web", {"spec": {"deletionPolicy": "Retain"}})
    wait_for(
        lambda: all(m["spec"]["deletionPolicy"] == "Retain" for m in replicas_of(objects, "web")), 30, "Retain synced"
    )
    objects.delete("instancesets", "web")
    objects.wait_gone("instancesets", "web")
    wait_for(lambda: not replicas_of(objects, "web"), 60, "replicas garbage-collected")
    assert len(running(emulator)) == 50


def test_replicas_refused_by_a_sold_out_zone_launch_in_the_sets_other_zone(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    sold_out = "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance"
    emulator.inject_fault("RunInstances", count=100, code=sold_out, zone=ZONES[0])
    objects.create("instancesets", set_body("web", 4))
    wait_settled(objects, "web", 4)
    members = replicas_of(objects, "web")
    assert {m["spec"]["zone"] for m in members} == {ZONES[1]}
    assert {item["Placement"]["Zone"] for item in running(emulator)} == {ZONES[1]} and len(running(emulator)) == 4
    # One refusal, then the zone is left alone (no launch loop against a sold-out zone).
    assert emulator.request_count("RunInstances", code=sold_out) == 1
    objects.wait_event("web", lambda e: e.reason == "ZoneShort" and ZONES[0] in (e.message or ""))


ARM_TENCENTOS = "img-9a0eg8mt"


def test_a_replica_that_fails_to_update_stops_the_rollout_naming_it(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    objects.create("instancesets", set_body("web", 3))
    wait_settled(objects, "web", 3)
    # An ARM image cannot run on the template's x86 instance type: the cloud refuses the reinstall.
    objects.patch("instancesets", "web", {"spec": {"template": {"spec": {"imageId": ARM_TENCENTOS}}}})
    stalled = objects.wait_condition("instancesets", "web", "Stalled", reason="RolloutFailed", timeout=60)
    message = (objects.condition("instancesets", "web", "Stalled") or {})["message"]
    told = [m for m in replicas_of(objects, "web") if m["spec"]["imageId"] == ARM_TENCENTOS]
    assert len(told) == 1  # maxUnavailable 1: the rest were never touched
    assert told[0]["metadata"]["name"] in message
    assert status(stalled)["updatedReplicas"] == 0 and status(stalled)["currentImageId"] == UBUNTU

    # Back to a good image: the replica is reinstalled from it and the set is Ready again.
    objects.patch("instancesets", "web", {"spec": {"template": {"spec": {"imageId": DEBIAN}}}})
    wait_settled(objects, "web", 3, timeout=180)
    assert {m["status"]["imageId"] for m in replicas_of(objects, "web")} == {DEBIAN}


def test_on_delete_waits_for_deleted_replicas_and_a_removed_zone_is_emptied(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    objects.create("instancesets", set_body("web", 2, updateStrategy={"type": "OnDelete"}))
    wait_settled(objects, "web", 2)
    objects.patch("instancesets", "web", {"spec": {"template": {"spec": {"imageId": DEBIAN}}}})
    objects.wait_condition("instancesets", "web", "Reconciling", reason="OnDelete", timeout=30)
    assert {m["spec"]["imageId"] for m in replicas_of(objects, "web")} == {UBUNTU}

    # The replica in the zone taken out of spec.zones is replaced in the other, on the new image.
    (in_zone_4,) = [m for m in replicas_of(objects, "web") if m["spec"]["zone"] == "ap-guangzhou-4"]
    objects.patch("instancesets", "web", {"spec": {"zones": ["ap-guangzhou-3"]}})

    def moved() -> list[dict[str, Any]] | None:
        members = replicas_of(objects, "web")
        zones = {m["spec"]["zone"] for m in members}
        return members if len(members) == 2 and zones == {"ap-guangzhou-3"} else None

    members = wait_for(moved, 90, "both replicas in ap-guangzhou-3")
    assert in_zone_4["metadata"]["name"] not in {m["metadata"]["name"] for m in members}
    (old,) = [m for m in members if m["spec"]["imageId"] == UBUNTU]

    # Deleting the last old replica brings its replacement on the new image; then the set is Ready.
    objects.delete("instances", old["metadata"]["name"])
    wait_settled(objects, "web", 2)
    assert {m["status"]["imageId"] for m in replicas_of(objects, "web")} == {DEBIAN}
    assert emulator.request_count("ResetInstance") == 0
