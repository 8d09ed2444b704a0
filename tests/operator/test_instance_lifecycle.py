"""Instance lifecycle against the emulator: launch, power state, drift, custom images, reimage, deletion."""

from __future__ import annotations

import base64

import kubernetes
from tencentcloud.cvm.v20170312 import cvm_client

from tests.operator import UBUNTU, cloud_call, image, instance, instance_body, instances_tagged, status
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess, wait_for


def cloud_state(client: cvm_client.CvmClient, instance_id: str) -> str | None:
    state = (instance(client, instance_id) or {}).get("InstanceState")
    return str(state) if state else None


def test_instance_lifecycle_power_state_custom_image_and_reimage(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    client = sdk_client(emulator)
    objects.core.create_namespaced_secret(namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="web-login"),
        data={"password": base64.b64encode(b"Cvm-Passw0rd").decode()},
    ))  # fmt: skip

    # Launch from a public image, logging in with a password from a Secret.
    web1 = instance_body(
        "web-1", image_id=UBUNTU, reimagePolicy="OnImageChange", hostName="web-1", tags={"team": "web"},
        loginSettings={"passwordSecretRef": {"name": "web-login", "key": "password"}},
    )  # fmt: skip
    uid = objects.create("instances", web1)["metadata"]["uid"]
    kubectl("wait", "--for=condition=Ready", "--timeout=60s", "-n", namespace, "instances/web-1")
    running = status(objects.get("instances", "web-1"))
    instance_id = running["instanceId"]
    assert running["phase"] == "Running" and running["cloudState"] == "RUNNING"
    assert running["imageId"] == UBUNTU and running["zone"] == "ap-guangzhou-3"
    assert running["osName"] == "Ubuntu Server 22.04 LTS 64位"
    (cloud,) = instances_tagged(client, uid)
    assert cloud["InstanceId"] == instance_id and cloud["InstanceName"] == "web-1"
    assert running["privateIpAddresses"] == cloud["PrivateIpAddresses"] and running["privateIpAddresses"]
    assert {"Key": "team", "Value": "web"} in cloud["Tags"]
    assert (objects.condition("instances", "web-1", "ImageUpToDate") or {}).get("status") == "True"

    # runState Stopped, then Running again.
    objects.patch("instances", "web-1", {"spec": {"runState": "Stopped"}})
    wait_for(lambda: cloud_state(client, instance_id) == "STOPPED", 30, "the instance to stop")
    stopped = objects.wait_condition("instances", "web-1")
    wait_for(lambda: status(objects.get("instances", "web-1")).get("phase") == "Stopped", 30, "phase Stopped")
    assert status(stopped)["observedGeneration"] == 2
    objects.patch("instances", "web-1", {"spec": {"runState": "Running"}})
    wait_for(lambda: cloud_state(client, instance_id) == "RUNNING", 30, "the instance to start")
    wait_for(lambda: status(objects.get("instances", "web-1")).get("phase") == "Running", 30, "phase Running")

    # Stopped behind the operator's back: started again on the next poll.
    starts = emulator.request_count("StartInstances")
    cloud_call(client, "StopInstances", {"InstanceIds": [instance_id]})
    wait_for(lambda: emulator.request_count("StartInstances") > starts, 30, "the operator to start it again")
    wait_for(lambda: cloud_state(client, instance_id) == "RUNNING", 30, "the instance to run again")
    objects.wait_condition("instances", "web-1")

    # A custom image from that instance, and a second instance from the custom image.
    objects.create("images", {"kind": "Image", "metadata": {"name": "golden"}, "spec": {
        "region": "ap-guangzhou", "family": "web", "source": {"fromInstance": {"instanceRef": {"name": "web-1"}}},
    }})  # fmt: skip
    kubectl("wait", "--for=condition=Ready", "--timeout=60s", "-n", namespace, "images/golden")
    golden = status(objects.get("images", "golden"))
    golden_id = golden["imageId"]
    assert golden["imageType"] == "Custom" and golden["imageSource"] == "CREATE_IMAGE" and golden["sizeGB"] == 50
    assert (image(client, golden_id) or {}).get("ImageFamily") == "web"

    objects.create("instances", instance_body("web-2", image_ref="golden"))
    web2 = status(objects.wait_condition("instances", "web-2"))
    assert web2["imageId"] == golden_id and web2["cloudState"] == "RUNNING"

    # reimagePolicy OnImageChange: a new image reinstalls the instance once.
    resets = emulator.request_count("ResetInstance")
    objects.patch("instances", "web-1", {"spec": {"imageId": golden_id}})
    wait_for(lambda: status(objects.get("instances", "web-1")).get("imageId") == golden_id, 60, "the new image id")
    objects.wait_condition("instances", "web-1")
    assert (instance(client, instance_id) or {})["ImageId"] == golden_id
    assert emulator.request_count("ResetInstance") == resets + 1
    assert (objects.condition("instances", "web-1", "ImageUpToDate") or {}).get("status") == "True"

    # reimagePolicy Never: the difference is reported and nothing is done.
    objects.patch("instances", "web-2", {"spec": {"imageRef": None, "imageId": UBUNTU}})
    drift = objects.wait_condition("instances", "web-2", "ImageUpToDate", "False", reason="ImageDiffers")
    message = (objects.condition("instances", "web-2", "ImageUpToDate") or {})["message"]
    assert golden_id in message and UBUNTU in message
    describes = emulator.request_count("DescribeInstances")
    wait_for(lambda: emulator.request_count("DescribeInstances") >= describes + 4, 30, "a few more polls")
    assert emulator.request_count("ResetInstance") == resets + 1
    assert (objects.condition("instances", "web-2", "Ready") or {}).get("status") == "True"
    assert status(drift)["imageId"] == golden_id

    # Retain leaves the instance running; Delete terminates it.
    web2_id = web2["instanceId"]
    objects.patch("instances", "web-2", {"spec": {"deletionPolicy": "Retain"}})
    wait_for(lambda: status(objects.get("instances", "web-2")).get("observedGeneration") == 3, 30, "generation 3")
    objects.delete("instances", "web-2")
    objects.wait_gone("instances", "web-2")
    assert cloud_state(client, web2_id) == "RUNNING"

    terminates = emulator.request_count("TerminateInstances")
    objects.delete("instances", "web-1")
    objects.wait_gone("instances", "web-1")
    assert instance(client, instance_id) is None
    assert emulator.request_count("TerminateInstances") == terminates + 1

    # A shared image waits for its shares to go before it is deleted.
    cloud_call(client, "ModifyImageSharePermission",
               {"ImageId": golden_id, "AccountIds": ["200000000002"], "Permission": "SHARE"})  # fmt: skip
    objects.delete("images", "golden")
    shared = objects.wait_condition("images", "golden", "Reconciling", "True", reason="ImageShared", timeout=30)
    assert "200000000002" in (objects.condition("images", "golden", "Reconciling") or {})["message"]
    assert status(shared)["phase"] == "Deleting" and image(client, golden_id) is not None
    cloud_call(client, "ModifyImageSharePermission",
               {"ImageId": golden_id, "AccountIds": ["200000000002"], "Permission": "CANCEL"})  # fmt: skip
    objects.wait_gone("images", "golden")
    assert image(client, golden_id) is None
