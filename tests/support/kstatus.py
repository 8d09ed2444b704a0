"""kstatus as cli-utils computes it (hack/kstatus): the health Flux, kpt and Config Sync see for an object."""

from __future__ import annotations

import copy
import json
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest

from tests.support.controlplane import load_controlplane_module

GROUP, VERSION = "cvm.operator.dev", "v1alpha1"
CURRENT, IN_PROGRESS, FAILED, TERMINATING = "Current", "InProgress", "Failed", "Terminating"


@dataclass(frozen=True)
class KStatus:
    status: str
    message: str


@cache
def binary() -> Path:
    """The helper, built into the cache on first use; a missing one fails the test, never skips it."""
    try:
        path = Path(load_controlplane_module().build_kstatus())
    except (Exception, SystemExit) as error:
        pytest.fail(f"the kstatus helper could not be built: {error}", pytrace=False)
    if not path.is_file():
        pytest.fail(f"the kstatus helper is missing at {path}", pytrace=False)
    return path


def compute_all(objects: Iterable[Mapping[str, Any]]) -> list[KStatus]:
    """kstatus of each object, in order, from one run of the helper."""
    items = [dict(item) for item in objects]
    if not items:
        return []
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    answer = subprocess.run([str(binary())], input=document, capture_output=True, text=True, timeout=60)
    if answer.returncode != 0:
        raise AssertionError(f"kstatus failed ({answer.returncode}): {answer.stderr.strip()}")
    results = [json.loads(line) for line in answer.stdout.splitlines()]
    if len(results) != len(items):
        raise AssertionError(f"kstatus answered {len(results)} lines for {len(items)} objects: {answer.stdout}")
    return [KStatus(str(result["status"]), str(result["message"])) for result in results]


def compute(body: Mapping[str, Any]) -> KStatus:
    (result,) = compute_all([body])
    return result


def kstatus(body: Mapping[str, Any] | None) -> str:
    """The kstatus word (Current, InProgress, Failed, Terminating) of one object."""
    assert body is not None, "no object to judge"
    return compute(body).status


def own_reading(body: Mapping[str, Any]) -> str:
    """What the object's own fields promise a GitOps tool: the contract the library must agree with.

    Ready=True counts only when it and status.observedGeneration speak for the current generation;
    Stalled=True means the user must act; anything else is work still to do.
    """
    meta, status = body["metadata"], body.get("status") or {}
    if meta.get("deletionTimestamp"):
        return TERMINATING
    generation = meta.get("generation")
    conditions = {condition["type"]: condition for condition in status.get("conditions") or []}

    def true_now(condition_type: str) -> bool:
        condition = conditions.get(condition_type) or {}
        return condition.get("status") == "True" and condition.get("observedGeneration") == generation

    if status.get("observedGeneration") == generation and true_now("Stalled"):
        return FAILED
    if status.get("observedGeneration") == generation and true_now("Ready"):
        return CURRENT
    return IN_PROGRESS


class History:
    """Every version of the cvm objects in one namespace, as watches deliver them, for judging afterwards."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, plurals: Sequence[str]) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.namespace, self.plurals = namespace, plurals
        self.versions: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def start(self) -> History:
        for plural in self.plurals:
            # Watching from the list's resourceVersion loses nothing made before the watch connects.
            listed = cast(
                dict[str, Any], self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
            )
            since = str(listed["metadata"]["resourceVersion"])
            thread = threading.Thread(target=self._watch, args=(plural, since), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _watch(self, plural: str, since: str) -> None:
        try:
            while not self._stop.is_set():
                stream = kubernetes.watch.Watch().stream(
                    self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, plural,
                    resource_version=since, timeout_seconds=2, allow_watch_bookmarks=False,
                )  # fmt: skip
                for event in stream:
                    body = cast(dict[str, Any], event["object"])
                    since = str(body["metadata"]["resourceVersion"])
                    if event["type"] in ("ADDED", "MODIFIED"):
                        with self._lock:
                            self.versions.append(copy.deepcopy(body))
        except BaseException as error:  # surfaced by check(); a thread cannot fail the test itself
            self._errors.append(error)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def check(self) -> list[tuple[dict[str, Any], KStatus]]:
        """Stop watching; assert the library agreed with :func:`own_reading` on every version seen."""
        self.stop()
        assert not self._errors, f"watching failed: {self._errors!r}"
        with self._lock:
            versions = list(self.versions)
        judged = list(zip(versions, compute_all(versions), strict=True))
        disagreements = [
            f"{body['kind']}/{body['metadata']['name']} generation {body['metadata'].get('generation')}: "
            f"kstatus {result.status} ({result.message!r}) but its fields say {own_reading(body)}; "
            f"status {json.dumps(body.get('status'))}"
            for body, result in judged
            if result.status != own_reading(body)
        ]
        assert not disagreements, "\n".join(disagreements)
        return judged
