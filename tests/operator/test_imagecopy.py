"""ImageCopy against the real API server, the emulator (on a slower clock, so copying is seen) and the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.test_imageshare import describe_image, golden_image, instance_body, status
from tests.support.emulator import EmulatorProcess
from tests.support.operator import Objects, OperatorProcess, wait_for

# 1/20 of realistic durations: a copy takes 9 s, long enough to watch its progress.
SLOW_CLOCK = "0.05"
COPY_LABEL = "cvm.operator.dev/image-copy"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """This module's emulator runs a slower clock than the default fixture's."""
    with EmulatorProcess(tmp_path / "emulator", clock=SLOW_CLOCK) as process:
        yield process


def copy_body(name: str, regions: list[str], **spec: Any) -> dict[str, Any]:
    spec.setdefault("sourceRef", {"name": "golden"})
    spec = {key: value for key, value in spec.items() if value is not None}
    return {"kind": "ImageCopy", "metadata": {"name": name}, "spec": {"destinationRegions": regions, **spec}}


def copies(objects: Objects, name: str) -> dict[str, dict[str, Any]]:
    return {copy["region"]: copy for copy in status(objects, "imagecopies", name).get("copies") or []}


def test_copy_to_regions_tracks_progress_and_makes_usable_image_objects(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    golden_id = golden_image(objects, timeout=180)
    objects.create("imagecopies", copy_body("golden-copies", ["ap-shanghai", "ap-singapore"], deletionPolicy="Delete"))

    def syncing_with_progress() -> dict[str, dict[str, Any]] | None:
        found = copies(objects, "golden-copies")
        busy = [c for c in found.values() if c.get("cloudState") == "SYNCING" and 0 < c.get("progress", 0) < 100]
        return found if busy else None

    wait_for(syncing_with_progress, 60, "a copy SYNCING with a progress between 0 and 100")
    copying = objects.get("imagecopies", "golden-copies")
    assert copying is not None and copying["status"]["phase"] == "Copying"
    assert objects.condition("imagecopies", "golden-copies", "Reconciling")["status"] == "True"  # type: ignore[index]

    ready = objects.wait_condition("imagecopies", "golden-copies", timeout=90)
    assert ready["status"]["sourceImageId"] == golden_id
    found = copies(objects, "golden-copies")
    assert set(found) == {"ap-shanghai", "ap-singapore"}
    assert emulator.request_count("SyncImages") == 1  # one call for both regions
    for region, copy in found.items():
        assert copy["cloudState"] == "NORMAL" and copy["progress"] == 100
        assert copy["imageName"] == f"golden-copies-{region}"
        assert copy["imageId"] != golden_id
        cloud_copy = describe_image(emulator, copy["imageId"], region=region)
        assert cloud_copy["ImageType"] == "PRIVATE_IMAGE" and cloud_copy["ImageName"] == "golden"
        image = objects.wait_condition("images", copy["imageName"], timeout=60)
        assert image["metadata"]["labels"][COPY_LABEL] == "golden-copies"
        assert image["spec"]["region"] == region
        assert image["spec"]["source"]["existing"]["imageId"] == copy["imageId"]
        assert image["status"]["imageId"] == copy["imageId"]
        assert image["status"]["imageType"] == "Custom"
        assert image["metadata"]["ownerReferences"][0]["uid"] == ready["metadata"]["uid"]

    # Instances in those regions launch from the copies by Image name.
    objects.create("instances", instance_body("sh-1", image_ref="golden-copies-ap-shanghai", region="ap-shanghai",
                                              zone="ap-shanghai-2"))  # fmt: skip
    objects.create("instances", instance_body("sg-1", image_ref="golden-copies-ap-singapore", region="ap-singapore",
                                              zone="ap-singapore-1"))  # fmt: skip
    for name, region in (("sh-1", "ap-shanghai"), ("sg-1", "ap-singapore")):
        instance = objects.wait_condition("instances", name, timeout=90)
        assert instance["status"]["imageId"] == found[region]["imageId"]

    # A region added later is copied with one more call.
    objects.patch("imagecopies", "golden-copies", {"spec": {"destinationRegions": ["ap-shanghai", "ap-singapore",
                                                                                   "ap-tokyo"]}})  # fmt: skip
    wait_for(lambda: "ap-tokyo" in copies(objects, "golden-copies"), 30, "a copy in ap-tokyo")
    objects.wait_condition("images", "golden-copies-ap-tokyo", timeout=90)
    wait_for(
        lambda: (
            copies(objects, "golden-copies")["ap-tokyo"].get("cloudState") == "NORMAL"
            and (objects.condition("imagecopies", "golden-copies", "Ready") or {}).get("status") == "True"
        ),
        60,
        "the ImageCopy Ready with the ap-tokyo copy",
    )
    assert emulator.request_count("SyncImages") == 2

    # A region removed keeps its copy and its Image object, and says so.
    objects.patch("imagecopies", "golden-copies", {"spec": {"destinationRegions": ["ap-shanghai", "ap-tokyo"]}})
    wait_for(
        lambda: "kept" in (objects.condition("imagecopies", "golden-copies", "Ready") or {}).get("message", ""),
        30,
        "the Ready message to name the kept copy",
    )
    singapore_id = copies(objects, "golden-copies")["ap-singapore"]["imageId"]
    assert describe_image(emulator, singapore_id, region="ap-singapore") is not None
    assert objects.get("images", "golden-copies-ap-singapore") is not None

    # Delete: the copies (kept one included) and their Image objects go.
    for name in ("sh-1", "sg-1"):
        objects.delete("instances", name)
        objects.wait_gone("instances", name)
    final = copies(objects, "golden-copies")
    objects.delete("imagecopies", "golden-copies")
    objects.wait_gone("imagecopies", "golden-copies", timeout=90)
    for region, copy in final.items():
        assert describe_image(emulator, copy["imageId"], region=region) is None
        objects.wait_gone("images", f"golden-copies-{region}")
    assert describe_image(emulator, golden_id) is not None  # the source stays
