"""The operator as a real subprocess (`python -m cvm_operator run`), plus helpers to watch objects."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import kubernetes
import pytest

GROUP, VERSION = "cvm.operator.dev", "v1alpha1"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """One `cvm-operator run` process against the test control plane and an emulator."""

    def __init__(
        self,
        kubeconfig: Path,
        endpoint: str,
        namespaces: list[str],
        log_path: Path,
        *,
        secret_id: str | None,
        secret_key: str | None,
        poll_interval: float = 1.0,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.kubeconfig, self.endpoint, self.namespaces = kubeconfig, endpoint, namespaces
        self.log_path = log_path
        self.poll_interval = poll_interval
        self.extra_args = list(extra_args or [])
        self.env = dict(
            os.environ,
            KUBECONFIG=str(kubeconfig),
            TENCENTCLOUD_SECRET_ID=secret_id or "",
            TENCENTCLOUD_SECRET_KEY=secret_key or "",
            **(extra_env or {}),
        )
        for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
            if not self.env[name]:
                del self.env[name]  # no default keys (a web identity run)
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.health_port = 0

    def start(self) -> OperatorProcess:
        self.metrics_port, self.health_port = free_port(), free_port()
        scope = [arg for namespace in self.namespaces for arg in ("--namespace", namespace)]
        peering = [] if "--peering" in self.extra_args else ["--standalone"]
        command = [
            sys.executable, "-m", "cvm_operator", "run", *scope, *peering, *self.extra_args, "--verbose",
            "--endpoint", self.endpoint, "--poll-interval", str(self.poll_interval),
            "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
            "--bind-address", "127.0.0.1",
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"operator exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"operator did not become healthy:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last status write, as in a node failure."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        compiled = re.compile(pattern)
        return wait_for(lambda: compiled.search(self.log()), timeout, f"log line matching {pattern!r}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())


def wait_for(predicate: Callable[[], T | None], timeout: float = 60, what: str = "condition") -> T:
    """Poll until ``predicate`` returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return cast(T, last)
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _condition(body: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition["type"] == condition_type:
            return dict(condition)
    return None


class Objects:
    """Create, read and wait on cvm.operator.dev objects in one namespace."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
        return cast(
            dict[str, Any], self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)
        )

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            result = cast(
                dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name, patch),
        )

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def condition(self, plural: str, name: str, condition_type: str) -> dict[str, Any] | None:
        return _condition(self.get(plural, name) or {}, condition_type)

    def wait_condition(
        self,
        plural: str,
        name: str,
        condition_type: str = "Ready",
        status: str = "True",
        reason: str | None = None,
        timeout: float = 90,
    ) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            body = self.get(plural, name)
            condition = _condition(body or {}, condition_type)  # from the same read as the body returned
            if body is None or condition is None or condition["status"] != status:
                return None
            # kstatus: a condition speaks for the current spec only once its observedGeneration caught up.
            if condition.get("observedGeneration", 0) < body["metadata"].get("generation", 0):
                return None
            if reason is not None and condition["reason"] != reason:
                return None
            return body

        return wait_for(matches, timeout, f"{plural}/{name} {condition_type}={status} reason={reason}")

    def wait_gone(self, plural: str, name: str, timeout: float = 90) -> None:
        wait_for(lambda: self.get(plural, name) is None, timeout, f"{plural}/{name} to be deleted")

    def events(self, name: str) -> list[kubernetes.client.CoreV1Event]:
        items = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}").items
        return list(items)

    def wait_event(
        self, name: str, matches: Callable[[kubernetes.client.CoreV1Event], bool], timeout: float = 30
    ) -> kubernetes.client.CoreV1Event:
        """An Event about ``name`` that ``matches``: Events are posted after the status they announce."""

        def matching() -> kubernetes.client.CoreV1Event | None:
            return next((event for event in self.events(name) if matches(event)), None)

        found: kubernetes.client.CoreV1Event = wait_for(matching, timeout, f"an Event for {name}")
        return found


@pytest.fixture
def objects(k8s_api: kubernetes.client.ApiClient, namespace: str) -> Objects:
    return Objects(k8s_api, namespace)


@pytest.fixture
def operator_factory(
    controlplane: Any, emulator: Any, crds_installed: Any, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators (account 1 default credentials); every one is stopped at teardown."""
    started: list[OperatorProcess] = []

    def start(namespaces: list[str], **kwargs: Any) -> OperatorProcess:
        account = emulator.accounts[kwargs.pop("account", 0)]
        process = OperatorProcess(
            controlplane.kubeconfig, emulator.endpoint, namespaces, tmp_path / f"operator-{len(started)}.log",
            secret_id=account.secret_id, secret_key=account.secret_key, **kwargs,
        )  # fmt: skip
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
        assert "Traceback" not in process.log(), f"operator log has a traceback:\n{process.log()[-6000:]}"


@pytest.fixture
def operator(operator_factory: Callable[..., OperatorProcess], namespace: str) -> OperatorProcess:
    """The operator watching the test's namespace."""
    return operator_factory([namespace])
