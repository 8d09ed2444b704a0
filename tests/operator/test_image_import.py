"""Image from an imported disk file: Ready with size and OS, failures Stalled, drift put back, deletion."""

from __future__ import annotations

from tests.operator import cloud_call, image, images_tagged, import_image_body, status
from tests.support.emulator import DiskFileServer, EmulatorProcess, sdk_client, write_qcow2
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess, wait_for


def test_import_qcow2_becomes_ready_and_drift_is_put_back(
    operator: OperatorProcess,
    objects: Objects,
    emulator: EmulatorProcess,
    disk_server: DiskFileServer,
    namespace: str,
) -> None:
    write_qcow2(disk_server.directory / "disk.qcow2", virtual_size=20 * 2**30)
    body = import_image_body(
        "imported", disk_server.url("disk.qcow2"), description="golden web", family="web", tags={"team": "web"}
    )
    created = objects.create("images", body)
    kubectl("wait", "--for=condition=Ready", "--timeout=60s", "-n", namespace, "images/imported")
    ready = status(objects.get("images", "imported"))
    assert ready["phase"] == "Available" and ready["cloudState"] == "NORMAL" and ready["progress"] == 100
    assert ready["sizeGB"] == 20 and ready["osName"] == "Ubuntu 22 64位"
    assert ready["imageType"] == "Custom" and ready["imageSource"] == "EXTERNAL_IMPORT"
    assert ready["owner"] == emulator.accounts[0].account_id and ready["observedGeneration"] == 1
    # Events are posted in the background: the Ready event may trail the condition a little.
    wait_for(lambda: any(event.reason == "Ready" for event in objects.events("imported")), 30, "a Ready event")

    client = sdk_client(emulator)
    (cloud,) = images_tagged(client, created["metadata"]["uid"])
    assert cloud["ImageId"] == ready["imageId"] and cloud["ImageName"] == "imported"
    assert {"Key": "team", "Value": "web"} in cloud["Tags"]
    assert (objects.condition("images", "imported", "TagsUpToDate") or {}).get("status") == "True"

    # Edited in the cloud behind the operator's back: put back on the next poll.
    cloud_call(client, "ModifyImageAttribute", {"ImageId": ready["imageId"], "ImageName": "renamed",
                                                "ImageDescription": "edited"})  # fmt: skip
    wait_for(
        lambda: (image(client, ready["imageId"]) or {}).get("ImageName") == "imported",
        30,
        "the image name to be put back",
    )
    assert (image(client, ready["imageId"]) or {})["ImageDescription"] == "golden web"
    objects.wait_condition("images", "imported")

    # A spec change is applied in the cloud.
    objects.patch("images", "imported", {"spec": {"description": "golden web v2", "deprecated": True}})
    wait_for(
        lambda: (image(client, ready["imageId"]) or {}).get("ImageDescription") == "golden web v2",
        30,
        "the new description in the cloud",
    )
    assert (image(client, ready["imageId"]) or {})["ImageDeprecated"] is True
    objects.wait_condition("images", "imported")
    assert status(objects.get("images", "imported"))["observedGeneration"] == 2

    objects.delete("images", "imported")
    objects.wait_gone("images", "imported")
    assert image(client, ready["imageId"]) is None


def test_import_failures_are_stalled_with_a_reason(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, disk_server: DiskFileServer
) -> None:
    objects.create("images", import_image_body("missing-file", disk_server.url("nothing-here.qcow2")))
    stalled = objects.wait_condition("images", "missing-file", "Stalled", "True", reason="ImportFailed")
    assert status(stalled)["cloudState"] == "IMPORTFAILED" and status(stalled)["phase"] == "Failed"
    ready = objects.condition("images", "missing-file", "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "ImportFailed"
    assert objects.condition("images", "missing-file", "Reconciling") is None
    objects.wait_event("missing-file", lambda e: e.reason == "ImportFailed" and e.type == "Warning")

    # Deleting it removes the failed image from the cloud too.
    uid = stalled["metadata"]["uid"]
    client = sdk_client(emulator)
    assert len(images_tagged(client, uid)) == 1
    objects.delete("images", "missing-file")
    objects.wait_gone("images", "missing-file")
    assert images_tagged(client, uid) == []


def test_image_deleted_in_the_cloud_is_stalled_not_found_and_retain_keeps_it(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, disk_server: DiskFileServer
) -> None:
    write_qcow2(disk_server.directory / "disk.qcow2")
    objects.create("images", import_image_body("doomed", disk_server.url("disk.qcow2")))
    objects.create("images", import_image_body("kept", disk_server.url("disk.qcow2"), deletionPolicy="Retain"))
    doomed_id = status(objects.wait_condition("images", "doomed"))["imageId"]
    kept_id = status(objects.wait_condition("images", "kept"))["imageId"]

    client = sdk_client(emulator)
    cloud_call(client, "DeleteImages", {"ImageIds": [doomed_id]})
    stalled = objects.wait_condition("images", "doomed", "Stalled", "True", reason="NotFound", timeout=30)
    assert doomed_id in objects.condition("images", "doomed", "Stalled")["message"]  # type: ignore[index]
    assert len(images_tagged(client, stalled["metadata"]["uid"])) == 0  # not made again
    objects.delete("images", "doomed")
    objects.wait_gone("images", "doomed")

    objects.delete("images", "kept")
    objects.wait_gone("images", "kept")
    assert (image(client, kept_id) or {}).get("ImageState") == "NORMAL"
