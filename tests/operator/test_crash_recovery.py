"""The operator dies between a cloud create and the status write; after a restart nothing is made twice.

The operator exits through its documented test hook (CVM_OPERATOR_CRASH_AFTER, see reconcilers/base.py)
right after the create call returned, so the crash lands exactly in the window that matters.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.operator import UBUNTU, images_tagged, import_image_body, instance_body, instances_tagged, status
from tests.support.emulator import DiskFileServer, EmulatorProcess, sdk_client, write_qcow2
from tests.support.operator import Objects, OperatorProcess, wait_for

CRASH_ENV = "CVM_OPERATOR_CRASH_AFTER"


def wait_for_crash(process: OperatorProcess, crashed_after: str) -> None:
    assert process.process is not None
    wait_for(lambda: process.process is not None and process.process.poll() is not None, 60, "the operator to crash")
    assert process.process.returncode == 86
    assert f"crash point {crashed_after}" in process.log()


def restart_without_hook(process: OperatorProcess) -> None:
    process.env.pop(CRASH_ENV)
    process.start()


def test_crash_after_create_adopts_instead_of_creating_again(
    operator_factory: Callable[..., OperatorProcess],
    objects: Objects,
    emulator: EmulatorProcess,
    disk_server: DiskFileServer,
    namespace: str,
) -> None:
    client = sdk_client(emulator)
    write_qcow2(disk_server.directory / "disk.qcow2")

    process = operator_factory([namespace], extra_env={CRASH_ENV: "create:Image"})
    image_uid = objects.create("images", import_image_body("golden", disk_server.url("disk.qcow2")))["metadata"]["uid"]
    wait_for_crash(process, "create:Image")
    assert "imageId" not in status(objects.get("images", "golden"))  # the status write never happened
    assert len(images_tagged(client, image_uid)) == 1
    restart_without_hook(process)
    ready = status(objects.wait_condition("images", "golden"))
    (cloud_image,) = images_tagged(client, image_uid)
    assert cloud_image["ImageId"] == ready["imageId"]
    assert emulator.request_count("ImportImage") == 1

    process.stop()
    process.env[CRASH_ENV] = "create:Instance"
    process.start()
    instance_uid = objects.create("instances", instance_body("web", image_ref="golden", loginSettings={
        "keepImageLogin": True,
    }))["metadata"]["uid"]  # fmt: skip
    wait_for_crash(process, "create:Instance")
    assert "instanceId" not in status(objects.get("instances", "web"))
    assert len(instances_tagged(client, instance_uid)) == 1
    restart_without_hook(process)
    running = status(objects.wait_condition("instances", "web"))
    (cloud_instance,) = instances_tagged(client, instance_uid)
    assert cloud_instance["InstanceId"] == running["instanceId"] and running["imageId"] == ready["imageId"]
    assert len(images_tagged(client, image_uid)) == 1
    assert emulator.request_count("RunInstances") == 1
    assert emulator.request_count("ImportImage") == 1


def test_restarted_operator_launches_nothing_new(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    uid = objects.create("instances", instance_body("steady", image_id=UBUNTU))["metadata"]["uid"]
    instance_id = status(objects.wait_condition("instances", "steady"))["instanceId"]
    operator.kill()
    operator.start()
    describes = emulator.request_count("DescribeInstances")
    wait_for(lambda: emulator.request_count("DescribeInstances") >= describes + 3, 30, "polls after the restart")
    (cloud,) = instances_tagged(sdk_client(emulator), uid)
    assert cloud["InstanceId"] == instance_id and emulator.request_count("RunInstances") == 1
