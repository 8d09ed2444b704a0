"""ImageCopy: Retain on deletion, and a crash right after SyncImages adopts the copies instead of copying again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.operator import UBUNTU
from tests.operator.test_imagecopy import copies, copy_body
from tests.operator.test_imageshare import REGION, cloud, describe_image, golden_image
from tests.support.emulator import EmulatorProcess
from tests.support.operator import Objects, OperatorProcess, wait_for

CRASH_EXIT_CODE = 86
API_VERSION = "cvm.operator.dev/v1alpha1"


def test_retain_leaves_copies_and_image_objects(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    golden_id = golden_image(objects)
    body = copy_body("kept", ["ap-beijing"], sourceRef=None, sourceImageId=golden_id, sourceRegion=REGION)
    owner = objects.create("imagecopies", body)
    objects.wait_condition("imagecopies", "kept", timeout=60)
    objects.wait_condition("images", "kept-ap-beijing", timeout=60)
    copy_id = copies(objects, "kept")["ap-beijing"]["imageId"]
    # A control: an Image the ImageCopy owns but did not make, which garbage collection must take.
    reference = {"apiVersion": API_VERSION, "kind": "ImageCopy", "name": "kept", "uid": owner["metadata"]["uid"]}
    objects.create("images", {"kind": "Image", "metadata": {"name": "owned", "ownerReferences": [reference]},
                              "spec": {"region": REGION, "source": {"existing": {"imageId": UBUNTU}}}})  # fmt: skip
    objects.delete("imagecopies", "kept")
    objects.wait_gone("imagecopies", "kept")
    objects.wait_gone("images", "owned", timeout=90)  # the garbage collector ran over Images
    assert describe_image(emulator, copy_id, region="ap-beijing")["ImageState"] == "NORMAL"
    kept = objects.get("images", "kept-ap-beijing")
    assert kept is not None and not kept["metadata"].get("ownerReferences")


def test_a_crash_after_sync_images_adopts_the_copies(
    operator_factory: Callable[..., OperatorProcess], namespace: str, objects: Objects, emulator: EmulatorProcess
) -> None:
    crashing = operator_factory([namespace], extra_env={"CVM_OPERATOR_CRASH_AFTER": "create:ImageCopy"})
    golden_image(objects)
    objects.create("imagecopies", copy_body("survivor", ["ap-shanghai", "ap-beijing"]))
    assert crashing.process is not None
    wait_for(lambda: crashing.process.poll() is not None, 60, "the operator to crash after SyncImages")  # type: ignore[union-attr]
    assert crashing.process.returncode == CRASH_EXIT_CODE
    assert emulator.request_count("SyncImages") == 1
    assert copies(objects, "survivor") == {}  # the status write was lost

    operator_factory([namespace])
    objects.wait_condition("imagecopies", "survivor", timeout=90)
    assert emulator.request_count("SyncImages") == 1  # adopted, not copied again
    for region in ("ap-shanghai", "ap-beijing"):
        found = cloud(emulator, "DescribeImages", {"Filters": [{"Name": "image-name", "Values": ["golden"]}]},
                      region=region)["ImageSet"]  # fmt: skip
        assert [image["ImageId"] for image in found] == [copies(objects, "survivor")[region]["imageId"]]
        objects.wait_condition("images", f"survivor-{region}", timeout=60)


def test_deleting_after_a_lost_sync_images_removes_the_unrecorded_copies(
    operator_factory: Callable[..., OperatorProcess], namespace: str, objects: Objects, emulator: EmulatorProcess
) -> None:
    crashing = operator_factory([namespace], extra_env={"CVM_OPERATOR_CRASH_AFTER": "create:ImageCopy"})
    golden_image(objects)
    objects.create("imagecopies", copy_body("orphans", ["ap-shanghai"], deletionPolicy="Delete"))
    assert crashing.process is not None
    wait_for(lambda: crashing.process.poll() is not None, 60, "the operator to crash after SyncImages")  # type: ignore[union-attr]
    assert copies(objects, "orphans") == {}  # the copy's id never reached status

    def copies_in_shanghai() -> list[dict[str, Any]]:
        found = cloud(emulator, "DescribeImages", {"Filters": [{"Name": "image-name", "Values": ["golden"]}]},
                      region="ap-shanghai")["ImageSet"]  # fmt: skip
        return list(found)

    assert len(copies_in_shanghai()) == 1
    objects.delete("imagecopies", "orphans")  # deleted before any pass could record the copy
    operator_factory([namespace])
    objects.wait_gone("imagecopies", "orphans", timeout=90)
    wait_for(lambda: copies_in_shanghai() == [], 60, "the unrecorded copy to be deleted")
    assert emulator.request_count("SyncImages") == 1
