"""The smallest Kopf operator doing the job: each new Image gets status Ready in one handler.

    python benchmarks/trivial_kopf_operator.py --namespace NS [--daemon] [--liveness URL]

A baseline for bench_operator.py: what Kopf itself costs per object. ``--daemon`` adds one idle
daemon per object (the per-object task model's memory). Kopf's own Events are off: the baseline does
only its job.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "cvm.operator.dev", "v1alpha1", "images"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False
    settings.persistence.finalizer = f"{GROUP}/trivial-kopf"


@kopf.on.create(GROUP, VERSION, PLURAL)
async def ready(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    generation = body.metadata.get("generation", 1)
    patch.status["phase"] = "Available"
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = [
        {"type": "Ready", "status": "True", "reason": "Available", "message": "ready",
         "observedGeneration": generation, "lastTransitionTime": now},
    ]  # fmt: skip


def add_daemon() -> None:
    @kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=1.0)
    async def idle(stopped: kopf.DaemonStopped, **_: Any) -> None:
        await stopped.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--daemon", action="store_true", help="one idle daemon per object")
    parser.add_argument("--liveness", help="liveness endpoint, e.g. http://127.0.0.1:8081/healthz")
    args = parser.parse_args()
    if args.daemon:
        add_daemon()
    kopf.configure(quiet=True)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(kopf.operator(standalone=True, namespaces=[args.namespace], liveness_endpoint=args.liveness))


if __name__ == "__main__":
    main()
