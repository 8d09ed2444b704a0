#!/usr/bin/env python3
"""`make demo`: the whole product on this machine, with a live status table.

Starts a local control plane (etcd + kube-apiserver), the CVM emulator, a small HTTP server with a
qcow2 disk for the import sample, installs the CRDs, runs the operator and applies
``manifests/samples/``; then shows every object's phase and readiness until all are Ready, and
keeps running until Ctrl-C. Everything it started is stopped on exit, Ctrl-C or error.

    .venv/bin/python hack/demo.py [--realistic]

Environment:
    DEMO_EXIT=1        exit 0 once everything is Ready; non-zero with a summary after DEMO_TIMEOUT
    DEMO_TIMEOUT=S     bound for DEMO_EXIT (default 300 s with the fast clock, 1800 s otherwise)
    DEMO_CLOCK=C       emulator clock: fast (default), realistic, or a speed-up factor
    DEMO_DIR=PATH      working folder (default .demo)
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, cast

import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = ROOT / "manifests" / "samples"
CRDS_DIR = ROOT / "crds"
GROUP, VERSION = "cvm.operator.dev", "v1alpha1"
KINDS = (
    ("Image", "images"),
    ("ImageShare", "imageshares"),
    ("ImageCopy", "imagecopies"),
    ("Instance", "instances"),
    ("ImageSchedule", "imageschedules"),
    ("InstanceSet", "instancesets"),
)
DEMO_NAMESPACE = "cvm-demo"
# The import sample points here; the port is fixed because the sample is plain YAML.
DISK_SERVER_PORT = 8099
DISK_PATH = "disks/ubuntu-22.04.qcow2"
# Built-in emulator account 1: the operator's default credentials in the demo.
ACCOUNT_1 = ("AKIDcvmEmulatorAccount000000000001", "cvmEmulatorSecretKey0000000000001")
# Every process the demo starts carries this variable, so leftovers can be found (and tests check it).
MARKER_VARIABLE = "CVM_DEMO_DIR"
STARTUP_TIMEOUT = 60.0


class DemoError(Exception):
    """A step failed; the message says which and where its log is."""


class Interrupted(Exception):
    """SIGTERM: stop like Ctrl-C."""


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


# --- the qcow2 disk served for the import sample ---------------------------------------------------

QCOW2_CLUSTER_BITS = 16
QCOW2_HEADER_LENGTH = 104


def qcow2_image(virtual_size: int = 1 << 30) -> bytes:
    """An empty but valid qcow2 v3 image: header, refcount table and block, L1 table (four clusters)."""
    cluster = 1 << QCOW2_CLUSTER_BITS
    refcount_table_offset, refcount_block_offset, l1_table_offset = cluster, 2 * cluster, 3 * cluster
    l2_coverage = (cluster // 8) * cluster  # one L2 table maps cluster/8 clusters
    l1_size = -(-virtual_size // l2_coverage)
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQI",
        b"QFI\xfb",
        3,  # version
        0,  # backing file offset
        0,  # backing file name length
        QCOW2_CLUSTER_BITS,
        virtual_size,
        0,  # no encryption
        l1_size,
        l1_table_offset,
        refcount_table_offset,
        1,  # refcount table clusters
        0,  # snapshots
        0,  # snapshots offset
        0,  # incompatible features
        0,  # compatible features
        0,  # autoclear features
        4,  # refcount order: 16-bit refcounts
    ) + struct.pack(">I", QCOW2_HEADER_LENGTH)
    image = bytearray(4 * cluster)
    image[: len(header)] = header  # the header extension area after it stays zero: end marker
    struct.pack_into(">Q", image, refcount_table_offset, refcount_block_offset)
    for index in range(4):  # header, refcount table, refcount block, L1 table: each used once
        struct.pack_into(">H", image, refcount_block_offset + 2 * index, 1)
    return bytes(image)


class DiskServer:
    """Serves a folder over HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, directory: Path, port: int) -> None:
        handler = _quiet_handler(directory)
        try:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as error:
            raise DemoError(f"cannot serve the import sample's disk on 127.0.0.1:{port}: {error}") from error
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="disk-server", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _quiet_handler(directory: Path) -> Callable[..., http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def console_script(name: str) -> str:
    """The venv's entry point next to this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise DemoError(f"{name} is not installed; run `make setup` first")
    return found


class Service:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name: str, command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.name, self.log_path = name, log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=ROOT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> DemoError:
        return DemoError(f"{self.name} {what}; last lines of {self.log_path}:\n{self.log_tail()}")

    def wait_http_ok(self, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise self.failure(f"exited with status {self.process.returncode} during start-up")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise self.failure(f"did not answer {url} within {timeout:.0f}s")

    def stop(self, grace: float = 15.0) -> None:
        stop_process_group(self.pid, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def stop_process_group(pgid: int, grace: float = 15.0) -> None:
    """SIGTERM the group, wait for it to go, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def processes_marked(directory: Path) -> list[int]:
    """Live processes started by a demo in ``directory`` (they inherit its marker variable)."""
    marker = f"{MARKER_VARIABLE}={directory}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            found.append(int(entry.name))
    return found


def load_controlplane() -> ModuleType:
    """hack/controlplane.py, the same code the tests use."""
    name = "cvm_controlplane"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "hack" / "controlplane.py")
    if spec is None or spec.loader is None:
        raise DemoError("cannot load hack/controlplane.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- objects and the status table ------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    kind: str
    namespace: str
    name: str
    phase: str
    ready: str
    reason: str
    message: str
    cloud_id: str

    @property
    def is_ready(self) -> bool:
        return self.ready == "True"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


def cloud_id(kind: str, status: Mapping[str, Any]) -> str:
    if kind == "Instance":
        return str(status.get("instanceId") or "")
    if kind == "ImageCopy":
        copies = [str(copy.get("imageId")) for copy in status.get("copies") or [] if copy.get("imageId")]
        return ",".join(copies)
    if kind == "ImageSchedule":
        return str((status.get("latestImage") or {}).get("imageId") or "")
    if kind == "InstanceSet":
        return str(status.get("updateImageId") or "")
    return str(status.get("imageId") or "")


def row_of(kind: str, item: Mapping[str, Any]) -> Row:
    """One table row; READY is True only when the Ready condition is for the current generation (kstatus)."""
    metadata = item.get("metadata") or {}
    status = item.get("status") or {}
    ready = _condition(status, "Ready")
    stalled = _condition(status, "Stalled")
    reconciling = _condition(status, "Reconciling")
    generation = metadata.get("generation")
    ready_value = str(ready.get("status", "Unknown")) if ready else "Unknown"
    observed = ready.get("observedGeneration") if ready else None
    if ready_value == "True" and generation is not None and observed is not None and observed != generation:
        ready_value = "Unknown"  # the Ready condition is about an older spec
    explaining = next(
        (c for c in (stalled, reconciling) if c is not None and c.get("status") == "True"),
        ready,
    )
    return Row(
        kind=kind,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase") or "-"),
        ready=ready_value,
        reason=str(explaining.get("reason") or "") if explaining else "",
        message=str(explaining.get("message") or "") if explaining else "",
        cloud_id=cloud_id(kind, status),
    )


def render_table(rows: Sequence[Row], namespaces: bool) -> list[str]:
    headers = ["KIND", *(["NAMESPACE"] if namespaces else []), "NAME", "PHASE", "READY", "REASON", "CLOUD ID"]
    cells = [
        [row.kind, *([row.namespace] if namespaces else []), row.name, row.phase, row.ready, row.reason or "-",
         row.cloud_id or "-"]
        for row in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in [headers, *cells]) for i in range(len(headers))]
    return ["   ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            for line in [headers, *cells]]  # fmt: skip


def change_line(elapsed: float, row: Row) -> str:
    cloud = f" id={row.cloud_id}" if row.cloud_id else ""
    reason = f" reason={row.reason}" if row.reason else ""
    return f"{elapsed:7.1f}s  {row.kind}/{row.name} phase={row.phase} ready={row.ready}{reason}{cloud}"


def not_ready_summary(rows: Sequence[Row], expected: Sequence[tuple[str, str, str]]) -> list[str]:
    lines = []
    seen = {row.key for row in rows}
    for kind, namespace, name in expected:
        if (kind, namespace, name) not in seen:
            lines.append(f"{kind} {namespace}/{name}: not found")
    for row in rows:
        if not row.is_ready:
            detail = f"{row.reason}: {row.message}" if row.message else row.reason or "no condition yet"
            lines.append(f"{row.kind} {row.namespace}/{row.name}: phase {row.phase}, Ready={row.ready} ({detail})")
    return lines


def all_ready(rows: Sequence[Row], expected: Sequence[tuple[str, str, str]]) -> bool:
    seen = {row.key for row in rows}
    return bool(rows) and all(key in seen for key in expected) and all(row.is_ready for row in rows)


class TableView:
    """Redraws the table in place on a terminal; prints one line per change otherwise."""

    def __init__(self, stream: Any, started: float) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started = started
        self.previous: dict[tuple[str, str, str], Row] = {}
        self.drawn_lines = 0

    def show(self, rows: Sequence[Row], footer: str) -> bool:
        """Draw the rows; True when any row differs from the previous call."""
        current = {row.key: row for row in rows}
        changed = current != self.previous
        if self.tty:
            lines = [*render_table(rows, len({row.namespace for row in rows}) > 1), "", footer]
            up = f"\x1b[{self.drawn_lines}F" if self.drawn_lines else ""
            self.stream.write(up + "\x1b[J" + "\n".join(lines) + "\n")
            self.drawn_lines = len(lines)
        else:
            elapsed = time.monotonic() - self.started
            for row in rows:
                if self.previous.get(row.key) != row:
                    self.stream.write(change_line(elapsed, row) + "\n")
        self.stream.flush()
        self.previous = current
        return changed


# --- the demo --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    directory: Path
    clock: str
    exit_when_ready: bool
    timeout: float


def parse_options(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realistic", action="store_true", help="the emulator's realistic clock (minutes)")
    parser.add_argument("--clock", help="emulator clock: fast, realistic or a factor (default $DEMO_CLOCK or fast)")
    parser.add_argument("--exit", action="store_true", help="exit once everything is Ready (as DEMO_EXIT=1)")
    parser.add_argument("--timeout", type=float, help="seconds to wait with --exit (default $DEMO_TIMEOUT)")
    parser.add_argument("--dir", type=Path, help="working folder (default $DEMO_DIR or .demo)")
    args = parser.parse_args(argv)
    clock = "realistic" if args.realistic else (args.clock or environ.get("DEMO_CLOCK") or "fast")
    timeout_text = environ.get("DEMO_TIMEOUT")
    timeout = args.timeout or (float(timeout_text) if timeout_text else (300.0 if clock == "fast" else 1800.0))
    directory = args.dir or Path(environ.get("DEMO_DIR") or ROOT / ".demo")
    exit_when_ready = args.exit or environ.get("DEMO_EXIT", "") not in ("", "0", "false", "no")
    return Options(directory.resolve(), clock, exit_when_ready, timeout)


def read_samples(directory: Path, default_namespace: str) -> list[dict[str, Any]]:
    """Every document under ``directory``, namespaced objects defaulted to ``default_namespace``."""
    documents: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, dict):
                continue
            metadata = document.setdefault("metadata", {})
            if document.get("kind") != "Namespace":
                metadata.setdefault("namespace", default_namespace)
            documents.append(document)
    return documents


def install_signal_handlers() -> None:
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


class Demo:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.dir = options.directory
        # Every child, the control plane's included, inherits the marker.
        os.environ[MARKER_VARIABLE] = str(self.dir)
        self.env = dict(os.environ)
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self.kubectl_path = ""
        self.kubeconfig = Path()
        self.operator: Service | None = None

    def on_cleanup(self, what: str, action: Callable[[], None]) -> None:
        self.cleanups.append((what, action))

    def cleanup(self) -> None:
        # Ctrl-C pressed again during clean-up must not leave processes behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self.cleanups:
                what, action = self.cleanups.pop()
                try:
                    action()
                except Exception as error:  # keep cleaning the rest
                    say(f"stopping {what} failed: {error}")
            leftovers = processes_marked(self.dir)
            for pid in leftovers:  # grandchildren that escaped their group
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            signal.signal(signal.SIGINT, previous)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        env = dict(self.env, KUBECONFIG=str(self.kubeconfig))
        result = subprocess.run(
            [self.kubectl_path, *args], input=input, capture_output=True, text=True, env=env, timeout=120
        )
        if result.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def prepare_directory(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        leftovers = processes_marked(self.dir)
        if leftovers:
            say(f"stopping {len(leftovers)} processes left by an earlier demo in {self.dir}")
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for stale in ("emulator.sqlite", "emulator.sqlite-wal", "emulator.sqlite-shm"):
            (self.dir / stale).unlink(missing_ok=True)  # a fresh cloud for a fresh cluster

    def start_controlplane(self) -> None:
        module = load_controlplane()
        plane = module.ControlPlane(self.dir / "controlplane")
        plane.down()  # a fresh cluster every time; also clears a half-stopped earlier run
        say("starting the local control plane (kube-apiserver + etcd)")
        self.on_cleanup("the control plane", plane.down)
        plane.up()
        self.kubeconfig = Path(plane.kubeconfig)
        self.kubectl_path = str(plane.kubectl)

    def start_emulator(self) -> str:
        port_file = self.dir / "emulator.port"
        port_file.unlink(missing_ok=True)
        command = [
            console_script("cvm-emulator"),
            "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
            "--db", str(self.dir / "emulator.sqlite"), "--clock", self.options.clock,
            # The samples import a disk file the demo serves over plain HTTP, not a COS object.
            "--allow-any-import-url",
        ]  # fmt: skip
        emulator = Service("cvm-emulator", command, self.dir / "emulator.log", self.env)
        self.on_cleanup("the emulator", emulator.stop)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not port_file.exists() or not port_file.read_text().strip():
            if not emulator.running():
                raise emulator.failure(f"exited with status {emulator.process.returncode} during start-up")
            if time.monotonic() > deadline:
                raise emulator.failure(f"wrote no port to {port_file} within {STARTUP_TIMEOUT:.0f}s")
            time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{int(port_file.read_text().strip())}"
        emulator.wait_http_ok(f"{endpoint}/_emulator/healthz")
        say(f"emulator at {endpoint} (clock {self.options.clock}), log {emulator.log_path}")
        return endpoint

    def start_disk_server(self) -> None:
        disk = self.dir / "www" / DISK_PATH
        disk.parent.mkdir(parents=True, exist_ok=True)
        disk.write_bytes(qcow2_image())
        server = DiskServer(self.dir / "www", DISK_SERVER_PORT)
        self.on_cleanup("the disk server", server.stop)
        say(f"serving the import sample's disk at http://127.0.0.1:{DISK_SERVER_PORT}/{DISK_PATH}")

    def install_crds(self) -> None:
        self.kubectl("apply", "--server-side", "-f", str(CRDS_DIR))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS_DIR))
        say("CRDs installed and Established")

    def start_operator(self, endpoint: str) -> Service:
        health_port, metrics_port = free_port(), free_port()
        command = [
            console_script("cvm-operator"), "run", "--all-namespaces", "--standalone",
            "--endpoint", endpoint, "--poll-interval", "2",
            "--metrics-port", str(metrics_port), "--health-port", str(health_port),
            "--bind-address", "127.0.0.1",
        ]  # fmt: skip
        env = dict(
            self.env,
            KUBECONFIG=str(self.kubeconfig),
            TENCENTCLOUD_SECRET_ID=ACCOUNT_1[0],
            TENCENTCLOUD_SECRET_KEY=ACCOUNT_1[1],
        )
        operator = Service("cvm-operator", command, self.dir / "operator.log", env)
        self.on_cleanup("the operator", operator.stop)
        operator.wait_http_ok(f"http://127.0.0.1:{health_port}/healthz")
        say(f"operator running, log {operator.log_path}, metrics http://127.0.0.1:{metrics_port}/metrics")
        return operator

    def apply_samples(self) -> list[tuple[str, str, str]]:
        documents = read_samples(SAMPLES_DIR, DEMO_NAMESPACE)
        namespaces = {DEMO_NAMESPACE} | {
            str(doc["metadata"]["namespace"]) for doc in documents if doc["metadata"].get("namespace")
        }
        for namespace in sorted(namespaces):
            manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            self.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        applied = self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))
        print(applied.rstrip(), flush=True)
        managed = {kind for kind, _ in KINDS}
        return [
            (str(doc["kind"]), str(doc["metadata"]["namespace"]), str(doc["metadata"]["name"]))
            for doc in documents
            if doc.get("apiVersion", "").startswith(f"{GROUP}/") and doc.get("kind") in managed
        ]

    def list_rows(self, api: Any) -> list[Row]:
        import kubernetes

        custom = kubernetes.client.CustomObjectsApi(api)
        rows = []
        for kind, plural in KINDS:
            listing = cast(dict[str, Any], custom.list_cluster_custom_object(GROUP, VERSION, plural))
            rows += [row_of(kind, item) for item in listing.get("items", [])]
        order = {kind: index for index, (kind, _) in enumerate(KINDS)}
        return sorted(rows, key=lambda row: (order[row.kind], row.namespace, row.name))

    def watch(self, expected: list[tuple[str, str, str]]) -> int:
        import kubernetes

        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), client_configuration=config
        )
        started = time.monotonic()
        view = TableView(sys.stdout, started)
        first_ready: float | None = None
        last_listed = started
        rows: list[Row] = []
        with kubernetes.client.ApiClient(config) as api:
            while True:
                if self.operator is not None and not self.operator.running():
                    raise self.operator.failure(f"exited with status {self.operator.process.returncode}")
                elapsed = time.monotonic() - started
                try:
                    rows = self.list_rows(api)
                    last_listed = time.monotonic()
                except Exception as error:  # the API server is busy or restarting: try again next tick
                    if time.monotonic() - last_listed > 30:
                        raise DemoError(f"cannot list the objects: {error}") from error
                done = all_ready(rows, expected)
                ready_count = sum(row.is_ready for row in rows)
                if done:
                    first_ready = elapsed if first_ready is None else first_ready
                    footer = f"all {len(rows)} objects Ready (after {first_ready:.1f}s)"
                    footer += "" if self.options.exit_when_ready else "; Ctrl-C stops and cleans up"
                else:
                    footer = f"{ready_count}/{len(rows)} Ready after {elapsed:.0f}s"
                changed = view.show(rows, footer)
                if done and changed and not view.tty:
                    print(footer, flush=True)
                if done and self.options.exit_when_ready:
                    return 0
                if self.options.exit_when_ready and elapsed > self.options.timeout:
                    print(f"\nnot everything is Ready after {self.options.timeout:.0f}s:", flush=True)
                    for line in not_ready_summary(rows, expected):
                        print(f"  {line}", flush=True)
                    print(f"logs: {self.dir}/operator.log, {self.dir}/emulator.log", flush=True)
                    return 1
                time.sleep(1.0)

    def run(self) -> int:
        self.prepare_directory()
        self.start_controlplane()
        self.start_disk_server()
        endpoint = self.start_emulator()
        self.install_crds()
        self.operator = self.start_operator(endpoint)
        expected = self.apply_samples()
        say(f"try it yourself: export KUBECONFIG={self.kubeconfig}; {self.kubectl_path} get cvm -A")
        return self.watch(expected)  # without DEMO_EXIT it returns only on Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv, os.environ)
    install_signal_handlers()
    demo = Demo(options)
    try:
        return demo.run()
    except (KeyboardInterrupt, Interrupted):
        print(flush=True)
        say("stopping")
        return 130
    except DemoError as error:
        say(f"failed: {error}")
        return 1
    finally:
        demo.cleanup()
        say("everything stopped")


if __name__ == "__main__":
    sys.exit(main())
