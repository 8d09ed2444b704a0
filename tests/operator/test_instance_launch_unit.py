"""Pure mapping of the Instance launch settings to RunInstances, and of drift to ModifyInstancesAttribute."""

from __future__ import annotations

from typing import Any

from cvm_operator.api import InstanceSpec
from cvm_operator.cloud import CloudInstance, LaunchOptions
from cvm_operator.reconcilers.instance import (
    SPEC_APPLIED,
    AttributeChanges,
    attribute_changes,
    instance_status,
    judge_instance,
    observe_instance,
    spec_applied,
)
from cvm_operator.reconcilers.launch import launch_options

BASE: dict[str, Any] = {
    "region": "ap-guangzhou",
    "zone": "ap-guangzhou-3",
    "instanceType": "S5.MEDIUM2",
    "imageId": "img-487zeit5",
}


def spec(**fields: Any) -> InstanceSpec:
    return InstanceSpec.model_validate({**BASE, **fields})


def described(**fields: Any) -> CloudInstance:
    data: dict[str, Any] = {
        "InstanceId": "ins-abcdefgh",
        "InstanceName": "web-1",
        "InstanceState": "RUNNING",
        "ImageId": "img-487zeit5",
        "Placement": {"Zone": "ap-guangzhou-3", "ProjectId": 0},
        "SystemDisk": {"DiskType": "CLOUD_PREMIUM", "DiskId": "disk-sys00001", "DiskSize": 50},
        "VirtualPrivateCloud": {"VpcId": "vpc-2x7lhtse", "SubnetId": "subnet-d9azpyl8"},
        "SecurityGroupIds": ["sg-5ujzw3i2"],
        "DisableApiTermination": False,
        "HostName": "web-1",
        **fields,
    }
    return CloudInstance.from_api(data)


def test_every_launch_field_reaches_the_run_instances_parameters() -> None:
    full = spec(
        network={
            "vpcId": "vpc-2x7lhtse",
            "subnetId": "subnet-d9azpyl8",
            "securityGroupIds": ["sg-5ujzw3i2", "sg-aaaaaaaa"],
            "privateIpAddress": "10.0.0.12",
        },
        internet={"publicIp": True, "chargeType": "BANDWIDTH_POSTPAID_BY_HOUR", "maxBandwidthOutMbps": 10},
        dataDisks=[{"diskType": "CLOUD_SSD", "sizeGB": 100, "deleteWithInstance": False}, {"sizeGB": 200}],
        chargeType="SPOTPAID",
        spot={"maxPrice": "0.5"},
        projectId=3,
        disableApiTermination=True,
        camRoleName="web-role",
    )
    params = launch_options(full, "I2Nsb3VkLWNvbmZpZw==").to_api()
    assert params == {
        "VirtualPrivateCloud": {
            "VpcId": "vpc-2x7lhtse",
            "SubnetId": "subnet-d9azpyl8",
            "PrivateIpAddresses": ["10.0.0.12"],
        },
        "SecurityGroupIds": ["sg-5ujzw3i2", "sg-aaaaaaaa"],
        "InternetAccessible": {
            "InternetMaxBandwidthOut": 10,
            "PublicIpAssigned": True,
            "InternetChargeType": "BANDWIDTH_POSTPAID_BY_HOUR",
        },
        "DataDisks": [
            {"DiskType": "CLOUD_SSD", "DiskSize": 100, "DeleteWithInstance": False},
            {"DiskType": "CLOUD_PREMIUM", "DiskSize": 200, "DeleteWithInstance": True},
        ],
        "UserData": "I2Nsb3VkLWNvbmZpZw==",
        "InstanceChargeType": "SPOTPAID",
        "InstanceMarketOptions": {
            "MarketType": "spot",
            "SpotOptions": {"MaxPrice": "0.5", "SpotInstanceType": "one-time"},
        },
        "DisableApiTermination": True,
        "CamRoleName": "web-role",
    }
    assert launch_options(full, None).project_id == 3  # Placement.ProjectId, set beside the zone


def test_a_minimal_spec_sends_only_the_charge_type() -> None:
    assert launch_options(spec(), None).to_api() == {"InstanceChargeType": "POSTPAID_BY_HOUR"}


def test_prepaid_terms_and_no_public_ip() -> None:
    params = launch_options(
        spec(chargeType="PREPAID", prepaid={"period": 12}, internet={"maxBandwidthOutMbps": 5}), None
    ).to_api()
    assert params["InstanceChargePrepaid"] == {"Period": 12, "RenewFlag": "NOTIFY_AND_MANUAL_RENEW"}
    assert params["InternetAccessible"] == {"InternetMaxBandwidthOut": 5, "PublicIpAssigned": False}


def test_user_data_stays_out_of_the_repr() -> None:
    options = LaunchOptions(user_data="c2VjcmV0LXN0dWZm")
    assert "c2VjcmV0LXN0dWZm" not in repr(options)


def test_status_shows_network_and_data_disks() -> None:
    instance = described(
        PublicIpAddresses=["81.0.0.7"],
        DataDisks=[{"DiskType": "CLOUD_SSD", "DiskId": "disk-data0001", "DiskSize": 100, "DeleteWithInstance": True}],
    )
    fields = instance_status(instance)
    assert fields["public_ip_addresses"] == ["81.0.0.7"]
    assert (fields["vpc_id"], fields["subnet_id"]) == ("vpc-2x7lhtse", "subnet-d9azpyl8")
    assert fields["security_group_ids"] == ["sg-5ujzw3i2"]
    assert [disk.to_wire() for disk in fields["data_disks"]] == [
        {"diskId": "disk-data0001", "diskType": "CLOUD_SSD", "sizeGB": 100}
    ]


def test_name_security_groups_and_protection_drift_is_put_back() -> None:
    wanted = spec(network={"securityGroupIds": ["sg-5ujzw3i2", "sg-aaaaaaaa"]}, disableApiTermination=True)
    changes = attribute_changes(wanted, "web-2", described())
    assert changes == AttributeChanges(
        name="web-2", security_group_ids=("sg-5ujzw3i2", "sg-aaaaaaaa"), disable_api_termination=True
    )
    assert changes.fields() == ["instanceName", "network.securityGroupIds", "disableApiTermination"]
    # The order is the priority, so a reordering is drift too.
    reordered = described(SecurityGroupIds=["sg-aaaaaaaa", "sg-5ujzw3i2"], DisableApiTermination=True)
    assert attribute_changes(wanted, "web-1", reordered).security_group_ids == ("sg-5ujzw3i2", "sg-aaaaaaaa")


def test_unnamed_security_groups_are_left_alone() -> None:
    assert not attribute_changes(spec(), "web-1", described(SecurityGroupIds=["sg-zzzzzzzz"]))


def test_drift_makes_the_observation_not_up_to_date() -> None:
    wanted = spec(disableApiTermination=True)
    instance = described()
    verdict = judge_instance(instance, "Running", "img-487zeit5", "Never", None)
    observation = observe_instance(instance, verdict, "img-487zeit5", {}, wanted, "web-1")
    assert not observation.up_to_date and observation.reason == "Updating"
    assert "disableApiTermination" in observation.message
    applied = next(c for c in observation.conditions if c.type == SPEC_APPLIED)
    assert (applied.status, applied.reason) == ("False", "Updating")


def test_a_failed_launch_compares_nothing() -> None:
    instance = described(InstanceState="LAUNCH_FAILED", LatestOperationErrorMsg="no capacity left")
    verdict = judge_instance(instance, "Running", "img-487zeit5", "Never", None)
    observation = observe_instance(instance, verdict, "img-487zeit5", {}, spec(disableApiTermination=True), "x")
    assert observation.failed and observation.reason == "LaunchFailed"
    assert "no capacity left" in observation.message
    assert observation.up_to_date and not any(c.type == SPEC_APPLIED for c in observation.conditions)


def test_host_name_and_larger_disk_wait_for_a_reinstall() -> None:
    never = spec(hostName="web-2", systemDisk={"sizeGB": 100})
    condition = spec_applied(never, described(), AttributeChanges())
    assert (condition.status, condition.reason) == ("False", "NeedsReinstall")
    assert "spec.hostName" in condition.message and "spec.systemDisk.sizeGB is 100" in condition.message
    assert "reimagePolicy is Never" in condition.message

    on_change = spec(hostName="web-2", reimagePolicy="OnImageChange")
    condition = spec_applied(on_change, described(), AttributeChanges())
    assert (condition.status, condition.reason) == ("False", "PendingReinstall")


def test_everything_applied() -> None:
    condition = spec_applied(spec(hostName="web-1", systemDisk={"sizeGB": 50}), described(), AttributeChanges())
    assert (condition.status, condition.reason) == ("True", "Applied")
    # A host name the cloud does not report cannot be compared, and is not claimed to differ.
    unreported = described(HostName=None)
    assert spec_applied(spec(hostName="web-9"), unreported, AttributeChanges()).status == "True"


def test_a_batch_numbered_host_name_counts_as_applied() -> None:
    wanted = spec(hostName="web", reimagePolicy="OnImageChange")
    numbered = described(HostName="web-3")
    assert spec_applied(wanted, numbered, AttributeChanges(), numbered=True).status == "True"
    # Alone, the same difference waits for a reinstall; and a batch's other names are real differences.
    assert spec_applied(wanted, numbered, AttributeChanges()).reason == "PendingReinstall"
    assert spec_applied(wanted, described(HostName="db-3"), AttributeChanges(), numbered=True).status == "False"
