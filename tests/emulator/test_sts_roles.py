"""STS AssumeRole and AssumeRoleWithWebIdentity: temporary keys through the SDK's own credential classes,
the role's trust, web identity token checks, and X-TC-Token on every call made with temporary keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.cvm.v20170312 import cvm_client

from tests.support.emulator import BUILTIN_ACCOUNTS, EmulatorProcess, client_profile
from tests.support.oidc import PROVIDER_ID, Issuer, role_arn, role_config

REGION = "ap-guangzhou"
OWNER, OTHER, THIRD = (account.account_id for account in BUILTIN_ACCOUNTS)
OPERATOR_SUBJECT = "system:serviceaccount:cvm-operator-system:cvm-operator"
ISSUER = Issuer()


@pytest.fixture(scope="module")
def sts_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    config = {
        "oidcProviders": [ISSUER.provider_config()],
        "roles": [
            role_config(OWNER, "operator", accounts=[OWNER, OTHER]),
            role_config(OWNER, "workload", providers=[PROVIDER_ID], subjects=[OPERATOR_SUBJECT]),
            role_config(OTHER, "any-subject", providers=[PROVIDER_ID]),
        ],
    }
    with EmulatorProcess(tmp_path_factory.mktemp("sts-emulator"), config=config) as process:
        yield process


def sts(emulator: EmulatorProcess, account: int = 0) -> CommonClient:
    acc = emulator.accounts[account]
    return CommonClient("sts", "2018-08-13", credential.Credential(acc.secret_id, acc.secret_key), REGION,
                        profile=client_profile(emulator))  # fmt: skip


def anonymous_sts(emulator: EmulatorProcess) -> CommonClient:
    return CommonClient("sts", "2018-08-13", None, REGION, profile=client_profile(emulator))


def error_code(call: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    assert info.value.get_request_id()
    return str(info.value.get_code())


def assume(emulator: EmulatorProcess, account: int = 0, **params: Any) -> dict[str, Any]:
    body = {"RoleArn": role_arn(OWNER, "operator"), "RoleSessionName": "test", **params}
    return dict(sts(emulator, account).call_json("AssumeRole", body)["Response"])


def web_identity(emulator: EmulatorProcess, token: str, **params: Any) -> dict[str, Any]:
    body = {"ProviderId": PROVIDER_ID, "WebIdentityToken": token, "RoleArn": role_arn(OWNER, "workload"),
            "RoleSessionName": "test", **params}  # fmt: skip
    return dict(anonymous_sts(emulator).call_json("AssumeRoleWithWebIdentity", body, options={"SkipSign": True})[
        "Response"
    ])  # fmt: skip


def cvm_with(emulator: EmulatorProcess, cred: Any) -> cvm_client.CvmClient:
    return cvm_client.CvmClient(cred, REGION, client_profile(emulator))


def caller_account(emulator: EmulatorProcess, cred: Any) -> str:
    client = CommonClient("sts", "2018-08-13", cred, REGION, profile=client_profile(emulator))
    return str(client.call_json("GetCallerIdentity", {})["Response"]["AccountId"])


def test_sdk_assume_role_credential_acts_as_the_role_account(sts_emulator: EmulatorProcess) -> None:
    acc = sts_emulator.accounts[1]  # account OTHER is trusted by the role of account OWNER
    # The SDK's class takes the STS endpoint as a host; a URL with a scheme reaches the plain-HTTP emulator.
    cred = credential.STSAssumeRoleCredential(
        acc.secret_id, acc.secret_key, role_arn(OWNER, "operator"), "sdk-test", 900, endpoint=sts_emulator.endpoint
    )
    secret_id, secret_key, token = cred.get_credential_info()
    assert secret_id.startswith("AKID") and secret_id not in {a.secret_id for a in sts_emulator.accounts}
    assert secret_key and token
    assert caller_account(sts_emulator, cred) == OWNER
    images = cvm_with(sts_emulator, cred).call_json("DescribeImages", {"Limit": 1})["Response"]
    assert images["TotalCount"] >= 1
    assert sts_emulator.request_count("AssumeRole", "OK") >= 1


def test_assume_role_answer_and_duration(sts_emulator: EmulatorProcess) -> None:
    before = time.time()
    answer = assume(sts_emulator, DurationSeconds=1800)
    assert set(answer["Credentials"]) == {"Token", "TmpSecretId", "TmpSecretKey"}
    assert before + 1800 - 2 <= answer["ExpiredTime"] <= time.time() + 1800 + 1
    assert answer["Expiration"].endswith("Z")
    default = assume(sts_emulator)
    assert default["ExpiredTime"] - time.time() == pytest.approx(7200, abs=5)


def test_assume_role_refusals(sts_emulator: EmulatorProcess) -> None:
    assert error_code(lambda: assume(sts_emulator, RoleArn=role_arn(OWNER, "missing"))) == (
        "ResourceNotFound.RoleNotFound"
    )
    assert error_code(lambda: assume(sts_emulator, RoleArn="arn:not-a-role")) == "ResourceNotFound.RoleNotFound"
    assert error_code(lambda: assume(sts_emulator, account=2)) == "UnauthorizedOperation"
    assert error_code(lambda: assume(sts_emulator, DurationSeconds=43201)) == "InvalidParameter.OverTimeError"
    assert error_code(lambda: assume(sts_emulator, DurationSeconds=0)) == "InvalidParameter.ParamError"
    assert error_code(lambda: assume(sts_emulator, RoleSessionName="x")) == "InvalidParameter.ParamError"
    assert error_code(lambda: assume(sts_emulator, RoleSessionName="has space")) == "InvalidParameter.ParamError"
    missing = lambda: sts(sts_emulator).call_json("AssumeRole", {"RoleArn": role_arn(OWNER, "operator")})  # noqa: E731
    assert error_code(missing) == "MissingParameter"
    # A web identity role does not trust accounts' keys.
    assert error_code(lambda: assume(sts_emulator, RoleArn=role_arn(OWNER, "workload"))) == "UnauthorizedOperation"
    # AssumeRole is signed: an unsigned call is refused.
    unsigned = lambda: anonymous_sts(sts_emulator).call_json(  # noqa: E731
        "AssumeRole", {"RoleArn": role_arn(OWNER, "operator"), "RoleSessionName": "x1"}, options={"SkipSign": True}
    )
    assert error_code(unsigned) == "AuthFailure.SignatureFailure"


def test_temporary_keys_need_their_own_unexpired_token(sts_emulator: EmulatorProcess) -> None:
    keys = assume(sts_emulator)["Credentials"]
    good = credential.Credential(keys["TmpSecretId"], keys["TmpSecretKey"], keys["Token"])
    assert caller_account(sts_emulator, good) == OWNER
    no_token = credential.Credential(keys["TmpSecretId"], keys["TmpSecretKey"])
    assert error_code(lambda: caller_account(sts_emulator, no_token)) == "AuthFailure.TokenFailure"
    other = assume(sts_emulator)["Credentials"]["Token"]
    wrong = credential.Credential(keys["TmpSecretId"], keys["TmpSecretKey"], other)
    assert error_code(lambda: caller_account(sts_emulator, wrong)) == "AuthFailure.TokenFailure"
    bad_key = credential.Credential(keys["TmpSecretId"], "not-the-key", keys["Token"])
    assert error_code(lambda: caller_account(sts_emulator, bad_key)) == "AuthFailure.SignatureFailure"
    # Permanent keys take no token.
    acc = sts_emulator.accounts[0]
    with_token = credential.Credential(acc.secret_id, acc.secret_key, keys["Token"])
    assert error_code(lambda: caller_account(sts_emulator, with_token)) == "AuthFailure.TokenFailure"

    short = assume(sts_emulator, DurationSeconds=1)["Credentials"]
    expiring = credential.Credential(short["TmpSecretId"], short["TmpSecretKey"], short["Token"])
    time.sleep(1.2)
    assert error_code(lambda: cvm_with(sts_emulator, expiring).call_json("DescribeImages", {})) == (
        "AuthFailure.TokenFailure"
    )


def test_sdk_oidc_credential_with_a_web_identity_token(sts_emulator: EmulatorProcess) -> None:
    cred = credential.OIDCRoleArnCredential(
        REGION, PROVIDER_ID, ISSUER.token(OPERATOR_SUBJECT), role_arn(OWNER, "workload"), "oidc-test", 900,
        endpoint=sts_emulator.endpoint,
    )  # fmt: skip
    assert caller_account(sts_emulator, cred) == OWNER
    assert cvm_with(sts_emulator, cred).call_json("DescribeZones", {})["Response"]["TotalCount"] > 0
    assert sts_emulator.request_count("AssumeRoleWithWebIdentity", "OK") >= 1
    # A role that trusts the provider for any subject, in another account.
    answer = web_identity(sts_emulator, ISSUER.token("anyone"), RoleArn=role_arn(OTHER, "any-subject"))
    keys = answer["Credentials"]
    assert caller_account(sts_emulator, credential.Credential(keys["TmpSecretId"], keys["TmpSecretKey"],
                                                              keys["Token"])) == OTHER  # fmt: skip


def test_web_identity_token_checks(sts_emulator: EmulatorProcess) -> None:
    def code(token: str, **params: Any) -> str:
        return error_code(lambda: web_identity(sts_emulator, token, **params))

    invalid = "InvalidParameter.WebIdentityTokenError"
    assert code("not-a-jwt") == invalid
    assert code(Issuer().token(OPERATOR_SUBJECT)) == invalid  # signed by another key
    assert code(Issuer(issuer="https://elsewhere.example").token(OPERATOR_SUBJECT)) == invalid
    assert code(ISSUER.token(OPERATOR_SUBJECT, audience="someone-else")) == invalid
    assert code(ISSUER.token(OPERATOR_SUBJECT, lifetime=-3600)) == invalid
    assert code(ISSUER.token(OPERATOR_SUBJECT, nbf=int(time.time()) + 3600)) == invalid
    forged = ISSUER.sign({"alg": "none", "typ": "JWT"}, {"iss": ISSUER.issuer, "sub": OPERATOR_SUBJECT})
    assert code(forged) == invalid
    assert code(ISSUER.token(OPERATOR_SUBJECT), ProviderId="unknown") == invalid
    assert code(ISSUER.token("system:serviceaccount:other:default")) == "UnauthorizedOperation"
    assert code(ISSUER.token(OPERATOR_SUBJECT), RoleArn=role_arn(OWNER, "operator")) == "UnauthorizedOperation"
    assert code(ISSUER.token(OPERATOR_SUBJECT), RoleArn=role_arn(THIRD, "nope")) == "ResourceNotFound.RoleNotFound"
    # An audience list naming the accepted one is fine.
    assert web_identity(sts_emulator, ISSUER.token(OPERATOR_SUBJECT, audience=["x", "sts.cloud.tencent.com"]))


def test_error_messages_never_repeat_the_token(sts_emulator: EmulatorProcess) -> None:
    token = Issuer().token(OPERATOR_SUBJECT)
    with pytest.raises(TencentCloudSDKException) as info:
        web_identity(sts_emulator, token)
    assert token not in str(info.value.get_message())
    assert token.split(".")[2] not in str(info.value.get_message())


def test_temporary_keys_survive_a_restart(emulator_factory: Any) -> None:
    process = emulator_factory(config={"roles": [role_config(OWNER, "operator")]})
    keys = assume(process, DurationSeconds=600)["Credentials"]
    process.restart()
    cred = credential.Credential(keys["TmpSecretId"], keys["TmpSecretKey"], keys["Token"])
    assert caller_account(process, cred) == OWNER
