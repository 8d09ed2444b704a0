"""Image operations the cloud fails, injected through the emulator's admin endpoint: a CreateImage that ends
in CREATEFAILED and a copy (SyncImages) that fails, each ending Stalled with its reason and no hot loop."""

from __future__ import annotations

import time

from tests.operator import REGION, UBUNTU, instance_body
from tests.support.emulator import EmulatorProcess
from tests.support.operator import Objects, OperatorProcess


def image_from(name: str, instance: str) -> dict[str, object]:
    return {
        "kind": "Image",
        "metadata": {"name": name},
        "spec": {"region": REGION, "source": {"fromInstance": {"instanceRef": {"name": instance}}}},
    }


def test_create_failed_image_is_stalled_and_a_failed_copy_too(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    objects.create("instances", instance_body("builder", image_id=UBUNTU))
    objects.wait_condition("instances", "builder")

    # The next CreateImage ends in CREATEFAILED.
    emulator.inject_fault(action="CreateImage", count=1, state="CREATEFAILED")
    objects.create("images", image_from("broken", "builder"))
    failed = objects.wait_condition("images", "broken", "Stalled", "True", reason="CreateFailed")
    assert failed["status"]["cloudState"] == "CREATEFAILED" and failed["status"]["phase"] == "Failed"
    assert failed["status"]["imageId"] in (objects.condition("images", "broken", "Stalled") or {})["message"]
    creates, describes = emulator.request_count("CreateImage"), emulator.request_count("DescribeImages")
    time.sleep(5)
    assert emulator.request_count("CreateImage") == creates == 1  # not made again
    assert emulator.request_count("DescribeImages") <= describes + 2

    # A good image, and a copy of it that the cloud fails.
    objects.create("images", image_from("golden", "builder"))
    objects.wait_condition("images", "golden")
    emulator.inject_fault(action="SyncImages", count=1, state="CREATEFAILED")
    objects.create("imagecopies", {"kind": "ImageCopy", "metadata": {"name": "golden-copies"}, "spec": {
        "sourceRef": {"name": "golden"}, "destinationRegions": ["ap-shanghai"],
    }})  # fmt: skip
    copy = objects.wait_condition("imagecopies", "golden-copies", "Stalled", "True", reason="CopyFailed")
    (entry,) = copy["status"]["copies"]
    assert entry["region"] == "ap-shanghai" and entry["cloudState"] == "CREATEFAILED"
    syncs = emulator.request_count("SyncImages")
    time.sleep(5)
    assert emulator.request_count("SyncImages") == syncs == 1
