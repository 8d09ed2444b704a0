"""Image tags: edited out of band through the Tag API they are put back; spec.tags changes are applied;
the UID tag always stays."""

from __future__ import annotations

from typing import Any

from cvm_operator.reconcilers.tags import is_system_tag, tag_changes, tags_condition
from tests.emulator.test_tags import tag_call, tag_sdk_client
from tests.operator import REGION, UID_TAG, cloud_call, image, import_image_body, status, tags_of, tamper_with_tags
from tests.support.emulator import DiskFileServer, EmulatorProcess, sdk_client, write_qcow2
from tests.support.operator import Objects, OperatorProcess, wait_for


def cloud_tags(client: Any, image_id: str) -> dict[str, str]:
    return tags_of(image(client, image_id))


def test_tag_changes_make_the_cloud_tags_exactly_the_desired_ones() -> None:
    desired = {"team": "web", UID_TAG: "uid-1"}
    assert not tag_changes(desired, desired)
    changes = tag_changes(desired, {"team": "db", "added": "x", "qcloud:system": "1"})
    assert changes.replace == {"team": "web", UID_TAG: "uid-1"}
    assert changes.delete == ("added",)  # system tags are the cloud's, never removed
    assert is_system_tag("qcloud:x") and is_system_tag("Project") and not is_system_tag("project-name")

    condition = tags_condition(desired, {"team": "db", "added": "x", UID_TAG: "uid-1"})
    assert (condition.type, condition.status, condition.reason) == ("TagsUpToDate", "False", "TagsDiffer")
    assert "team: cloud 'db', spec 'web'" in condition.message and "added: not in spec" in condition.message
    assert tags_condition(desired, {**desired, "qcloud:system": "1"}).status == "True"


def test_tags_edited_in_the_cloud_are_put_back_and_spec_changes_applied(
    operator: OperatorProcess,
    objects: Objects,
    emulator: EmulatorProcess,
    disk_server: DiskFileServer,
) -> None:
    write_qcow2(disk_server.directory / "disk.qcow2")
    created = objects.create(
        "images", import_image_body("tagged", disk_server.url("disk.qcow2"), tags={"team": "web", "stage": "dev"})
    )
    uid = created["metadata"]["uid"]
    image_id = status(objects.wait_condition("images", "tagged"))["imageId"]
    objects.wait_condition("images", "tagged", "TagsUpToDate")
    client = sdk_client(emulator)
    wanted = {"team": "web", "stage": "dev", UID_TAG: uid}
    assert cloud_tags(client, image_id) == wanted
    owner = emulator.accounts[0].account_id
    resource = f"qcs::cvm:{REGION}:uin/{owner}:image/{image_id}"
    tamper_with_tags(emulator, resource)
    assert cloud_tags(client, image_id) == {"added": "by-hand", "team": "db", UID_TAG: uid}
    wait_for(lambda: cloud_tags(client, image_id) == wanted, 30, "the tags to be put back")
    # The pass that puts the tags back still reports the drift it found; the next one reports TagsMatch.
    objects.wait_condition("images", "tagged", "TagsUpToDate", reason="TagsMatch")
    # Our edit and the operator's single correction: one ModifyResourceTags call each.
    assert emulator.request_count("ModifyResourceTags", "OK") == 2
    assert 'cvm_operator_cloud_api_calls_total{action="ModifyResourceTags",result="OK"} 1.0' in operator.metrics()
    objects.wait_condition("images", "tagged")

    # A spec.tags change is applied: one tag changed, one removed, one added; the UID tag stays.
    objects.patch("images", "tagged", {"spec": {"tags": {"team": "platform", "stage": None, "owner": "ops"}}})
    wanted = {"team": "platform", "owner": "ops", UID_TAG: uid}
    wait_for(lambda: cloud_tags(client, image_id) == wanted, 30, "the spec tags in the cloud")
    objects.wait_condition("images", "tagged", "TagsUpToDate")
    ready = objects.wait_condition("images", "tagged")
    assert status(ready)["observedGeneration"] == 2

    # The UID tag removed out of band comes back too (it is how the image is found after a crash).
    tag_call(tag_sdk_client(emulator), "UnTagResources", ResourceList=[resource], TagKeys=[UID_TAG])
    wait_for(lambda: cloud_tags(client, image_id).get(UID_TAG) == uid, 30, "the UID tag to be put back")
    found = cloud_call(client, "DescribeImages", {"Filters": [{"Name": f"tag:{UID_TAG}", "Values": [uid]}]})
    assert [item["ImageId"] for item in found["ImageSet"]] == [image_id]
    assert cloud_tags(client, image_id) == wanted
    assert status(objects.get("images", "tagged"))["imageId"] == image_id
