"""The default account is opt-in per namespace (`--default-credentials-namespaces`): an object in a
namespace without the label and without credentialsSecretRef is Stalled NoCredentials and costs no cloud
call; labelling the namespace lets it through at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.support.emulator import EmulatorProcess
from tests.support.operator import Objects, OperatorProcess, wait_for

LABEL, VALUE = "cvm.operator.dev/default-account", "allowed"
UBUNTU = "img-487zeit5"


@pytest.fixture
def gated_operator(
    controlplane: Any, emulator: EmulatorProcess, crds_installed: Any, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    account = emulator.accounts[0]
    process = OperatorProcess(
        controlplane.kubeconfig, emulator.endpoint, [namespace], tmp_path / "operator.log",
        secret_id=account.secret_id, secret_key=account.secret_key,
        # A refused object is looked at again only after half an hour, unless something wakes it.
        extra_args=["--default-credentials-namespaces", f"{LABEL}={VALUE}", "--stalled-interval", "1800"],
    )  # fmt: skip
    process.start()
    yield process
    process.stop()
    assert "Traceback" not in process.log(), process.log()[-6000:]


def public_image(name: str) -> dict[str, Any]:
    return {"kind": "Image", "metadata": {"name": name},
            "spec": {"region": "ap-guangzhou", "source": {"existing": {"imageId": UBUNTU}}}}  # fmt: skip


@pytest.mark.operator
def test_unlabelled_namespace_gets_no_credentials_and_no_cloud_call(
    gated_operator: OperatorProcess,
    emulator: EmulatorProcess,
    objects: Objects,
    namespace: str,
    k8s_api: kubernetes.client.ApiClient,
) -> None:
    calls_before = emulator.request_count()
    objects.create("images", public_image("ubuntu"))
    stalled = objects.wait_condition("images", "ubuntu", "Stalled", reason="NoCredentials", timeout=60)
    message = next(c["message"] for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
    assert f"kubectl label namespace {namespace} {LABEL}={VALUE}" in message
    assert "credentialsSecretRef" in message
    assert stalled["status"]["phase"] == "Failed"
    warnings = wait_for(
        lambda: [e for e in objects.events("ubuntu") if e.reason == "NoCredentials"], 30, "a NoCredentials Event"
    )
    assert warnings[0].type == "Warning"
    time.sleep(3)  # several poll intervals
    assert emulator.request_count() == calls_before, "an object without credentials reached the cloud"

    # The namespace opts in: the operator sees the label and runs the refused object again at once.
    kubernetes.client.CoreV1Api(k8s_api).patch_namespace(namespace, {"metadata": {"labels": {LABEL: VALUE}}})
    ready = objects.wait_condition("images", "ubuntu", timeout=60)
    assert ready["status"]["imageId"] == UBUNTU
    assert emulator.request_count("DescribeImages") >= 1

    # Taking the label away counts at once too: the allowance remembered for the namespace is dropped.
    kubernetes.client.CoreV1Api(k8s_api).patch_namespace(namespace, {"metadata": {"labels": {LABEL: None}}})
    time.sleep(3)  # the namespace's watch event
    calls_before = emulator.request_count()
    objects.create("images", public_image("ubuntu-later"))
    refused = objects.wait_condition("images", "ubuntu-later", "Stalled", reason="NoCredentials", timeout=60)
    assert "imageId" not in refused["status"] and emulator.request_count() == calls_before
    gated_operator.wait_for_log(r"default credentials: keys; usable in namespaces: cvm.operator.dev/default-account")


@pytest.mark.operator
def test_a_credentials_secret_needs_no_label(
    gated_operator: OperatorProcess, emulator: EmulatorProcess, objects: Objects
) -> None:
    account = emulator.accounts[1]
    objects.core.create_namespaced_secret(
        objects.namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="account-b"),
            string_data={"secretId": account.secret_id, "secretKey": account.secret_key},
        ),
    )
    body = public_image("own-account")
    body["spec"]["credentialsSecretRef"] = {"name": "account-b"}
    objects.create("images", body)
    objects.wait_condition("images", "own-account", timeout=60)
