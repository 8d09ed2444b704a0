"""The operator under its ServiceAccount's own token (the deployment's RBAC, not admin): an Image + Instance
lifecycle completes, nothing is forbidden, JSON logs parse, Events are posted and /metrics has the series."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ship.conftest import OPERATOR_NAMESPACE, SERVICE_ACCOUNT
from tests.ship.test_tenant import tenant_dir
from tests.support.emulator import sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, free_port, wait_for


class ServiceAccountOperator:
    def __init__(self, kubeconfig: Path, endpoint: str, account: Any, log_path: Path) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.log_path = log_path
        command = [
            sys.executable, "-m", "cvm_operator", "run", "--all-namespaces", "--standalone",
            "--endpoint", endpoint, "--poll-interval", "1", "--log-format", "json",
            "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
            "--bind-address", "127.0.0.1",
        ]  # fmt: skip
        env = dict(
            os.environ,
            KUBECONFIG=str(kubeconfig),
            TENCENTCLOUD_SECRET_ID=account.secret_id,
            TENCENTCLOUD_SECRET_KEY=account.secret_key,
        )
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            assert self.process.poll() is None, f"operator exited:\n{self.log()[-6000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(healthy, 60, "the operator's /healthz")

    def metrics(self) -> dict[str, list[Any]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        samples: dict[str, list[Any]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append(sample)
        return samples

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def service_account_kubeconfig(controlplane: Any, operator_rbac: Any, tmp_path: Path) -> Path:
    token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=1h").stdout.strip()
    path: Path = controlplane.kubeconfig_for_token(token, SERVICE_ACCOUNT, tmp_path / "operator.kubeconfig")
    whoami = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=path).stdout
    assert whoami == f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"
    return path


@pytest.fixture
def sa_operator(service_account_kubeconfig: Path, emulator: Any, tmp_path: Path) -> Iterator[ServiceAccountOperator]:
    process = ServiceAccountOperator(
        service_account_kubeconfig, emulator.endpoint, emulator.accounts[0], tmp_path / "op.log"
    )
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


def positive(samples: dict[str, list[Any]], name: str, **labels: str) -> list[Any]:
    matching = [
        s for s in samples.get(name, []) if all(s.labels.get(k, "").lower() == v.lower() for k, v in labels.items())
    ]
    return [s for s in matching if s.value > 0]


@pytest.mark.operator
@pytest.mark.timeout(300)
def test_image_and_instance_lifecycle_under_the_service_account(
    sa_operator: ServiceAccountOperator,
    emulator: Any,
    k8s_api: kubernetes.client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    objects = Objects(k8s_api, namespace)
    # The namespace lets the operator read its Secrets (the login password).
    kubectl("apply", "-k", str(tenant_dir(tmp_path, namespace)))
    objects.core.create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="web-login"), string_data={"password": "Web-Login-2024"}
        ),
    )
    objects.create(
        "images",
        {
            "kind": "Image",
            "metadata": {"name": "ubuntu"},
            "spec": {"region": "ap-guangzhou", "source": {"existing": {"imageId": "img-487zeit5"}}},
        },
    )
    objects.create(
        "instances",
        {
            "kind": "Instance",
            "metadata": {"name": "web-1"},
            "spec": {
                "region": "ap-guangzhou",
                "zone": "ap-guangzhou-3",
                "instanceType": "S5.SMALL2",
                "imageRef": {"name": "ubuntu"},
                "loginSettings": {"passwordSecretRef": {"name": "web-login", "key": "password"}},
            },
        },
    )
    objects.wait_condition("images", "ubuntu", timeout=120)
    instance = objects.wait_condition("instances", "web-1", timeout=180)
    instance_id = instance["status"]["instanceId"]
    described = sdk_client(emulator).call_json("DescribeInstances", {"InstanceIds": [instance_id]})["Response"]
    assert [i["InstanceState"] for i in described["InstanceSet"]] == ["RUNNING"]
    assert objects.events("web-1"), "no Kubernetes Event was posted for the Instance"

    objects.delete("instances", "web-1")
    objects.wait_gone("instances", "web-1", timeout=180)
    assert emulator.request_count("TerminateInstances", "OK") >= 1
    objects.delete("images", "ubuntu")
    objects.wait_gone("images", "ubuntu", timeout=60)
    assert emulator.request_count("DeleteImages") == 0, "an adopted public image must never be deleted"

    samples = sa_operator.metrics()
    assert positive(samples, "cvm_operator_cloud_api_calls_total", action="RunInstances", result="OK")
    assert positive(samples, "cvm_operator_cloud_api_calls_total", action="DescribeInstances")
    assert positive(samples, "cvm_operator_reconciles_total", kind="Instance")
    assert positive(samples, "cvm_operator_reconciles_total", kind="Image")
    assert positive(samples, "cvm_operator_reconcile_duration_seconds_count", kind="Instance")
    assert positive(samples, "cvm_operator_time_to_ready_seconds_count", kind="Instance")
    assert positive(samples, "cvm_operator_time_to_ready_seconds_count", kind="Image")

    sa_operator.stop()
    log = sa_operator.log()
    assert "Traceback" not in log, log[-6000:]
    # RBAC refusals read 'User "system:serviceaccount:..." cannot <verb> resource ...'; other 403s (such as
    # events refused in a namespace that is being deleted) are not about the operator's permissions.
    assert not re.search(r'system:serviceaccount:[^"\\]*\\?" cannot ', log), (
        f"the ServiceAccount lacks a permission:\n{log[-6000:]}"
    )
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert records and all({"time", "level", "message"} <= set(record) for record in records)
    assert any(record.get("object", {}).get("name") == "web-1" for record in records)
