"""Image actions through the official SDK: describe, create, copy, share, modify, delete, quota, family."""

from __future__ import annotations

from typing import Any

from tests.support.emulator import EmulatorProcess, sdk_client

from .helpers import (
    ARM_TENCENTOS,
    CENTOS,
    UBUNTU,
    WORDPRESS,
    call,
    custom_image,
    expect_error,
    image,
    launch,
    unique,
    wait_image_state,
)


def image_types(client: Any, *types: str) -> set[str]:
    result = call(client, "DescribeImages", Filters=[{"Name": "image-type", "Values": list(types)}], Limit=100)
    return {i.ImageType for i in result.ImageSet}


# ---------------------------------------------------------------- DescribeImages


def test_public_and_marketplace_catalogue(shared_emulator: EmulatorProcess) -> None:
    for region in ("ap-guangzhou", "eu-frankfurt"):
        client = sdk_client(shared_emulator, account=2, region=region)
        ubuntu = image(client, UBUNTU)
        assert ubuntu.OsName == "Ubuntu Server 22.04 LTS 64位"
        assert (ubuntu.ImageType, ubuntu.ImageState, ubuntu.ImageCreator) == ("PUBLIC_IMAGE", "NORMAL", "tencent")
        assert image(client, CENTOS).OsName == "CentOS 7.6 64位"
        # A marketplace image: PUBLIC_IMAGE made by a vendor account (there is no marketplace ImageType).
        market = image(client, WORDPRESS)
        assert (market.ImageType, market.ImageState) == ("PUBLIC_IMAGE", "NORMAL")
        assert market.ImageCreator not in ("tencent", "") and market.ImageCreator.isdigit()
    client = sdk_client(shared_emulator, account=2)
    assert image_types(client, "PUBLIC_IMAGE") == {"PUBLIC_IMAGE"}
    public = call(client, "DescribeImages", Filters=[{"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}], Limit=100)
    assert WORDPRESS in {i.ImageId for i in public.ImageSet}
    # The retired MARKET_IMAGE filter value matches nothing, as any value outside the three types does.
    retired = call(client, "DescribeImages", Filters=[{"Name": "image-type", "Values": ["MARKET_IMAGE"]}])
    assert (retired.TotalCount, retired.ImageSet) == (0, [])
    platforms = {
        i.Platform
        for i in call(
            client, "DescribeImages", Filters=[{"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}], Limit=100
        ).ImageSet
    }
    assert {"TencentOS", "Ubuntu", "CentOS", "Debian", "OpenCloudOS", "Windows"} <= platforms


def test_paging_total_count_and_limits(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator, account=2, region="ap-tokyo")
    everything = call(client, "DescribeImages", Limit=100)
    total = everything.TotalCount
    assert total == len(everything.ImageSet) >= 15
    first = call(client, "DescribeImages", Limit=5, Offset=0)
    second = call(client, "DescribeImages", Limit=5, Offset=5)
    assert first.TotalCount == second.TotalCount == total
    assert len(first.ImageSet) == len(second.ImageSet) == 5
    assert not {i.ImageId for i in first.ImageSet} & {i.ImageId for i in second.ImageSet}
    assert len(call(client, "DescribeImages").ImageSet) == min(20, total)  # default Limit 20
    assert call(client, "DescribeImages", Offset=total).ImageSet == []
    expect_error("InvalidParameterValue.LimitExceeded", client, "DescribeImages", Limit=101)
    expect_error(
        "InvalidParameter.InvalidParameterCoexistImageIdsFilters",
        client,
        "DescribeImages",
        ImageIds=[UBUNTU],
        Filters=[{"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}],
    )
    expect_error(
        "InvalidFilterValue.LimitExceeded",
        client,
        "DescribeImages",
        Filters=[{"Name": "image-name", "Values": ["a"]}] * 11,
    )
    expect_error(
        "InvalidFilterValue.LimitExceeded",
        client,
        "DescribeImages",
        Filters=[{"Name": "image-name", "Values": list("abcdef")}],
    )
    expect_error("InvalidFilter", client, "DescribeImages", Filters=[{"Name": "colour", "Values": ["red"]}])
    expect_error("InvalidImageId.Malformed", client, "DescribeImages", ImageIds=["img-BAD"])
    expect_error(
        "InvalidParameterValue.LimitExceeded", client, "DescribeImages", ImageIds=[f"img-{n:08d}" for n in range(101)]
    )
    # A well-formed unknown id is simply absent.
    assert call(client, "DescribeImages", ImageIds=["img-00000000"]).ImageSet == []


def test_filters_by_name_platform_tags_family_state_and_instance_type(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    team = unique("team")
    instance_id = launch(client)
    image_id = custom_image(
        client,
        instance_id,
        name=f"{team}-golden",
        ImageFamily=team,
        TagSpecification=[{"ResourceType": "image", "Tags": [{"Key": "team", "Value": team}]}],
    )

    def ids(*filters: dict[str, Any], **params: Any) -> set[str]:
        return {i.ImageId for i in call(client, "DescribeImages", Filters=list(filters), Limit=100, **params).ImageSet}

    assert ids({"Name": "image-name", "Values": [team]}) == {image_id}  # fuzzy name match
    assert ids({"Name": "tag:team", "Values": [team]}) == {image_id}
    assert ids({"Name": "tag-value", "Values": [team]}) == {image_id}
    assert image_id in ids({"Name": "tag-key", "Values": ["team"]})
    # Undocumented filters are refused, as the real service does: families have DescribeImageFromFamily.
    for undocumented in ("image-family", "image-state"):
        expect_error("InvalidFilter", client, "DescribeImages", Filters=[{"Name": undocumented, "Values": [team]}])
    assert image_id in ids({"Name": "image-type", "Values": ["PRIVATE_IMAGE"]})
    assert image_id not in ids({"Name": "image-type", "Values": ["PUBLIC_IMAGE"]})
    # Filters AND, values OR.
    assert ids(
        {"Name": "image-id", "Values": [image_id, UBUNTU]}, {"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}
    ) == {image_id}
    centos = ids({"Name": "platform", "Values": ["cent"]}, {"Name": "image-type", "Values": ["PUBLIC_IMAGE"]})
    assert CENTOS in centos and UBUNTU not in centos
    tags = image(client, image_id).Tags
    assert [(t.Key, t.Value) for t in tags] == [("team", team)]
    arm = ids({"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}, InstanceType="SR1.MEDIUM4")
    assert arm == {ARM_TENCENTOS}
    assert ARM_TENCENTOS not in ids({"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}, InstanceType="S5.MEDIUM2")
    expect_error("InvalidParameterValue.InstanceTypeNotFound", client, "DescribeImages", InstanceType="Z9.HUGE")


# ---------------------------------------------------------------- CreateImage


def test_create_image_follows_the_instance_os(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    instance_id = launch(client, image_id=CENTOS)
    name = unique("backup")
    image_id = call(
        client, "CreateImage", ImageName=name, InstanceId=instance_id, ImageDescription="nightly", ForcePoweroff="TRUE"
    ).ImageId
    creating = image(client, image_id)
    assert creating.ImageState == "CREATING"
    assert 0 <= creating.SyncPercent < 100
    done = wait_image_state(client, image_id, "NORMAL")
    assert (done.OsName, done.Platform, done.ImageType) == ("CentOS 7.6 64位", "CentOS", "PRIVATE_IMAGE")
    assert (done.ImageSource, done.ImageCreator, done.ImageSize) == ("CREATE_IMAGE", "100000000001", 50)
    assert done.ImageDescription == "nightly"
    assert done.SnapshotSet[0].DiskUsage == "SYSTEM_DISK"
    expect_error("InvalidImageName.Duplicate", client, "CreateImage", ImageName=name, InstanceId=instance_id)
    # Unique per account and region: another account may use the same name.
    other = sdk_client(shared_emulator, account=1)
    custom_image(other, name=name, wait=False)


def test_create_image_rules(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    instance_id = launch(client, wait=False)
    expect_error(
        "UnsupportedOperation.InstanceStatePending", client, "CreateImage", ImageName=unique(), InstanceId=instance_id
    )
    expect_error("InvalidParameterValue.TooLarge", client, "CreateImage", ImageName="x" * 61, InstanceId=instance_id)
    expect_error(
        "InvalidParameterValue.TooLarge",
        client,
        "CreateImage",
        ImageName=unique(),
        InstanceId=instance_id,
        ImageDescription="d" * 257,
    )
    expect_error("InvalidInstanceId.NotFound", client, "CreateImage", ImageName=unique(), InstanceId="ins-00000000")
    expect_error("InvalidInstanceId.Malformed", client, "CreateImage", ImageName=unique(), InstanceId="i-1")
    expect_error("InvalidParameter.SpecifyOneParameter", client, "CreateImage", ImageName=unique())
    expect_error(
        "InvalidParameterConflict",
        client,
        "CreateImage",
        ImageName=unique(),
        InstanceId=instance_id,
        SnapshotIds=["snap-12345678"],
    )
    expect_error(
        "InvalidParameterValue", client, "CreateImage", ImageName=unique(), InstanceId=instance_id, ForcePoweroff="yes"
    )
    expect_error(
        "InvalidParameterValue.InvalidImageFamily",
        client,
        "CreateImage",
        ImageName=unique(),
        InstanceId=instance_id,
        ImageFamily="bad family!",
    )
    expect_error(
        "FailedOperation.TagKeyReserved",
        client,
        "CreateImage",
        ImageName=unique(),
        InstanceId=instance_id,
        TagSpecification=[{"ResourceType": "image", "Tags": [{"Key": "qcloud:x", "Value": "1"}]}],
    )
    # Another account cannot image this account's instance.
    expect_error(
        "InvalidInstanceId.NotFound",
        sdk_client(shared_emulator, account=1),
        "CreateImage",
        ImageName=unique(),
        InstanceId=instance_id,
    )
    # DryRun checks without creating anything.
    from .helpers import wait_instance_state

    wait_instance_state(client, instance_id, "RUNNING")
    name = unique("dry")
    assert call(client, "CreateImage", ImageName=name, InstanceId=instance_id, DryRun=True).ImageId is None
    assert call(client, "DescribeImages", Filters=[{"Name": "image-name", "Values": [name]}]).TotalCount == 0


def test_custom_image_quota_per_region(emulator_factory: Any, shared_emulator: EmulatorProcess) -> None:
    assert call(sdk_client(shared_emulator), "DescribeImageQuota").ImageNumQuota == 500
    emulator = emulator_factory(config={"imageQuota": 3})
    client = sdk_client(emulator)
    assert call(client, "DescribeImageQuota").ImageNumQuota == 3
    instance_id = launch(client)
    for n in range(3):
        # One image at a time: the instance reports CreateImage until the image is made.
        custom_image(client, instance_id=instance_id, name=f"bulk-{n}")
    expect_error("ImageQuotaLimitExceeded", client, "CreateImage", ImageName="one-too-many", InstanceId=instance_id)
    private = call(client, "DescribeImages", Filters=[{"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}])
    assert private.TotalCount == 3
    # The quota is per region and per account.
    shanghai = sdk_client(emulator, region="ap-shanghai")
    custom_image(shanghai, instance_id=launch(shanghai, zone="ap-shanghai-2"), wait=False)
    custom_image(sdk_client(emulator, account=1), wait=False)


# ---------------------------------------------------------------- sharing


def test_share_makes_a_shared_image_for_the_recipient_only(shared_emulator: EmulatorProcess) -> None:
    owner, recipient, stranger = (sdk_client(shared_emulator, account=n) for n in range(3))
    image_id = custom_image(owner)
    assert image(recipient, image_id) is None
    call(owner, "ModifyImageSharePermission", ImageId=image_id, AccountIds=["200000000002"], Permission="SHARE")
    shared = image(recipient, image_id)
    assert shared.ImageType == "SHARED_IMAGE"
    assert shared.ImageCreator == "100000000001"
    assert image(stranger, image_id) is None
    assert image(owner, image_id).ImageType == "PRIVATE_IMAGE"
    assert image_id in {
        i.ImageId
        for i in call(
            recipient, "DescribeImages", Filters=[{"Name": "image-type", "Values": ["SHARED_IMAGE"]}], Limit=100
        ).ImageSet
    }
    # Sharing is per region.
    assert image(sdk_client(shared_emulator, account=1, region="ap-shanghai"), image_id) is None
    permissions = call(owner, "DescribeImageSharePermission", ImageId=image_id).SharePermissionSet
    assert [p.AccountId for p in permissions] == ["200000000002"]
    assert permissions[0].CreatedTime.endswith("Z")
    # The recipient may launch and reinstall from it...
    instance_id = launch(recipient, image_id=image_id)
    call(recipient, "ResetInstance", InstanceId=instance_id, ImageId=image_id)
    # ...but not modify, delete, re-share or inspect its shares.
    expect_error(
        "UnsupportedOperation.SharedImageModifyUnsupported",
        recipient,
        "ModifyImageAttribute",
        ImageId=image_id,
        ImageName=unique(),
    )
    expect_error("InvalidParameterValue.InvalidImageIdIsShared", recipient, "DeleteImages", ImageIds=[image_id])
    expect_error(
        "UnauthorizedOperation.ImageNotBelongToAccount",
        recipient,
        "ModifyImageSharePermission",
        ImageId=image_id,
        AccountIds=["300000000003"],
        Permission="SHARE",
    )
    expect_error(
        "UnauthorizedOperation.ImageNotBelongToAccount", recipient, "DescribeImageSharePermission", ImageId=image_id
    )
    # The owner cannot delete while shared; after CANCEL it can.
    expect_error("InvalidImageId.InShared", owner, "DeleteImages", ImageIds=[image_id])
    call(owner, "ModifyImageSharePermission", ImageId=image_id, AccountIds=["200000000002"], Permission="CANCEL")
    assert image(recipient, image_id) is None
    call(owner, "DeleteImages", ImageIds=[image_id])
    assert image(owner, image_id) is None


def test_share_rules(shared_emulator: EmulatorProcess) -> None:
    owner = sdk_client(shared_emulator)
    image_id = custom_image(owner)

    def share(accounts: list[str], img: str = image_id, permission: str = "SHARE") -> dict[str, Any]:
        return {"ImageId": img, "AccountIds": accounts, "Permission": permission}

    expect_error("FailedOperation.AccountIsYourSelf", owner, "ModifyImageSharePermission", **share(["100000000001"]))
    expect_error("InvalidAccountId.NotFound", owner, "ModifyImageSharePermission", **share(["999999999999"]))
    expect_error(
        "InvalidParameterValue", owner, "ModifyImageSharePermission", **share(["200000000002"], permission="LEND")
    )
    call(owner, "ModifyImageSharePermission", **share(["200000000002"]))
    expect_error("FailedOperation.AccountAlreadyExists", owner, "ModifyImageSharePermission", **share(["200000000002"]))
    expect_error(
        "InvalidParameterValue.InvalidImageId",
        owner,
        "ModifyImageSharePermission",
        **share(["200000000002"], img=UBUNTU),
    )
    expect_error(  # marketplace images are public images, refused alike
        "InvalidParameterValue.InvalidImageId",
        owner,
        "ModifyImageSharePermission",
        **share(["200000000002"], img=WORDPRESS),
    )
    expect_error(
        "InvalidImageId.NotFound", owner, "ModifyImageSharePermission", **share(["200000000002"], img="img-00000000")
    )
    creating = custom_image(owner, wait=False)
    expect_error(
        "InvalidParameterValue.InvalidImageState",
        owner,
        "ModifyImageSharePermission",
        **share(["200000000002"], img=creating),
    )


def test_share_limit_of_500_accounts(emulator_factory: Any) -> None:
    accounts = [
        {"accountId": f"{700000000000 + n}", "secretId": f"AKIDbulk{n:06d}", "secretKey": f"key{n}"} for n in range(502)
    ]
    process = emulator_factory(config={"accounts": accounts})
    owner = sdk_client(process)
    image_id = custom_image(owner)
    others = [a["accountId"] for a in accounts[1:]]
    for start in range(0, 500, 100):
        call(
            owner,
            "ModifyImageSharePermission",
            ImageId=image_id,
            AccountIds=others[start : start + 100],
            Permission="SHARE",
        )
    assert len(call(owner, "DescribeImageSharePermission", ImageId=image_id).SharePermissionSet) == 500
    expect_error(
        "OverQuota", owner, "ModifyImageSharePermission", ImageId=image_id, AccountIds=others[500:], Permission="SHARE"
    )


# ---------------------------------------------------------------- SyncImages (copy)


def test_copy_custom_image_to_other_regions(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    image_id = custom_image(client, name=unique("web"))
    result = call(
        client,
        "SyncImages",
        ImageIds=[image_id],
        DestinationRegions=["ap-shanghai", "ap-singapore"],
        ImageSetRequired=True,
    )
    copies = {c.Region: c.ImageId for c in result.ImageSet}
    assert set(copies) == {"ap-shanghai", "ap-singapore"}
    assert image_id not in copies.values()
    shanghai = sdk_client(shared_emulator, region="ap-shanghai")
    first = image(shanghai, copies["ap-shanghai"])
    assert first.ImageState == "SYNCING" and 0 <= first.SyncPercent < 100
    assert first.ImageName == image(client, image_id).ImageName
    seen = [first.SyncPercent]
    done = wait_image_state(shanghai, copies["ap-shanghai"], "NORMAL")
    assert done.SyncPercent == 100 and done.ImageType == "PRIVATE_IMAGE"
    assert seen[0] <= done.SyncPercent
    # Without ImageSetRequired the set is empty; copies are independent images.
    assert call(client, "SyncImages", ImageIds=[image_id], DestinationRegions=["ap-tokyo"]).ImageSet == []
    tokyo = sdk_client(shared_emulator, region="ap-tokyo")
    assert (
        call(
            tokyo, "DescribeImages", Filters=[{"Name": "image-name", "Values": [image(client, image_id).ImageName]}]
        ).TotalCount
        == 1
    )
    # The destination enforces unique names.
    expect_error(
        "InvalidImageName.Duplicate", client, "SyncImages", ImageIds=[image_id], DestinationRegions=["ap-shanghai"]
    )


def test_copy_rules(shared_emulator: EmulatorProcess) -> None:
    owner, recipient = sdk_client(shared_emulator), sdk_client(shared_emulator, account=1)
    image_id = custom_image(owner)
    expect_error(
        "InvalidParameterValue.InvalidRegion",
        owner,
        "SyncImages",
        ImageIds=[image_id],
        DestinationRegions=["ap-guangzhou"],
    )
    expect_error(
        "InvalidParameterValue.InvalidImageId",
        owner,
        "SyncImages",
        ImageIds=[UBUNTU],
        DestinationRegions=["ap-shanghai"],
    )
    expect_error(
        "InvalidParameterValue.InvalidImageId",
        owner,
        "SyncImages",
        ImageIds=[WORDPRESS],
        DestinationRegions=["ap-shanghai"],
    )
    expect_error("InvalidRegion.NotFound", owner, "SyncImages", ImageIds=[image_id], DestinationRegions=["moon-base-1"])
    expect_error(
        "InvalidParameterValue.LimitExceeded",
        owner,
        "SyncImages",
        ImageIds=[image_id, image_id],
        DestinationRegions=["ap-shanghai"],
    )
    expect_error(
        "InvalidImageId.NotFound", recipient, "SyncImages", ImageIds=[image_id], DestinationRegions=["ap-guangzhou"]
    )
    busy = custom_image(owner, wait=False)
    expect_error(
        "InvalidImageId.IncorrectState", owner, "SyncImages", ImageIds=[busy], DestinationRegions=["ap-shanghai"]
    )
    # An encrypted copy may stay in the source region (it needs a new name there).
    encrypted = (
        call(
            owner,
            "SyncImages",
            ImageIds=[image_id],
            DestinationRegions=["ap-guangzhou"],
            Encrypt=True,
            ImageName=unique("enc"),
            ImageSetRequired=True,
        )
        .ImageSet[0]
        .ImageId
    )
    expect_error(
        "InvalidParameterValue.InvalidRegion",
        owner,
        "SyncImages",
        ImageIds=[image_id],
        DestinationRegions=["ap-shanghai"],
        Encrypt=True,
    )
    wait_image_state(owner, encrypted, "NORMAL")
    expect_error(
        "UnsupportedOperation.SyncEncryptImageNotSupport",
        owner,
        "SyncImages",
        ImageIds=[encrypted],
        DestinationRegions=["ap-shanghai"],
    )
    expect_error(
        "UnsupportedOperation.EncryptedImagesNotSupported",
        owner,
        "ModifyImageSharePermission",
        ImageId=encrypted,
        AccountIds=["200000000002"],
        Permission="SHARE",
    )
    # A shared image can be copied only into its own region, as the recipient's own custom image.
    call(owner, "ModifyImageSharePermission", ImageId=image_id, AccountIds=["200000000002"], Permission="SHARE")
    expect_error(
        "InvalidParameterValue.InvalidRegion",
        recipient,
        "SyncImages",
        ImageIds=[image_id],
        DestinationRegions=["ap-shanghai"],
    )
    copy_id = (
        call(recipient, "SyncImages", ImageIds=[image_id], DestinationRegions=["ap-guangzhou"], ImageSetRequired=True)
        .ImageSet[0]
        .ImageId
    )
    copied = wait_image_state(recipient, copy_id, "NORMAL")
    assert (copied.ImageType, copied.ImageCreator) == ("PRIVATE_IMAGE", "200000000002")
    assert image(owner, copy_id) is None


# ---------------------------------------------------------------- modify, delete, family, import OS


def test_modify_image_attribute(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    image_id = custom_image(client)
    taken = custom_image(client, wait=False, name=unique("taken"))
    new_name = unique("renamed")
    call(
        client,
        "ModifyImageAttribute",
        ImageId=image_id,
        ImageName=new_name,
        ImageDescription="v2",
        ImageFamily="web",
        ImageDeprecated=True,
    )
    changed = image(client, image_id)
    assert (changed.ImageName, changed.ImageDescription, changed.ImageFamily, changed.ImageDeprecated) == (
        new_name,
        "v2",
        "web",
        True,
    )
    call(client, "ModifyImageAttribute", ImageId=image_id, ImageName=new_name)  # its own name is fine
    expect_error(
        "InvalidImageName.Duplicate",
        client,
        "ModifyImageAttribute",
        ImageId=image_id,
        ImageName=image(client, taken).ImageName,
    )
    expect_error("InvalidParameterValue.TooLarge", client, "ModifyImageAttribute", ImageId=image_id, ImageName="n" * 61)
    expect_error("InvalidImageId.IncorrectState", client, "ModifyImageAttribute", ImageId=taken, ImageName=unique())
    expect_error(
        "InvalidParameterValue.InvalidImageId", client, "ModifyImageAttribute", ImageId=UBUNTU, ImageName=unique()
    )
    expect_error("InvalidImageId.NotFound", client, "ModifyImageAttribute", ImageId="img-00000000", ImageName=unique())


def test_delete_images_rules(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    ready = custom_image(client)
    busy = custom_image(client, wait=False)
    expect_error("InvalidImageId.IncorrectState", client, "DeleteImages", ImageIds=[ready, busy])
    assert image(client, ready) is not None  # all or nothing
    expect_error("InvalidParameterValue.InvalidImageId", client, "DeleteImages", ImageIds=[UBUNTU])
    expect_error("InvalidImageId.NotFound", client, "DeleteImages", ImageIds=["img-00000000"])
    expect_error("InvalidImageId.Malformed", client, "DeleteImages", ImageIds=["image-1"])
    call(client, "DeleteImages", ImageIds=[ready], DryRun=True)
    assert image(client, ready) is not None
    call(client, "DeleteImages", ImageIds=[ready])
    assert image(client, ready) is None
    wait_image_state(client, busy, "NORMAL")
    call(client, "DeleteImages", ImageIds=[busy])


def test_image_from_family(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator, account=2)
    family = unique("fam")
    older = custom_image(client, ImageFamily=family)
    newer = custom_image(client, ImageFamily=family)
    assert call(client, "DescribeImageFromFamily", ImageFamily=family).Image.ImageId == newer
    call(client, "ModifyImageAttribute", ImageId=newer, ImageDeprecated=True)
    assert call(client, "DescribeImageFromFamily", ImageFamily=family).Image.ImageId == older
    assert call(client, "DescribeImageFromFamily", ImageFamily=unique("none")).Image is None
    assert call(client, "DescribeImageFromFamily", ImageFamily="ubuntu-2204").Image.ImageId == UBUNTU


def test_describe_import_image_os(shared_emulator: EmulatorProcess) -> None:
    result = call(sdk_client(shared_emulator), "DescribeImportImageOs")
    assert "CentOS" in result.ImportImageOsListSupported.Linux
    assert any(w.startswith("Windows Server") for w in result.ImportImageOsListSupported.Windows)
    centos = next(v for v in result.ImportImageOsVersionSet if v.OsName == "CentOS")
    assert "7" in centos.OsVersions and "x86_64" in centos.Architecture
