"""Wire protocol: envelope, content type, signatures, versions, parameter errors, metrics, faults."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.sign import Sign

from tests.support.emulator import EmulatorProcess, async_sdk_client, client_profile, sdk_client

from .helpers import call, expect_error


def raw_post(
    emulator: EmulatorProcess,
    action: str,
    body: dict[str, Any],
    timestamp: int,
    secret_id: str | None = None,
    secret_key: str | None = None,
    version: str = "2017-03-12",
) -> tuple[dict[str, str], dict[str, Any]]:
    """A TC3-signed request built by hand (same algorithm as the SDK), e.g. with an old timestamp."""
    account = emulator.accounts[0]
    secret_id = secret_id or account.secret_id
    secret_key = secret_key or account.secret_key
    payload = json.dumps(body).encode()
    host = emulator.host_port
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    canonical = (
        f"POST\n/\n\ncontent-type:application/json\nhost:{host}\n\ncontent-type;host\n"
        f"{hashlib.sha256(payload).hexdigest()}"
    )
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{date}/cvm/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = Sign.sign_tc3(secret_key, date, "cvm", to_sign)
    headers = {
        "Content-Type": "application/json",
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": version,
        "X-TC-Region": "ap-guangzhou",
        "X-TC-Timestamp": str(timestamp),
        "Authorization": f"TC3-HMAC-SHA256 Credential={secret_id}/{date}/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}",
    }
    req = urllib.request.Request(f"{emulator.endpoint}/", data=payload, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200
        return dict(response.headers), json.loads(response.read())


def common_client(emulator: EmulatorProcess, version: str = "2017-03-12", account: int = 0) -> CommonClient:
    acc = emulator.accounts[account]
    return CommonClient(
        "cvm",
        version,
        credential.Credential(acc.secret_id, acc.secret_key),
        "ap-guangzhou",
        profile=client_profile(emulator),
    )


def common_error(client: CommonClient, action: str, params: dict[str, Any]) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json(action, params)
    assert info.value.get_request_id()
    return str(info.value.get_code())


def test_envelope_and_exact_content_type(shared_emulator: EmulatorProcess) -> None:
    headers, body = raw_post(shared_emulator, "DescribeRegions", {}, int(time.time()))
    assert headers["Content-Type"] == "application/json"
    assert body["Response"]["RequestId"]
    assert body["Response"]["TotalCount"] == len(body["Response"]["RegionSet"]) >= 7
    headers, body = raw_post(shared_emulator, "DescribeImages", {"Limit": "x"}, int(time.time()))
    assert headers["Content-Type"] == "application/json"
    assert body["Response"]["Error"]["Code"] == "InvalidParameter"
    assert body["Response"]["RequestId"]


def test_expired_timestamp_is_refused(shared_emulator: EmulatorProcess) -> None:
    _, body = raw_post(shared_emulator, "DescribeImages", {}, int(time.time()) - 600)
    assert body["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"
    _, body = raw_post(shared_emulator, "DescribeImages", {}, int(time.time()) - 60)
    assert "Error" not in body["Response"]


def test_bad_signature_and_unknown_secret_id(shared_emulator: EmulatorProcess) -> None:
    acc = shared_emulator.accounts[0]
    wrong_key = sdk_client(shared_emulator, account=type(acc)(acc.account_id, acc.secret_id, "not-the-key"))
    expect_error("AuthFailure.SignatureFailure", wrong_key, "DescribeImages")
    stranger = sdk_client(shared_emulator, account=type(acc)("1", "AKIDunknown0000000000000000", "k"))
    expect_error("AuthFailure.SecretIdNotFound", stranger, "DescribeImages")


def test_version_action_and_parameter_errors(shared_emulator: EmulatorProcess) -> None:
    assert common_error(common_client(shared_emulator, version="2099-01-01"), "DescribeImages", {}) == "NoSuchVersion"
    client = common_client(shared_emulator)
    assert common_error(client, "DescribeFlyingSaucers", {}) == "InvalidAction"
    assert common_error(client, "DescribeImages", {"Colour": "red"}) == "UnknownParameter"
    assert common_error(client, "DescribeImages", {"Limit": "ten"}) == "InvalidParameter"
    assert common_error(client, "DescribeImages", {"Filters": [{"Name": "image-type"}]}) == "MissingParameter"
    assert common_error(client, "DeleteImages", {}) == "MissingParameter"
    assert common_error(client, "RunInstances", {"ImageId": "img-487zeit5"}) == "MissingParameter"
    assert (
        common_error(client, "RunInstances", {"ImageId": "img-487zeit5", "Placement": {"Zone": 3}})
        == "InvalidParameter"
    )
    # The typed client sends the SDK's member names, so the same checks hold with it.
    expect_error("InvalidParameter", sdk_client(shared_emulator), "DescribeImages", Offset="0")


def test_unknown_region(shared_emulator: EmulatorProcess) -> None:
    expect_error("InvalidRegion.NotFound", sdk_client(shared_emulator, region="mars-north-1"), "DescribeImages")
    # DescribeRegions needs no region.
    assert call(sdk_client(shared_emulator, region=""), "DescribeRegions").TotalCount >= 7


def test_metrics_count_requests_by_action_and_code(emulator: EmulatorProcess) -> None:
    client = sdk_client(emulator)
    call(client, "DescribeImages")
    call(client, "DescribeImages")
    expect_error("InvalidImageId.Malformed", client, "DescribeImages", ImageIds=["bogus"])
    assert emulator.request_count("DescribeImages", "OK") == 2
    assert emulator.request_count("DescribeImages", "InvalidImageId.Malformed") == 1
    assert "cvm_emulator_request_duration_seconds" in emulator.metrics()


async def test_async_client_speaks_the_same_protocol(shared_emulator: EmulatorProcess) -> None:
    async with async_sdk_client(shared_emulator, account=1) as client:
        from .helpers import acall

        zones = await acall(client, "DescribeZones")
        assert {z.Zone for z in zones.ZoneSet} >= {"ap-guangzhou-3", "ap-guangzhou-4"}
        with pytest.raises(TencentCloudSDKException) as info:
            await acall(client, "DescribeImages", ImageIds=["img-zz"])
        assert info.value.get_code() == "InvalidImageId.Malformed"


def test_injected_failures(emulator_factory: Any) -> None:
    failing = emulator_factory(extra_args=["--fail-rate", "1.0"])
    expect_error("InternalError", sdk_client(failing), "DescribeImages")
    assert failing.request_count("DescribeImages", "InternalError") == 1


def test_added_latency_is_observed(emulator_factory: Any) -> None:
    slow = emulator_factory(extra_args=["--latency-ms", "200"])
    call(sdk_client(slow), "DescribeRegions")
    text = slow.metrics()
    line = next(
        x
        for x in text.splitlines()
        if x.startswith('cvm_emulator_request_duration_seconds_sum{action="DescribeRegions"}')
    )
    assert float(line.split()[-1]) >= 0.2


def test_rate_limits_per_account_region_and_action(emulator_factory: Any) -> None:
    limited = emulator_factory(extra_args=["--enforce-rate-limits"], config={"rateLimits": {"DescribeZones": 2}})
    client = sdk_client(limited)
    codes = []
    for _ in range(10):
        try:
            call(client, "DescribeZones")
            codes.append("OK")
        except TencentCloudSDKException as exc:
            codes.append(exc.get_code())
    assert "RequestLimitExceeded" in codes
    assert codes[0] == "OK"
    # Another account, another region and another action each have their own budget.
    assert call(sdk_client(limited, account=1), "DescribeZones").TotalCount > 0
    assert call(sdk_client(limited, region="ap-shanghai"), "DescribeZones").TotalCount > 0
    assert call(client, "DescribeRegions").TotalCount > 0
    assert limited.request_count("DescribeZones", "RequestLimitExceeded") == codes.count("RequestLimitExceeded")
