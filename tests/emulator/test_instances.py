"""Instance, region and zone actions through the official SDK."""

from __future__ import annotations

from tests.support.emulator import EmulatorProcess, sdk_client

from .helpers import (
    ARM_TENCENTOS,
    CENTOS,
    UBUNTU,
    WINDOWS,
    ZONE,
    call,
    custom_image,
    expect_error,
    instance,
    launch,
    unique,
    wait_instance_state,
    wait_until,
)


def test_run_instances_pending_to_running(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    name = unique("web")
    ids = call(
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        InstanceType="S5.MEDIUM4",
        InstanceName=name,
        InstanceCount=2,
        HostName="web-1",
        InternetAccessible={"InternetMaxBandwidthOut": 10, "PublicIpAssigned": True},
        LoginSettings={"KeyIds": ["skey-abcd1234"]},
        TagSpecification=[{"ResourceType": "instance", "Tags": [{"Key": "app", "Value": name}]}],
    ).InstanceIdSet
    assert len(ids) == 2
    first = instance(client, ids[0])
    assert first.InstanceState == "PENDING"
    assert (first.LatestOperation, first.LatestOperationState) == ("RunInstances", "OPERATING")
    running = wait_instance_state(client, ids[0], "RUNNING")
    assert running.LatestOperationState == "SUCCESS"
    assert (running.ImageId, running.OsName) == (UBUNTU, "Ubuntu Server 22.04 LTS 64位")
    assert (running.CPU, running.Memory, running.Placement.Zone) == (2, 4, ZONE)
    assert running.PrivateIpAddresses[0].startswith("172.16.")
    assert running.PublicIpAddresses[0].startswith(("203.0.113.", "198.51.100.", "192.0.2."))
    assert running.LoginSettings.KeyIds == ["skey-abcd1234"]
    assert running.InstanceChargeType == "POSTPAID_BY_HOUR" and running.SystemDisk.DiskSize == 50
    names = {i.InstanceName for i in call(client, "DescribeInstances", InstanceIds=ids).InstanceSet}
    assert names == {f"{name}1", f"{name}2"}
    tagged = call(client, "DescribeInstances", Filters=[{"Name": "tag:app", "Values": [name]}])
    assert tagged.TotalCount == 2
    # Without bandwidth there is no public address.
    plain = instance(client, launch(client, wait=False))
    assert plain.PublicIpAddresses is None


def test_client_token_makes_run_instances_idempotent(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    token = unique("token")
    first = call(client, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU, ClientToken=token).InstanceIdSet
    again = call(client, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU, ClientToken=token).InstanceIdSet
    assert first == again
    assert call(client, "DescribeInstances", Filters=[{"Name": "instance-id", "Values": first}]).TotalCount == 1
    expect_error(
        "InvalidClientToken.TooLong",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        ClientToken="t" * 65,
    )
    # Tokens belong to the account.
    other = call(
        sdk_client(shared_emulator, account=1),
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        ClientToken=token,
    ).InstanceIdSet
    assert other != first


def test_run_instances_rules(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    expect_error(
        "InvalidZone.MismatchRegion", client, "RunInstances", Placement={"Zone": "ap-shanghai-2"}, ImageId=UBUNTU
    )
    expect_error(
        "InvalidParameterValue.ZoneNotSupported",
        client,
        "RunInstances",
        Placement={"Zone": "ap-guangzhou-99"},
        ImageId=UBUNTU,
    )
    expect_error("InvalidImageId.Malformed", client, "RunInstances", Placement={"Zone": ZONE}, ImageId="ubuntu")
    expect_error("InvalidImageId.NotFound", client, "RunInstances", Placement={"Zone": ZONE}, ImageId="img-00000000")
    expect_error(
        "InvalidParameterValue.InstanceTypeNotFound",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        InstanceType="S5.GIGANTIC",
    )
    expect_error(
        "InvalidParameterValue.InvalidImageForGivenInstanceType",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=ARM_TENCENTOS,
        InstanceType="S5.MEDIUM2",
    )
    expect_error(
        "InvalidParameterValue.Range",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        InstanceCount=501,
    )
    expect_error(
        "InvalidInstanceName.TooLong",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        InstanceName="n" * 129,
    )
    expect_error(
        "InvalidParameterCombination",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        LoginSettings={"Password": "abcd1234", "KeyIds": ["skey-abcd1234"]},
    )
    expect_error(
        "InvalidPassword",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        LoginSettings={"Password": "short"},
    )
    expect_error(
        "UnsupportedOperation.KeyPairUnsupportedWindows",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=WINDOWS,
        LoginSettings={"KeyIds": ["skey-abcd1234"]},
    )
    expect_error(
        "InvalidParameterValue.Range",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=CENTOS,
        SystemDisk={"DiskSize": 20},
    )
    expect_error(
        "InvalidParameterValue.InvalidUserDataFormat",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        UserData="not base64!",
    )
    # Another account's custom image is not usable; a creating image is not yet usable.
    stranger_image = custom_image(sdk_client(shared_emulator, account=2), wait=False)
    expect_error("InvalidImageId.NotFound", client, "RunInstances", Placement={"Zone": ZONE}, ImageId=stranger_image)
    expect_error(
        "InvalidParameterValue.InvalidImageState",
        sdk_client(shared_emulator, account=2),
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=stranger_image,
    )
    # Marketplace images launch like public ones; DryRun creates nothing.
    launch(client, image_id="img-mkt0wp01", wait=False)
    # KeepImageLogin is for custom, shared or imported images: refused for public and marketplace ones.
    for image_id in (UBUNTU, "img-mkt0wp01"):
        expect_error(
            "InvalidParameterValue",
            client,
            "RunInstances",
            Placement={"Zone": ZONE},
            ImageId=image_id,
            LoginSettings={"KeepImageLogin": "true"},
        )
    assert call(client, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU, DryRun=True).InstanceIdSet is None


def test_stop_type_is_checked_and_not_mixed_with_the_deprecated_flags(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    instance_id = launch(client)
    for action in ("StopInstances", "RebootInstances"):
        expect_error("InvalidParameterValue", client, action, InstanceIds=[instance_id], StopType="GENTLE")
    expect_error(
        "InvalidParameterCombination",
        client,
        "StopInstances",
        InstanceIds=[instance_id],
        StopType="HARD",
        ForceStop=True,
    )
    expect_error(
        "InvalidParameterCombination",
        client,
        "RebootInstances",
        InstanceIds=[instance_id],
        StopType="HARD",
        ForceReboot=True,
    )
    assert instance(client, instance_id).InstanceState == "RUNNING"  # nothing was done


def test_stop_start_reboot_state_machine(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    instance_id = launch(client, wait=False)
    expect_error("UnsupportedOperation.InstanceStatePending", client, "StopInstances", InstanceIds=[instance_id])
    wait_instance_state(client, instance_id, "RUNNING")
    expect_error("UnsupportedOperation.InstanceStateRunning", client, "StartInstances", InstanceIds=[instance_id])
    call(client, "StopInstances", InstanceIds=[instance_id], StopType="SOFT")
    stopping = instance(client, instance_id)
    assert (stopping.InstanceState, stopping.LatestOperation) == ("STOPPING", "StopInstances")
    expect_error("UnsupportedOperation.InstanceStateStopping", client, "StopInstances", InstanceIds=[instance_id])
    stopped = wait_instance_state(client, instance_id, "STOPPED")
    assert stopped.StopChargingMode == "KEEP_CHARGING"
    expect_error("UnsupportedOperation.InstanceStateStopped", client, "RebootInstances", InstanceIds=[instance_id])
    call(client, "StartInstances", InstanceIds=[instance_id])
    assert instance(client, instance_id).InstanceState == "STARTING"
    wait_instance_state(client, instance_id, "RUNNING")
    call(client, "RebootInstances", InstanceIds=[instance_id])
    assert instance(client, instance_id).InstanceState == "REBOOTING"
    wait_instance_state(client, instance_id, "RUNNING")
    status = call(client, "DescribeInstancesStatus", InstanceIds=[instance_id]).InstanceStatusSet
    assert [(s.InstanceId, s.InstanceState) for s in status] == [(instance_id, "RUNNING")]
    expect_error("InvalidInstanceId.NotFound", client, "StartInstances", InstanceIds=["ins-00000000"])
    expect_error("InvalidInstanceId.Malformed", client, "StartInstances", InstanceIds=["i-1"])
    expect_error(
        "InvalidParameterValue.LimitExceeded", client, "StopInstances", InstanceIds=[f"ins-{n:08d}" for n in range(101)]
    )
    expect_error(
        "InvalidInstanceId.NotFound", sdk_client(shared_emulator, account=1), "StopInstances", InstanceIds=[instance_id]
    )


def test_terminate_pay_as_you_go_and_prepaid(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    hourly = launch(client)
    call(client, "TerminateInstances", InstanceIds=[hourly])
    assert instance(client, hourly).InstanceState == "TERMINATING"
    wait_until(lambda: instance(client, hourly) is None)
    expect_error("InvalidInstanceId.NotFound", client, "StartInstances", InstanceIds=[hourly])
    prepaid = launch(client, InstanceChargeType="PREPAID", InstanceChargePrepaid={"Period": 1})
    assert instance(client, prepaid).ExpiredTime
    other = launch(client)
    expect_error(
        "UnsupportedOperation.InstanceMixedPricingModel", client, "TerminateInstances", InstanceIds=[prepaid, other]
    )
    call(client, "TerminateInstances", InstanceIds=[prepaid])
    assert instance(client, prepaid).InstanceState == "SHUTDOWN"  # recycle bin first
    call(client, "TerminateInstances", InstanceIds=[prepaid])
    wait_until(lambda: instance(client, prepaid) is None)
    protected = launch(client, DisableApiTermination=True)
    expect_error("UnsupportedOperation.InstancesProtected", client, "TerminateInstances", InstanceIds=[protected])
    expect_error(
        "MissingParameter",
        client,
        "RunInstances",
        Placement={"Zone": ZONE},
        ImageId=UBUNTU,
        InstanceChargeType="PREPAID",
    )


def test_reset_instance_changes_image_and_os(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    instance_id = launch(client, image_id=UBUNTU)
    call(client, "ResetInstance", InstanceId=instance_id, ImageId=CENTOS)
    during = instance(client, instance_id)
    assert (during.LatestOperation, during.LatestOperationState) == ("ResetInstance", "OPERATING")
    expect_error("OperationDenied.InstanceOperationInProgress", client, "StopInstances", InstanceIds=[instance_id])
    done = wait_until(lambda: (i := instance(client, instance_id)) and i.LatestOperationState == "SUCCESS" and i)
    assert (done.ImageId, done.OsName, done.InstanceState) == (CENTOS, "CentOS 7.6 64位", "RUNNING")
    # A custom image made now follows the reinstalled OS.
    image_id = custom_image(client, instance_id)
    assert call(client, "DescribeImages", ImageIds=[image_id]).ImageSet[0].OsName == "CentOS 7.6 64位"
    expect_error("InvalidImageId.NotFound", client, "ResetInstance", InstanceId=instance_id, ImageId="img-00000000")
    expect_error(
        "InvalidParameterValue.InvalidImageForGivenInstanceType",
        client,
        "ResetInstance",
        InstanceId=instance_id,
        ImageId=ARM_TENCENTOS,
    )
    expect_error(
        "InvalidParameterValue.Range", client, "ResetInstance", InstanceId=instance_id, SystemDisk={"DiskSize": 20}
    )
    # Reinstalling a stopped instance is allowed too; without ImageId the current image is used.
    call(client, "StopInstances", InstanceIds=[instance_id])
    wait_instance_state(client, instance_id, "STOPPED")
    call(client, "ResetInstance", InstanceId=instance_id, HostName="web-renamed")
    done = wait_until(lambda: (i := instance(client, instance_id)) and i.LatestOperationState == "SUCCESS" and i)
    assert done.ImageId == CENTOS and done.HostName == "web-renamed"  # the reinstall sets the host name given


def test_describe_instances_filters_and_paging(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator, region="ap-singapore", account=2)
    name = unique("batch")
    ids = call(
        client,
        "RunInstances",
        Placement={"Zone": "ap-singapore-2"},
        ImageId=UBUNTU,
        InstanceName=f"{name}-",
        InstanceCount=5,
    ).InstanceIdSet
    by_name = call(client, "DescribeInstances", Filters=[{"Name": "instance-name", "Values": [name]}], Limit=2)
    assert by_name.TotalCount == 5 and len(by_name.InstanceSet) == 2
    rest = call(client, "DescribeInstances", Filters=[{"Name": "instance-name", "Values": [name]}], Limit=2, Offset=4)
    assert len(rest.InstanceSet) == 1
    zone = call(
        client,
        "DescribeInstances",
        Filters=[{"Name": "zone", "Values": ["ap-singapore-2"]}, {"Name": "instance-id", "Values": ids[:2]}],
    )
    assert {i.InstanceId for i in zone.InstanceSet} == set(ids[:2])
    wait_instance_state(client, ids[0], "RUNNING")
    running = call(
        client,
        "DescribeInstances",
        Filters=[{"Name": "instance-state", "Values": ["RUNNING"]}, {"Name": "instance-name", "Values": [name]}],
    )
    assert ids[0] in {i.InstanceId for i in running.InstanceSet}
    expect_error(
        "InvalidParameter",
        client,
        "DescribeInstances",
        InstanceIds=ids[:1],
        Filters=[{"Name": "zone", "Values": ["ap-singapore-2"]}],
    )
    expect_error("InvalidFilter", client, "DescribeInstances", Filters=[{"Name": "flavour", "Values": ["x"]}])
    expect_error("InvalidInstanceId.Malformed", client, "DescribeInstances", InstanceIds=["bad"])
    assert call(client, "DescribeInstances", InstanceIds=["ins-00000000"]).InstanceSet == []
    # Instances are per region and per account.
    assert call(sdk_client(shared_emulator, account=2), "DescribeInstances", InstanceIds=ids).TotalCount == 0
    assert (
        call(sdk_client(shared_emulator, region="ap-singapore"), "DescribeInstances", InstanceIds=ids).TotalCount == 0
    )


def test_regions_and_zones(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    regions = {r.Region: r for r in call(client, "DescribeRegions").RegionSet}
    assert {
        "ap-guangzhou",
        "ap-shanghai",
        "ap-beijing",
        "ap-singapore",
        "ap-tokyo",
        "na-siliconvalley",
        "eu-frankfurt",
    } <= set(regions)
    assert regions["ap-guangzhou"].RegionState == "AVAILABLE"
    zones = call(sdk_client(shared_emulator, region="ap-shanghai"), "DescribeZones").ZoneSet
    assert all(z.Zone.startswith("ap-shanghai-") and z.ZoneState == "AVAILABLE" for z in zones)
    guangzhou3 = next(z for z in call(client, "DescribeZones").ZoneSet if z.Zone == "ap-guangzhou-3")
    assert (guangzhou3.ZoneId, guangzhou3.ZoneName) == ("100003", "广州三区")
