"""Several operator processes: active/standby through Kopf's peering, shards by label; one pass per key at once."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.operator import UBUNTU, instance_body, instances_tagged
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.kube import kubectl
from tests.support.operator import Objects, OperatorProcess, wait_for

ROOT = Path(__file__).resolve().parents[2]
PEERING = "cvm-ha"


def metric(operator: OperatorProcess, name: str) -> float:
    """Sum of every sample of ``name`` in the operator's /metrics."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(operator.metrics())
        for sample in family.samples
        if sample.name == name
    )


def adopted_image(name: str, **labels: str) -> dict[str, Any]:
    return {
        "kind": "Image",
        "metadata": {"name": name, "labels": labels},
        "spec": {"region": "ap-guangzhou", "source": {"existing": {"imageId": UBUNTU}}},
    }


@pytest.fixture
def peering(controlplane: Any) -> str:
    """Kopf's peering CRDs from the shipped manifest; the first replica makes the peering object."""
    kubectl("apply", "-f", str(ROOT / "manifests" / "base" / "peering.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=30s")
    return PEERING


def test_standby_takes_over_when_the_active_replica_is_killed_mid_launch(
    operator_factory: Callable[..., OperatorProcess],
    namespace: str,
    peering: str,
    objects: Objects,
    emulator: EmulatorProcess,
) -> None:
    active = operator_factory([namespace], extra_args=["--peering", peering, "--priority", "200"])
    active.wait_for_log(r"peering cvm-ha: active", timeout=60)
    standby = operator_factory([namespace], extra_args=["--peering", peering, "--priority", "100"])
    standby.wait_for_log(r"peering cvm-ha: standing by", timeout=60)

    names = [f"web-{n}" for n in range(30)]
    uids = {
        name: objects.create("instances", instance_body(name, image_id=UBUNTU))["metadata"]["uid"] for name in names
    }

    def launched() -> int:
        return sum(1 for name in names if (objects.get("instances", name) or {}).get("status", {}).get("instanceId"))

    wait_for(lambda: launched() > 0, 60, "the first launch")
    active.kill()
    killed_at = time.monotonic()
    assert launched() < len(names), "the launch finished before the kill; nothing was tested"

    standby.wait_for_log(r"peering cvm-ha: active", timeout=60)
    took_over = time.monotonic() - killed_at
    for name in names:
        objects.wait_condition("instances", name, timeout=120)
    client = sdk_client(emulator)
    for name in names:
        assert len(instances_tagged(client, uids[name])) == 1, f"{name} has a duplicate cloud instance"
    assert emulator.request_count("RunInstances", "OK") >= len(names) - 1  # batched or one each, never more
    assert took_over < 60
    # Before the kill, the standby made no cloud call and wrote nothing.
    standby_log = standby.log()
    before = standby_log.split("peering cvm-ha: active")[0]
    assert not re.search(r"Instance \S+: Ready", before)


def test_two_shards_split_the_objects_by_label(
    operator_factory: Callable[..., OperatorProcess], namespace: str, objects: Objects
) -> None:
    shards = {shard: operator_factory([namespace], extra_args=["--selector", f"shard={shard}"]) for shard in "ab"}
    for n in range(10):
        for shard in "ab":
            objects.create("images", adopted_image(f"{shard}-{n}", shard=shard))
    objects.create("images", adopted_image("unsharded"))
    for n in range(10):
        for shard in "ab":
            objects.wait_condition("images", f"{shard}-{n}", timeout=60)
    for shard, operator in shards.items():
        other = "b" if shard == "a" else "a"
        log = operator.log()
        ready = set(re.findall(rf"Image {namespace}/(\S+): Ready", log))
        assert ready == {f"{shard}-{n}" for n in range(10)}, f"shard {shard} reconciled {sorted(ready)}"
        assert f"{namespace}/{other}-" not in log
    unsharded = objects.get("images", "unsharded") or {}
    assert not (unsharded.get("status") or {}).get("conditions")  # no shard selects it


def test_many_requeues_never_run_one_key_twice_at_once(
    operator_factory: Callable[..., OperatorProcess], namespace: str, objects: Objects
) -> None:
    operator = operator_factory([namespace], poll_interval=0.5, extra_args=["--workers", "16"])
    names = [f"img-{n}" for n in range(200)]
    for name in names:
        objects.create("images", adopted_image(name))
    for name in names:
        objects.wait_condition("images", name, timeout=120)
    # Each object is queued by its poll, and again by user annotations while its passes run.
    for round_ in range(3):
        for name in names:
            objects.patch("images", name, {"metadata": {"annotations": {"example.com/bump": str(round_)}}})
    time.sleep(3)
    passes = metric(operator, "cvm_operator_reconciles_total")
    assert passes >= 3 * len(names), f"only {passes} passes: the test did not requeue enough"
    assert metric(operator, "cvm_operator_reconcile_overlaps_total") == 0
