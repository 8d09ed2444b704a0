"""pytest fixtures for the cvm-emulator: a real subprocess, SDK clients, and a disk-file HTTP server."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client, cvm_client_async

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class EmulatorAccount:
    account_id: str
    secret_id: str
    secret_key: str


BUILTIN_ACCOUNTS = tuple(
    EmulatorAccount(
        f"{n}0000000000{n}", f"AKIDcvmEmulatorAccount00000000000{n}", f"cvmEmulatorSecretKey000000000000{n}"
    )
    for n in (1, 2, 3)
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmulatorProcess:
    """A ``python -m cvm_emulator`` subprocess on a free port with its own SQLite file.

    ``restart()`` stops it and starts it again on the same port and database, which is how tests
    check that state and in-flight operations survive a restart.
    """

    workdir: Path
    clock: str = "fast"
    extra_args: Sequence[str] = ()
    config: dict[str, Any] | None = None
    allow_any_import_url: bool = True
    """ImportImage reads any URL (the tests serve disk files over plain HTTP); False: COS objects only."""
    db: Path = field(init=False)
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db = self.workdir / "emulator.db"

    @property
    def accounts(self) -> list[EmulatorAccount]:
        if self.config and "accounts" in self.config:
            return [
                EmulatorAccount(str(a["accountId"]), str(a["secretId"]), str(a["secretKey"]))
                for a in self.config["accounts"]
            ]
        return list(BUILTIN_ACCOUNTS)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host_port}"

    def _command(self) -> list[str]:
        port_file = self.workdir / "port"
        command = [
            sys.executable,
            "-m",
            "cvm_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--port-file",
            str(port_file),
            "--db",
            str(self.db),
            "--clock",
            self.clock,
            *(["--allow-any-import-url"] if self.allow_any_import_url else []),
            *self.extra_args,
        ]
        if self.config is not None:
            config_path = self.workdir / "config.yaml"
            config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
            command += ["--config", str(config_path)]
        return command

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("the emulator is already running")
        port_file = self.workdir / "port"
        port_file.unlink(missing_ok=True)
        self.starts += 1
        log = (self.workdir / f"emulator-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            self._command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cvm-emulator exited with {self.process.returncode}:\n{self.log()}")
            if port_file.exists():
                self.port = int(port_file.read_text())
                if self._healthy():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"cvm-emulator did not answer within {START_TIMEOUT_SECONDS}s:\n{self.log()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_emulator/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Terminate (or kill, to simulate a crash), waiting for the process to exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log(self) -> str:
        path = self.workdir / f"emulator-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.endpoint}/_emulator/metrics", timeout=5) as response:
            return str(response.read().decode())

    def request_count(self, action: str | None = None, code: str | None = None) -> float:
        """Sum of ``cvm_emulator_requests_total`` over samples matching ``action`` and ``code``."""
        total = 0.0
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name != "cvm_emulator_requests_total":
                    continue
                if action is not None and sample.labels.get("action") != action:
                    continue
                if code is not None and sample.labels.get("code") != code:
                    continue
                total += sample.value
        return total

    def inject_fault(
        self,
        action: str,
        count: int = 1,
        code: str | None = None,
        state: str | None = None,
        zone: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``action`` fail with ``code`` (a refusal; with ``zone``,
        only RunInstances in that zone), or the next ``count`` operations it starts end in ``state``."""
        body = {"action": action, "count": count, "code": code, "state": state, "zone": zone}
        request = urllib.request.Request(
            f"{self.endpoint}/_emulator/faults",
            data=json.dumps({k: v for k, v in body.items() if v is not None}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def clear_faults(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/_emulator/faults", method="DELETE")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _account(emulator: EmulatorProcess, account: int | EmulatorAccount) -> EmulatorAccount:
    return emulator.accounts[account] if isinstance(account, int) else account


def client_profile(emulator: EmulatorProcess, timeout: int = 30) -> ClientProfile:
    return ClientProfile(httpProfile=HttpProfile(endpoint=emulator.host_port, protocol="http", reqTimeout=timeout))


def sdk_client(
    emulator: EmulatorProcess, account: int | EmulatorAccount = 0, region: str = "ap-guangzhou"
) -> cvm_client.CvmClient:
    """The official synchronous CvmClient pointed at the emulator."""
    acc = _account(emulator, account)
    return cvm_client.CvmClient(credential.Credential(acc.secret_id, acc.secret_key), region, client_profile(emulator))


def async_sdk_client(
    emulator: EmulatorProcess, account: int | EmulatorAccount = 0, region: str = "ap-guangzhou"
) -> cvm_client_async.CvmClient:
    """The official asynchronous (httpx) CvmClient pointed at the emulator; close it when done."""
    acc = _account(emulator, account)
    return cvm_client_async.CvmClient(
        credential.Credential(acc.secret_id, acc.secret_key), region, client_profile(emulator)
    )


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """A fresh emulator (new database, fast clock) for one test."""
    with EmulatorProcess(tmp_path / "emulator") as process:
        yield process


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[Any]:
    """Start emulators with custom clock, flags or config; all are stopped after the test."""
    started: list[EmulatorProcess] = []

    def make(
        clock: str = "fast",
        extra_args: Sequence[str] = (),
        config: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> EmulatorProcess:
        process = EmulatorProcess(
            tmp_path / (name or f"emulator-{len(started)}"), clock=clock, extra_args=extra_args, config=config
        )
        started.append(process)
        process.start()
        return process

    yield make
    for process in started:
        process.stop()


# ---------------------------------------------------------------- disk files for ImportImage


class _DiskHandler(http.server.SimpleHTTPRequestHandler):
    server: _DiskHTTPServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.server.delay_seconds:
            time.sleep(self.server.delay_seconds)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _DiskHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]
    delay_seconds: float

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-answer (e.g. a restarted emulator) is expected


class DiskFileServer:
    """Serves ``directory`` over HTTP on a free loopback port; records request paths.

    ``delay_seconds`` holds every answer back, so an import is still fetching when a test restarts
    the emulator.
    """

    def __init__(self, directory: Path, delay_seconds: float = 0.0) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

        def handler(*args: Any, **kwargs: Any) -> _DiskHandler:
            return _DiskHandler(*args, directory=str(directory), **kwargs)

        self.httpd = _DiskHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []
        self.httpd.delay_seconds = delay_seconds
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    @property
    def delay_seconds(self) -> float:
        return self.httpd.delay_seconds

    @delay_seconds.setter
    def delay_seconds(self, value: float) -> None:
        self.httpd.delay_seconds = value

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> DiskFileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def disk_server(tmp_path: Path) -> Iterator[DiskFileServer]:
    with DiskFileServer(tmp_path / "disks") as server:
        yield server


QCOW2_CLUSTER_BITS = 16


def write_qcow2(path: Path, virtual_size: int = 10 * 2**30) -> Path:
    """An empty but valid qcow2 v3 image (what ``qemu-img create -f qcow2`` writes)."""
    cluster = 1 << QCOW2_CLUSTER_BITS
    l2_coverage = cluster * (cluster // 8)
    l1_size = max(1, -(-virtual_size // l2_coverage))
    refcount_table, refcount_block, l1_table = cluster, 2 * cluster, 3 * cluster
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQII",
        b"QFI\xfb",
        3,
        0,
        0,
        QCOW2_CLUSTER_BITS,
        virtual_size,
        0,
        l1_size,
        l1_table,
        refcount_table,
        1,
        0,
        0,
        0,
        0,
        0,
        4,
        104,
    )
    data = bytearray(4 * cluster)
    data[: len(header)] = header
    data[refcount_table : refcount_table + 8] = struct.pack(">Q", refcount_block)
    for index in range(4):  # clusters in use: header, refcount table, refcount block, L1 table
        data[refcount_block + 2 * index : refcount_block + 2 * index + 2] = struct.pack(">H", 1)
    path.write_bytes(bytes(data))
    return path


def write_raw_disk(path: Path, size: int = 1 << 20) -> Path:
    """A raw disk with an MBR boot signature."""
    data = bytearray(size)
    data[510:512] = b"\x55\xaa"
    path.write_bytes(bytes(data))
    return path


def write_iso(path: Path, size: int = 64 * 1024) -> Path:
    data = bytearray(size)
    data[0x8001:0x8006] = b"CD001"
    path.write_bytes(bytes(data))
    return path
