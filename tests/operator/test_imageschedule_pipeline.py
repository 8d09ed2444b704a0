"""The golden-image pipeline end to end: an ImageSchedule makes an image every 20 s, an Image follows
the newest usable one of the family, and an Instance with reimagePolicy OnImageChange always runs it;
retention keeps two, deprecates the third and deletes it after deleteAfter."""

from __future__ import annotations

from typing import Any

from tests.operator import UBUNTU, instance, instance_body
from tests.operator.test_imageschedule import PLURAL, images_of, schedule_body, states, status
from tests.operator.test_imageshare import describe_image
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.operator import Objects, OperatorProcess, wait_for


def test_fleet_follows_the_newest_image_of_a_scheduled_family(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    objects.create("instances", instance_body("web-builder", image_id=UBUNTU))
    objects.create(PLURAL, schedule_body(
        "web", builder="web-builder", schedule="@every 20s",
        template={"family": "web", "source": {"fromInstance": {"instanceRef": {"name": "web-builder"}}}},
        retention={"keep": 2, "deprecateOlder": True, "deleteAfter": "15s"},
    ))  # fmt: skip
    objects.create("images", {"kind": "Image", "metadata": {"name": "web-latest"}, "spec": {
        "region": "ap-guangzhou", "source": {"existing": {"lookup": {"imageType": "PRIVATE_IMAGE", "family": "web"}}},
    }})  # fmt: skip
    objects.create("instances", instance_body("web-1", image_ref="web-latest", reimagePolicy="OnImageChange"))
    client = sdk_client(emulator)
    made: list[dict[str, Any]] = []

    def nth_image_usable(count: int) -> list[dict[str, Any]] | None:
        found = images_of(objects, "web")
        if len(found) < count:
            return None
        image = objects.get("images", found[count - 1]["metadata"]["name"]) or {}
        return found if (image.get("status") or {}).get("cloudState") == "NORMAL" else None

    def follows(newest: str) -> bool:
        return status(objects, "images", "web-latest").get("imageId") == newest

    def runs_on(newest: str) -> bool:
        ready = (objects.condition("instances", "web-1", "Ready") or {}).get("status") == "True"
        return ready and status(objects, "instances", "web-1").get("imageId") == newest

    for run in (1, 2, 3):
        found = wait_for(lambda: nth_image_usable(run), 60, f"run {run} usable")  # noqa: B023 - called at once
        if run == 3:
            objects.patch(PLURAL, "web", {"spec": {"suspend": True}})  # three runs are enough
        name = found[run - 1]["metadata"]["name"]
        newest = status(objects, "images", name)["imageId"]
        made.append({"name": name, "imageId": newest})
        # The lookup follows, and the fleet is reinstalled onto it.
        wait_for(lambda: follows(newest), 30, f"web-latest on run {run}'s image")  # noqa: B023
        wait_for(lambda: runs_on(newest), 60, f"web-1 running run {run}'s image")  # noqa: B023
        instance_id = status(objects, "instances", "web-1")["instanceId"]
        assert (instance(client, instance_id) or {})["ImageId"] == newest

    # keep 2: the first is deprecated (in the cloud too), the two newest are kept.
    first, second, third = made
    wait_for(lambda: states(objects, "web").get(first["name"]) in ("Deprecated", "Deleting"), 30, "first retired")
    assert states(objects, "web")[second["name"]] == states(objects, "web")[third["name"]] == "Kept"
    assert status(objects, PLURAL, "web")["latestImage"] == third
    # ... and deleted 15 s after it left the kept set.
    objects.wait_gone("images", first["name"], timeout=60)
    assert describe_image(emulator, first["imageId"]) is None
    for kept in (second, third):
        cloud = describe_image(emulator, kept["imageId"])
        assert cloud["ImageState"] == "NORMAL" and not cloud["ImageDeprecated"]
    assert [image["metadata"]["name"] for image in images_of(objects, "web")][-2:] == [second["name"], third["name"]]
    assert status(objects, "instances", "web-1")["imageId"] == third["imageId"]
    changes = [event for event in objects.events("web-latest") if event.reason == "ImageChanged"]
    assert len(changes) >= 2
