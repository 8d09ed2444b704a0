"""The Tag API layer: pure helpers, error classification of tag codes, and calls against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from cvm_operator.cloud import (
    ACTION_RATE_LIMITS,
    CloudError,
    CloudPool,
    Credentials,
    ErrorClass,
    TagApi,
    classify,
    reason_for,
    resource_name,
)
from cvm_operator.cloud.tags import GLOBAL_SCOPE, TagChange, mapping_tags, plan_tag_changes
from tests.support.emulator import EmulatorProcess

REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
UBUNTU = "img-487zeit5"


# ---------------------------------------------------------------- pure parts


def test_resource_name_is_six_segments() -> None:
    name = resource_name("ap-guangzhou", "100000000001", "image", "img-abcdefgh")
    assert name == "qcs::cvm:ap-guangzhou:uin/100000000001:image/img-abcdefgh"
    assert len(name.split(":")) == 6
    assert resource_name("ap-shanghai", "2", "instance", "ins-12345678").endswith(":uin/2:instance/ins-12345678")
    for bad in (
        ("", "1", "image", "img-1"),
        ("ap-guangzhou", "tencent", "image", "img-1"),
        ("ap-guangzhou", "1", "disk", "disk-1"),
        ("ap-guangzhou", "1", "image", ""),
        ("ap:guangzhou", "1", "image", "img-1"),
        ("ap-guangzhou", "1", "image", "img/1"),
    ):
        with pytest.raises(ValueError):
            resource_name(*bad)


def test_plan_tag_changes_one_call_for_up_to_ten_of_each() -> None:
    assert plan_tag_changes({}, []) == []
    (only,) = plan_tag_changes({"b": "2", "a": "1"}, ["z", "y", "z"])
    assert only == TagChange((("a", "1"), ("b", "2")), ("y", "z"))
    assert only.to_api("res") == {
        "Resource": "res",
        "ReplaceTags": [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}],
        "DeleteTags": [{"TagKey": "y"}, {"TagKey": "z"}],
    }
    assert "DeleteTags" not in plan_tag_changes({"a": "1"}, [])[0].to_api("res")
    assert "ReplaceTags" not in plan_tag_changes({}, ["a"])[0].to_api("res")
    ten = {f"k{i:02}": "v" for i in range(10)}
    assert len(plan_tag_changes(ten, [f"d{i}" for i in range(10)])) == 1
    calls = plan_tag_changes({**ten, "k10": "v"}, ["gone"])
    assert [len(c.replace) for c in calls] == [10, 1] and [c.delete for c in calls] == [("gone",), ()]
    with pytest.raises(ValueError):
        plan_tag_changes({"a": "1"}, ["a"])


def test_mapping_tags_reads_get_resources_output() -> None:
    data = {"ResourceTagMappingList": [{"Resource": "r1", "Tags": [{"TagKey": "a", "TagValue": "1"}]},
                                       {"Resource": "r2", "Tags": None}]}  # fmt: skip
    assert mapping_tags(data) == {"r1": {"a": "1"}, "r2": {}}
    assert mapping_tags({}) == {}


def test_tag_error_codes_are_classified() -> None:
    assert classify("FailedOperation.ResourceTagProcessing") is ErrorClass.TRANSIENT
    assert reason_for("FailedOperation.ResourceTagProcessing") == "OperationInProgress"
    assert classify("ResourceNotFound.RecordNotFound") is ErrorClass.NOT_FOUND
    assert reason_for("ResourceNotFound.RecordNotFound") == "NotFound"
    assert classify("AuthFailure.UnauthorizedOperation") is ErrorClass.USER
    assert reason_for("AuthFailure.UnauthorizedOperation") == "PermissionDenied"
    # ResourceInUse.* is usually "busy, retry"; for tags it means the input clashes.
    assert classify("ResourceInUse.TagDuplicate") is ErrorClass.USER
    assert reason_for("ResourceInUse.TagDuplicate") == "InvalidTag"
    assert classify("ResourceInUse") is ErrorClass.TRANSIENT
    assert classify("LimitExceeded.ResourceAttachedTags") is ErrorClass.USER
    assert reason_for("LimitExceeded.TagNumPerRequest") == "QuotaExceeded"
    assert reason_for("InvalidParameterValue.ReservedTagKey") == "InvalidParameter"


def test_tag_writes_have_their_documented_rate_limit() -> None:
    assert ACTION_RATE_LIMITS["ModifyResourceTags"] == 20.0


# ---------------------------------------------------------------- against the emulator


def credentials(emulator: EmulatorProcess, account: int = 0) -> Credentials:
    acc = emulator.accounts[account]
    return Credentials(acc.secret_id, acc.secret_key)


def calls_counted(action: str, code: str) -> float:
    return REGISTRY.get_sample_value("cvm_operator_cloud_api_calls_total", {"action": action, "result": code}) or 0.0


@pytest.fixture
async def pool(emulator: EmulatorProcess) -> AsyncIterator[CloudPool]:
    async with CloudPool(emulator.endpoint) as cloud_pool:
        yield cloud_pool


@pytest.mark.emulator
async def test_modify_resource_tags_through_the_pool(pool: CloudPool, emulator: EmulatorProcess) -> None:
    cvm = pool.api(credentials(emulator), REGION)
    tags = pool.tags(credentials(emulator), REGION)
    assert isinstance(tags, TagApi)
    assert pool.tags(credentials(emulator), REGION) is tags  # cached
    assert pool.tags(credentials(emulator, 1), REGION) is not tags

    instance_id = await cvm.run_instances(
        client_token="tag-layer-test", zone=ZONE, image_id=UBUNTU, instance_type="S5.MEDIUM2"
    )
    async with asyncio.timeout(30):  # guards against a hang only
        while True:
            found = await cvm.describe_instance(instance_id)
            if found is not None and found.state == "RUNNING":
                break
            await asyncio.sleep(0.1)
    image_id = await cvm.create_image("tag-layer", instance_id, tags={"team": "web", "stage": "dev"})
    owner = emulator.accounts[0].account_id
    name = resource_name(REGION, owner, "image", image_id)

    ok_before = calls_counted("ModifyResourceTags", "OK")
    await tags.modify_resource_tags(name, {"team": "db", "new": "1"}, ["stage"])
    assert calls_counted("ModifyResourceTags", "OK") == ok_before + 1
    image = await cvm.find_images({"image-id": [image_id]})
    assert image[0].tags == {"team": "db", "new": "1"}
    assert await tags.resource_tags([name]) == {name: {"team": "db", "new": "1"}}

    # Nothing to change: no call at all.
    await tags.modify_resource_tags(name, {}, [])
    assert calls_counted("ModifyResourceTags", "OK") == ok_before + 1
    # The bucket is per account and action, shared by every region (the Tag API is global).
    assert pool.rate_limiter.bucket(credentials(emulator).secret_id, GLOBAL_SCOPE, "ModifyResourceTags").rate == 20.0

    # Errors are wrapped and classified.
    stranger = pool.tags(credentials(emulator, 1), REGION)
    with pytest.raises(CloudError) as info:
        await stranger.modify_resource_tags(name, {"team": "x"}, [])
    assert info.value.code == "AuthFailure.UnauthorizedOperation" and info.value.action == "ModifyResourceTags"
    assert info.value.error_class is ErrorClass.USER and info.value.request_id
    assert calls_counted("ModifyResourceTags", "AuthFailure.UnauthorizedOperation") >= 1
    gone = resource_name(REGION, owner, "image", "img-00000000")
    with pytest.raises(CloudError) as info:
        await tags.modify_resource_tags(gone, {"team": "x"}, [])
    assert info.value.not_found


@pytest.mark.emulator
async def test_pool_close_closes_tag_clients(emulator: EmulatorProcess) -> None:
    pool = CloudPool(emulator.endpoint)
    tags = pool.tags(credentials(emulator), REGION)
    assert await tags.resource_tags([resource_name(REGION, "100000000001", "image", "img-00000000")]) == {}
    await pool.close()
    assert tags._client.http_client.is_closed  # the SDK client's httpx client
    with pytest.raises(RuntimeError):
        pool.tags(credentials(emulator), REGION)
    with pytest.raises(ValueError):
        CloudPool(emulator.endpoint).tags(credentials(emulator), "")
