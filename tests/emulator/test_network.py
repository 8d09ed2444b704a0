"""VPC, subnets and security groups; the launch fields RunInstances takes and DescribeInstances shows."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from cvm_emulator.backend.vpc import VpcBackend
from cvm_emulator.catalogue import BUILTIN_ACCOUNTS, load_catalogue
from cvm_emulator.store import Store
from tests.support.emulator import EmulatorProcess, sdk_client

from .helpers import UBUNTU, ZONE, call, expect_error, instance, launch, unique, vpc_sdk_client, wait_instance_state

ACCOUNT = "100000000001"
APP_VPC = "vpc-app00001"
WEB_SUBNET = "subnet-web00003"
DB_SUBNET = "subnet-dbs00004"
WEB_SG = "sg-web00001"
SHANGHAI_SG = "sg-sha00001"
NETWORK_CONFIG: dict[str, Any] = {
    "vpcs": [
        {
            "region": "ap-guangzhou",
            "vpcId": APP_VPC,
            "name": "app",
            "cidrBlock": "10.20.0.0/16",
            "subnets": [
                {"subnetId": WEB_SUBNET, "zone": "ap-guangzhou-3", "cidrBlock": "10.20.1.0/24", "name": "web"},
                {"subnetId": DB_SUBNET, "zone": "ap-guangzhou-4", "cidrBlock": "10.20.2.0/28", "name": "db"},
            ],
        }
    ],
    "securityGroups": [
        {"region": "ap-guangzhou", "securityGroupId": WEB_SG, "name": "web", "description": "web servers"},
        {"region": "ap-shanghai", "securityGroupId": SHANGHAI_SG, "name": "web"},
    ],
    "projects": [1002],
    "roles": [{"accountId": ACCOUNT, "roleName": "web-role"}],
}


@pytest.fixture(scope="module")
def network_emulator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with EmulatorProcess(tmp_path_factory.mktemp("network"), config=NETWORK_CONFIG) as process:
        yield process


def run(client: Any, zone: str = ZONE, **params: Any) -> list[str]:
    params.setdefault("InstanceType", "S5.MEDIUM2")
    placement = {"Zone": zone, **({"ProjectId": params.pop("ProjectId")} if "ProjectId" in params else {})}
    ids: list[str] = call(client, "RunInstances", Placement=placement, ImageId=UBUNTU, **params).InstanceIdSet
    return ids


def run_error(code: str, client: Any, zone: str = ZONE, **params: Any) -> None:
    params.setdefault("InstanceType", "S5.MEDIUM2")
    expect_error(code, client, "RunInstances", Placement={"Zone": zone}, ImageId=UBUNTU, **params)


# ---------------------------------------------------------------- the VPC API


def test_every_account_has_a_default_network_per_region(shared_emulator: EmulatorProcess) -> None:
    vpc = vpc_sdk_client(shared_emulator)
    vpcs = call(vpc, "DescribeVpcs").VpcSet
    assert [(v.CidrBlock, v.IsDefault) for v in vpcs] == [("172.16.0.0/16", True)]
    subnets = call(vpc, "DescribeSubnets", Filters=[{"Name": "vpc-id", "Values": [vpcs[0].VpcId]}]).SubnetSet
    assert sorted(s.Zone for s in subnets) == ["ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7"]
    assert all(s.IsDefault and s.CidrBlock.endswith("/20") for s in subnets)
    assert len({s.CidrBlock for s in subnets}) == 4
    groups = call(vpc, "DescribeSecurityGroups").SecurityGroupSet
    assert [(g.SecurityGroupName, g.IsDefault) for g in groups] == [("default", True)]
    zone3 = call(vpc, "DescribeSubnets", Filters=[{"Name": "zone", "Values": [ZONE]}]).SubnetSet
    assert len(zone3) == 1 and call(vpc, "DescribeSubnets", SubnetIds=[zone3[0].SubnetId]).TotalCount == 1
    # Another account and another region have networks of their own.
    other = call(vpc_sdk_client(shared_emulator, account=1), "DescribeVpcs").VpcSet
    shanghai = call(vpc_sdk_client(shared_emulator, region="ap-shanghai"), "DescribeVpcs").VpcSet
    assert len({vpcs[0].VpcId, other[0].VpcId, shanghai[0].VpcId}) == 3
    # A default launch lands in the zone's default subnet with the default security group.
    client = sdk_client(shared_emulator)
    launched = instance(client, launch(client, wait=False))
    assert launched.VirtualPrivateCloud.VpcId == vpcs[0].VpcId
    assert launched.VirtualPrivateCloud.SubnetId == zone3[0].SubnetId
    assert launched.SecurityGroupIds == [groups[0].SecurityGroupId]
    assert launched.PrivateIpAddresses[0].startswith("172.16.")


def test_vpc_api_errors(shared_emulator: EmulatorProcess) -> None:
    vpc = vpc_sdk_client(shared_emulator)
    expect_error("InvalidParameter.FilterInvalidKey", vpc, "DescribeVpcs", Filters=[{"Name": "zone", "Values": ["x"]}])
    expect_error(
        "InvalidParameter.Coexist",
        vpc,
        "DescribeSubnets",
        SubnetIds=["subnet-abcdefgh"],
        Filters=[{"Name": "zone", "Values": [ZONE]}],
    )
    expect_error("InvalidParameterValue.Malformed", vpc, "DescribeVpcs", VpcIds=["vpc-1"])
    expect_error("ResourceNotFound", vpc, "DescribeVpcs", VpcIds=["vpc-abcdefgh"])
    expect_error("ResourceNotFound", vpc, "DescribeSecurityGroups", SecurityGroupIds=["sg-abcdefgh"])
    expect_error("InvalidParameterValue.Range", vpc, "DescribeVpcs", Limit="101")


def test_configured_networks(network_emulator: EmulatorProcess) -> None:
    vpc = vpc_sdk_client(network_emulator)
    app = call(vpc, "DescribeVpcs", VpcIds=[APP_VPC]).VpcSet[0]
    assert (app.VpcName, app.CidrBlock, app.IsDefault) == ("app", "10.20.0.0/16", False)
    assert call(vpc, "DescribeVpcs").TotalCount == 2
    db = call(vpc, "DescribeSubnets", SubnetIds=[DB_SUBNET]).SubnetSet[0]
    assert (db.Zone, db.CidrBlock, db.TotalIpAddressCount) == ("ap-guangzhou-4", "10.20.2.0/28", 13)
    web = call(vpc, "DescribeSecurityGroups", Filters=[{"Name": "security-group-name", "Values": ["web"]}])
    assert [g.SecurityGroupId for g in web.SecurityGroupSet] == [WEB_SG]
    # The Shanghai group is not visible from Guangzhou.
    expect_error("ResourceNotFound", vpc, "DescribeSecurityGroups", SecurityGroupIds=[SHANGHAI_SG])


# ---------------------------------------------------------------- RunInstances


def test_launch_fields_shown_by_describe_instances(network_emulator: EmulatorProcess) -> None:
    client = sdk_client(network_emulator)
    user_data = base64.b64encode(b"#cloud-config\nruncmd: [echo hi]\n").decode()
    (instance_id,) = run(
        client,
        VirtualPrivateCloud={"VpcId": APP_VPC, "SubnetId": WEB_SUBNET, "PrivateIpAddresses": ["10.20.1.50"]},
        SecurityGroupIds=[WEB_SG],
        InternetAccessible={
            "InternetChargeType": "BANDWIDTH_POSTPAID_BY_HOUR",
            "InternetMaxBandwidthOut": 20,
            "PublicIpAssigned": True,
        },
        DataDisks=[
            {"DiskType": "CLOUD_PREMIUM", "DiskSize": 100, "DeleteWithInstance": True},
            {"DiskType": "CLOUD_SSD", "DiskSize": 200, "DeleteWithInstance": False},
        ],
        UserData=user_data,
        ProjectId=1002,
        DisableApiTermination=True,
        CamRoleName="web-role",
    )
    got = wait_instance_state(client, instance_id, "RUNNING")
    assert (got.VirtualPrivateCloud.VpcId, got.VirtualPrivateCloud.SubnetId) == (APP_VPC, WEB_SUBNET)
    assert got.PrivateIpAddresses == ["10.20.1.50"] and got.VirtualPrivateCloud.PrivateIpAddresses == ["10.20.1.50"]
    assert got.SecurityGroupIds == [WEB_SG]
    assert got.PublicIpAddresses and len(got.PublicIpAddresses) == 1
    assert got.InternetAccessible.InternetChargeType == "BANDWIDTH_POSTPAID_BY_HOUR"
    assert got.InternetAccessible.InternetMaxBandwidthOut == 20
    assert [(d.DiskType, d.DiskSize, d.DeleteWithInstance) for d in got.DataDisks] == [
        ("CLOUD_PREMIUM", 100, True),
        ("CLOUD_SSD", 200, False),
    ]
    assert all(d.DiskId.startswith("disk-") for d in got.DataDisks)
    assert got.Placement.ProjectId == 1002 and got.InstanceChargeType == "POSTPAID_BY_HOUR"
    assert got.DisableApiTermination is True and got.CamRoleName == "web-role"
    assert got.StopChargingMode == "NOT_APPLICABLE"
    # The address is taken now; the subnet says so.
    vpc = vpc_sdk_client(network_emulator)
    web = call(vpc, "DescribeSubnets", SubnetIds=[WEB_SUBNET]).SubnetSet[0]
    assert web.AvailableIpAddressCount == web.TotalIpAddressCount - 1
    # Each documented filter finds it.
    for name, value in (
        ("vpc-id", APP_VPC),
        ("subnet-id", WEB_SUBNET),
        ("security-group-id", WEB_SG),
        ("project-id", "1002"),
        ("private-ip-address", "10.20.1.50"),
        ("public-ip-address", got.PublicIpAddresses[0]),
        ("uuid", got.Uuid),
    ):
        found = call(client, "DescribeInstances", Filters=[{"Name": name, "Values": [value]}]).InstanceSet
        assert [i.InstanceId for i in found] == [instance_id], name
    # Termination protection holds until it is turned off.
    expect_error("UnsupportedOperation.InstancesProtected", client, "TerminateInstances", InstanceIds=[instance_id])
    call(client, "ModifyInstancesAttribute", InstanceIds=[instance_id], DisableApiTermination=False)
    call(client, "TerminateInstances", InstanceIds=[instance_id])


def test_addresses_are_allocated_in_the_subnet(network_emulator: EmulatorProcess) -> None:
    client = sdk_client(network_emulator)
    network = {"VpcId": APP_VPC, "SubnetId": DB_SUBNET}
    ids = run(client, zone="ap-guangzhou-4", VirtualPrivateCloud=network, InstanceCount=3)
    addresses = [instance(client, i).PrivateIpAddresses[0] for i in ids]
    assert len(set(addresses)) == 3 and all(a.startswith("10.20.2.") for a in addresses)
    run_error(
        "VpcIpIsUsed",
        client,
        zone="ap-guangzhou-4",
        VirtualPrivateCloud={**network, "PrivateIpAddresses": [addresses[0]]},
    )
    # A /28 has 13 usable addresses; a launch that needs more is refused.
    run_error(
        "FailedOperation.NoAvailableIpAddressCountInSubnet",
        client,
        zone="ap-guangzhou-4",
        VirtualPrivateCloud=network,
        InstanceCount=11,
    )


def test_network_rules(network_emulator: EmulatorProcess) -> None:
    client = sdk_client(network_emulator)
    web = {"VpcId": APP_VPC, "SubnetId": WEB_SUBNET}
    run_error("InvalidParameterValue.SubnetIdZoneIdNotMatch", client, zone="ap-guangzhou-4", VirtualPrivateCloud=web)
    run_error("InvalidParameterValue.VpcIdNotExist", client, VirtualPrivateCloud={**web, "VpcId": "vpc-abcdefgh"})
    run_error("InvalidParameterValue.VpcIdMalformed", client, VirtualPrivateCloud={**web, "VpcId": "vpc-1"})
    run_error(
        "InvalidParameterValue.SubnetNotExist", client, VirtualPrivateCloud={**web, "SubnetId": "subnet-abcdefgh"}
    )
    run_error("InvalidParameterValue.SubnetIdMalformed", client, VirtualPrivateCloud={**web, "SubnetId": "sn-1"})
    default_subnet = call(
        vpc_sdk_client(network_emulator), "DescribeSubnets", Filters=[{"Name": "zone", "Values": [ZONE]}]
    ).SubnetSet
    default_in_zone = next(s.SubnetId for s in default_subnet if s.IsDefault)
    run_error(
        "InvalidParameterValue.VpcIdSubnetIdNotMatch",
        client,
        VirtualPrivateCloud={**web, "SubnetId": default_in_zone},
    )
    run_error("MissingParameter", client, VirtualPrivateCloud={"VpcId": APP_VPC})
    run_error("InvalidSecurityGroupId.NotFound", client, SecurityGroupIds=[SHANGHAI_SG])
    run_error("InvalidSecurityGroupId.NotFound", client, SecurityGroupIds=["sg-abcdefgh"])
    run_error("VpcAddrNotInSubNet", client, VirtualPrivateCloud={**web, "PrivateIpAddresses": ["10.20.2.5"]})
    run_error("VpcAddrNotInSubNet", client, VirtualPrivateCloud={**web, "PrivateIpAddresses": ["10.20.1.255"]})
    run_error(
        "InvalidParameterValue.IPAddressMalformed", client, VirtualPrivateCloud={**web, "PrivateIpAddresses": ["x"]}
    )
    # Another account cannot launch into this account's VPC.
    run_error("InvalidParameterValue.VpcIdNotExist", sdk_client(network_emulator, account=1), VirtualPrivateCloud=web)


def test_launch_field_rules(network_emulator: EmulatorProcess) -> None:
    client = sdk_client(network_emulator)
    too_big = base64.b64encode(b"x" * 13000).decode()  # over 16 KB once encoded
    run_error("InvalidParameterValue.InvalidUserDataFormat", client, UserData=too_big)
    run_error("InvalidParameterValue.InvalidUserDataFormat", client, UserData="not base64!")
    expect_error(
        "InvalidProjectId.NotFound", client, "RunInstances", Placement={"Zone": ZONE, "ProjectId": 7}, ImageId=UBUNTU
    )
    run_error("InvalidParameterValue.CamRoleNameMalformed", client, CamRoleName="no spaces allowed")
    run_error("AuthFailure.CamRoleNameAuthenticateFailed", client, CamRoleName="missing-role")
    run_error(
        "InvalidParameterValue.CloudSsdDataDiskSizeTooSmall",
        client,
        DataDisks=[{"DiskType": "CLOUD_SSD", "DiskSize": 10}],
    )
    run_error("InvalidParameterValue.Range", client, DataDisks=[{"DiskType": "CLOUD_PREMIUM", "DiskSize": 5}])
    run_error("MissingParameter", client, DataDisks=[{"DiskType": "CLOUD_PREMIUM"}])
    run_error("InvalidParameterValue", client, InternetAccessible={"InternetChargeType": "FREE"})
    run_error(
        "InvalidParameterCombination",
        client,
        InternetAccessible={"InternetChargeType": "BANDWIDTH_PREPAID", "InternetMaxBandwidthOut": 1},
    )
    spot = {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.001"}}
    run_error("InvalidParameterCombination", client, InstanceMarketOptions=spot)
    run_error(
        "InvalidParameterValue.InsufficientPrice", client, InstanceChargeType="SPOTPAID", InstanceMarketOptions=spot
    )
    run_error("MissingParameter", client, InstanceChargeType="PREPAID")
    run_error("InvalidParameterCombination", client, InstanceChargePrepaid={"Period": 1})
    run_error("InvalidPeriod", client, InstanceChargeType="PREPAID", InstanceChargePrepaid={"Period": 13})
    run_error(
        "InvalidParameterValue",
        client,
        InstanceChargeType="SPOTPAID",
        InstanceMarketOptions={"MarketType": "spot", "SpotOptions": {"MaxPrice": "cheap"}},
    )
    run_error(
        "InvalidParameterValue",
        client,
        InstanceChargeType="PREPAID",
        InstanceChargePrepaid={"Period": 1, "RenewFlag": "SOMETIMES"},
    )


def test_charge_types_and_stop_modes(network_emulator: EmulatorProcess) -> None:
    client = sdk_client(network_emulator)
    spot_id = run(
        client,
        InstanceChargeType="SPOTPAID",
        InstanceMarketOptions={
            "MarketType": "spot",
            "SpotOptions": {"MaxPrice": "1.5", "SpotInstanceType": "one-time"},
        },
    )[0]
    prepaid_id = run(
        client, InstanceChargeType="PREPAID", InstanceChargePrepaid={"Period": 1, "RenewFlag": "NOTIFY_AND_AUTO_RENEW"}
    )[0]
    postpaid_id = run(client)[0]
    spot = wait_instance_state(client, spot_id, "RUNNING")
    prepaid = wait_instance_state(client, prepaid_id, "RUNNING")
    assert spot.InstanceChargeType == "SPOTPAID"
    assert (prepaid.InstanceChargeType, prepaid.RenewFlag) == ("PREPAID", "NOTIFY_AND_AUTO_RENEW")
    assert prepaid.ExpiredTime
    by_charge = call(client, "DescribeInstances", Filters=[{"Name": "instance-charge-type", "Values": ["SPOTPAID"]}])
    assert spot_id in [i.InstanceId for i in by_charge.InstanceSet]
    expect_error(
        "UnsupportedOperation.StoppedModeStopCharging",
        client,
        "StopInstances",
        InstanceIds=[prepaid_id],
        StoppedMode="STOP_CHARGING",
    )
    wait_instance_state(client, postpaid_id, "RUNNING")
    call(client, "StopInstances", InstanceIds=[postpaid_id], StoppedMode="STOP_CHARGING")
    assert wait_instance_state(client, postpaid_id, "STOPPED").StopChargingMode == "STOP_CHARGING"
    call(client, "StartInstances", InstanceIds=[postpaid_id])
    wait_instance_state(client, postpaid_id, "RUNNING")
    call(client, "StopInstances", InstanceIds=[postpaid_id], StoppedMode="KEEP_CHARGING")
    assert wait_instance_state(client, postpaid_id, "STOPPED").StopChargingMode == "KEEP_CHARGING"


def test_modify_instances_attribute(network_emulator: EmulatorProcess) -> None:
    client = sdk_client(network_emulator)
    instance_id = launch(client)
    call(client, "ModifyInstancesAttribute", InstanceIds=[instance_id], SecurityGroups=[WEB_SG])
    assert instance(client, instance_id).SecurityGroupIds == [WEB_SG]
    name = unique("renamed")
    call(client, "ModifyInstancesAttribute", InstanceIds=[instance_id], InstanceName=name)
    call(client, "ModifyInstancesAttribute", InstanceIds=[instance_id], CamRoleName="web-role")
    changed = instance(client, instance_id)
    assert (changed.InstanceName, changed.CamRoleName) == (name, "web-role")
    assert (changed.LatestOperation, changed.LatestOperationState) == ("ModifyInstancesAttribute", "SUCCESS")
    call(client, "ModifyInstancesAttribute", InstanceIds=[instance_id], DisableApiTermination=True)
    assert instance(client, instance_id).DisableApiTermination is True
    modify = {"InstanceIds": [instance_id]}
    expect_error("InvalidParameter", client, "ModifyInstancesAttribute", **modify, InstanceName="a", CamRoleName="b")
    expect_error("MissingParameter", client, "ModifyInstancesAttribute", **modify)
    expect_error(
        "InvalidSecurityGroupId.NotFound", client, "ModifyInstancesAttribute", **modify, SecurityGroups=[SHANGHAI_SG]
    )
    expect_error("InvalidInstanceName.TooLong", client, "ModifyInstancesAttribute", **modify, InstanceName="n" * 61)
    expect_error(
        "AuthFailure.CamRoleNameAuthenticateFailed", client, "ModifyInstancesAttribute", **modify, CamRoleName="nobody"
    )
    expect_error(
        "InvalidInstanceId.NotFound", client, "ModifyInstancesAttribute", InstanceIds=["ins-abcdefgh"], InstanceName="x"
    )


def test_describe_instances_filters_are_the_documented_ones(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    expect_error("InvalidFilter", client, "DescribeInstances", Filters=[{"Name": "image-id", "Values": [UBUNTU]}])
    expect_error("InvalidFilter", client, "DescribeInstances", Filters=[{"Name": "vpc", "Values": ["x"]}])
    expect_error(
        "InvalidParameterValue.VpcIdMalformed",
        client,
        "DescribeInstances",
        Filters=[{"Name": "vpc-id", "Values": ["x"]}],
    )
    expect_error(
        "InvalidParameterValue.SubnetIdMalformed",
        client,
        "DescribeInstances",
        Filters=[{"Name": "subnet-id", "Values": ["x"]}],
    )
    expect_error(
        "InvalidSgId.Malformed", client, "DescribeInstances", Filters=[{"Name": "security-group-id", "Values": ["x"]}]
    )
    for name in ("host-id", "dedicated-cluster-id", "ipv6-address"):
        assert call(client, "DescribeInstances", Filters=[{"Name": name, "Values": ["x"]}]).TotalCount == 0
    since = call(
        client, "DescribeInstances", Filters=[{"Name": "creation-start-time", "Values": ["2000-01-01 00:00:00"]}]
    )
    assert since.TotalCount >= 0
    expect_error(
        "InvalidParameterValue.InvalidTimeFormat",
        client,
        "DescribeInstances",
        Filters=[{"Name": "creation-end-time", "Values": ["yesterday"]}],
    )
    # Without LoginSettings the cloud sets a random password: the launch succeeds.
    assert instance(client, launch(client, wait=False)).LoginSettings.KeyIds is None


def test_vpc_actions_are_metered_per_account_region_and_action(emulator_factory: Any) -> None:
    limited = emulator_factory(extra_args=["--enforce-rate-limits"], config={"rateLimits": {"DescribeSubnets": 1}})
    vpc = vpc_sdk_client(limited)
    call(vpc, "DescribeSubnets")
    expect_error("RequestLimitExceeded", vpc, "DescribeSubnets")
    assert call(vpc, "DescribeVpcs").TotalCount == 1
    assert call(vpc_sdk_client(limited, account=1), "DescribeSubnets").TotalCount == 4
    assert call(vpc_sdk_client(limited, region="ap-shanghai"), "DescribeSubnets").TotalCount == 5


@pytest.mark.parametrize(
    ("vpcs", "groups", "message"),
    [
        ([{"region": "ap-nowhere", "cidrBlock": "10.0.0.0/16"}], [], "unknown region"),
        ([{"region": "ap-guangzhou", "cidrBlock": "10.0.0.0/33"}], [], "not an IPv4 CIDR"),
        ([{"region": "ap-guangzhou", "vpcId": "vpc-1", "cidrBlock": "10.0.0.0/16"}], [], "malformed or taken"),
        (
            [{"region": "ap-guangzhou", "cidrBlock": "10.0.0.0/16", "subnets": [{"zone": "ap-shanghai-2"}]}],
            [],
            "is not in ap-guangzhou",
        ),
        (
            [
                {
                    "region": "ap-guangzhou",
                    "cidrBlock": "10.0.0.0/16",
                    "subnets": [{"zone": "ap-guangzhou-3", "cidrBlock": "10.1.0.0/24"}],
                }
            ],
            [],
            "not inside",
        ),
        ([], [{"region": "ap-guangzhou", "securityGroupId": "sg-x"}], "malformed or taken"),
    ],
)
def test_bad_network_config_is_refused(tmp_path: Path, vpcs: Any, groups: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VpcBackend(Store(tmp_path / "db"), load_catalogue(), BUILTIN_ACCOUNTS, vpcs, groups)
