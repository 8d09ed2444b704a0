"""An Instance waits for its Image; an instance terminated outside the operator is reported, not relaunched."""

from __future__ import annotations

from tests.operator import UBUNTU, cloud_call, instance_body, instances_tagged, status
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.operator import Objects, OperatorProcess, wait_for


def test_instance_waits_for_its_image_then_launches(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    uid = objects.create("instances", instance_body("waiter", image_ref="later"))["metadata"]["uid"]
    waiting = objects.wait_condition("instances", "waiter", "Reconciling", "True", reason="ImageNotReady")
    assert "later" in (objects.condition("instances", "waiter", "Ready") or {})["message"]
    assert status(waiting)["phase"] == "Pending"
    assert emulator.request_count("RunInstances") == 0
    assert emulator.request_count("DescribeInstances") == 0  # waiting costs no cloud calls

    objects.create("images", {"kind": "Image", "metadata": {"name": "later"}, "spec": {
        "region": "ap-guangzhou", "source": {"existing": {"imageId": UBUNTU}},
    }})  # fmt: skip
    running = status(objects.wait_condition("instances", "waiter", timeout=60))
    assert running["imageId"] == UBUNTU and running["cloudState"] == "RUNNING"
    assert len(instances_tagged(sdk_client(emulator), uid)) == 1


def test_instance_terminated_out_of_band_is_stalled_not_found(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    uid = objects.create("instances", instance_body("victim", image_id=UBUNTU))["metadata"]["uid"]
    instance_id = status(objects.wait_condition("instances", "victim"))["instanceId"]
    client = sdk_client(emulator)
    cloud_call(client, "TerminateInstances", {"InstanceIds": [instance_id]})
    objects.wait_condition("instances", "victim", "Stalled", "True", reason="NotFound", timeout=30)
    assert instance_id in (objects.condition("instances", "victim", "Stalled") or {})["message"]
    assert instances_tagged(client, uid) == []
    assert emulator.request_count("RunInstances") == 1
    objects.delete("instances", "victim")
    objects.wait_gone("instances", "victim")
    wait_for(lambda: emulator.request_count("TerminateInstances") == 1, 5, "no second terminate")
