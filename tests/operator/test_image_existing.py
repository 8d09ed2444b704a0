"""Images observed through source.existing: public by lookup, marketplace by id or lookup; never changed or
deleted. Marketplace images are PUBLIC_IMAGE made by a vendor (ImageCreator other than tencent)."""

from __future__ import annotations

from typing import Any

from tests.operator import REGION, WORDPRESS, cloud_call, image, status
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess


def existing(name: str, **source: Any) -> dict[str, Any]:
    return {"kind": "Image", "metadata": {"name": name}, "spec": {"region": REGION, "source": {"existing": source}}}


def test_public_and_marketplace_images_are_adopted_and_never_deleted(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    objects.create("images", existing("ubuntu", lookup={"imageType": "PUBLIC_IMAGE", "platform": "Ubuntu"}))
    objects.create("images", existing("wordpress", imageId=WORDPRESS))
    objects.create("images", existing("centos7", lookup={"imageType": "PUBLIC_IMAGE", "name": "CentOS 7.6 64位"}))
    objects.create("images", existing("wp-lookup", lookup={"imageType": "MARKET_IMAGE", "platform": "Ubuntu"}))
    kubectl("wait", "--for=condition=Ready", "--timeout=60s", "-n", namespace, "images/ubuntu", "images/wordpress")

    client = sdk_client(emulator)
    ubuntu_images = cloud_call(client, "DescribeImages", {
        "Filters": [{"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}, {"Name": "platform", "Values": ["Ubuntu"]}],
    })["ImageSet"]  # fmt: skip
    # The cloud lists the WordPress image as a public Ubuntu image too; a PUBLIC_IMAGE lookup leaves it out.
    assert WORDPRESS in {one["ImageId"] for one in ubuntu_images}
    tencent_ubuntu = [one for one in ubuntu_images if one["ImageCreator"] == "tencent"]
    newest_ubuntu = max(tencent_ubuntu, key=lambda one: (one["CreatedTime"], one["ImageId"]))
    ubuntu = status(objects.get("images", "ubuntu"))
    assert ubuntu["imageId"] == newest_ubuntu["ImageId"]
    assert ubuntu["imageType"] == "Public" and ubuntu["owner"] == "tencent" and ubuntu["platform"] == "Ubuntu"

    wordpress = status(objects.get("images", "wordpress"))
    assert wordpress["imageId"] == WORDPRESS and wordpress["imageType"] == "Marketplace"
    assert wordpress["phase"] == "Available" and wordpress["cloudState"] == "NORMAL"
    assert wordpress["owner"] not in (None, "tencent")
    by_lookup = status(objects.wait_condition("images", "wp-lookup"))
    assert by_lookup["imageId"] == WORDPRESS and by_lookup["imageType"] == "Marketplace"

    centos = status(objects.wait_condition("images", "centos7"))
    assert centos["imageId"] == "img-9qabwvbn" and centos["osName"] == "CentOS 7.6 64位"

    deletes_before = emulator.request_count("DeleteImages")
    modifies_before = emulator.request_count("ModifyImageAttribute")
    for name in ("ubuntu", "wordpress", "centos7", "wp-lookup"):
        # Deleting an observed image has nothing to do in the cloud: no finalizer holds the object.
        assert not (objects.get("images", name) or {})["metadata"].get("finalizers")
        objects.delete("images", name)
        objects.wait_gone("images", name)
    assert emulator.request_count("DeleteImages") == deletes_before == 0
    assert emulator.request_count("ModifyImageAttribute") == modifies_before == 0
    for image_id in (ubuntu["imageId"], WORDPRESS, "img-9qabwvbn"):
        assert (image(client, image_id) or {}).get("ImageState") == "NORMAL"


def test_missing_id_is_stalled_and_unmatched_lookup_waits(operator: OperatorProcess, objects: Objects) -> None:
    objects.create("images", existing("no-such-id", imageId="img-zzzzzzzz"))
    objects.create("images", existing("no-match", lookup={"imageType": "MARKET_IMAGE", "name": "Nothing Like It"}))
    by_id = objects.wait_condition("images", "no-such-id", "Stalled", "True", reason="NotFound")
    assert status(by_id)["phase"] == "Failed"
    assert "img-zzzzzzzz" in (objects.condition("images", "no-such-id", "Stalled") or {})["message"]
    # A lookup that never matched waits (Reconciling), as an image still to be shared or made would.
    waiting = objects.wait_condition("images", "no-match", "Reconciling", "True", reason="NoMatchingImage")
    assert status(waiting)["phase"] == "Pending" and objects.condition("images", "no-match", "Stalled") is None
    assert "Nothing Like It" in (objects.condition("images", "no-match", "Reconciling") or {})["message"]
    for name in ("no-such-id", "no-match"):
        objects.delete("images", name)
        objects.wait_gone("images", name)
