"""Small helpers for emulator tests: typed SDK calls, expected errors, polling."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.cvm.v20170312 import models
from tencentcloud.vpc.v20170312 import models as vpc_models
from tencentcloud.vpc.v20170312 import vpc_client

from tests.support.emulator import EmulatorProcess, client_profile

T = TypeVar("T")

WAIT_SECONDS = 20.0
UBUNTU = "img-487zeit5"
CENTOS = "img-9qabwvbn"
WINDOWS = "img-win22dcx"
ARM_TENCENTOS = "img-9a0eg8mt"
WORDPRESS = "img-mkt0wp01"
ZONE = "ap-guangzhou-3"


def vpc_sdk_client(emulator: EmulatorProcess, account: int = 0, region: str = "ap-guangzhou") -> Any:
    """The official VpcClient pointed at the emulator (same endpoint, service `vpc` in the signature)."""
    acc = emulator.accounts[account]
    return vpc_client.VpcClient(credential.Credential(acc.secret_id, acc.secret_key), region, client_profile(emulator))


def request(action: str, **params: Any) -> Any:
    module = vpc_models if action in ("DescribeVpcs", "DescribeSubnets", "DescribeSecurityGroups") else models
    req = getattr(module, f"{action}Request")()
    req.from_json_string(json.dumps(params))
    return req


def call(client: Any, action: str, **params: Any) -> Any:
    """Call ``action`` through the typed SDK client with PascalCase parameters."""
    return getattr(client, action)(request(action, **params))


async def acall(client: Any, action: str, **params: Any) -> Any:
    return await getattr(client, action)(request(action, **params))


def expect_error(code: str, client: Any, action: str, **params: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call(client, action, **params)
    assert info.value.get_code() == code, info.value.get_message()
    assert info.value.get_request_id()
    return info.value


def wait_until(probe: Callable[[], T | None], timeout: float = WAIT_SECONDS, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def image(client: Any, image_id: str) -> Any:
    """The image as the client's account sees it, or None."""
    found = call(client, "DescribeImages", ImageIds=[image_id]).ImageSet
    return found[0] if found else None


def instance(client: Any, instance_id: str) -> Any:
    found = call(client, "DescribeInstances", InstanceIds=[instance_id]).InstanceSet
    return found[0] if found else None


def wait_image_state(client: Any, image_id: str, *states: str, timeout: float = WAIT_SECONDS) -> Any:
    def probe() -> Any:
        img = image(client, image_id)
        return img if img is not None and img.ImageState in states else None

    return wait_until(probe, timeout)


def wait_instance_state(client: Any, instance_id: str, *states: str, timeout: float = WAIT_SECONDS) -> Any:
    def probe() -> Any:
        ins = instance(client, instance_id)
        return ins if ins is not None and ins.InstanceState in states else None

    return wait_until(probe, timeout)


def launch(client: Any, image_id: str = UBUNTU, zone: str = ZONE, wait: bool = True, **params: Any) -> str:
    """Launch one instance and (by default) wait until it runs."""
    params.setdefault("InstanceType", "S5.MEDIUM2")
    instance_id: str = call(client, "RunInstances", Placement={"Zone": zone}, ImageId=image_id, **params).InstanceIdSet[
        0
    ]
    if wait:
        wait_instance_state(client, instance_id, "RUNNING")
    return instance_id


# One running instance per (endpoint, account, region) serves as the source of throwaway images.
_image_sources: dict[tuple[str, str, str], str] = {}


def image_source(client: Any) -> str:
    key = (client.profile.httpProfile.endpoint, client.credential.secret_id, client.region)
    if key not in _image_sources or instance(client, _image_sources[key]) is None:
        _image_sources[key] = launch(client)
    return _image_sources[key]


def custom_image(
    client: Any, instance_id: str | None = None, name: str | None = None, wait: bool = True, **params: Any
) -> str:
    """Make a custom image from an instance (a shared running one by default) and wait until NORMAL."""
    if instance_id is None:
        instance_id = image_source(client)
        source = instance_id
        # The instance takes one CreateImage at a time (OperationDenied.InstanceOperationInProgress).
        wait_until(lambda: instance(client, source).LatestOperationState != "OPERATING")
    image_id: str = call(
        client, "CreateImage", ImageName=name or unique("img"), InstanceId=instance_id, **params
    ).ImageId
    if wait:
        wait_image_state(client, image_id, "NORMAL")
    return image_id
