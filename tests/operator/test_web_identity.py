"""No long-lived keys: the operator's default account from a web identity token only (the TKE workload
identity variables), checked by the emulator against the test cluster's own service-account issuer.
Every cloud write is audited with its RequestId, and no secret value ever reaches the log (with
--verbose and --log-format json), an Event, a status or /metrics."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest

from tests.operator import UBUNTU, instance_body
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess, wait_for

AUDIENCE = "sts.cloud.tencent.com"
PROVIDER = "test-cluster"
ROLE = "cvm-operator"
WORKLOAD = "workload"
PASSWORD = "Web-Login-2024!"
WRITES = ("RunInstances", "CreateImage", "DeleteImages", "TerminateInstances", "ModifyResourceTags")


@dataclass
class WebIdentity:
    emulator: EmulatorProcess
    operator: OperatorProcess
    token: str
    account_id: str


def cluster_issuer() -> tuple[str, dict[str, Any]]:
    """The control plane's service-account issuer and its keys (what TKE registers as an OIDC provider)."""
    discovery = json.loads(kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)
    jwks = json.loads(kubectl("get", "--raw", "/openid/v1/jwks").stdout)
    return str(discovery["issuer"]), jwks


@pytest.fixture
def web_identity(
    controlplane: Any, crds_installed: Any, emulator_factory: Any, namespace: str, tmp_path: Path
) -> Iterator[WebIdentity]:
    issuer, jwks = cluster_issuer()
    subject = f"system:serviceaccount:{namespace}:{WORKLOAD}"
    kubectl("create", "serviceaccount", WORKLOAD, "-n", namespace)
    token = kubectl("create", "token", WORKLOAD, "-n", namespace, f"--audience={AUDIENCE}", "--duration=1h").stdout
    token_file = tmp_path / "web-identity-token"
    token_file.write_text(token.strip())
    emulator: EmulatorProcess = emulator_factory(
        config={
            "oidcProviders": [{"providerId": PROVIDER, "issuer": issuer, "audiences": [AUDIENCE], "jwks": jwks}],
            "roles": [{"accountId": "100000000001", "roleName": ROLE,
                       "trust": {"oidcProviders": [PROVIDER], "oidcSubjects": [subject]}}],
        }
    )  # fmt: skip
    operator = OperatorProcess(
        controlplane.kubeconfig, emulator.endpoint, [namespace], tmp_path / "operator.log",
        secret_id=None, secret_key=None, extra_args=["--log-format", "json"],
        extra_env={"TKE_REGION": "ap-guangzhou", "TKE_PROVIDER_ID": PROVIDER,
                   "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file),
                   "TKE_ROLE_ARN": f"qcs::cam::uin/100000000001:roleName/{ROLE}"},
    )  # fmt: skip
    operator.start()
    try:
        yield WebIdentity(emulator, operator, token.strip(), "100000000001")
    finally:
        operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-6000:]


def log_records(operator: OperatorProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in operator.log().splitlines() if line.startswith("{")]


def login_secret(objects: Objects) -> None:
    objects.core.create_namespaced_secret(
        objects.namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="web-login"), string_data={"password": PASSWORD}
        ),
    )


def lifecycle(objects: Objects, emulator: EmulatorProcess) -> tuple[str, str]:
    """An Instance from a public image, a custom Image made from it, then both deleted."""
    login_secret(objects)
    ubuntu = {"region": "ap-guangzhou", "source": {"existing": {"imageId": UBUNTU}}}
    objects.create("images", {"kind": "Image", "metadata": {"name": "ubuntu"}, "spec": ubuntu})
    objects.create("instances", instance_body(
        "web-1", image_ref="ubuntu", tags={"team": "web"},
        loginSettings={"passwordSecretRef": {"name": "web-login", "key": "password"}},
    ))  # fmt: skip
    instance_id = objects.wait_condition("instances", "web-1", timeout=120)["status"]["instanceId"]
    # Made in the role's account (100000000001, the emulator's first).
    assert sdk_client(emulator, 0).call_json("DescribeInstances", {"InstanceIds": [instance_id]})["Response"][
        "InstanceSet"
    ]
    objects.create("images", {"kind": "Image", "metadata": {"name": "golden"}, "spec": {
        "region": "ap-guangzhou", "source": {"fromInstance": {"instanceRef": {"name": "web-1"}}}}})  # fmt: skip
    image_id = objects.wait_condition("images", "golden", timeout=120)["status"]["imageId"]
    for plural, name in (("images", "golden"), ("instances", "web-1"), ("images", "ubuntu")):
        objects.delete(plural, name)
        objects.wait_gone(plural, name, timeout=120)
    return instance_id, image_id


@pytest.mark.operator
@pytest.mark.timeout(300)
def test_lifecycle_with_only_a_web_identity_token(web_identity: WebIdentity, objects: Objects) -> None:
    emulator, operator = web_identity.emulator, web_identity.operator
    assert "TENCENTCLOUD_SECRET_ID" not in operator.env and "TENCENTCLOUD_SECRET_KEY" not in operator.env
    lifecycle(objects, emulator)

    # The work was done as the role's account with temporary keys, never refused.
    assert emulator.request_count("AssumeRoleWithWebIdentity", "OK") >= 1
    assert emulator.request_count(code="AuthFailure.TokenFailure") == 0
    assert emulator.request_count(code="AuthFailure.SecretIdNotFound") == 0
    assert emulator.request_count("TerminateInstances", "OK") == 1
    assert emulator.request_count("DeleteImages", "OK") == 1
    operator.wait_for_log(r"temporary credentials of qcs::cam::uin/100000000001:roleName/cvm-operator renewed")

    # Audit: one log record per cloud write with the cloud's RequestId, as many as the cloud answered.
    audited = [r for r in log_records(operator) if "audit" in r]
    for action in WRITES:
        ok = [r for r in audited if r["audit"]["action"] == action and r["audit"]["result"] == "OK"]
        assert len(ok) == emulator.request_count(action, "OK"), action
        assert all(r["audit"]["requestId"] and r.get("object") for r in ok), action
    run = next(r for r in audited if r["audit"]["action"] == "RunInstances")
    assert run["object"] == {"kind": "Instance", "namespace": objects.namespace, "name": "web-1"}
    # The Event of that transition names the same RequestId.
    request_id = run["audit"]["requestId"]
    messages = [str(e.message) for e in objects.events("web-1")]
    assert any(f"RunInstances RequestId={request_id}" in m for m in messages), messages
    create = next(r for r in audited if r["audit"]["action"] == "CreateImage")
    assert any(
        f"CreateImage RequestId={create['audit']['requestId']}" in str(e.message) for e in objects.events("golden")
    )


def temporary_secrets(emulator: EmulatorProcess) -> list[str]:
    with sqlite3.connect(emulator.db) as conn:
        rows = conn.execute("SELECT secret_key, token FROM sts_sessions").fetchall()
    return [value for row in rows for value in row]


def all_statuses_and_events(k8s_api: kubernetes.client.ApiClient, namespace: str) -> str:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    bodies = [
        cast(dict[str, Any], custom.list_namespaced_custom_object("cvm.operator.dev", "v1alpha1", namespace, plural))
        for plural in ("images", "instances", "imageshares", "imagecopies")
    ]
    events = kubernetes.client.CoreV1Api(k8s_api).list_namespaced_event(namespace).items
    return json.dumps(bodies) + json.dumps([k8s_api.sanitize_for_serialization(e) for e in events])


@pytest.mark.operator
@pytest.mark.timeout(300)
def test_no_secret_value_leaks(
    web_identity: WebIdentity, objects: Objects, k8s_api: kubernetes.client.ApiClient
) -> None:
    emulator, operator = web_identity.emulator, web_identity.operator
    # Beside the web identity: keys of another account in a Secret, a login password, a bad password
    # (refused by the cloud) and a missing Secret key, so that error paths are logged too.
    other = emulator.accounts[1]
    objects.core.create_namespaced_secret(objects.namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="account-b"),
        string_data={"secretId": other.secret_id, "secretKey": other.secret_key}))  # fmt: skip
    objects.core.create_namespaced_secret(objects.namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="weak-login"), string_data={"password": "sh0rt!"}))  # fmt: skip
    objects.create("instances", instance_body(
        "b-1", image_id=UBUNTU, credentialsSecretRef={"name": "account-b"},
        loginSettings={"passwordSecretRef": {"name": "web-login", "key": "password"}}))  # fmt: skip
    for name, key in (("weak", "password"), ("no-key", "nope")):
        login = {"passwordSecretRef": {"name": "weak-login", "key": key}}
        objects.create("instances", instance_body(name, image_id=UBUNTU, loginSettings=login))
    lifecycle(objects, emulator)
    objects.wait_condition("instances", "b-1", timeout=120)
    objects.wait_condition("instances", "weak", "Stalled", timeout=60)
    objects.wait_condition("instances", "no-key", "Stalled", reason="SecretKeyNotFound", timeout=60)
    wait_for(lambda: temporary_secrets(emulator), 10, "temporary credentials issued")

    secrets = [other.secret_key, PASSWORD, "sh0rt!", web_identity.token, *temporary_secrets(emulator)]
    encoded = [base64.b64encode(value.encode()).decode() for value in secrets]
    places = {
        "log": operator.log(),
        "events and statuses": all_statuses_and_events(k8s_api, objects.namespace),
        "metrics": operator.metrics(),
    }
    assert log_records(operator), "the log is not JSON"
    assert any(r["level"] == "debug" for r in log_records(operator)), "the log is not verbose"
    for where, text in places.items():
        for value in [*secrets, *encoded]:
            assert value not in text, f"a secret value ({value[:4]}…) is in the {where}"
    # Signatures of the JWT are secret too; its payload (issuer, subject) is not.
    assert web_identity.token.split(".")[2] not in places["log"]
