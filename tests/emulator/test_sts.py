"""STS GetCallerIdentity served beside CVM and Tag (same endpoint; Tag and STS share version 2018-08-13
and are told apart by the signature's service), and instance tags named by the caller's account id."""

from __future__ import annotations

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.sts.v20180813 import models as sts_models
from tencentcloud.sts.v20180813 import sts_client

from tests.emulator.helpers import instance, launch
from tests.emulator.test_tags import cloud_tags, resource, tag_call, tag_error, tag_sdk_client
from tests.support.emulator import EmulatorProcess, client_profile, sdk_client

REGION = "ap-guangzhou"


def sts_sdk_client(emulator: EmulatorProcess, account: int = 0, region: str = REGION) -> sts_client.StsClient:
    """The official StsClient pointed at the emulator."""
    acc = emulator.accounts[account]
    return sts_client.StsClient(credential.Credential(acc.secret_id, acc.secret_key), region, client_profile(emulator))


def caller_identity(
    emulator: EmulatorProcess, account: int = 0, region: str = REGION
) -> sts_models.GetCallerIdentityResponse:
    return sts_sdk_client(emulator, account, region).GetCallerIdentity(sts_models.GetCallerIdentityRequest())


def test_get_caller_identity_names_the_signing_account(shared_emulator: EmulatorProcess) -> None:
    for index, account in enumerate(shared_emulator.accounts):
        identity = caller_identity(shared_emulator, index)
        assert identity.AccountId == account.account_id
        assert identity.UserId == account.account_id
        assert identity.PrincipalId == account.account_id
        assert identity.Type == "RootAccount"
        assert identity.Arn == f"qcs::cam::uin/{account.account_id}:root"
        assert identity.RequestId
    # STS is global: any region, or none, gives the same answer.
    assert caller_identity(shared_emulator, 1, "ap-shanghai").AccountId == shared_emulator.accounts[1].account_id
    assert caller_identity(shared_emulator, 1, "").AccountId == shared_emulator.accounts[1].account_id


def test_sts_and_tag_share_a_version_and_route_by_signature(shared_emulator: EmulatorProcess) -> None:
    acc = shared_emulator.accounts[0]
    cred = credential.Credential(acc.secret_id, acc.secret_key)
    profile = client_profile(shared_emulator)
    sts = CommonClient("sts", "2018-08-13", cred, REGION, profile=profile)
    assert sts.call_json("GetCallerIdentity", {})["Response"]["AccountId"] == acc.account_id
    # Each service serves only its own actions at 2018-08-13.
    for service, action in (("sts", "GetResources"), ("tag", "GetCallerIdentity")):
        with pytest.raises(TencentCloudSDKException) as info:
            CommonClient(service, "2018-08-13", cred, REGION, profile=profile).call_json(action, {})
        assert info.value.get_code() == "InvalidAction", (service, action)
    # Signed for another service: the signature does not hold.
    with pytest.raises(TencentCloudSDKException) as info:
        CommonClient("cvm", "2018-08-13", cred, REGION, profile=profile).call_json("GetCallerIdentity", {})
    assert info.value.get_code() == "AuthFailure.SignatureFailure"
    with pytest.raises(TencentCloudSDKException) as info:
        sts.call_json("GetCallerIdentity", {"Colour": "red"})
    assert info.value.get_code() == "UnknownParameter"
    # The Tag API still works beside it.
    assert tag_call(tag_sdk_client(shared_emulator), "GetResources").RequestId


def test_metrics_count_sts_calls(shared_emulator: EmulatorProcess) -> None:
    before = shared_emulator.request_count("GetCallerIdentity", "OK")
    caller_identity(shared_emulator)
    assert shared_emulator.request_count("GetCallerIdentity", "OK") == before + 1


def test_instance_tags_by_the_account_id_sts_reports(shared_emulator: EmulatorProcess) -> None:
    cvm = sdk_client(shared_emulator)
    instance_id = launch(
        cvm, TagSpecification=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "web"}]}]
    )
    owner = caller_identity(shared_emulator).AccountId
    name = resource(owner, "instance", instance_id)
    tags = tag_sdk_client(shared_emulator)

    tag_call(tags, "ModifyResourceTags", Resource=name, ReplaceTags=[{"TagKey": "team", "TagValue": "db"},
             {"TagKey": "env", "TagValue": "prod"}])  # fmt: skip
    assert cloud_tags(instance(cvm, instance_id)) == {"team": "db", "env": "prod"}
    tag_call(tags, "ModifyResourceTags", Resource=name, DeleteTags=[{"TagKey": "env"}])
    assert cloud_tags(instance(cvm, instance_id)) == {"team": "db"}

    # Another account: refused through the owner's name, not found through its own.
    stranger_id = caller_identity(shared_emulator, 1).AccountId
    assert stranger_id != owner
    stranger = tag_sdk_client(shared_emulator, account=1)
    replace = [{"TagKey": "team", "TagValue": "x"}]
    assert tag_error(stranger, "ModifyResourceTags", Resource=name, ReplaceTags=replace) == (
        "AuthFailure.UnauthorizedOperation"
    )
    assert tag_error(stranger, "ModifyResourceTags", Resource=resource(stranger_id, "instance", instance_id),
                     ReplaceTags=replace) == "ResourceNotFound.RecordNotFound"  # fmt: skip
    assert cloud_tags(instance(cvm, instance_id)) == {"team": "db"}
