"""ImageShare against the real API server, the emulator and the operator subprocess."""

from __future__ import annotations

import time
from typing import Any

import kubernetes
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.operator import Objects, OperatorProcess, wait_for

REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
UBUNTU = "img-487zeit5"
OWNER, ACCOUNT_B, ACCOUNT_C = "100000000001", "200000000002", "300000000003"
LOGIN_PASSWORD = "Golden-Login-2024"


# ---------------------------------------------------------------- helpers shared by the share/copy tests


def cloud(
    emulator: EmulatorProcess, action: str, params: dict[str, Any], account: int = 0, region: str = REGION
) -> Any:
    """One API call through the official SDK as ``account`` (0 = the owner, 1 = account B)."""
    return sdk_client(emulator, account, region).call_json(action, params)["Response"]


def cloud_error(emulator: EmulatorProcess, action: str, params: dict[str, Any], account: int = 0) -> str:
    with pytest.raises(TencentCloudSDKException) as raised:
        cloud(emulator, action, params, account)
    return str(raised.value.get_code())


def shares(emulator: EmulatorProcess, image_id: str) -> set[str]:
    answer = cloud(emulator, "DescribeImageSharePermission", {"ImageId": image_id})
    return {item["AccountId"] for item in answer["SharePermissionSet"]}


def describe_image(emulator: EmulatorProcess, image_id: str, account: int = 0, region: str = REGION) -> Any:
    answer = cloud(emulator, "DescribeImages", {"ImageIds": [image_id]}, account, region)
    return answer["ImageSet"][0] if answer["ImageSet"] else None


def create_secret(objects: Objects, name: str, data: dict[str, str], namespace: str | None = None) -> None:
    body = kubernetes.client.V1Secret(metadata=kubernetes.client.V1ObjectMeta(name=name), string_data=data)
    objects.core.create_namespaced_secret(namespace or objects.namespace, body)


def account_secret(objects: Objects, emulator: EmulatorProcess, account: int, name: str) -> None:
    credentials = emulator.accounts[account]
    create_secret(objects, name, {"secretId": credentials.secret_id, "secretKey": credentials.secret_key})


def golden_image(objects: Objects, name: str = "golden", timeout: float = 120) -> str:
    """A custom image made from a fresh instance by the operator (Instance + Image fromInstance); its id."""
    create_secret(objects, f"{name}-login", {"password": LOGIN_PASSWORD})
    objects.create("instances", instance_body(f"{name}-src", image_id=UBUNTU, login_secret=f"{name}-login"))
    objects.create(
        "images",
        {
            "kind": "Image",
            "metadata": {"name": name},
            "spec": {"region": REGION, "source": {"fromInstance": {"instanceRef": {"name": f"{name}-src"}}}},
        },
    )
    body = objects.wait_condition("images", name, timeout=timeout)
    return str(body["status"]["imageId"])


def instance_body(
    name: str,
    *,
    image_id: str | None = None,
    image_ref: str | None = None,
    region: str = REGION,
    zone: str = ZONE,
    login_secret: str | None = None,
    credentials: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"region": region, "zone": zone, "instanceType": "S5.SMALL1"}
    spec |= {"imageId": image_id} if image_id else {"imageRef": {"name": image_ref}}
    login = {"passwordSecretRef": {"name": login_secret, "key": "password"}} if login_secret else None
    spec["loginSettings"] = login or {"keepImageLogin": True}
    if credentials:
        spec["credentialsSecretRef"] = {"name": credentials}
    return {"kind": "Instance", "metadata": {"name": name}, "spec": spec}


def image_share_body(name: str, accounts: list[str], **spec: Any) -> dict[str, Any]:
    spec.setdefault("imageRef", {"name": "golden"})
    spec = {key: value for key, value in spec.items() if value is not None}
    return {"kind": "ImageShare", "metadata": {"name": name}, "spec": {"accountIds": accounts, **spec}}


def status(objects: Objects, plural: str, name: str) -> dict[str, Any]:
    return dict((objects.get(plural, name) or {}).get("status") or {})


# ---------------------------------------------------------------- tests


def test_share_keeps_the_cloud_list_and_cleans_up_what_it_added(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    image_id = golden_image(objects)
    objects.create("imageshares", image_share_body("golden-partners", [ACCOUNT_B]))
    ready = objects.wait_condition("imageshares", "golden-partners")
    assert ready["status"]["imageId"] == image_id
    assert ready["status"]["region"] == REGION
    assert ready["status"]["sharedAccounts"] == [ACCOUNT_B]
    assert shares(emulator, image_id) == {ACCOUNT_B}

    # Account B sees it as a shared image and cannot delete it.
    seen_by_b = describe_image(emulator, image_id, account=1)
    assert seen_by_b["ImageType"] == "SHARED_IMAGE"
    assert seen_by_b["ImageCreator"] == OWNER
    assert cloud_error(emulator, "DeleteImages", {"ImageIds": [image_id]}, account=1) == (
        "InvalidParameterValue.InvalidImageIdIsShared"
    )

    # Swap B for C: B is cancelled, C shared.
    objects.patch("imageshares", "golden-partners", {"spec": {"accountIds": [ACCOUNT_C]}})
    wait_for(lambda: shares(emulator, image_id) == {ACCOUNT_C}, 30, "B cancelled and C shared")
    wait_for(lambda: status(objects, "imageshares", "golden-partners").get("sharedAccounts") == [ACCOUNT_C], 30)
    assert describe_image(emulator, image_id, account=1) is None

    # A share cancelled out of band comes back on the next poll.
    cloud(
        emulator, "ModifyImageSharePermission", {"ImageId": image_id, "AccountIds": [ACCOUNT_C], "Permission": "CANCEL"}
    )
    wait_for(lambda: shares(emulator, image_id) == {ACCOUNT_C}, 30, "C's share restored")

    # A share someone else made is not this object's: deleting the ImageShare leaves it.
    cloud(
        emulator, "ModifyImageSharePermission", {"ImageId": image_id, "AccountIds": [ACCOUNT_B], "Permission": "SHARE"}
    )
    objects.delete("imageshares", "golden-partners")
    objects.wait_gone("imageshares", "golden-partners")
    assert shares(emulator, image_id) == {ACCOUNT_B}
    objects.wait_event("golden-partners", lambda event: event.reason == "Unshared")


def test_retain_leaves_the_shares(operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess) -> None:
    image_id = golden_image(objects)
    objects.create("imageshares", image_share_body("kept", [ACCOUNT_B, ACCOUNT_C], deletionPolicy="Retain"))
    objects.wait_condition("imageshares", "kept")
    objects.delete("imageshares", "kept")
    objects.wait_gone("imageshares", "kept")
    assert shares(emulator, image_id) == {ACCOUNT_B, ACCOUNT_C}


def test_share_by_image_id_and_region(operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess) -> None:
    image_id = golden_image(objects)
    objects.create(
        "imageshares", image_share_body("by-id", [ACCOUNT_C], imageRef=None, imageId=image_id, region=REGION)
    )
    objects.wait_condition("imageshares", "by-id")
    assert shares(emulator, image_id) == {ACCOUNT_C}
    objects.delete("imageshares", "by-id")
    objects.wait_gone("imageshares", "by-id")
    assert shares(emulator, image_id) == set()


def test_share_waits_for_the_image_to_be_ready(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    objects.create("imageshares", image_share_body("early", [ACCOUNT_B]))
    waiting = objects.wait_condition("imageshares", "early", "Reconciling", reason="ImageNotReady")
    assert "golden" in objects.condition("imageshares", "early", "Reconciling")["message"]  # type: ignore[index]
    assert waiting["status"].get("sharedAccounts", []) == []
    image_id = golden_image(objects)
    objects.wait_condition("imageshares", "early")
    assert shares(emulator, image_id) == {ACCOUNT_B}


def test_deleting_a_shared_image_waits_for_its_shares(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    image_id = golden_image(objects)
    objects.create("imageshares", image_share_body("holder", [ACCOUNT_B]))
    objects.wait_condition("imageshares", "holder")
    objects.delete("images", "golden")

    def held() -> dict[str, Any] | None:
        condition = objects.condition("images", "golden", "Reconciling")
        return condition if condition and condition["reason"] == "ImageShared" else None

    condition = wait_for(held, 60, "the Image to say it is still shared")
    assert "holder" in condition["message"] and ACCOUNT_B in condition["message"]
    time.sleep(3 * operator.poll_interval)  # it keeps waiting: the image stays while shared
    assert objects.get("images", "golden") is not None
    assert describe_image(emulator, image_id) is not None

    objects.delete("imageshares", "holder")
    objects.wait_gone("imageshares", "holder")
    objects.wait_gone("images", "golden")
    assert describe_image(emulator, image_id) is None
