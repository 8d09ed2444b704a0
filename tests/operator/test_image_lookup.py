"""Lookups choose only usable images (NORMAL, not deprecated), follow newer ones with an Event, and a
shared-image lookup takes the image of the named owner only."""

from __future__ import annotations

import uuid
from typing import Any

from tests.operator.test_imageshare import ACCOUNT_B, ACCOUNT_C, OWNER, account_secret, cloud
from tests.support.emulator import DiskFileServer, EmulatorProcess
from tests.support.operator import Objects, OperatorProcess, wait_for

REGION, ZONE, UBUNTU = "ap-guangzhou", "ap-guangzhou-3", "img-487zeit5"


def launch(emulator: EmulatorProcess, account: int = 0) -> str:
    answer = cloud(emulator, "RunInstances", {"Placement": {"Zone": ZONE}, "ImageId": UBUNTU,
                                              "InstanceType": "S5.SMALL1"}, account)  # fmt: skip
    instance_id = str(answer["InstanceIdSet"][0])

    def running() -> bool:
        found = cloud(emulator, "DescribeInstances", {"InstanceIds": [instance_id]}, account)["InstanceSet"]
        return bool(found) and found[0]["InstanceState"] == "RUNNING"

    wait_for(running, 30, f"instance {instance_id} RUNNING")
    return instance_id


def state(emulator: EmulatorProcess, image_id: str, account: int = 0) -> str | None:
    found = cloud(emulator, "DescribeImages", {"ImageIds": [image_id]}, account)["ImageSet"]
    return str(found[0]["ImageState"]) if found else None


def make_image(emulator: EmulatorProcess, instance_id: str, name: str, account: int = 0, **params: Any) -> str:
    answer = cloud(emulator, "CreateImage", {"ImageName": name, "InstanceId": instance_id, **params}, account)
    image_id = str(answer["ImageId"])
    wait_for(lambda: state(emulator, image_id, account) == "NORMAL", 30, f"image {image_id} NORMAL")
    return image_id


def lookup_image(object_name: str, credentials: str | None = None, **lookup: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"region": REGION, "source": {"existing": {"lookup": lookup}}}
    if credentials:
        spec["credentialsSecretRef"] = {"name": credentials}
    return {"kind": "Image", "metadata": {"name": object_name}, "spec": spec}


def image_id_of(objects: Objects, name: str) -> str | None:
    return ((objects.get("images", name) or {}).get("status") or {}).get("imageId")


def test_a_family_lookup_skips_deprecated_and_failed_images_and_follows_newer_ones(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, disk_server: DiskFileServer
) -> None:
    family = f"lk-{uuid.uuid4().hex[:8]}"
    builder = launch(emulator)
    usable = make_image(emulator, builder, f"{family}-1", ImageFamily=family)
    deprecated = make_image(emulator, builder, f"{family}-2", ImageFamily=family)
    cloud(emulator, "ModifyImageAttribute", {"ImageId": deprecated, "ImageDeprecated": True})
    (disk_server.directory / "junk.qcow2").write_bytes(b"not a disk image")
    failed = cloud(emulator, "ImportImage", {
        "ImageName": f"{family}-3", "ImageUrl": disk_server.url("junk.qcow2"), "OsType": "Ubuntu", "OsVersion": "22",
        "Architecture": "x86_64", "ImageFamily": family,
    })["ImageId"]  # fmt: skip
    wait_for(lambda: state(emulator, failed) == "IMPORTFAILED", 30, "the newest image of the family IMPORTFAILED")

    objects.create("images", lookup_image("web-latest", imageType="PRIVATE_IMAGE", family=family))
    ready = objects.wait_condition("images", "web-latest")
    assert ready["status"]["imageId"] == usable, "a deprecated or failed newer image was chosen"
    assert ready["status"]["cloudState"] == "NORMAL"
    # The family is asked the way the real API offers; DescribeImages never gets an undocumented filter.
    assert emulator.request_count("DescribeImageFromFamily") >= 1
    assert emulator.request_count("DescribeImages", "InvalidFilter") == 0

    newer = make_image(emulator, builder, f"{family}-4", ImageFamily=family)
    wait_for(lambda: image_id_of(objects, "web-latest") == newer, 30, "the lookup to follow the newer image")

    def switch_event(old: str, new: str) -> bool:
        return any(
            event.reason == "ImageChanged" and old in (event.message or "") and new in (event.message or "")
            for event in objects.events("web-latest")
        )

    wait_for(lambda: switch_event(usable, newer), 30, "an ImageChanged event naming both images")
    # Retiring the newest (deprecation) moves the lookup back to the newest usable one.
    cloud(emulator, "ModifyImageAttribute", {"ImageId": newer, "ImageDeprecated": True})
    wait_for(lambda: image_id_of(objects, "web-latest") == usable, 30, "the lookup to leave the deprecated image")
    wait_for(lambda: switch_event(newer, usable), 30, "an ImageChanged event back")
    objects.delete("images", "web-latest")
    objects.wait_gone("images", "web-latest")
    assert state(emulator, usable) == "NORMAL"  # observed images are never deleted


def test_a_shared_image_lookup_takes_the_named_owners_image_only(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    name = f"golden-{uuid.uuid4().hex[:8]}"
    owners = {OWNER: 0, ACCOUNT_C: 2}
    made: dict[str, str] = {}
    for account_id, account in owners.items():  # the other account's image of the same name is newer
        made[account_id] = make_image(emulator, launch(emulator, account), name, account)
        cloud(emulator, "ModifyImageSharePermission",
              {"ImageId": made[account_id], "AccountIds": [ACCOUNT_B], "Permission": "SHARE"}, account)  # fmt: skip
    seen = cloud(emulator, "DescribeImages", {"Filters": [{"Name": "image-name", "Values": [name]}]}, 1)["ImageSet"]
    assert {image["ImageCreator"] for image in seen} == set(owners)

    account_secret(objects, emulator, 1, "account-b")
    for image_name, owner in (("from-owner", OWNER), ("from-c", ACCOUNT_C)):
        body = lookup_image(image_name, "account-b", imageType="SHARED_IMAGE", name=name, ownerAccountId=owner)
        objects.create("images", body)
    from_owner = objects.wait_condition("images", "from-owner")["status"]
    assert from_owner["imageId"] == made[OWNER] and from_owner["owner"] == OWNER
    assert from_owner["imageType"] == "Shared"
    from_c = objects.wait_condition("images", "from-c")["status"]
    assert from_c["imageId"] == made[ACCOUNT_C] and from_c["owner"] == ACCOUNT_C
