"""The Tag API subset served beside CVM: tags changed through the official tag SDK show in CVM at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tag.v20180813 import models as tag_models
from tencentcloud.tag.v20180813 import tag_client

from tests.emulator.helpers import UBUNTU, call, custom_image, image, instance, launch, unique
from tests.support.emulator import EmulatorAccount, EmulatorProcess, client_profile, sdk_client

REGION = "ap-guangzhou"


def tag_sdk_client(emulator: EmulatorProcess, account: int = 0, region: str = "") -> tag_client.TagClient:
    """The official synchronous TagClient pointed at the emulator (the Tag API needs no region)."""
    acc: EmulatorAccount = emulator.accounts[account]
    return tag_client.TagClient(credential.Credential(acc.secret_id, acc.secret_key), region, client_profile(emulator))


def tag_call(client: tag_client.TagClient, action: str, **params: Any) -> Any:
    request = getattr(tag_models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    return getattr(client, action)(request)


def tag_error(client: tag_client.TagClient, action: str, **params: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        tag_call(client, action, **params)
    assert info.value.get_request_id()
    return str(info.value.get_code())


def resource(account_id: str, kind: str, resource_id: str, region: str = REGION) -> str:
    return f"qcs::cvm:{region}:uin/{account_id}:{kind}/{resource_id}"


def cloud_tags(item: Any) -> dict[str, str]:
    return {tag.Key: tag.Value for tag in item.Tags or []}


def mapping_tags(response: Any) -> dict[str, dict[str, str]]:
    return {m.Resource: {t.TagKey: t.TagValue for t in m.Tags or []} for m in response.ResourceTagMappingList or []}


def test_modify_resource_tags_changes_what_describe_images_shows(shared_emulator: EmulatorProcess) -> None:
    cvm = sdk_client(shared_emulator)
    owner = shared_emulator.accounts[0].account_id
    image_id = custom_image(
        cvm, TagSpecification=[{"ResourceType": "image", "Tags": [{"Key": "team", "Value": "web"},
                                                                  {"Key": "stage", "Value": "dev"}]}],
    )  # fmt: skip
    tags = tag_sdk_client(shared_emulator)
    name = resource(owner, "image", image_id)

    tag_call(
        tags,
        "ModifyResourceTags",
        Resource=name,
        ReplaceTags=[{"TagKey": "team", "TagValue": "db"}, {"TagKey": "cost-centre", "TagValue": "42"}],
        DeleteTags=[{"TagKey": "stage"}],
    )
    assert cloud_tags(image(cvm, image_id)) == {"team": "db", "cost-centre": "42"}
    assert mapping_tags(tag_call(tags, "GetResources", ResourceList=[name])) == {
        name: {"team": "db", "cost-centre": "42"}
    }
    # Only DeleteTags, and deleting a key that is not there, are fine too.
    tag_call(tags, "ModifyResourceTags", Resource=name, DeleteTags=[{"TagKey": "cost-centre"}, {"TagKey": "gone"}])
    assert cloud_tags(image(cvm, image_id)) == {"team": "db"}
    # The Tag API takes a region header too, and ignores it.
    tag_call(tag_sdk_client(shared_emulator, region="ap-shanghai"), "ModifyResourceTags", Resource=name,
             ReplaceTags=[{"TagKey": "team", "TagValue": "web"}])  # fmt: skip
    assert cloud_tags(image(cvm, image_id)) == {"team": "web"}


def test_tag_and_untag_images_and_instances(shared_emulator: EmulatorProcess) -> None:
    cvm = sdk_client(shared_emulator)
    owner = shared_emulator.accounts[0].account_id
    instance_id = launch(cvm)
    image_id = custom_image(cvm)
    tags = tag_sdk_client(shared_emulator)
    names = [resource(owner, "instance", instance_id), resource(owner, "image", image_id)]
    elsewhere = resource(owner, "image", "img-00000000")

    answer = tag_call(tags, "TagResources", ResourceList=[*names, elsewhere], Tags=[{"TagKey": "app", "TagValue": "x"}])
    assert [(f.Resource, f.Code) for f in answer.FailedResources] == [(elsewhere, "ResourceNotFound.RecordNotFound")]
    assert cloud_tags(instance(cvm, instance_id)) == {"app": "x"}
    assert cloud_tags(image(cvm, image_id)) == {"app": "x"}
    found = call(cvm, "DescribeInstances", Filters=[{"Name": "tag:app", "Values": ["x"]}]).InstanceSet
    assert instance_id in {item.InstanceId for item in found}

    answer = tag_call(tags, "UnTagResources", ResourceList=names, TagKeys=["app"])
    assert answer.FailedResources == []
    assert cloud_tags(instance(cvm, instance_id)) == {}
    assert cloud_tags(image(cvm, image_id)) == {}


def test_get_resources_filters_and_pages(emulator: EmulatorProcess) -> None:
    cvm = sdk_client(emulator)
    owner = emulator.accounts[0].account_id
    marker = unique("m")
    ids = [custom_image(cvm) for _ in range(3)]
    tags = tag_sdk_client(emulator)
    names = [resource(owner, "image", image_id) for image_id in ids]
    tag_call(tags, "TagResources", ResourceList=names, Tags=[{"TagKey": "batch", "TagValue": marker}])
    tag_call(tags, "ModifyResourceTags", Resource=names[0], ReplaceTags=[{"TagKey": "tier", "TagValue": "gold"}])

    filtered = tag_call(tags, "GetResources", TagFilters=[{"TagKey": "batch", "TagValue": [marker]}])
    assert set(mapping_tags(filtered)) == set(names)
    gold = tag_call(tags, "GetResources", TagFilters=[{"TagKey": "batch"}, {"TagKey": "tier", "TagValue": ["gold"]}])
    assert mapping_tags(gold) == {names[0]: {"batch": marker, "tier": "gold"}}

    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = tag_call(tags, "GetResources", MaxResults=2, PaginationToken=token)
        assert len(page.ResourceTagMappingList) <= 2
        seen += [m.Resource for m in page.ResourceTagMappingList]
        token = page.PaginationToken
        if not token:
            break
    assert sorted(seen) == sorted(names) and not token
    assert tag_error(tags, "GetResources", PaginationToken="not-a-token") == "InvalidParameter.PaginationTokenInvalid"
    # Another account sees none of these.
    assert mapping_tags(tag_call(tag_sdk_client(emulator, account=1), "GetResources", ResourceList=names)) == {}


def test_parameter_and_ownership_errors(shared_emulator: EmulatorProcess) -> None:
    cvm = sdk_client(shared_emulator)
    owner, other = (a.account_id for a in shared_emulator.accounts[:2])
    image_id = custom_image(cvm, TagSpecification=[{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}])
    name = resource(owner, "image", image_id)
    tags = tag_sdk_client(shared_emulator)
    replace = [{"TagKey": "k", "TagValue": "w"}]

    def error(**params: Any) -> str:
        return tag_error(tags, "ModifyResourceTags", **params)

    assert error(Resource=name) == "MissingParameter"
    assert error(ReplaceTags=replace) == "MissingParameter"
    assert error(Resource=name, ReplaceTags=[]) == "InvalidParameter.Tag"
    assert error(Resource=name, ReplaceTags=replace, DeleteTags=[{"TagKey": "k"}]) == (
        "InvalidParameterValue.DeleteTagsParamError"
    )
    assert error(Resource=name, ReplaceTags=[{"TagKey": "qcloud:x", "TagValue": "1"}]) == (
        "InvalidParameterValue.ReservedTagKey"
    )
    assert error(Resource=name, ReplaceTags=[{"TagKey": "", "TagValue": "1"}]) == "InvalidParameterValue.TagKeyEmpty"
    assert error(Resource=name, ReplaceTags=[*replace, *replace]) == "InvalidParameterValue.TagKeyDuplicate"
    many = [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(11)]
    assert error(Resource=name, ReplaceTags=many) == "LimitExceeded.TagNumPerRequest"
    assert error(Resource="img-12345678", ReplaceTags=replace) == "InvalidParameterValue.ResourceDescriptionError"
    assert error(Resource=f"qcs::cos:{REGION}:uin/{owner}:bucket/b", ReplaceTags=replace) == (
        "InvalidParameter.UnsupportedService"
    )
    assert error(Resource=resource(owner, "image", image_id, "mars-1"), ReplaceTags=replace) == (
        "InvalidParameterValue.RegionInvalid"
    )
    assert error(Resource=resource(owner, "disk", "disk-1"), ReplaceTags=replace) == (
        "InvalidParameterValue.ResourcePrefixInvalid"
    )
    assert error(Resource=resource(owner, "image", "img-1"), ReplaceTags=replace) == (
        "InvalidParameterValue.ResourceIdInvalid"
    )
    # Public images and images of another region are not the caller's resources.
    assert error(Resource=resource(owner, "image", UBUNTU), ReplaceTags=replace) == "ResourceNotFound.RecordNotFound"
    assert error(Resource=resource(owner, "image", image_id, "ap-shanghai"), ReplaceTags=replace) == (
        "ResourceNotFound.RecordNotFound"
    )
    # Members and types are checked against the tag SDK's request models.
    acc = shared_emulator.accounts[0]
    cred = credential.Credential(acc.secret_id, acc.secret_key)
    common = CommonClient("tag", "2018-08-13", cred, "", client_profile(shared_emulator))
    with pytest.raises(TencentCloudSDKException) as info:
        common.call_json("ModifyResourceTags", {"Resource": name, "Colour": "red"})
    assert info.value.get_code() == "UnknownParameter"
    with pytest.raises(TencentCloudSDKException) as info:
        common.call_json("ModifyResourceTags", {"Resource": name, "ReplaceTags": [{"TagKey": "k", "TagValue": 1}]})
    assert info.value.get_code() == "InvalidParameter"
    with pytest.raises(TencentCloudSDKException) as info:
        common.call_json("ModifyResourceTags", {"Resource": name, "ReplaceTags": [{"TagKey": "k"}]})
    assert info.value.get_code() == "MissingParameter"

    # Another account can change neither through the owner's name nor through its own.
    stranger = tag_sdk_client(shared_emulator, account=1)
    assert tag_error(stranger, "ModifyResourceTags", Resource=name, ReplaceTags=replace) == (
        "AuthFailure.UnauthorizedOperation"
    )
    assert tag_error(stranger, "ModifyResourceTags", Resource=resource(other, "image", image_id),
                     ReplaceTags=replace) == "ResourceNotFound.RecordNotFound"  # fmt: skip
    assert cloud_tags(image(cvm, image_id)) == {"k": "v"}


def test_signature_scope_and_version_route_to_the_right_api(shared_emulator: EmulatorProcess) -> None:
    acc = shared_emulator.accounts[0]
    cred = credential.Credential(acc.secret_id, acc.secret_key)
    profile = client_profile(shared_emulator)
    # Signed for cvm but addressed to the Tag API (and the other way round): the signature does not hold.
    cvm_scoped = CommonClient("cvm", "2018-08-13", cred, REGION, profile=profile)
    with pytest.raises(TencentCloudSDKException) as info:
        cvm_scoped.call_json("GetResources", {})
    assert info.value.get_code() == "AuthFailure.SignatureFailure"
    tag_scoped = CommonClient("tag", "2017-03-12", cred, REGION, profile=profile)
    with pytest.raises(TencentCloudSDKException) as info:
        tag_scoped.call_json("DescribeImages", {})
    assert info.value.get_code() == "AuthFailure.SignatureFailure"
    # Actions belong to their own version.
    with pytest.raises(TencentCloudSDKException) as info:
        CommonClient("tag", "2018-08-13", cred, REGION, profile=profile).call_json("DescribeImages", {})
    assert info.value.get_code() == "InvalidAction"
    with pytest.raises(TencentCloudSDKException) as info:
        CommonClient("tag", "2099-01-01", cred, REGION, profile=profile).call_json("GetResources", {})
    assert info.value.get_code() == "NoSuchVersion"


def test_metrics_count_tag_actions(shared_emulator: EmulatorProcess) -> None:
    tags = tag_sdk_client(shared_emulator)
    ok_before = shared_emulator.request_count("GetResources", "OK")
    failed_before = shared_emulator.request_count("ModifyResourceTags", "MissingParameter")
    tag_call(tags, "GetResources")
    tag_error(tags, "ModifyResourceTags", Resource=resource(shared_emulator.accounts[0].account_id, "image", UBUNTU))
    assert shared_emulator.request_count("GetResources", "OK") == ok_before + 1
    assert shared_emulator.request_count("ModifyResourceTags", "MissingParameter") == failed_before + 1
