"""Instance launch settings end to end: network, public address, data disks, user data, billing, project,
termination protection and CAM role reach the cloud; drift is put back; the cloud's failures end in the
named conditions without a hot loop."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from tencentcloud.cvm.v20170312 import cvm_client

from tests.operator import UBUNTU, cloud_call, instance, instance_body, status
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess, wait_for

APP_VPC = "vpc-app00001"
WEB_SUBNET = "subnet-web00003"
WEB_SG = "sg-web00001"
ADMIN_SG = "sg-adm00001"
PROJECT = 1002
ROLE = "web-role"
NETWORK_CONFIG: dict[str, Any] = {
    "vpcs": [
        {
            "region": "ap-guangzhou",
            "vpcId": APP_VPC,
            "name": "app",
            "cidrBlock": "10.20.0.0/16",
            "subnets": [{"subnetId": WEB_SUBNET, "zone": "ap-guangzhou-3", "cidrBlock": "10.20.1.0/24"}],
        }
    ],
    "securityGroups": [
        {"region": "ap-guangzhou", "securityGroupId": WEB_SG, "name": "web"},
        {"region": "ap-guangzhou", "securityGroupId": ADMIN_SG, "name": "admin"},
    ],
    "projects": [PROJECT],
    "roles": [{"accountId": "100000000001", "roleName": ROLE}],
}
# What must never show: the user data, and its base64 form.
MARKER = "cloud-init-marker-5b1f0c"
USER_DATA = f"#cloud-config\nwrite_files:\n- path: /etc/marker\n  content: {MARKER}\n"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """The emulator with an application VPC, two more security groups, a project and a CAM role."""
    with EmulatorProcess(tmp_path / "emulator", config=NETWORK_CONFIG) as process:
        yield process


def described(client: cvm_client.CvmClient, instance_id: str) -> dict[str, Any]:
    found = instance(client, instance_id)
    assert found is not None, instance_id
    return found


def leaks(text: str) -> bool:
    encoded = base64.b64encode(USER_DATA.encode()).decode()
    return MARKER in text or encoded in text or encoded[:40] in text


def user_data_secret(objects: Objects, namespace: str) -> None:
    objects.core.create_namespaced_secret(namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="web-init"),
        data={"user-data": base64.b64encode(USER_DATA.encode()).decode()},
    ))  # fmt: skip


def test_every_launch_field_reaches_the_cloud_and_drift_is_put_back(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    client = sdk_client(emulator)
    user_data_secret(objects, namespace)
    body = instance_body(
        "web",
        image_id=UBUNTU,
        hostName="web-1",
        network={
            "vpcId": APP_VPC,
            "subnetId": WEB_SUBNET,
            "securityGroupIds": [WEB_SG],
            "privateIpAddress": "10.20.1.50",
        },
        internet={"publicIp": True, "chargeType": "BANDWIDTH_POSTPAID_BY_HOUR", "maxBandwidthOutMbps": 10},
        dataDisks=[{"diskType": "CLOUD_SSD", "sizeGB": 100, "deleteWithInstance": False}, {"sizeGB": 200}],
        userData={"secretRef": {"name": "web-init", "key": "user-data"}},
        projectId=PROJECT,
        disableApiTermination=True,
        camRoleName=ROLE,
        stopMode="STOP_CHARGING",
    )
    del body["spec"]["loginSettings"]  # optional now: the cloud sets a random password
    objects.create("instances", body)
    ready = status(objects.wait_condition("instances", "web"))
    instance_id = ready["instanceId"]
    cloud = described(client, instance_id)

    assert cloud["VirtualPrivateCloud"]["VpcId"] == APP_VPC
    assert cloud["VirtualPrivateCloud"]["SubnetId"] == WEB_SUBNET
    assert cloud["PrivateIpAddresses"] == ["10.20.1.50"]
    assert cloud["SecurityGroupIds"] == [WEB_SG]
    assert cloud["PublicIpAddresses"] and cloud["InternetAccessible"]["InternetMaxBandwidthOut"] == 10
    assert cloud["InternetAccessible"]["InternetChargeType"] == "BANDWIDTH_POSTPAID_BY_HOUR"
    disks = [(d["DiskType"], d["DiskSize"]) for d in cloud["DataDisks"]]
    assert disks == [("CLOUD_SSD", 100), ("CLOUD_PREMIUM", 200)]
    assert cloud["InstanceChargeType"] == "POSTPAID_BY_HOUR"
    assert cloud["Placement"]["ProjectId"] == PROJECT
    assert cloud["DisableApiTermination"] is True
    assert cloud["CamRoleName"] == ROLE
    assert cloud["HostName"] == "web-1"

    assert (ready["vpcId"], ready["subnetId"]) == (APP_VPC, WEB_SUBNET)
    assert ready["securityGroupIds"] == [WEB_SG]
    assert ready["publicIpAddresses"] == cloud["PublicIpAddresses"]
    assert ready["privateIpAddresses"] == ["10.20.1.50"]
    assert [(d["diskType"], d["sizeGB"]) for d in ready["dataDisks"]] == disks
    assert [d["diskId"] for d in ready["dataDisks"]] == [d["DiskId"] for d in cloud["DataDisks"]]
    assert (objects.condition("instances", "web", "SpecApplied") or {}).get("status") == "True"

    # Security groups, termination protection and name changed in the cloud: each put back.
    modifies = emulator.request_count("ModifyInstancesAttribute")
    cloud_call(client, "ModifyInstancesAttribute", {"InstanceIds": [instance_id], "SecurityGroups": [ADMIN_SG]})
    cloud_call(client, "ModifyInstancesAttribute", {"InstanceIds": [instance_id], "DisableApiTermination": False})
    cloud_call(client, "ModifyInstancesAttribute", {"InstanceIds": [instance_id], "InstanceName": "renamed"})

    def put_back() -> bool:
        now = described(client, instance_id)
        return bool(
            now["SecurityGroupIds"] == [WEB_SG] and now["DisableApiTermination"] and now["InstanceName"] == "web"
        )

    wait_for(put_back, 60, "security groups, protection and name put back")
    assert emulator.request_count("ModifyInstancesAttribute") >= modifies + 6
    objects.wait_condition("instances", "web", "SpecApplied", "True")

    # Spec edits the cloud can apply in place are applied.
    objects.patch("instances", "web", {"spec": {"instanceName": "web-renamed"}})
    objects.patch("instances", "web", {"spec": {"network": {"securityGroupIds": [ADMIN_SG, WEB_SG]}}})
    wait_for(
        lambda: (
            described(client, instance_id)["SecurityGroupIds"] == [ADMIN_SG, WEB_SG]
            and described(client, instance_id)["InstanceName"] == "web-renamed"
        ),
        60,
        "the new security groups and name",
    )
    applied = status(objects.wait_condition("instances", "web", "SpecApplied", "True"))
    assert applied["securityGroupIds"] == [ADMIN_SG, WEB_SG]

    # A host name and a larger system disk wait for a reinstall, which reimagePolicy Never never does: said so.
    resets = emulator.request_count("ResetInstance")
    objects.patch("instances", "web", {"spec": {"hostName": "web-2", "systemDisk": {"sizeGB": 80}}})
    waiting = objects.wait_condition("instances", "web", "SpecApplied", "False", reason="NeedsReinstall")
    message = (objects.condition("instances", "web", "SpecApplied") or {})["message"]
    assert "spec.hostName" in message and "spec.systemDisk.sizeGB is 80" in message
    assert (objects.condition("instances", "web", "Ready") or {}).get("status") == "True"
    assert emulator.request_count("ResetInstance") == resets and status(waiting)["phase"] == "Running"

    # Stopped as stopMode says.
    objects.patch("instances", "web", {"spec": {"runState": "Stopped"}})
    wait_for(lambda: described(client, instance_id)["InstanceState"] == "STOPPED", 60, "the instance to stop")
    assert described(client, instance_id)["StopChargingMode"] == "STOP_CHARGING"

    # An immutable field is refused at admission, naming it.
    with pytest.raises(kubernetes.client.ApiException) as refused:
        objects.patch("instances", "web", {"spec": {"dataDisks": [{"sizeGB": 300}]}})
    assert refused.value.status == 422
    assert "spec.dataDisks is immutable" in str(refused.value.body)

    # Termination protection holds the deletion until the spec lifts it.
    objects.delete("instances", "web")
    objects.wait_condition("instances", "web", "Reconciling", "True", reason="TerminationProtected", timeout=60)
    assert described(client, instance_id)["InstanceState"] == "STOPPED"
    objects.patch("instances", "web", {"spec": {"disableApiTermination": False}})
    objects.wait_gone("instances", "web")
    assert instance(client, instance_id) is None

    # The user data never shows: not in the --verbose log, the Events or the status.
    assert not leaks(operator.log())
    events = objects.core.list_namespaced_event(namespace).items
    assert events and not any(leaks(f"{event.reason} {event.message}") for event in events)
    assert not leaks(json.dumps(ready)) and not leaks(json.dumps(applied))


def test_spot_and_prepaid_billing_and_user_data_from_a_config_map(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    client = sdk_client(emulator)
    objects.core.create_namespaced_config_map(namespace, kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name="web-init"), data={"user-data": USER_DATA},
    ))  # fmt: skip
    init = {"configMapRef": {"name": "web-init", "key": "user-data"}}
    objects.create("instances", instance_body(
        "spot", image_id=UBUNTU, chargeType="SPOTPAID", spot={"maxPrice": "0.5"}, userData=init,
    ))  # fmt: skip
    objects.create("instances", instance_body(
        "prepaid", image_id=UBUNTU, chargeType="PREPAID", prepaid={"period": 1, "renewFlag": "NOTIFY_AND_AUTO_RENEW"},
    ))  # fmt: skip
    spot = status(objects.wait_condition("instances", "spot"))
    prepaid = status(objects.wait_condition("instances", "prepaid"))
    assert described(client, spot["instanceId"])["InstanceChargeType"] == "SPOTPAID"
    cloud = described(client, prepaid["instanceId"])
    assert cloud["InstanceChargeType"] == "PREPAID" and cloud["RenewFlag"] == "NOTIFY_AND_AUTO_RENEW"
    # Launched in the account's default VPC and security group, reported in status.
    assert spot["vpcId"] and spot["subnetId"] and spot["securityGroupIds"]
    assert spot["vpcId"] != APP_VPC and not spot["publicIpAddresses"]
    assert not leaks(operator.log())


def test_user_data_over_16_kb_is_stalled_without_a_launch(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    objects.core.create_namespaced_secret(namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="big-init"),
        data={"user-data": base64.b64encode(MARKER.encode() * 800).decode()},
    ))  # fmt: skip
    objects.create("instances", instance_body(
        "big", image_id=UBUNTU, userData={"secretRef": {"name": "big-init", "key": "user-data"}},
    ))  # fmt: skip
    stalled = objects.wait_condition("instances", "big", "Stalled", "True", reason="UserDataTooLarge")
    message = (objects.condition("instances", "big", "Stalled") or {})["message"]
    assert "spec.userData.secretRef" in message and "16384" in message
    assert emulator.request_count("RunInstances") == 0
    assert not leaks(operator.log()) and not leaks(json.dumps(status(stalled)))


def test_launch_failed_ends_stalled_with_the_cloud_reason_and_no_hot_loop(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    client = sdk_client(emulator)
    emulator.inject_fault(action="RunInstances", count=1, state="LAUNCH_FAILED")
    objects.create("instances", instance_body("doomed", image_id=UBUNTU))
    failed = objects.wait_condition("instances", "doomed", "Stalled", "True", reason="LaunchFailed")
    instance_id = status(failed)["instanceId"]
    message = (objects.condition("instances", "doomed", "Stalled") or {})["message"]
    assert instance_id in message and described(client, instance_id)["LatestOperationErrorMsg"] in message
    assert status(failed)["cloudState"] == "LAUNCH_FAILED" and status(failed)["phase"] == "Failed"

    # Stalled is retried slowly: a few seconds later no new launch and at most a look or two.
    launches, describes = emulator.request_count("RunInstances"), emulator.request_count("DescribeInstances")
    time.sleep(6)
    assert emulator.request_count("RunInstances") == launches == 1
    assert emulator.request_count("DescribeInstances") <= describes + 2
    assert (objects.condition("instances", "doomed", "Stalled") or {}).get("status") == "True"

    objects.delete("instances", "doomed")
    objects.wait_gone("instances", "doomed")
    assert instance(client, instance_id) is None


def test_sold_out_backs_off_and_insufficient_balance_is_stalled(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    # Sold out: retried with backoff (Reconciling, never Stalled) until the stock is back.
    emulator.inject_fault(action="RunInstances", count=2, code="ResourceInsufficient.ZoneSoldOutForSpecifiedInstance")
    objects.create("instances", instance_body("patient", image_id=UBUNTU))
    objects.wait_condition("instances", "patient", "Reconciling", "True", reason="InsufficientCapacity", timeout=30)
    assert (objects.condition("instances", "patient", "Stalled") or {}).get("status") != "True"
    objects.wait_condition("instances", "patient", timeout=60)
    sold_out = emulator.request_count("RunInstances", "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance")
    assert sold_out == 2 and emulator.request_count("RunInstances") == 3

    # Insufficient balance: only the user can fix it, so Stalled, and not retried at once.
    emulator.inject_fault(action="RunInstances", count=1, code="InvalidAccount.InsufficientBalance")
    objects.create("instances", instance_body("broke", image_id=UBUNTU))
    objects.wait_condition("instances", "broke", "Stalled", "True", reason="InsufficientBalance")
    time.sleep(4)
    assert emulator.request_count("RunInstances", "InvalidAccount.InsufficientBalance") == 1
    assert emulator.request_count("RunInstances") == 4


def test_instance_set_replicas_carry_the_launch_settings_and_a_failed_launch_is_replaced(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    client = sdk_client(emulator)
    user_data_secret(objects, namespace)
    template = {
        "instanceType": "S5.MEDIUM2",
        "imageId": UBUNTU,
        "network": {"securityGroupIds": [WEB_SG]},  # a subnet would tie the set to one zone
        "dataDisks": [{"sizeGB": 100}],
        "userData": {"secretRef": {"name": "web-init", "key": "user-data"}},
    }
    # The first launch ends in LAUNCH_FAILED; its replica is made again (in the other zone).
    emulator.inject_fault(action="RunInstances", count=1, state="LAUNCH_FAILED")
    objects.create("instancesets", {"kind": "InstanceSet", "metadata": {"name": "fleet"}, "spec": {
        "region": "ap-guangzhou", "replicas": 2, "zones": ["ap-guangzhou-3", "ap-guangzhou-4"],
        "template": {"spec": template},
    }})  # fmt: skip

    def two_ready() -> list[dict[str, Any]] | None:
        listed = objects.custom.list_namespaced_custom_object(
            "cvm.operator.dev", "v1alpha1", namespace, "instances", label_selector="cvm.operator.dev/instance-set=fleet"
        )
        assert isinstance(listed, dict)
        items = [item for item in listed["items"] if not item["metadata"].get("deletionTimestamp")]
        ready = [
            item
            for item in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in status(item).get("conditions") or [])
        ]
        return ready if len(ready) == 2 else None

    replicas = wait_for(two_ready, 180, "two Ready replicas, the failed one replaced")
    assert emulator.request_count("RunInstances") >= 2  # the batch, then the replacement
    failures = [e for e in objects.core.list_namespaced_event(namespace).items if e.reason == "LaunchFailed"]
    assert failures and failures[0].involved_object.kind == "Instance"
    for replica in replicas:
        cloud = described(client, status(replica)["instanceId"])
        assert cloud["SecurityGroupIds"] == [WEB_SG] and cloud["InstanceState"] == "RUNNING"
        assert [d["DiskSize"] for d in cloud["DataDisks"]] == [100]
        assert status(replica)["securityGroupIds"] == [WEB_SG]

    # The template's security groups change in place on every replica.
    objects.patch(
        "instancesets", "fleet", {"spec": {"template": {"spec": {"network": {"securityGroupIds": [ADMIN_SG]}}}}}
    )
    ids = [status(replica)["instanceId"] for replica in replicas]
    wait_for(
        lambda: all(described(client, one)["SecurityGroupIds"] == [ADMIN_SG] for one in ids),
        60,
        "every replica in the new security group",
    )
    assert not leaks(operator.log())


def reinstall_applies(
    objects: Objects, emulator: EmulatorProcess, edit: dict[str, Any], path: tuple[str, ...], value: object
) -> None:
    """``edit`` waits for a reinstall (SpecApplied PendingReinstall); the next image change applies it, which
    DescribeInstances shows as ``value`` at ``path``."""

    def at_path(cloud: dict[str, Any]) -> object:
        found: Any = cloud
        for key in path:
            found = found[key]
        return found

    client = sdk_client(emulator)
    objects.create("instances", instance_body("web", image_id=UBUNTU, hostName="web-1", reimagePolicy="OnImageChange"))
    instance_id = status(objects.wait_condition("instances", "web"))["instanceId"]
    before = described(client, instance_id)

    objects.patch("instances", "web", {"spec": edit})
    objects.wait_condition("instances", "web", "SpecApplied", "False", reason="PendingReinstall")
    resets = emulator.request_count("ResetInstance")
    assert at_path(described(client, instance_id)) == at_path(before) != value

    objects.patch("instances", "web", {"spec": {"imageId": "img-22trbn9x"}})
    wait_for(lambda: described(client, instance_id)["ImageId"] == "img-22trbn9x", 60, "the reinstall")
    objects.wait_condition("instances", "web", "SpecApplied", "True", timeout=30)
    assert at_path(described(client, instance_id)) == value
    assert emulator.request_count("ResetInstance") == resets + 1


def test_a_larger_system_disk_waits_for_the_next_reinstall_and_is_applied_by_it(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    reinstall_applies(objects, emulator, {"systemDisk": {"sizeGB": 80}}, ("SystemDisk", "DiskSize"), 80)


def test_a_host_name_waits_for_the_next_reinstall_and_is_applied_by_it(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    reinstall_applies(objects, emulator, {"hostName": "web-2"}, ("HostName",), "web-2")


def test_the_cloud_init_sample_becomes_ready(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    sample = Path(__file__).resolve().parents[2] / "manifests/samples/instance-web-server-with-cloud-init.yaml"
    kubectl("apply", "-n", namespace, "-f", str(sample))
    ready = status(objects.wait_condition("instances", "web-3"))
    cloud = described(sdk_client(emulator), ready["instanceId"])
    assert cloud["PublicIpAddresses"] == ready["publicIpAddresses"] and ready["publicIpAddresses"]
    assert [d["DiskSize"] for d in cloud["DataDisks"]] == [100] and len(ready["dataDisks"]) == 1
    assert "nginx" not in operator.log()
