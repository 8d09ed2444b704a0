"""InstanceSet: N replicas to Ready against the floor of one batched launch (a set of one replica).

    .venv/bin/python benchmarks/bench_instanceset.py [--replicas 500] [--json out.json]

Both sets are in one zone, so each launch is one RunInstances call (InstanceCount up to 500): the set
of one replica is the floor (one call, one instance to Ready), and the ratio says what the other N-1
replicas add. Time is from the create of the set to its Ready condition for the current generation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import kube  # noqa: E402
from tests.support.controlplane import load_controlplane_module  # noqa: E402
from tests.support.emulator import EmulatorProcess  # noqa: E402
from tests.support.operator import Objects, OperatorProcess, wait_for  # noqa: E402

PUBLIC_IMAGE = "img-487zeit5"


def set_body(name: str, replicas: int) -> dict[str, Any]:
    return {
        "kind": "InstanceSet",
        "metadata": {"name": name},
        "spec": {
            "region": "ap-guangzhou",
            "replicas": replicas,
            "zones": ["ap-guangzhou-3"],
            "template": {
                "spec": {
                    "instanceType": "S5.MEDIUM2",
                    "imageId": PUBLIC_IMAGE,
                    "loginSettings": {"keyIds": ["skey-abcdefgh"]},
                }
            },
        },
    }


def seconds_to_ready(objects: Objects, name: str, replicas: int, timeout: float) -> float:
    started = time.monotonic()
    objects.create("instancesets", set_body(name, replicas))
    objects.wait_condition("instancesets", name, timeout=timeout)
    body = objects.get("instancesets", name) or {}
    assert (body.get("status") or {}).get("readyReplicas") == replicas
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-instanceset-"))
    plane = load_controlplane_module().ControlPlane(work / "controlplane")
    plane.up()
    try:
        kube.configure(plane.kubectl, plane.kubeconfig)
        kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/instancesets.cvm.operator.dev")
        namespace = "bench-instanceset"
        kube.kubectl("create", "namespace", namespace)
        with EmulatorProcess(work / "emulator") as emulator:
            account = emulator.accounts[0]
            operator = OperatorProcess(
                plane.kubeconfig, emulator.endpoint, [namespace], work / "operator.log",
                secret_id=account.secret_id, secret_key=account.secret_key,
            ).start()  # fmt: skip
            try:
                config = kubernetes.client.Configuration()
                kubernetes.config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=config)
                with kubernetes.client.ApiClient(config) as api:
                    objects = Objects(api, namespace)
                    one = seconds_to_ready(objects, "one", 1, args.timeout)
                    calls_before = emulator.request_count("RunInstances")
                    many = seconds_to_ready(objects, "many", args.replicas, args.timeout)
                    calls = emulator.request_count("RunInstances") - calls_before
                    describes = emulator.request_count("DescribeInstances")
                    for name in ("one", "many"):
                        objects.delete("instancesets", name)
                    wait_for(lambda: not objects.get("instancesets", "many"), args.timeout, "the sets to go")
            finally:
                operator.stop()
        result = {
            "replicas": args.replicas,
            "seconds_one_replica": round(one, 2),
            "seconds_all_replicas": round(many, 2),
            "ratio_to_one": round(many / one, 2),
            "run_instances_calls": calls,
            "describe_instances_calls_total": describes,
        }
        print(f"  instanceset: {json.dumps(result)}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        plane.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
