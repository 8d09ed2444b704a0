"""The cloud layer against a real cvm-emulator subprocess, through the official async SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

from cvm_operator.cloud import (
    CloudError,
    CloudImage,
    CloudInstance,
    CloudPool,
    Credentials,
    CvmApi,
    ErrorClass,
    LoginSettings,
    SystemDisk,
)
from cvm_operator.cloud.api import without_nulls
from tests.support.emulator import DiskFileServer, EmulatorProcess, async_sdk_client, write_qcow2

pytestmark = pytest.mark.emulator

REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
UBUNTU = "img-487zeit5"
CENTOS = "img-9qabwvbn"
MARKET = "img-mkt0wp01"
POLL_TIMEOUT = 30.0

T = TypeVar("T")


def credentials(emulator: EmulatorProcess, account: int = 0) -> Credentials:
    acc = emulator.accounts[account]
    return Credentials(acc.secret_id, acc.secret_key)


@pytest.fixture
async def pool(emulator: EmulatorProcess) -> AsyncIterator[CloudPool]:
    async with CloudPool(emulator.endpoint) as cloud_pool:
        yield cloud_pool


@pytest.fixture
def api(pool: CloudPool, emulator: EmulatorProcess) -> CvmApi:
    return pool.api(credentials(emulator), REGION)


async def poll(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Poll until ``done``; the timeout only guards against a hang."""
    async with asyncio.timeout(POLL_TIMEOUT):
        while True:
            value = await fetch()
            if done(value):
                return value
            await asyncio.sleep(0.1)
    raise AssertionError(f"unreachable: {what}")


async def running_instance(api: CvmApi, token: str, name: str = "builder") -> CloudInstance:
    instance_id = await api.run_instances(
        client_token=token,
        zone=ZONE,
        image_id=UBUNTU,
        instance_type="S5.MEDIUM2",
        name=name,
        host_name=name,
        system_disk=SystemDisk("CLOUD_PREMIUM", 50),
        login=LoginSettings(password="Passw0rd-Test"),
        tags={"owner": "cloud-tests"},
    )
    instance = await poll(
        lambda: api.describe_instance(instance_id),
        lambda i: i is not None and i.state == "RUNNING",
        "instance RUNNING",
    )
    assert instance is not None
    return instance


def calls(action: str, result: str) -> float:
    value = REGISTRY.get_sample_value("cvm_operator_cloud_api_calls_total", {"action": action, "result": result})
    return value or 0.0


# ---------------------------------------------------------------------------- batching


async def test_concurrent_lookups_make_one_describe_images_call(api: CvmApi, emulator: EmulatorProcess) -> None:
    await api.describe_image(UBUNTU)  # warm the connection
    before = emulator.request_count("DescribeImages")
    unknown = [f"img-zz{i:06d}" for i in range(37)]
    ids = [UBUNTU, CENTOS, MARKET, *unknown]
    results = await asyncio.gather(*(api.describe_image(image_id) for image_id in ids))
    assert emulator.request_count("DescribeImages") - before == 1
    by_id = dict(zip(ids, results, strict=True))
    ubuntu = by_id[UBUNTU]
    assert isinstance(ubuntu, CloudImage)
    assert ubuntu.image_id == UBUNTU and ubuntu.type == "PUBLIC_IMAGE" and ubuntu.state == "NORMAL"
    assert ubuntu.platform == "Ubuntu" and ubuntu.os_name.startswith("Ubuntu")
    centos, market = by_id[CENTOS], by_id[MARKET]
    assert centos is not None and centos.image_id == CENTOS
    assert market is not None and market.type == "PUBLIC_IMAGE" and market.is_marketplace
    assert not ubuntu.is_marketplace
    assert all(by_id[image_id] is None for image_id in unknown)


async def test_more_than_100_ids_are_split(api: CvmApi, emulator: EmulatorProcess) -> None:
    before = emulator.request_count("DescribeImages")
    ids = [UBUNTU, *(f"img-yy{i:06d}" for i in range(249))]
    results = await asyncio.gather(*(api.describe_image(image_id) for image_id in ids))
    assert emulator.request_count("DescribeImages") - before == 3
    assert results[0] is not None and results[0].image_id == UBUNTU
    assert results[1:] == [None] * 249


async def test_malformed_id_fails_only_its_own_caller(api: CvmApi) -> None:
    good, bad = await asyncio.gather(api.describe_image(UBUNTU), api.describe_image("bogus"), return_exceptions=True)
    assert isinstance(good, CloudImage) and good.image_id == UBUNTU
    assert isinstance(bad, CloudError)
    assert bad.code == "InvalidImageId.Malformed" and bad.error_class is ErrorClass.USER


async def test_instance_lookups_are_batched(api: CvmApi, emulator: EmulatorProcess) -> None:
    first = await api.run_instances(client_token="batch-a", zone=ZONE, image_id=UBUNTU, instance_type="S5.SMALL1")
    second = await api.run_instances(client_token="batch-b", zone=ZONE, image_id=UBUNTU, instance_type="S5.SMALL1")
    before = emulator.request_count("DescribeInstances")
    ids = [first, second, "ins-zz000001", "ins-zz000002"]
    found = await api.describe_instances(ids)
    results = await asyncio.gather(*(api.describe_instance(instance_id) for instance_id in ids))
    assert emulator.request_count("DescribeInstances") - before == 2
    first_found = found[first]
    assert first_found is not None and first_found.instance_id == first
    assert found["ins-zz000001"] is None
    assert [r.instance_id if r else None for r in results] == [first, second, None, None]


# ---------------------------------------------------------------------------- errors


async def test_run_instances_in_a_bad_zone_is_a_user_error(api: CvmApi) -> None:
    codes = ("InvalidParameterValue.ZoneNotSupported", "InvalidZone.MismatchRegion")
    before = {code: calls("RunInstances", code) for code in codes}
    with pytest.raises(CloudError) as info:
        await api.run_instances(
            client_token="bad-zone", zone="ap-nowhere-1", image_id=UBUNTU, instance_type="S5.SMALL1"
        )
    error = info.value
    assert error.action == "RunInstances"
    assert error.error_class is ErrorClass.USER
    assert error.code in codes
    assert error.reason == "InvalidZone"
    assert error.request_id
    assert calls("RunInstances", error.code) == before[error.code] + 1


async def test_unknown_instance_operation_is_not_found(api: CvmApi) -> None:
    with pytest.raises(CloudError) as info:
        await api.start_instances(["ins-zz999999"])
    assert info.value.code == "InvalidInstanceId.NotFound"
    assert info.value.not_found and info.value.reason == "NotFound"


async def test_wrong_secret_key_is_auth_failure(pool: CloudPool, emulator: EmulatorProcess) -> None:
    api = pool.api(Credentials(emulator.accounts[0].secret_id, "not-the-key"), REGION)
    with pytest.raises(CloudError) as info:
        await api.describe_zones()
    assert info.value.code.startswith("AuthFailure")
    assert info.value.error_class is ErrorClass.USER and info.value.reason == "AuthFailure"
    # An error about the whole call is not retried id by id.
    before = emulator.request_count("DescribeImages")
    results = await asyncio.gather(api.describe_image(UBUNTU), api.describe_image(CENTOS), return_exceptions=True)
    assert all(isinstance(r, CloudError) and r.reason == "AuthFailure" for r in results)
    assert emulator.request_count("DescribeImages") - before == 1


async def test_unreachable_endpoint_is_transient(emulator: EmulatorProcess) -> None:
    from tests.support.emulator import free_port

    async with CloudPool(f"http://127.0.0.1:{free_port()}", request_timeout=5) as dead_pool:
        api = dead_pool.api(credentials(emulator), REGION)
        before = calls("DescribeZones", "ClientNetworkError")
        with pytest.raises(CloudError) as info:
            await api.describe_zones()
    assert info.value.code == "ClientNetworkError"
    assert info.value.transient and info.value.reason == "NetworkError"
    assert calls("DescribeZones", "ClientNetworkError") == before + 1


# ---------------------------------------------------------------------------- instances


async def test_same_client_token_returns_the_same_instance(api: CvmApi) -> None:
    kwargs: dict[str, Any] = {
        "client_token": "0b7e8a51-6b1c-4b8e-9d7e-uid-once",
        "zone": ZONE,
        "image_id": UBUNTU,
        "instance_type": "S5.SMALL2",
        "name": "idempotent",
        "tags": {"cvm.operator.dev/uid": "uid-once"},
    }
    first = await api.run_instances(**kwargs)
    second = await api.run_instances(**kwargs)
    assert first == second
    found = await api.find_instances({"instance-name": ["idempotent"]})
    assert [instance.instance_id for instance in found] == [first]
    tagged = await api.find_instances({"tag:cvm.operator.dev/uid": ["uid-once"]})
    assert [instance.instance_id for instance in tagged] == [first]


async def test_instance_lifecycle(api: CvmApi) -> None:
    instance = await running_instance(api, "lifecycle")
    assert instance.zone == ZONE and instance.instance_type == "S5.MEDIUM2"
    assert instance.image_id == UBUNTU and instance.private_ips
    assert instance.tags == {"owner": "cloud-tests"}
    iid = instance.instance_id

    await api.stop_instances([iid])
    await poll(lambda: api.describe_instance(iid), lambda i: i is not None and i.state == "STOPPED", "STOPPED")
    await api.start_instances([iid])
    await poll(lambda: api.describe_instance(iid), lambda i: i is not None and i.state == "RUNNING", "RUNNING")

    await api.reset_instance(iid, image_id=CENTOS, login=LoginSettings(password="An0ther-Pass"), host_name="reset")
    reset = await poll(
        lambda: api.describe_instance(iid),
        lambda i: i is not None and i.latest_operation == "ResetInstance" and i.latest_operation_state == "SUCCESS",
        "reset done",
    )
    assert reset is not None and reset.image_id == CENTOS

    await api.terminate_instances([iid])
    await poll(lambda: api.describe_instance(iid), lambda i: i is None, "terminated")


# ---------------------------------------------------------------------------- images


async def test_create_image_flow_share_copy_delete(pool: CloudPool, api: CvmApi, emulator: EmulatorProcess) -> None:
    instance = await running_instance(api, "image-flow")
    tags = {"cvm.operator.dev/uid": "image-uid-1"}
    image_id = await api.create_image(
        "golden-v1", instance.instance_id, description="from tests", family="golden", tags=tags
    )
    image = await poll(
        lambda: api.describe_image(image_id), lambda i: i is not None and i.state != "CREATING", "image created"
    )
    assert image is not None
    assert image.state == "NORMAL"
    assert (image.name, image.description, image.family) == ("golden-v1", "from tests", "golden")
    assert image.type == "PRIVATE_IMAGE" and image.source == "CREATE_IMAGE"
    assert image.creator == emulator.accounts[0].account_id
    assert image.tags == tags

    from_custom = await api.run_instances(
        client_token="from-custom",
        zone=ZONE,
        image_id=image_id,
        instance_type="S5.SMALL1",
        login=LoginSettings(keep_image_login=True),
    )
    launched = await api.describe_instance(from_custom)
    assert launched is not None and launched.image_id == image_id

    # A retry after a crash looks the image up by its tag instead of creating a second one.
    by_tag = await api.find_images({"tag:cvm.operator.dev/uid": ["image-uid-1"]})
    assert [found.image_id for found in by_tag] == [image_id]

    with pytest.raises(CloudError) as duplicate:
        await api.create_image("golden-v1", instance.instance_id)
    assert duplicate.value.code == "InvalidImageName.Duplicate"
    assert duplicate.value.error_class is ErrorClass.USER and duplicate.value.reason == "DuplicateName"

    await api.modify_image_attribute(image_id, name="golden-v2", description="renamed", deprecated=True)
    renamed = await api.describe_image(image_id)
    assert renamed is not None and (renamed.name, renamed.description, renamed.deprecated) == (
        "golden-v2",
        "renamed",
        True,
    )

    other_account = emulator.accounts[1].account_id
    await api.share_image(image_id, [other_account])
    assert await api.describe_share_permission(image_id) == [other_account]
    recipient = pool.api(credentials(emulator, 1), REGION)
    shared = await recipient.describe_image(image_id)
    assert shared is not None and shared.type == "SHARED_IMAGE"

    with pytest.raises(CloudError) as in_shared:
        await api.delete_images([image_id])
    assert in_shared.value.code == "InvalidImageId.InShared" and in_shared.value.reason == "ImageShared"

    await api.unshare_image(image_id, [other_account])
    assert await api.describe_share_permission(image_id) == []
    assert await recipient.describe_image(image_id) is None

    copies = await api.sync_images(image_id, ["ap-shanghai"], name="golden-copy")
    assert [copy.region for copy in copies] == ["ap-shanghai"]
    copy_id = copies[0].image_id
    assert copy_id != image_id
    shanghai = pool.api(credentials(emulator), "ap-shanghai")
    copy = await poll(
        lambda: shanghai.describe_image(copy_id), lambda i: i is not None and i.state == "NORMAL", "copy synced"
    )
    assert copy is not None and copy.name == "golden-copy"

    await api.delete_images([image_id])
    assert await api.describe_image(image_id) is None
    await shanghai.delete_images([copy_id])
    assert await shanghai.describe_image(copy_id) is None


async def test_import_image(api: CvmApi, disk_server: DiskFileServer) -> None:
    write_qcow2(disk_server.directory / "disk.qcow2")
    image_id = await api.import_image(
        "imported-1",
        disk_server.url("disk.qcow2"),
        os_type="CentOS",
        os_version="7",
        architecture="x86_64",
        description="imported in tests",
        boot_mode="Legacy BIOS",
        license_type="TencentCloud",
        tags={"k": "v"},
    )
    image = await poll(
        lambda: api.describe_image(image_id), lambda i: i is not None and i.state != "IMPORTING", "imported"
    )
    assert image is not None and image.state == "NORMAL"
    assert image.source == "EXTERNAL_IMPORT" and image.tags == {"k": "v"}

    missing = await api.import_image(
        "imported-404", disk_server.url("absent.qcow2"), os_type="CentOS", os_version="7", architecture="x86_64"
    )
    failed = await poll(
        lambda: api.describe_image(missing), lambda i: i is not None and i.state != "IMPORTING", "import failed"
    )
    assert failed is not None and failed.state == "IMPORTFAILED"


async def test_find_images_pages_through_everything(api: CvmApi, emulator: EmulatorProcess) -> None:
    public = await api.find_images({"image-type": ["PUBLIC_IMAGE"]})
    assert {UBUNTU, CENTOS} <= {image.image_id for image in public}
    assert all(image.type == "PUBLIC_IMAGE" for image in public)
    # Marketplace images are listed with the public ones; the retired MARKET_IMAGE type matches nothing.
    assert MARKET in {image.image_id for image in public if image.is_marketplace}
    assert UBUNTU not in {image.image_id for image in public if image.is_marketplace}
    assert await api.find_images({"image-type": ["MARKET_IMAGE"]}) == []
    ubuntu = await api.find_images({"platform": ["Ubuntu"], "image-type": ["PUBLIC_IMAGE"]})
    assert ubuntu and all(image.platform == "Ubuntu" for image in ubuntu)


async def test_quota_regions_zones(api: CvmApi) -> None:
    assert await api.describe_image_quota() == 500
    regions = {region.region for region in await api.describe_regions()}
    assert {"ap-guangzhou", "ap-shanghai"} <= regions
    zones = await api.describe_zones()
    assert ZONE in {zone.zone for zone in zones}
    assert all(zone.zone.startswith(REGION) for zone in zones)


# ---------------------------------------------------------------------------- pool, pacing, metrics


async def test_pool_caches_one_client_per_credentials_and_region(pool: CloudPool, emulator: EmulatorProcess) -> None:
    creds = credentials(emulator)
    assert pool.api(creds, REGION) is pool.api(Credentials(creds.secret_id, creds.secret_key), REGION)
    assert pool.api(creds, "ap-shanghai") is not pool.api(creds, REGION)
    assert pool.api(credentials(emulator, 1), REGION) is not pool.api(creds, REGION)
    await pool.close()
    with pytest.raises(RuntimeError):
        pool.api(creds, REGION)


async def test_every_call_is_counted(api: CvmApi) -> None:
    before = calls("DescribeZones", "OK")
    await api.describe_zones()
    await api.describe_zones()
    assert calls("DescribeZones", "OK") == before + 2


async def test_parameters_reach_the_api_as_given(api: CvmApi) -> None:
    # Nothing is dropped on the way: a parameter the API does not know reaches it, and it refuses it.
    with pytest.raises(CloudError) as refused:
        await api.call("DescribeImages", {"ImageIds": [UBUNTU], "ImageIdz": [UBUNTU]})
    assert refused.value.code == "UnknownParameter"
    assert "ImageIdz" in refused.value.message


def test_nulls_are_left_out_at_every_depth() -> None:
    # A null means absent, as it did to the SDK's models, in requests and in responses alike.
    value = {"A": None, "B": [{"C": None, "D": 1}, []], "E": {"F": None}, "G": 0, "H": "", "I": False}
    assert without_nulls(value) == {"B": [{"D": 1}, []], "E": {}, "G": 0, "H": "", "I": False}


async def test_pacing_avoids_server_throttling(emulator_factory: Callable[..., EmulatorProcess]) -> None:
    throttled_emulator = emulator_factory(extra_args=["--enforce-rate-limits"], name="throttled")
    # Without pacing, a burst beyond the documented limit is refused.
    async with async_sdk_client(throttled_emulator, account=2) as raw:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.cvm.v20170312 import models

        outcomes = await asyncio.gather(
            *(raw.DescribeZones(models.DescribeZonesRequest()) for _ in range(40)), return_exceptions=True
        )
    refused = [o for o in outcomes if isinstance(o, TencentCloudSDKException)]
    assert refused and all(o.get_code() == "RequestLimitExceeded" for o in refused)

    async with CloudPool(throttled_emulator.endpoint) as paced_pool:
        paced = paced_pool.api(credentials(throttled_emulator), REGION)
        before = throttled_emulator.request_count("DescribeZones", "RequestLimitExceeded")
        results = await asyncio.gather(*(paced.describe_zones() for _ in range(40)))
    assert all(results)
    assert throttled_emulator.request_count("DescribeZones", "RequestLimitExceeded") == before
