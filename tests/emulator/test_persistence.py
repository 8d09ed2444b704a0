"""Restarts (state and in-flight operations survive) and concurrent clients (no lost updates)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.emulator import BUILTIN_ACCOUNTS, DiskFileServer, async_sdk_client, sdk_client, write_qcow2

from .helpers import (
    UBUNTU,
    ZONE,
    acall,
    call,
    custom_image,
    image,
    instance,
    launch,
    unique,
    wait_image_state,
    wait_instance_state,
    wait_until,
)


def test_restart_in_the_middle_of_an_import(emulator_factory: Any, disk_server: DiskFileServer) -> None:
    write_qcow2(disk_server.directory / "slow.qcow2", virtual_size=4 * 2**30)
    disk_server.delay_seconds = 60.0  # the first fetch hangs until the emulator goes away
    process = emulator_factory()
    client = sdk_client(process)
    image_id = call(
        client,
        "ImportImage",
        Architecture="x86_64",
        OsType="Ubuntu",
        OsVersion="22",
        ImageUrl=disk_server.url("slow.qcow2"),
        ImageName="slow-import",
    ).ImageId
    wait_until(lambda: len(disk_server.requests) == 1)
    assert image(client, image_id).ImageState == "IMPORTING"
    disk_server.delay_seconds = 0.0
    process.restart(kill=True)
    # The emulator fetches again after the restart and finishes the import.
    done = wait_image_state(client, image_id, "NORMAL", "IMPORTFAILED")
    assert (done.ImageState, done.ImageSize, done.ImageName) == ("NORMAL", 4, "slow-import")
    assert disk_server.requests == ["/slow.qcow2", "/slow.qcow2"]


def test_restart_in_the_middle_of_a_copy_keeps_state(emulator_factory: Any) -> None:
    process = emulator_factory()
    owner = sdk_client(process)
    instance_id = launch(owner)
    image_id = custom_image(owner, instance_id, name="golden")
    call(owner, "ModifyImageSharePermission", ImageId=image_id, AccountIds=["200000000002"], Permission="SHARE")
    # Slow the clock so the copy (180 s realistic) takes several seconds, then copy.
    process.clock = "0.02"
    process.restart()
    copy_id = (
        call(owner, "SyncImages", ImageIds=[image_id], DestinationRegions=["ap-shanghai"], ImageSetRequired=True)
        .ImageSet[0]
        .ImageId
    )
    shanghai = sdk_client(process, region="ap-shanghai")
    before = image(shanghai, copy_id)
    assert before.ImageState == "SYNCING"
    process.restart(kill=True)
    after = image(shanghai, copy_id)
    assert after.ImageState in ("SYNCING", "NORMAL")
    assert after.SyncPercent >= before.SyncPercent
    done = wait_image_state(shanghai, copy_id, "NORMAL", timeout=30)
    assert (done.SyncPercent, done.ImageName) == (100, "golden")
    # Everything else survived both restarts.
    assert instance(owner, instance_id).InstanceState == "RUNNING"
    assert image(sdk_client(process, account=1), image_id).ImageType == "SHARED_IMAGE"
    assert process.starts == 3


async def test_fifty_concurrent_clients_lose_no_updates(emulator_factory: Any) -> None:
    extra = [
        {"accountId": f"{500000000000 + n}", "secretId": f"AKIDconcurrent{n:04d}", "secretKey": f"k{n}"}
        for n in range(50)
    ]
    builtin = [
        {"accountId": a.account_id, "secretId": a.secret_id, "secretKey": a.secret_key} for a in BUILTIN_ACCOUNTS
    ]
    process = emulator_factory(config={"accounts": builtin + extra})
    owner = sdk_client(process)
    instance_id = launch(owner)
    image_id = custom_image(owner, instance_id)
    # An instance makes one image at a time: one source instance per client.
    sources = call(
        owner, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU, InstanceType="S5.MEDIUM2", InstanceCount=50
    ).InstanceIdSet
    for source in sources:
        wait_instance_state(owner, source, "RUNNING")
    clients = [async_sdk_client(process) for _ in range(50)]
    try:
        names = [unique(f"c{n}") for n in range(50)]
        created = await asyncio.gather(
            *(
                acall(c, "CreateImage", ImageName=name, InstanceId=source)
                for c, name, source in zip(clients, names, sources, strict=True)
            )
        )
        await asyncio.gather(
            *(
                acall(
                    c, "ModifyImageSharePermission", ImageId=image_id, AccountIds=[a["accountId"]], Permission="SHARE"
                )
                for c, a in zip(clients, extra, strict=True)
            )
        )
        token = unique("token")
        launched = await asyncio.gather(
            *(acall(c, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU, ClientToken=token) for c in clients)
        )
        named = await asyncio.gather(
            *(
                acall(c, "RunInstances", Placement={"Zone": ZONE}, ImageId=UBUNTU, InstanceName=f"parallel-{n}")
                for n, c in enumerate(clients)
            )
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert len({r.ImageId for r in created}) == 50
    private = call(owner, "DescribeImages", Filters=[{"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}])
    assert private.TotalCount == 51
    shares = call(owner, "DescribeImageSharePermission", ImageId=image_id).SharePermissionSet
    assert {s.AccountId for s in shares} == {a["accountId"] for a in extra}
    assert len({tuple(r.InstanceIdSet) for r in launched}) == 1
    all_instances = call(owner, "DescribeInstances", Limit=100)
    assert all_instances.TotalCount == 1 + 50 + 1 + 50
    assert len({r.InstanceIdSet[0] for r in named}) == 50
    assert process.request_count(code="OK") >= 200
