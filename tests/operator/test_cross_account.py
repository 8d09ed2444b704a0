"""Two namespaces acting as two accounts: one shares an image, the other launches from it and copies it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import kubernetes
import pytest

from tests.operator.test_imagecopy import copies, copy_body
from tests.operator.test_imageshare import (
    ACCOUNT_B,
    OWNER,
    account_secret,
    cloud,
    cloud_error,
    describe_image,
    golden_image,
    image_share_body,
    instance_body,
)
from tests.support.controlplane import release_objects
from tests.support.emulator import EmulatorProcess
from tests.support.operator import Objects, OperatorProcess


@pytest.fixture
def partner_namespace(k8s_api: kubernetes.client.ApiClient) -> Iterator[str]:
    """A second fresh namespace (for account B); objects left in it lose their finalizers at teardown."""
    name = f"t-b-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    release_objects(k8s_api, name)
    core.delete_namespace(name)


def test_account_b_launches_and_copies_an_image_account_a_shared(
    operator_factory: Callable[..., OperatorProcess],
    namespace: str,
    partner_namespace: str,
    objects: Objects,
    k8s_api: kubernetes.client.ApiClient,
    emulator: EmulatorProcess,
) -> None:
    operator_factory([namespace, partner_namespace])
    partner = Objects(k8s_api, partner_namespace)
    account_secret(partner, emulator, 1, "account-b")

    golden_id = golden_image(objects)
    objects.create("imageshares", image_share_body("to-partner", [ACCOUNT_B]))
    objects.wait_condition("imageshares", "to-partner")
    assert describe_image(emulator, golden_id, account=1)["ImageType"] == "SHARED_IMAGE"
    assert cloud_error(emulator, "DeleteImages", {"ImageIds": [golden_id]}, account=1) == (
        "InvalidParameterValue.InvalidImageIdIsShared"
    )

    # By imageId, and through an Image (source existing) that adopts the shared image.
    partner.create("instances", instance_body("by-id", image_id=golden_id, credentials="account-b"))
    partner.create(
        "images",
        {
            "kind": "Image",
            "metadata": {"name": "partner-golden"},
            "spec": {
                "region": "ap-guangzhou",
                "source": {"existing": {"imageId": golden_id}},
                "credentialsSecretRef": {"name": "account-b"},
            },
        },
    )
    adopted = partner.wait_condition("images", "partner-golden")
    assert adopted["status"]["imageType"] == "Shared" and adopted["status"]["owner"] == OWNER
    partner.create("instances", instance_body("by-ref", image_ref="partner-golden", credentials="account-b"))
    for name in ("by-id", "by-ref"):
        instance = partner.wait_condition("instances", name, timeout=90)
        assert instance["status"]["imageId"] == golden_id
        # The instance belongs to account B, not to the owner of the image.
        instance_id = instance["status"]["instanceId"]
        as_b = cloud(emulator, "DescribeInstances", {"InstanceIds": [instance_id]}, account=1)["InstanceSet"]
        as_owner = cloud(emulator, "DescribeInstances", {"InstanceIds": [instance_id]})["InstanceSet"]
        assert [item["InstanceState"] for item in as_b] == ["RUNNING"] and as_owner == []

    # B copies the shared image into its own region: a private image owned by B.
    partner.create(
        "imagecopies",
        copy_body(
            "own-copy",
            ["ap-guangzhou"],
            sourceRef={"name": "partner-golden"},
            imageName="partner-own-golden",
            credentialsSecretRef={"name": "account-b"},
        ),
    )
    partner.wait_condition("imagecopies", "own-copy", timeout=60)
    copy_id = copies(partner, "own-copy")["ap-guangzhou"]["imageId"]
    own = describe_image(emulator, copy_id, account=1)
    assert own["ImageType"] == "PRIVATE_IMAGE" and own["ImageCreator"] == ACCOUNT_B
    assert describe_image(emulator, copy_id) is None  # the owner of the source does not see B's copy
    copy_image = partner.wait_condition("images", "own-copy-ap-guangzhou", timeout=60)
    assert copy_image["status"]["imageType"] == "Custom"
    assert copy_image["spec"]["credentialsSecretRef"] == {"name": "account-b"}
