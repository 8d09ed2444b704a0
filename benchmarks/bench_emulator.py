"""Benchmark the cvm-emulator: DescribeImages throughput with 1,000 custom images, and memory.

Starts a real emulator subprocess, creates the images through the API (CreateImage from one
instance, so the data is exactly what clients make; the config raises the per-region quota so
one account holds them all), then runs concurrent DescribeImages calls
through the official async SDK for a fixed duration, split over several client processes so the
client side is not the bottleneck. Prints a table and optionally writes JSON.

    python benchmarks/bench_emulator.py --duration 10 --json results/emulator.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tencentcloud.common import credential  # noqa: E402
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException  # noqa: E402
from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: E402
from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: E402
from tencentcloud.cvm.v20170312 import cvm_client_async, models  # noqa: E402
from tests.support.emulator import EmulatorProcess, async_sdk_client  # noqa: E402


def rss_kib(pid: int) -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def describe_request(offset: int) -> models.DescribeImagesRequest:
    req = models.DescribeImagesRequest()
    req.from_json_string(
        json.dumps(
            {
                "Filters": [{"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}],
                "Limit": 20,
                "Offset": offset,
            }
        )
    )
    return req


async def seed_images(process: EmulatorProcess, count: int, concurrency: int) -> float:
    """``count`` custom images, made by ``concurrency`` workers from an instance each (the cloud makes
    one image at a time per instance)."""
    started = time.perf_counter()
    async with async_sdk_client(process) as client:
        run = models.RunInstancesRequest()
        run.from_json_string(
            json.dumps(
                {"Placement": {"Zone": "ap-guangzhou-3"}, "ImageId": "img-487zeit5", "InstanceCount": concurrency}
            )
        )
        instance_ids = list((await client.RunInstances(run)).InstanceIdSet)
        while True:
            status = models.DescribeInstancesStatusRequest()
            status.InstanceIds = instance_ids
            states = (await client.DescribeInstancesStatus(status)).InstanceStatusSet or []
            if len(states) == len(instance_ids) and all(state.InstanceState == "RUNNING" for state in states):
                break
            await asyncio.sleep(0.1)
        queue = list(range(count))

        async def worker(instance_id: str) -> None:
            while queue:
                n = queue.pop()
                req = models.CreateImageRequest()
                req.ImageName = f"bench-{n:04d}"
                req.InstanceId = instance_id
                while True:
                    try:
                        await client.CreateImage(req)
                        break
                    except TencentCloudSDKException as error:
                        if error.get_code() != "OperationDenied.InstanceOperationInProgress":
                            raise
                        await asyncio.sleep(0.1)  # its previous image is still being made

        await asyncio.gather(*(worker(instance_id) for instance_id in instance_ids))
    return time.perf_counter() - started


async def _client_load(
    host_port: str, secret: tuple[str, str], duration: float, concurrency: int, total_images: int, keep_alive: bool
) -> tuple[int, int, list[float]]:
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=host_port, protocol="http", keepAlive=keep_alive))
    deadline = time.perf_counter() + duration
    ok = errors = 0
    latencies: list[float] = []
    async with cvm_client_async.CvmClient(credential.Credential(*secret), "ap-guangzhou", profile) as client:

        async def worker(index: int) -> None:
            nonlocal ok, errors
            offset = (index * 20) % total_images
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    result = await client.DescribeImages(describe_request(offset))
                    ok += 1 if result.TotalCount == total_images else 0
                    errors += 0 if result.TotalCount == total_images else 1
                except Exception:
                    errors += 1
                latencies.append(time.perf_counter() - t0)
                offset = (offset + 20) % total_images

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return ok, errors, latencies


def _client_process(args: tuple[str, tuple[str, str], float, int, int, bool]) -> tuple[int, int, list[float]]:
    return asyncio.run(_client_load(*args))


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="custom images to create (default 1000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of DescribeImages load")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent requests per client process")
    parser.add_argument(
        "--no-keep-alive",
        action="store_true",
        help="open a connection per request (the SDK's default) instead of reusing them",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON to this path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as workdir:
        # One account holds all images, so the quota (500 per region by default) is raised to fit.
        process = EmulatorProcess(Path(workdir), config={"imageQuota": max(500, args.images)})
        process.start()
        try:
            assert process.process is not None
            pid = process.process.pid
            idle = rss_kib(pid)
            seed_seconds = asyncio.run(seed_images(process, args.images, concurrency=10))
            seeded = rss_kib(pid)
            account = process.accounts[0]
            load_args = (
                process.host_port,
                (account.secret_id, account.secret_key),
                args.duration,
                args.concurrency,
                args.images,
                not args.no_keep_alive,
            )
            cpu_before = cpu_seconds(pid)
            started = time.perf_counter()
            with multiprocessing.get_context("spawn").Pool(args.client_processes) as pool:
                results = pool.map(_client_process, [load_args] * args.client_processes)
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(pid) - cpu_before
            loaded = rss_kib(pid)
            server_ok = process.request_count("DescribeImages", "OK")
        finally:
            process.stop()

    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    latencies = [x for r in results for x in r[2]]
    summary: dict[str, Any] = {
        "images": args.images,
        "seed_seconds": round(seed_seconds, 2),
        "seed_images_per_second": round(args.images / seed_seconds, 1),
        "duration_seconds": round(elapsed, 2),
        "client_processes": args.client_processes,
        "concurrency_per_process": args.concurrency,
        "keep_alive": not args.no_keep_alive,
        "describe_images_ok": ok,
        "describe_images_errors": errors,
        "describe_images_per_second": round(ok / elapsed, 1),
        "server_counted_ok": server_ok,
        # CPU the emulator spent per request: independent of how busy the machine is.
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, ok + errors), 3),
        "server_capacity_per_cpu_second": round((ok + errors) / server_cpu, 1) if server_cpu else None,
        "latency_ms_p50": round(percentile(latencies, 0.50) * 1000, 2),
        "latency_ms_p95": round(percentile(latencies, 0.95) * 1000, 2),
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 2),
        "rss_mib_idle": round(idle["VmRSS"] / 1024, 1),
        "rss_mib_after_seed": round(seeded["VmRSS"] / 1024, 1),
        "rss_mib_after_load": round(loaded["VmRSS"] / 1024, 1),
        "rss_mib_peak": round(loaded["VmHWM"] / 1024, 1),
    }
    width = max(len(k) for k in summary)
    print("cvm-emulator benchmark")
    for key, value in summary.items():
        print(f"  {key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
