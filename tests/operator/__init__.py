"""Operator tests: pure reconciler logic, and the operator subprocess against the API server and emulator.

Helpers here read the cloud through the official SDK, the way a user would check the operator's work.
"""

from __future__ import annotations

import json
from typing import Any

from tencentcloud.cvm.v20170312 import cvm_client, models

UID_TAG = "cvm.operator.dev/uid"
REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
UBUNTU = "img-487zeit5"
WORDPRESS = "img-mkt0wp01"


def cloud_call(client: cvm_client.CvmClient, action: str, params: dict[str, Any]) -> dict[str, Any]:
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    response = getattr(client, action)(request)
    result: dict[str, Any] = json.loads(response.to_json_string())
    return result


def images_tagged(client: cvm_client.CvmClient, uid: str) -> list[dict[str, Any]]:
    answer = cloud_call(client, "DescribeImages", {"Filters": [{"Name": f"tag:{UID_TAG}", "Values": [uid]}]})
    return list(answer.get("ImageSet") or [])


def instances_tagged(client: cvm_client.CvmClient, uid: str) -> list[dict[str, Any]]:
    answer = cloud_call(client, "DescribeInstances", {"Filters": [{"Name": f"tag:{UID_TAG}", "Values": [uid]}]})
    return list(answer.get("InstanceSet") or [])


def image(client: cvm_client.CvmClient, image_id: str) -> dict[str, Any] | None:
    found = cloud_call(client, "DescribeImages", {"ImageIds": [image_id]}).get("ImageSet") or []
    return dict(found[0]) if found else None


def instance(client: cvm_client.CvmClient, instance_id: str) -> dict[str, Any] | None:
    found = cloud_call(client, "DescribeInstances", {"InstanceIds": [instance_id]}).get("InstanceSet") or []
    return dict(found[0]) if found else None


def import_image_body(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Image",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "source": {"fromImport": {"url": url, "osType": "Ubuntu", "osVersion": "22"}},
            **spec,
        },
    }


def instance_body(
    name: str, *, image_id: str | None = None, image_ref: str | None = None, **spec: Any
) -> dict[str, Any]:
    source: dict[str, Any] = {"imageId": image_id} if image_id else {"imageRef": {"name": image_ref}}
    return {
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "zone": ZONE,
            "instanceType": "S5.MEDIUM2",
            "loginSettings": {"keyIds": ["skey-abcdefgh"]},
            **source,
            **spec,
        },
    }


def status(body: dict[str, Any] | None) -> dict[str, Any]:
    return dict((body or {}).get("status") or {})


def tags_of(described: dict[str, Any] | None) -> dict[str, str]:
    """The tags of a DescribeImages/DescribeInstances entry as a mapping."""
    return {tag["Key"]: tag["Value"] for tag in (described or {}).get("Tags") or []}


def tamper_with_tags(emulator: Any, resource: str) -> None:
    """An edit made in the cloud behind the operator's back: one tag added, one changed, one removed."""
    from tests.emulator.test_tags import tag_call, tag_sdk_client

    tag_call(
        tag_sdk_client(emulator),
        "ModifyResourceTags",
        Resource=resource,
        ReplaceTags=[{"TagKey": "added", "TagValue": "by-hand"}, {"TagKey": "team", "TagValue": "db"}],
        DeleteTags=[{"TagKey": "stage"}],
    )
