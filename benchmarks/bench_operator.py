"""Operator throughput, cloud API calls per object and memory, on the real control plane and emulator.

    .venv/bin/python benchmarks/bench_operator.py [--objects 40] [--poll-interval 2] [--json out.json]

Phases, all in one run so the figures compare side by side:
1. launch: N Instances from a public image, time until every one is Ready, and the cloud calls it took;
2. steady state: the same N objects settled, for several poll intervals: Describe calls per object-poll
   (batching packs many objects into one call, so this is well below 1);
3. memory: the operator's resident set size with N objects.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.controlplane import load_controlplane_module  # noqa: E402
from tests.support.emulator import EmulatorProcess  # noqa: E402
from tests.support.operator import Objects, OperatorProcess, wait_for  # noqa: E402

PUBLIC_IMAGE = "img-487zeit5"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def calls_by_action(emulator: EmulatorProcess) -> dict[str, float]:
    counts: dict[str, float] = {}
    pattern = re.compile(r'^cvm_emulator_requests_total\{action="([^"]+)",code="([^"]+)"\} (\S+)$')
    for line in emulator.metrics().splitlines():
        match = pattern.match(line)
        if match:
            counts[match[1]] = counts.get(match[1], 0.0) + float(match[3])
    return counts


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {action: after[action] - before.get(action, 0.0) for action in after if after[action] != before.get(action)}


def instance(name: str) -> dict[str, Any]:
    return {
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {
            "region": "ap-guangzhou", "zone": "ap-guangzhou-3", "instanceType": "S5.SMALL1",
            "imageId": PUBLIC_IMAGE, "loginSettings": {"passwordSecretRef": {"name": "login", "key": "password"}},
        },
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=40)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--steady-polls", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    # SIGTERM ends the run through the finally clause below, so nothing is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="cvm-bench-"))
    plane = load_controlplane_module().ControlPlane(work / "controlplane")
    plane.up()
    emulator = EmulatorProcess(work / "emulator")
    emulator.start()
    operator: OperatorProcess | None = None
    try:
        from tests.support import kube

        kube.configure(plane.kubectl, plane.kubeconfig)
        kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=config)
        api = kubernetes.client.ApiClient(config)
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name="bench")))
        core.create_namespaced_secret(
            "bench",
            kubernetes.client.V1Secret(
                metadata=kubernetes.client.V1ObjectMeta(name="login"), string_data={"password": "Bench-Passw0rd!"}
            ),
        )
        objects = Objects(api, "bench")
        account = emulator.accounts[0]
        operator = OperatorProcess(
            plane.kubeconfig, emulator.endpoint, ["bench"], work / "operator.log",
            secret_id=account.secret_id, secret_key=account.secret_key, poll_interval=args.poll_interval,
        ).start()  # fmt: skip
        assert operator.process is not None
        idle_rss = rss_mib(operator.process.pid)

        before = calls_by_action(emulator)
        started = time.monotonic()
        for index in range(args.objects):
            objects.create("instances", instance(f"bench-{index:04d}"))

        def all_ready() -> bool:
            listed = objects.custom.list_namespaced_custom_object("cvm.operator.dev", "v1alpha1", "bench", "instances")
            items: list[dict[str, Any]] = cast(dict[str, Any], listed)["items"]
            conditions = [{c["type"]: c for c in (item.get("status") or {}).get("conditions", [])} for item in items]
            stalled = [c["Stalled"]["message"] for c in conditions if c.get("Stalled", {}).get("status") == "True"]
            if stalled:
                raise SystemExit(f"benchmark objects are Stalled: {stalled[0]}")
            ready = [c for c in conditions if c.get("Ready", {}).get("status") == "True"]
            return bool(len(ready) == args.objects)

        wait_for(all_ready, timeout=600, what=f"{args.objects} instances Ready")
        launch_seconds = time.monotonic() - started
        launch_calls = delta(calls_by_action(emulator), before)

        steady_before = calls_by_action(emulator)
        steady_seconds = args.steady_polls * args.poll_interval
        time.sleep(steady_seconds)
        steady_calls = delta(calls_by_action(emulator), steady_before)
        loaded_rss = rss_mib(operator.process.pid)

        object_polls = args.objects * args.steady_polls
        results = {
            "objects": args.objects,
            "poll_interval_s": args.poll_interval,
            "launch_seconds_to_all_ready": round(launch_seconds, 2),
            "launch_objects_per_second": round(args.objects / launch_seconds, 2),
            "launch_cloud_calls": launch_calls,
            "launch_cloud_calls_per_object": round(sum(launch_calls.values()) / args.objects, 2),
            "steady_seconds": steady_seconds,
            "steady_cloud_calls": steady_calls,
            "steady_describe_calls_per_object_poll": round(
                steady_calls.get("DescribeInstances", 0.0) / object_polls, 3
            ),
            "operator_rss_mib_idle": round(idle_rss, 1),
            "operator_rss_mib_with_objects": round(loaded_rss, 1),
        }
    finally:
        if operator is not None:
            operator.stop()
        emulator.stop()
        plane.down()

    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
