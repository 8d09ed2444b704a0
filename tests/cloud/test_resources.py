"""Conversion between API dicts and the layer's dataclasses (pure)."""

from __future__ import annotations

import pytest

from cvm_operator.cloud.resources import CloudImage, CloudInstance, LoginSettings, SystemDisk, tags_to_api


def test_image_from_api() -> None:
    image = CloudImage.from_api(
        {
            "ImageId": "img-qlzp4oea",
            "ImageType": "PRIVATE_IMAGE",
            "ImageState": "SYNCING",
            "ImageSource": "CREATE_IMAGE",
            "ImageName": "test-image",
            "OsName": "CentOS 7.4 64位",
            "ImageSize": 20,
            "Architecture": "x86_64",
            "Platform": "CentOS",
            "ImageCreator": "3205597606",
            "LicenseType": "TencentCloud",
            "SyncPercent": 20,
            "Tags": [{"Key": "team", "Value": "web"}],
            "CreatedTime": "2020-09-22T00:00:00+00:00",
            "ImageDeprecated": False,
        }
    )
    assert image.image_id == "img-qlzp4oea" and image.state == "SYNCING" and image.sync_percent == 20
    assert image.size_gb == 20 and image.tags == {"team": "web"} and image.creator == "3205597606"
    assert image.description == "" and image.family == "" and image.deprecated is False


def test_image_from_api_tolerates_missing_optionals() -> None:
    image = CloudImage.from_api({"ImageId": "img-1"})
    assert (image.size_gb, image.sync_percent, image.created_time, image.tags) == (None, None, None, {})


@pytest.mark.parametrize(
    ("image_type", "creator", "marketplace"),
    [
        ("PUBLIC_IMAGE", "251000000101", True),  # a vendor's public image
        ("PUBLIC_IMAGE", "tencent", False),
        ("PUBLIC_IMAGE", "Tencent", False),
        ("PUBLIC_IMAGE", "", False),  # no creator reported: taken as Tencent's own
        ("PRIVATE_IMAGE", "3205597606", False),
        ("SHARED_IMAGE", "3205597606", False),
        ("MARKET_IMAGE", "251000000101", False),  # retired type, never reported today
    ],
)
def test_marketplace_is_a_public_image_not_made_by_tencent(image_type: str, creator: str, marketplace: bool) -> None:
    image = CloudImage.from_api({"ImageId": "img-mkt0wp01", "ImageType": image_type, "ImageCreator": creator})
    assert image.is_marketplace is marketplace


def test_instance_from_api() -> None:
    instance = CloudInstance.from_api(
        {
            "InstanceId": "ins-9bxebleo",
            "InstanceName": "web-1",
            "InstanceState": "RUNNING",
            "ImageId": "img-487zeit5",
            "Placement": {"Zone": "ap-guangzhou-3"},
            "InstanceType": "S5.MEDIUM2",
            "PrivateIpAddresses": ["10.0.0.5"],
            "PublicIpAddresses": None,
            "Tags": [{"Key": "a", "Value": "b"}],
            "LatestOperation": "ResetInstance",
            "LatestOperationState": "FAILED",
            "LatestOperationErrorMsg": "disk busy",
        }
    )
    assert instance.zone == "ap-guangzhou-3" and instance.private_ips == ("10.0.0.5",)
    assert instance.public_ips == () and instance.tags == {"a": "b"}
    assert (instance.latest_operation, instance.latest_operation_state) == ("ResetInstance", "FAILED")
    assert instance.latest_operation_error == "disk busy"


def test_login_settings() -> None:
    assert LoginSettings(password="p").to_api() == {"Password": "p"}
    assert LoginSettings(key_ids=("skey-1",)).to_api() == {"KeyIds": ["skey-1"]}
    assert LoginSettings(keep_image_login=True).to_api() == {"KeepImageLogin": "TRUE"}
    assert LoginSettings().to_api() == {}
    assert "secret" not in repr(LoginSettings(password="secret"))
    with pytest.raises(ValueError):
        LoginSettings(password="p", key_ids=("skey-1",))


def test_system_disk_and_tags() -> None:
    assert SystemDisk("CLOUD_SSD", 60).to_api() == {"DiskType": "CLOUD_SSD", "DiskSize": 60}
    assert SystemDisk().to_api() == {}
    assert tags_to_api({"b": "2", "a": "1"}) == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
