"""Failures on demand (the admin endpoint and configured rates) and what CreateImage does to its instance."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.support.emulator import EmulatorProcess, sdk_client

from .helpers import (
    UBUNTU,
    ZONE,
    call,
    custom_image,
    expect_error,
    instance,
    launch,
    unique,
    wait_image_state,
    wait_instance_state,
)

SOLD_OUT = "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance"


def run(client: Any, zone: str = ZONE, **params: Any) -> list[str]:
    ids: list[str] = call(
        client, "RunInstances", Placement={"Zone": zone}, ImageId=UBUNTU, InstanceType="S5.MEDIUM2", **params
    ).InstanceIdSet
    return ids


def post_fault(emulator: EmulatorProcess, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{emulator.endpoint}/_emulator/faults",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def test_a_refusal_fails_the_next_calls_only(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    emulator.inject_fault("RunInstances", count=2, code=SOLD_OUT)
    for _ in range(2):
        expect_error(SOLD_OUT, client, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU)
    assert len(run(client)) == 1
    assert emulator.request_count("RunInstances", SOLD_OUT) == 2
    # Any action, any documented code: a balance too low to pay for the image's snapshot.
    source = launch(client)
    emulator.inject_fault("CreateImage", code="InvalidAccount.InsufficientBalance")
    expect_error("InvalidAccount.InsufficientBalance", client, "CreateImage", ImageName=unique("i"), InstanceId=source)
    # Malformed requests are refused before the fault is spent.
    emulator.inject_fault("RunInstances", code=SOLD_OUT)
    expect_error("MissingParameter", client, "RunInstances", ImageId=UBUNTU)
    expect_error(SOLD_OUT, client, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU)


def test_a_sold_out_zone_refuses_only_launches_there(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    emulator.inject_fault("RunInstances", count=2, code=SOLD_OUT, zone="ap-guangzhou-3")
    expect_error(SOLD_OUT, client, "RunInstances", Placement={"Zone": "ap-guangzhou-3"}, ImageId=UBUNTU)
    assert len(run(client, zone="ap-guangzhou-4")) == 1  # the retry elsewhere succeeds
    expect_error(SOLD_OUT, client, "RunInstances", Placement={"Zone": "ap-guangzhou-3"}, ImageId=UBUNTU)
    assert len(run(client, zone="ap-guangzhou-3")) == 1


def test_launch_failed_instances(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    emulator.inject_fault("RunInstances", count=1, state="LAUNCH_FAILED")
    first, second = run(client, InstanceCount=2)
    failed = wait_instance_state(client, first, "LAUNCH_FAILED")
    assert (failed.LatestOperation, failed.LatestOperationState) == ("RunInstances", "FAILED")
    assert failed.LatestOperationErrorMsg
    assert wait_instance_state(client, second, "RUNNING").LatestOperationState == "SUCCESS"
    expect_error("UnsupportedOperation.InstanceStateLaunchFailed", client, "StartInstances", InstanceIds=[first])
    call(client, "TerminateInstances", InstanceIds=[first])
    # The fault is spent: the next launch runs.
    wait_instance_state(client, run(client)[0], "RUNNING")


def test_failed_images_copies_and_imports(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    source = launch(client)
    emulator.inject_fault("CreateImage", state="CREATEFAILED")
    failed_id = call(client, "CreateImage", ImageName=unique("bad"), InstanceId=source).ImageId
    assert wait_image_state(client, failed_id, "NORMAL", "CREATEFAILED").ImageState == "CREATEFAILED"
    ins = instance(client, source)
    assert (ins.LatestOperation, ins.LatestOperationState, ins.InstanceState) == ("CreateImage", "FAILED", "RUNNING")
    good = custom_image(client, instance_id=source)
    emulator.inject_fault("SyncImages", state="CREATEFAILED")
    copies = call(
        client, "SyncImages", ImageIds=[good], DestinationRegions=["ap-shanghai", "ap-nanjing"], ImageSetRequired=True
    ).ImageSet
    states = {
        c.Region: wait_image_state(
            sdk_client(emulator, region=c.Region), c.ImageId, "NORMAL", "CREATEFAILED"
        ).ImageState
        for c in copies
    }
    assert states == {"ap-shanghai": "CREATEFAILED", "ap-nanjing": "NORMAL"}
    emulator.inject_fault("ImportImage", state="IMPORTFAILED")
    imported = call(
        client,
        "ImportImage",
        Architecture="x86_64",
        OsType="CentOS",
        OsVersion="7",
        ImageUrl="https://disks-1250000000.cos.ap-guangzhou.myqcloud.com/none.qcow2",
        ImageName=unique("imp"),
    ).ImageId
    assert wait_image_state(client, imported, "NORMAL", "IMPORTFAILED").ImageState == "IMPORTFAILED"


def test_fault_endpoint(emulator: EmulatorProcess) -> None:
    status, body = post_fault(emulator, {"action": "RunInstances", "count": 3, "code": SOLD_OUT, "zone": ZONE})
    assert status == 200 and body["faults"] == [{"action": "RunInstances", "count": 3, "code": SOLD_OUT, "zone": ZONE}]
    for bad in (
        {"action": "NoSuchAction", "code": SOLD_OUT},
        {"action": "RunInstances"},
        {"action": "RunInstances", "code": SOLD_OUT, "state": "LAUNCH_FAILED"},
        {"action": "RunInstances", "state": "CREATEFAILED"},
        {"action": "CreateImage", "code": SOLD_OUT, "zone": ZONE},
        {"action": "RunInstances", "code": SOLD_OUT, "count": 0},
        {"action": "RunInstances", "code": SOLD_OUT, "colour": "red"},
        ["RunInstances"],
    ):
        assert post_fault(emulator, bad)[0] == 400, bad
    emulator.clear_faults()
    with urllib.request.urlopen(f"{emulator.endpoint}/_emulator/faults", timeout=5) as response:
        assert json.loads(response.read()) == {"faults": []}
    assert len(run(sdk_client(emulator))) == 1


def test_configured_fault_rates(emulator_factory: Any) -> None:
    process = emulator_factory(
        config={
            "faultRates": {
                "StartInstances": {"rate": 1.0, "code": "InvalidAccount.InsufficientBalance"},
                "RunInstances": {"rate": 1.0, "state": "LAUNCH_FAILED"},
            }
        }
    )
    client = sdk_client(process)
    (instance_id,) = run(client)
    assert wait_instance_state(client, instance_id, "LAUNCH_FAILED", "RUNNING").InstanceState == "LAUNCH_FAILED"
    expect_error("InvalidAccount.InsufficientBalance", client, "StartInstances", InstanceIds=[instance_id])


@pytest.mark.parametrize(
    "rates", [{"RunInstances": {"rate": 2, "code": SOLD_OUT}}, {"RunInstances": {"rate": 0.5}}, ["RunInstances"]]
)
def test_bad_fault_rates_stop_the_emulator_at_start(emulator_factory: Any, rates: Any) -> None:
    with pytest.raises(RuntimeError, match="faultRates"):
        emulator_factory(config={"faultRates": rates})


# ---------------------------------------------------------------- CreateImage and its instance


def test_create_image_is_the_instance_operation_until_the_image_is_made(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    instance_id = launch(client)
    image_id = call(client, "CreateImage", ImageName=unique("img"), InstanceId=instance_id).ImageId
    busy = instance(client, instance_id)
    assert (busy.InstanceState, busy.LatestOperation, busy.LatestOperationState) == (
        "RUNNING",
        "CreateImage",
        "OPERATING",
    )
    for action, params in (
        ("StopInstances", {"InstanceIds": [instance_id]}),
        ("RebootInstances", {"InstanceIds": [instance_id]}),
        ("ResetInstance", {"InstanceId": instance_id}),
        ("TerminateInstances", {"InstanceIds": [instance_id]}),
        ("CreateImage", {"ImageName": unique("again"), "InstanceId": instance_id}),
    ):
        expect_error("OperationDenied.InstanceOperationInProgress", client, action, **params)
    wait_image_state(client, image_id, "NORMAL")
    done = instance(client, instance_id)
    assert (done.InstanceState, done.LatestOperation, done.LatestOperationState) == (
        "RUNNING",
        "CreateImage",
        "SUCCESS",
    )
    call(client, "StopInstances", InstanceIds=[instance_id])
    wait_instance_state(client, instance_id, "STOPPED")
    # A stopped instance makes images too, and cannot be started meanwhile.
    stopped_image = call(client, "CreateImage", ImageName=unique("img"), InstanceId=instance_id).ImageId
    expect_error("OperationDenied.InstanceOperationInProgress", client, "StartInstances", InstanceIds=[instance_id])
    wait_image_state(client, stopped_image, "NORMAL")
    assert instance(client, instance_id).InstanceState == "STOPPED"


def test_force_poweroff_stops_a_running_instance_first(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    instance_id = launch(client)
    image_id = call(
        client, "CreateImage", ImageName=unique("img"), InstanceId=instance_id, ForcePoweroff="true"
    ).ImageId
    assert instance(client, instance_id).InstanceState == "STOPPING"
    wait_image_state(client, image_id, "NORMAL")
    stopped = instance(client, instance_id)
    assert (stopped.InstanceState, stopped.LatestOperationState) == ("STOPPED", "SUCCESS")
    assert stopped.StopChargingMode == "KEEP_CHARGING"


def test_no_charge_shutdown_instances_make_no_images(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    instance_id = launch(client)
    call(client, "StopInstances", InstanceIds=[instance_id], StoppedMode="STOP_CHARGING")
    wait_instance_state(client, instance_id, "STOPPED")
    expect_error(
        "UnsupportedOperation.StoppedModeStopCharging",
        client,
        "CreateImage",
        ImageName=unique("img"),
        InstanceId=instance_id,
    )
