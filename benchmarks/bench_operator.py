"""cvm-operator against its floors, side by side on one control plane and one emulator.

    .venv/bin/python benchmarks/bench_operator.py [--objects 5000] [--instances 500] [--json out.json]

Phases, in this order, each in its own namespace:
1. floor: a plain client creates N Images and patches the status of each twice (Reconciling, Ready);
2. kopf: a trivial Kopf operator (benchmarks/trivial_kopf_operator.py) makes N new Images Ready;
3. cvm-images: cvm-operator adopts N Images (``source.existing.imageId``, so the cloud is no limit);
4. kopf-daemon: the trivial Kopf operator with one idle daemon per object, for memory: started on phase 2's
   settled objects (as after a restart), it spawns them all at once;
5. cvm-instances: cvm-operator launches M Instances; RunInstances allows 10/s, so M/10 s is the floor;
6. steady: one cvm-operator started on both namespaces with a short poll interval: Describe calls per poll
   (and its memory, started on settled objects like phase 4);
7. profile: what ``--profile-objects`` new Images add to cvm-operator, by tracemalloc (CVM_OPERATOR_TRACEMALLOC).

Time is from the first create to the last object Ready, seen through a watch. Peak RSS is the
operator process's VmHWM. Writes are the apiserver's own counts (``apiserver_request_total``:
POST, PATCH and PUT on the kind and its status), less the benchmark's creates. The emulator enforces
the documented per-action rate limits, so every ``RequestLimitExceeded`` is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.controlplane import load_controlplane_module  # noqa: E402
from tests.support.emulator import EmulatorProcess  # noqa: E402

GROUP, VERSION = "cvm.operator.dev", "v1alpha1"
PUBLIC_IMAGE = "img-487zeit5"
REGION = "ap-guangzhou"
RUN_INSTANCES_PER_SECOND = 10.0
WRITE_VERBS = ("POST", "PATCH", "PUT")
# Targets of issue 12.
TIME_VS_KOPF, RSS_VS_KOPF, RSS_MAX_MIB = 1.2, 1.25, 250.0
INSTANCES_VS_FLOOR, WRITES_MAX, EVENTS_MAX = 1.15, 3.0, 1.0
DAEMON_FINALIZER = f"{GROUP}/trivial-kopf"  # benchmarks/trivial_kopf_operator.py
PHASES = ("floor", "kopf", "cvm_images", "kopf_daemon", "cvm_instances", "steady", "profile")


def image(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Image", "metadata": {"name": name},
        "spec": {"region": REGION, "source": {"existing": {"imageId": PUBLIC_IMAGE}}},
    }  # fmt: skip


def instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Instance", "metadata": {"name": name},
        "spec": {
            "region": REGION, "zone": "ap-guangzhou-3", "instanceType": "S5.SMALL1", "imageId": PUBLIC_IMAGE,
            "loginSettings": {"passwordSecretRef": {"name": "login", "key": "password"}},
        },
    }  # fmt: skip


def condition(body: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for item in (body.get("status") or {}).get("conditions") or ():
        if item.get("type") == kind:
            return dict(item)
    return None


# ---------------------------------------------------------------- Kubernetes, through aiohttp


class Kube:
    """The few apiserver calls the benchmark makes, as the admin user."""

    def __init__(self, server: str, token: str, ca_file: Path, connections: int) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {token}"}
        context = ssl.create_default_context(cafile=str(ca_file))
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=connections + 4),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None),
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, body: Any = None, patch: bool = False) -> Any:
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json" if patch else "application/json"
            data = json.dumps(body)
        for attempt in range(20):
            async with self.session.request(method, self.server + path, data=data, headers=headers) as answer:
                if answer.status == 429 or answer.status >= 500:  # an overloaded apiserver asks to come back
                    await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
                    continue
                text = await answer.text()
                if answer.status >= 400:
                    raise RuntimeError(f"{method} {path}: HTTP {answer.status}: {text[:500]}")
                return json.loads(text) if answer.content_type == "application/json" else text
        raise RuntimeError(f"{method} {path}: the apiserver kept refusing")

    @staticmethod
    def objects(namespace: str, plural: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"

    async def namespace(self, name: str) -> None:
        await self.call(
            "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )

    async def create(self, namespace: str, plural: str, body: Mapping[str, Any]) -> None:
        await self.call("POST", self.objects(namespace, plural), body)

    async def patch_status(self, namespace: str, plural: str, name: str, status: Mapping[str, Any]) -> None:
        await self.call("PATCH", f"{self.objects(namespace, plural)}/{name}/status", {"status": status}, patch=True)

    async def writes(self) -> dict[tuple[str, str, str], float]:
        """apiserver_request_total summed by (verb, resource, subresource), writes only."""
        counts: dict[tuple[str, str, str], float] = {}
        text = await self.call("GET", "/metrics")
        for line in str(text).splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
            if labels.get("verb") not in WRITE_VERBS:
                continue
            key = (labels["verb"], labels.get("resource", ""), labels.get("subresource", ""))
            counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return counts

    async def events(self, namespace: str) -> tuple[int, int]:
        """Event objects in the namespace, and the occurrences they count."""
        items = (await self.call("GET", f"/api/v1/namespaces/{namespace}/events"))["items"]
        return len(items), sum(int(item.get("count") or 1) for item in items)


def is_ready(body: Mapping[str, Any]) -> bool:
    ready = condition(body, "Ready")
    return ready is not None and ready.get("status") == "True"


class ReadyWatch:
    """Counts objects of one kind in a namespace that pass ``test`` (Ready=True by default), through a watch."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        plural: str,
        expected: int,
        test: Callable[[Mapping[str, Any]], bool] = is_ready,
    ) -> None:
        self.kube, self.namespace, self.plural, self.expected = kube, namespace, plural, expected
        self.test = test
        self.ready: set[str] = set()
        self.done = asyncio.Event()
        self.done_at = 0.0
        self.stalled: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> ReadyWatch:
        listed = await self.kube.call("GET", self.kube.objects(self.namespace, self.plural) + "?limit=1")
        self.task = asyncio.create_task(self._watch(str(listed["metadata"]["resourceVersion"])))
        return self

    async def _watch(self, version: str) -> None:
        while True:
            path = self.kube.objects(self.namespace, self.plural)
            query = f"?watch=1&allowWatchBookmarks=true&timeoutSeconds=1800&resourceVersion={version}"
            async with self.kube.session.get(self.kube.server + path + query, headers=self.kube.headers) as answer:
                answer.raise_for_status()
                async for line in answer.content:
                    event = json.loads(line)
                    body = event["object"]
                    version = body["metadata"]["resourceVersion"]
                    if event["type"] not in ("ADDED", "MODIFIED"):
                        continue
                    stalled = condition(body, "Stalled")
                    if stalled is not None and stalled.get("status") == "True":
                        self.stalled = f"{body['metadata']['name']}: {stalled.get('message')}"
                        self.done.set()
                    if self.test(body):
                        self.ready.add(body["metadata"]["uid"])
                        if len(self.ready) >= self.expected and not self.done.is_set():
                            self.done_at = time.monotonic()
                            self.done.set()

    async def wait(self, limit: float) -> float:
        """Monotonic time at which the last object became Ready (waiting at most ``limit`` seconds)."""
        try:
            await asyncio.wait_for(self.done.wait(), limit)
        except TimeoutError:
            raise SystemExit(
                f"{self.plural} in {self.namespace}: {len(self.ready)}/{self.expected} Ready after {limit:.0f}s"
            ) from None
        finally:
            if self.task is not None:
                self.task.cancel()
        if self.stalled:
            raise SystemExit(f"benchmark object Stalled: {self.stalled}")
        return self.done_at


async def bounded(count: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> None:
    """``work(0..count-1)`` with at most ``concurrency`` running at once."""
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            await work(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User plus system CPU time of a process, or of one of its threads."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    """An operator under test as a subprocess, healthy once its liveness endpoint answers."""

    command: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Process:
        command = [part.format(health=self.health_port, metrics=self.metrics_port) for part in self.command]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, cwd=ROOT
            )
        deadline = time.monotonic() + 300  # slow under tracing and on a busy machine
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{command[:4]} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1):
                    time.sleep(1.0)  # its watches start right after
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise SystemExit(f"{command[:4]} did not become healthy:\n{self.tail()}")

    def peak_rss_mib(self) -> float:
        return proc_status_kib(self.pid)["VmHWM"] / 1024

    def rss_mib(self) -> float:
        return proc_status_kib(self.pid)["VmRSS"] / 1024

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
                if all(found.get(key) == value for key, value in (labels or {}).items()):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """For throwaway operators whose graceful stop takes long (thousands of daemons)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def calls_by_action(emulator: EmulatorProcess) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    pattern = re.compile(r'^cvm_emulator_requests_total\{action="([^"]+)",code="([^"]+)"\} (\S+)$')
    for line in emulator.metrics().splitlines():
        match = pattern.match(line)
        if match:
            counts[match[1], match[2]] = float(match[3])
    return counts


def delta(after: Mapping[Any, float], before: Mapping[Any, float]) -> dict[Any, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace, kube: Kube, emulator: EmulatorProcess, work: Path, kubeconfig: Path):
        self.args, self.kube, self.emulator, self.work = args, kube, emulator, work
        account = emulator.accounts[0]
        self.env = {
            "KUBECONFIG": str(kubeconfig),
            "TENCENTCLOUD_SECRET_ID": account.secret_id,
            "TENCENTCLOUD_SECRET_KEY": account.secret_key,
        }
        self.results: dict[str, Any] = {}
        self.phase_started = time.monotonic()

    def cvm_operator(self, name: str, namespace: str, _: bool = False) -> Process:
        return self.cvm_operator_on(name, [namespace], self.args.launch_poll_interval)

    def cvm_operator_on(self, name: str, namespaces: list[str], poll_interval: float, **env: str) -> Process:
        scope = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
        profiler = ["-m", "cProfile", "-o", str(self.args.cprofile / f"{name}.prof")] if self.args.cprofile else []
        command = [
            sys.executable, *profiler, "-m", "cvm_operator", "run", *scope, "--standalone",
            "--endpoint", self.emulator.endpoint, "--poll-interval", str(poll_interval),
            "--metrics-port", "{metrics}", "--health-port", "{health}", "--bind-address", "127.0.0.1",
            *(["--workers", str(self.args.workers)] if self.args.workers else []),
        ]  # fmt: skip
        return Process(command, self.work / f"{name}.log", {**self.env, **env}).start()

    def trivial_kopf(self, name: str, namespace: str, daemon: bool) -> Process:
        profiler = ["-m", "cProfile", "-o", str(self.args.cprofile / f"{name}.prof")] if self.args.cprofile else []
        command = [
            sys.executable, *profiler, str(ROOT / "benchmarks" / "trivial_kopf_operator.py"), "--namespace", namespace,
            "--liveness", "http://127.0.0.1:{health}/healthz", *(["--daemon"] if daemon else []),
        ]  # fmt: skip
        return Process(command, self.work / f"{name}.log", self.env).start()

    async def settled(
        self, namespace: str, quiet: float = 2.0, limit: float = 30.0
    ) -> tuple[dict[tuple[str, str, str], float], tuple[int, int]]:
        """Writes and Events once they stop growing: Events are posted after the Ready they announce, and
        counting at the last Ready would leave those still in flight out."""
        deadline = time.monotonic() + limit
        last = (await self.kube.writes(), await self.kube.events(namespace))
        while time.monotonic() < deadline:
            await asyncio.sleep(quiet)
            now = (await self.kube.writes(), await self.kube.events(namespace))
            if now == last:
                break
            last = now
        return last

    async def launch(
        self, namespace: str, plural: str, count: int, make: Callable[[str], dict[str, Any]], operator: Process | None
    ) -> dict[str, Any]:
        """Create ``count`` objects (and, without an operator, patch their status twice); measure until all Ready."""
        watch = await ReadyWatch(self.kube, namespace, plural, count).start()
        writes_before = await self.kube.writes()
        calls_before = calls_by_action(self.emulator)
        cpu_before = cpu_seconds(operator.pid) if operator else 0.0
        loop_cpu_before = cpu_seconds(operator.pid, operator.pid) if operator else 0.0

        async def create(index: int) -> None:
            name = f"b-{index:05d}"
            await self.kube.create(namespace, plural, make(name))
            if operator is None:  # the plain-client floor writes the status itself
                await self.kube.patch_status(namespace, plural, name, floor_status("False"))
                await self.kube.patch_status(namespace, plural, name, floor_status("True"))

        started = time.monotonic()
        await bounded(count, self.args.concurrency, create)
        created = time.monotonic() - started
        ready_at = await watch.wait(self.args.timeout)
        seconds = ready_at - started
        writes, (event_objects, event_count) = await self.settled(namespace)
        writes = delta(writes, writes_before)
        calls = delta(calls_by_action(self.emulator), calls_before)
        object_writes = {
            f"{verb} {plural}{'/' + sub if sub else ''}": value
            for (verb, resource, sub), value in writes.items()
            if resource == plural
        }
        operator_writes = sum(object_writes.values()) - count  # less the benchmark's own creates
        result: dict[str, Any] = {
            "objects": count,
            "seconds_to_all_ready": round(seconds, 2),
            "objects_per_second": round(count / seconds, 1),
            "seconds_creating": round(created, 2),
            "apiserver_writes": object_writes,
            "apiserver_event_writes": sum(v for (_, resource, _), v in writes.items() if resource == "events"),
            "writes_per_object": round(operator_writes / count, 2),
            "events": event_objects,
            "events_per_object": round(event_objects / count, 2),
            "event_occurrences_per_object": round(event_count / count, 2),
        }
        if calls:
            result["cloud_calls"] = {f"{action} {code}": value for (action, code), value in sorted(calls.items())}
            result["request_limit_exceeded"] = sum(
                v for (_, code), v in calls.items() if code == "RequestLimitExceeded"
            )
        if operator is not None:
            result["operator_cpu_seconds"] = round(cpu_seconds(operator.pid) - cpu_before, 1)
            # The main thread runs the event loop; the others are thread pools (e.g. a synchronous client).
            result["operator_cpu_seconds_main_thread"] = round(
                cpu_seconds(operator.pid, operator.pid) - loop_cpu_before, 1
            )
        return result

    def report(self, phase: str, result: dict[str, Any]) -> None:
        now = time.monotonic()
        result["phase_seconds"] = round(now - self.phase_started, 1)
        self.phase_started = now
        self.results[phase] = result
        shown = {k: v for k, v in result.items() if not isinstance(v, dict)}
        print(f"  {phase}: {json.dumps(shown)}", flush=True)

    async def run(self) -> None:
        args, kube, phases = self.args, self.kube, self.args.phases
        for namespace in ("floor", "kopf", "cvm-images", "cvm-instances", "profile"):
            await kube.namespace(f"bench-{namespace}")
        await kube.call(
            "POST", "/api/v1/namespaces/bench-cvm-instances/secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "login"},
             "stringData": {"password": "Bench-Passw0rd!"}},
        )  # fmt: skip
        n, m = args.objects, args.instances
        if "floor" in phases:
            self.report("floor", await self.launch("bench-floor", "images", n, image, None))
        if "kopf" in phases:
            self.report("kopf", await self.operated("bench-kopf", "images", n, image, self.trivial_kopf, False))
        if "cvm_images" in phases:
            self.report("cvm_images", await self.operated("bench-cvm-images", "images", n, image, self.cvm_operator))
        if "kopf_daemon" in phases:
            self.report("kopf_daemon", await self.daemons(n))
        if "cvm_instances" in phases and m:
            result = await self.operated("bench-cvm-instances", "instances", m, instance, self.cvm_operator)
            result["floor_seconds"] = m / RUN_INSTANCES_PER_SECOND
            self.report("cvm_instances", result)
        if "steady" in phases and args.steady_polls:
            images = n if "cvm_images" in phases else 0
            instances = m if "cvm_instances" in phases else 0
            self.report("steady", await self.steady(images, instances))
        if "profile" in phases and args.profile_objects:
            self.report("profile", await self.profile(args.profile_objects))

    async def operated(
        self,
        namespace: str,
        plural: str,
        count: int,
        make: Callable[[str], dict[str, Any]],
        start: Callable[[str, str, bool], Process],
        daemon: bool = False,
    ) -> dict[str, Any]:
        """A launch with an operator process watching the namespace; its memory before and after."""
        operator = start(namespace.removeprefix("bench-"), namespace, daemon)
        try:
            idle = operator.rss_mib()
            result = await self.launch(namespace, plural, count, make, operator)
            if daemon:
                await asyncio.sleep(5)  # the daemons are spawned after the create handler
            result["idle_rss_mib"] = round(idle, 1)
            result["peak_rss_mib"] = round(operator.peak_rss_mib(), 1)
            result["rss_mib"] = round(operator.rss_mib(), 1)
            result["bytes_per_object"] = round((operator.rss_mib() - idle) * 2**20 / count)
            result["operator_cpu_ms_per_object"] = round(result["operator_cpu_seconds"] * 1000 / count, 1)
            if start == self.cvm_operator:
                passes = operator.metric("cvm_operator_reconciles_total")
                result["reconciles_per_object"] = round(passes / count, 2)
        finally:
            operator.stop()
        return result

    async def daemons(self, count: int) -> dict[str, Any]:
        """The trivial Kopf operator with an idle daemon per object, on the kopf phase's objects: its memory."""
        namespace = "bench-kopf"
        if "kopf" not in self.args.phases:

            async def create(index: int) -> None:
                await self.kube.create(namespace, "images", image(f"b-{index:05d}"))

            await bounded(count, self.args.concurrency, create)

        def has_daemon(body: Mapping[str, Any]) -> bool:  # Kopf holds a finalizer for each object's daemon
            return DAEMON_FINALIZER in (body["metadata"].get("finalizers") or ())

        watch = await ReadyWatch(self.kube, namespace, "images", count, has_daemon).start()
        started = time.monotonic()
        operator = self.trivial_kopf("kopf-daemon", namespace, True)
        try:
            idle = operator.rss_mib()  # just started: its objects are only being listed
            done_at = await watch.wait(self.args.timeout)
            await asyncio.sleep(5)  # the daemons start right after the finalizer is written
            rss = operator.rss_mib()
            return {
                "objects": count,
                "mode": "a start on the settled objects of phase 2",
                "seconds_to_all_daemons": round(done_at - started, 2),
                "idle_rss_mib": round(idle, 1),
                "peak_rss_mib": round(operator.peak_rss_mib(), 1),
                "rss_mib": round(rss, 1),
                "bytes_per_object": round((rss - idle) * 2**20 / count),
                "operator_cpu_seconds": round(cpu_seconds(operator.pid), 1),
            }
        finally:
            operator.kill()

    async def steady(self, images: int, instances: int) -> dict[str, Any]:
        """Describe calls per poll with every object settled, over whole poll intervals."""
        interval = self.args.poll_interval
        namespaces = ["bench-cvm-images"] + (["bench-cvm-instances"] if instances else [])
        operator = self.cvm_operator_on("steady", namespaces, interval)
        try:
            total = images + instances
            await wait_until(lambda: operator.metric("cvm_operator_reconciles_total") >= total, self.args.timeout)
            # Every object's first aligned wake-up is a grid tick at most 1.5 intervals after its first pass,
            # and it wakes on every tick from then on: start half an interval before the first tick after that.
            first_tick = math.ceil((time.time() + 1.5 * interval) / interval) * interval
            await asyncio.sleep(first_tick - interval / 2 - time.time())
            before = calls_by_action(self.emulator)
            cpu_before = cpu_seconds(operator.pid)
            await asyncio.sleep(self.args.steady_polls * interval)
            calls = delta(calls_by_action(self.emulator), before)
            cpu = cpu_seconds(operator.pid) - cpu_before
            rss, peak = operator.rss_mib(), operator.peak_rss_mib()
        finally:
            operator.stop()
        polls = self.args.steady_polls
        result: dict[str, Any] = {
            "objects": images + instances,
            "poll_interval_s": interval,
            "polls": polls,
            "cloud_calls": {f"{action} {code}": value for (action, code), value in sorted(calls.items())},
        }
        for kind, count, action in (
            ("images", images, "DescribeImages"),
            ("instances", instances, "DescribeInstances"),
        ):
            if count:
                made = sum(v for (name, _), v in calls.items() if name == action)
                result[f"{kind}_describe_calls_per_poll"] = round(made / polls, 2)
                result[f"{kind}_describe_bound"] = math.ceil(count / 100) + 1
        result["request_limit_exceeded"] = sum(v for (_, code), v in calls.items() if code == "RequestLimitExceeded")
        result["operator_cpu_seconds_per_poll"] = round(cpu / polls, 2)
        result["rss_mib"] = round(rss, 1)
        result["peak_rss_mib"] = round(peak, 1)  # a start on N settled objects, like the daemon phase's
        return result

    async def profile(self, count: int) -> dict[str, Any]:
        """tracemalloc's view of what ``count`` more Images cost an operator (tracing makes it slower and larger)."""
        out = self.work / "tracemalloc.json"
        namespace = "bench-profile"
        operator = self.cvm_operator_on(
            "profile", [namespace], self.args.launch_poll_interval, CVM_OPERATOR_TRACEMALLOC=str(out)
        )
        try:
            assert operator.process is not None
            await asyncio.sleep(5)  # start-up garbage is gone
            operator.process.send_signal(signal.SIGUSR1)  # the baseline, before any object
            await wait_until(out.exists, 300)
            out.unlink()
            await self.launch(namespace, "images", count, image, operator)
            await wait_until(lambda: operator.metric("cvm_operator_reconciles_total") >= count, self.args.timeout)
            await asyncio.sleep(8)  # Kopf's per-object workers end after 5 s without events
            operator.process.send_signal(signal.SIGUSR1)
            await wait_until(out.exists, 300)
            report = json.loads(out.read_text())
        finally:
            operator.kill()  # no report at exit: it would replace this one
        body = await self.kube.call("GET", self.kube.objects(namespace, "images") + "/b-00000")
        grown = report["grown_bytes"]
        lean = {**body, "metadata": {k: v for k, v in body["metadata"].items() if k != "managedFields"}}
        return {
            "objects": count,
            "traced_mib": round(report["traced_bytes"] / 2**20, 1),
            "grown_mib": round(grown / 2**20, 1),
            "grown_bytes_per_object": round(grown / count),
            "body_bytes": deep_size(body),
            "body_json_bytes": len(json.dumps(body)),
            "cached_body_bytes": deep_size(lean),
            "grown_by_file": report["grown_by_file"][:15],
            "grown_by_line": report["grown_by_line"][:20],
        }


def floor_status(ready: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kind, reason = ("Ready", "Available") if ready == "True" else ("Reconciling", "Progressing")
    return {
        "phase": "Available" if ready == "True" else "Pending",
        "observedGeneration": 1,
        "conditions": [
            {"type": "Ready", "status": ready, "reason": reason, "message": "", "observedGeneration": 1,
             "lastTransitionTime": now},
            *([] if ready == "True" else [
                {"type": kind, "status": "True", "reason": reason, "message": "", "observedGeneration": 1,
                 "lastTransitionTime": now}]),
        ],
    }  # fmt: skip


def deep_size(value: Any) -> int:
    """Bytes of a JSON-decoded value in this interpreter: containers, keys and leaves."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k) + deep_size(v) for k, v in value.items())
    elif isinstance(value, list):
        size += sum(deep_size(item) for item in value)
    return size


async def wait_until(predicate: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {limit:.0f}s")
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------- report


def ratio(value: float, base: float) -> float:
    return round(value / base, 2) if base else float("nan")


def verdicts(results: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    """(what, figure, target, met) for every target the run measured."""
    rows: list[tuple[str, float, str, bool]] = []
    kopf, cvm = results.get("kopf"), results.get("cvm_images")
    if kopf and cvm:
        time_ratio = ratio(cvm["seconds_to_all_ready"], kopf["seconds_to_all_ready"])
        rss_ratio = ratio(cvm["peak_rss_mib"], kopf["peak_rss_mib"])
        rows += [
            ("Images: time vs trivial Kopf", time_ratio, f"<= {TIME_VS_KOPF}x", time_ratio <= TIME_VS_KOPF),
            ("Images: peak RSS vs trivial Kopf", rss_ratio, f"<= {RSS_VS_KOPF}x", rss_ratio <= RSS_VS_KOPF),
            # Informative, no target: less sensitive than time to other load on the machine.
            ("Images: operator CPU per object vs trivial Kopf",
             ratio(cvm["operator_cpu_ms_per_object"], kopf["operator_cpu_ms_per_object"]), "-", True),
            ("Images: peak RSS MiB", cvm["peak_rss_mib"], f"<= {RSS_MAX_MIB:.0f}", cvm["peak_rss_mib"] <= RSS_MAX_MIB),
            ("Images: writes per object", cvm["writes_per_object"], f"<= {WRITES_MAX:.0f}",
             cvm["writes_per_object"] <= WRITES_MAX),
            ("Images: Events per object", cvm["events_per_object"], f"<= {EVENTS_MAX:.0f}",
             cvm["events_per_object"] <= EVENTS_MAX),
        ]  # fmt: skip
    instances = results.get("cvm_instances")
    if instances:
        floor_ratio = ratio(instances["seconds_to_all_ready"], instances["floor_seconds"])
        rows += [
            ("Instances: time vs N/10 s", floor_ratio, f"<= {INSTANCES_VS_FLOOR}x", floor_ratio <= INSTANCES_VS_FLOOR),
            ("Instances: RequestLimitExceeded", instances.get("request_limit_exceeded", 0), "0",
             instances.get("request_limit_exceeded", 0) == 0),
            ("Instances: writes per object", instances["writes_per_object"], f"<= {WRITES_MAX:.0f}",
             instances["writes_per_object"] <= WRITES_MAX),
            ("Instances: Events per object", instances["events_per_object"], f"<= {EVENTS_MAX:.0f}",
             instances["events_per_object"] <= EVENTS_MAX),
        ]  # fmt: skip
    steady = results.get("steady")
    if steady:
        for kind in ("images", "instances"):
            if f"{kind}_describe_calls_per_poll" in steady:
                figure, bound = steady[f"{kind}_describe_calls_per_poll"], steady[f"{kind}_describe_bound"]
                rows.append((f"Steady {kind}: Describe calls per poll", figure, f"<= {bound}", figure <= bound))
    return rows


def print_table(results: dict[str, Any]) -> None:
    kopf = results.get("kopf") or {}
    print()
    header = ("phase", "objects", "time s", "obj/s", "vs kopf", "peak RSS MiB", "vs kopf", "idle RSS MiB", "B/object",
              "CPU ms/obj", "writes/obj", "Events/obj")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for phase in ("floor", "kopf", "cvm_images", "kopf_daemon", "cvm_instances"):
        row = results.get(phase)
        if not row:
            continue
        rss = row.get("peak_rss_mib")
        same_work = kopf and phase in ("floor", "kopf", "cvm_images")
        cells = [
            phase, row["objects"], row.get("seconds_to_all_ready", "-"), row.get("objects_per_second", "-"),
            ratio(row["seconds_to_all_ready"], kopf["seconds_to_all_ready"]) if same_work else "-",
            rss if rss is not None else "-",
            ratio(rss, kopf["peak_rss_mib"]) if kopf and rss is not None else "-",
            row.get("idle_rss_mib", "-"), row.get("bytes_per_object", "-"), row.get("operator_cpu_ms_per_object", "-"),
            row.get("writes_per_object", "-"), row.get("events_per_object", "-"),
        ]  # fmt: skip
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    daemons, steady = results.get("kopf_daemon"), results.get("steady")
    if daemons and steady:
        print(
            f"\nstarted on settled objects: trivial Kopf with a daemon each, {daemons['objects']} objects, "
            f"peak {daemons['peak_rss_mib']} MiB; cvm-operator, {steady['objects']} objects, "
            f"peak {steady['peak_rss_mib']} MiB"
        )
    print()
    print("| target | figure | bound | met |")
    print("|---|---|---|---|")
    for what, figure, bound, met in verdicts(results):
        print(f"| {what} | {figure} | {bound} | {'-' if bound == '-' else 'yes' if met else 'NO'} |")
    profile = results.get("profile")
    if profile:
        print(
            f"\nmemory profile (tracemalloc): {profile['objects']} Images added {profile['grown_mib']} MiB, "
            f"{profile['grown_bytes_per_object']} B/object; one body as decoded JSON {profile['body_bytes']} B "
            f"({profile['body_json_bytes']} B of text), {profile['cached_body_bytes']} B without managedFields"
        )
        for row in profile["grown_by_file"][:12]:
            print(f"  {row['bytes'] / profile['objects']:8.0f} B/object {row['blocks']:+9d} blocks  {row['where']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=5000, help="Images per phase (N)")
    parser.add_argument("--instances", type=int, default=500, help="Instances launched (M; 0 skips)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests the benchmark has in flight")
    parser.add_argument("--workers", type=int, default=0, help="cvm-operator --workers (0: its default)")
    parser.add_argument("--launch-poll-interval", type=float, default=60.0, help="cvm-operator's during launches")
    parser.add_argument("--poll-interval", type=float, default=20.0, help="cvm-operator's in the steady phase")
    parser.add_argument("--steady-polls", type=int, default=3, help="poll intervals measured (0 skips)")
    parser.add_argument("--profile-objects", type=int, default=1000, help="Images in the tracemalloc phase")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one wait may take")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"a subset of {','.join(PHASES)}")
    parser.add_argument("--cprofile", type=Path, help="run the operators under cProfile, writing DIR/<phase>.prof")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.phases = set(args.phases.split(","))
    if args.phases - set(PHASES):
        parser.error(f"unknown phases {sorted(args.phases - set(PHASES))}")

    # SIGTERM ends the run through the finally clauses, so nothing is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="cvm-bench-"))
    print(f"work directory {work}", flush=True)
    plane = load_controlplane_module().ControlPlane(work / "controlplane")
    plane.up()
    emulator = EmulatorProcess(work / "emulator", extra_args=["--enforce-rate-limits", "--log-level", "WARNING"])
    started = time.monotonic()
    try:
        emulator.start()
        subprocess.run([str(plane.kubectl), "--kubeconfig", str(plane.kubeconfig), "apply", "--server-side",
                        "-f", str(ROOT / "crds")], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run([str(plane.kubectl), "--kubeconfig", str(plane.kubeconfig), "wait",
                        "--for=condition=Established", "crd", "--all", "--timeout=60s"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        state = plane.state()
        assert state is not None

        async def go() -> dict[str, Any]:
            kube = Kube(state.server, state.admin_token, plane.ca_file, args.concurrency)
            try:
                bench = Bench(args, kube, emulator, work, plane.kubeconfig)
                await bench.run()
                return bench.results
            finally:
                await kube.close()

        results = asyncio.run(go())
    finally:
        emulator.stop()
        plane.down()
    results["targets"] = [
        {"what": what, "figure": figure, "bound": bound, "met": met} for what, figure, bound, met in verdicts(results)
    ]
    results["benchmark_seconds"] = round(time.monotonic() - started, 1)
    print_table(results)
    print(f"\nbenchmark took {results['benchmark_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
