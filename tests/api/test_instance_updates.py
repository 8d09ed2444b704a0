"""Instance updates at admission: what the cloud can change is accepted, what it cannot is refused by name."""

from __future__ import annotations

from typing import Any, cast

import kubernetes
import pytest

from cvm_operator.api import VERSION, check_update, parse_object
from tests.api.corpus import GROUP

pytestmark = pytest.mark.controlplane

FULL: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "Instance",
    "metadata": {"name": "web"},
    "spec": {
        "region": "ap-guangzhou",
        "zone": "ap-guangzhou-3",
        "instanceType": "S5.MEDIUM2",
        "imageId": "img-487zeit5",
        "network": {
            "vpcId": "vpc-2x7lhtse",
            "subnetId": "subnet-d9azpyl8",
            "securityGroupIds": ["sg-5ujzw3i2"],
            "privateIpAddress": "10.0.0.12",
        },
        "internet": {"publicIp": True, "maxBandwidthOutMbps": 10},
        "dataDisks": [{"sizeGB": 100}],
        "userData": {"configMapRef": {"name": "web-init", "key": "user-data"}},
        "chargeType": "SPOTPAID",
        "spot": {"maxPrice": "0.5"},
        "projectId": 0,
        "camRoleName": "web-role",
    },
}

MUTABLE_EDITS: list[dict[str, Any]] = [
    {"network": {**FULL["spec"]["network"], "securityGroupIds": ["sg-aaaaaaaa", "sg-5ujzw3i2"]}},
    {"disableApiTermination": True},
    {"instanceName": "web-renamed"},
    {"hostName": "web-renamed"},
    {"systemDisk": {"diskType": "CLOUD_PREMIUM", "sizeGB": 100}},
    {"runState": "Stopped", "stopMode": "KEEP_CHARGING"},
    {"tags": {"team": "web"}},
    {"loginSettings": {"keyIds": ["skey-3glfot13"]}},
]


def _replace(custom: kubernetes.client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    current = cast(
        dict[str, Any],
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "instances", body["metadata"]["name"]),
    )
    update = {**body, "metadata": {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    return cast(
        dict[str, Any],
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, "instances", body["metadata"]["name"], update, field_validation="Strict"
        ),
    )


@pytest.mark.parametrize("edit", MUTABLE_EDITS, ids=[next(iter(edit)) for edit in MUTABLE_EDITS])
def test_a_field_the_cloud_can_change_is_accepted(
    k8s_api: kubernetes.client.ApiClient, crds_installed: list[str], namespace: str, edit: dict[str, Any]
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    created = cast(dict[str, Any], custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "instances", FULL))
    edited = {**FULL, "spec": {**FULL["spec"], **edit}}
    stored = _replace(custom, namespace, edited)
    assert stored["metadata"]["generation"] == created["metadata"]["generation"] + 1
    for key, value in edit.items():
        assert stored["spec"][key] == value
    assert check_update(parse_object(FULL), parse_object(edited)) == []


def test_every_immutable_field_is_named_when_several_change(
    k8s_api: kubernetes.client.ApiClient, crds_installed: list[str], namespace: str
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "instances", FULL)
    edited = {
        **FULL,
        "spec": {
            **{key: value for key, value in FULL["spec"].items() if key not in ("internet", "camRoleName")},
            "network": {"securityGroupIds": ["sg-5ujzw3i2"]},
            "dataDisks": [{"sizeGB": 200}],
        },
    }
    with pytest.raises(kubernetes.client.ApiException) as refused:
        _replace(custom, namespace, edited)
    message = str(refused.value.body)
    expected = [
        "spec.network.vpcId",
        "spec.network.subnetId",
        "spec.network.privateIpAddress",
        "spec.internet",
        "spec.dataDisks",
        "spec.camRoleName",
    ]
    for path in expected:
        assert f"{path} is immutable: the cloud cannot change it" in message, path
    assert "spec.userData" not in message and "spec.chargeType" not in message
    models = "\n".join(check_update(parse_object(FULL), parse_object(edited)))
    for path in expected:
        assert f"{path} is immutable" in models, path
