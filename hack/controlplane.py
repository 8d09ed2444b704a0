#!/usr/bin/env python3
"""A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) built from Go modules.

    python hack/controlplane.py build
    python hack/controlplane.py up --dir DIR      # start on loopback, write DIR/kubeconfig
    python hack/controlplane.py status --dir DIR
    python hack/controlplane.py down --dir DIR

Binaries are built once from ``hack/controlplane/go.mod`` and cached under
``$CVM_CONTROLPLANE_CACHE`` (default ``~/.cache/cvm-operator/controlplane``) in a folder keyed by
the pinned versions, so only the first build is slow. ``build`` also builds ``hack/kstatus``, the
health judgement of cli-utils (kstatus) that the tests apply to objects. The controller-manager runs
the controllers a CRD operator's cluster relies on (garbage collector, namespace deletion, service
accounts). Each server runs in its own process group so that ``down`` leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"
MODULE_DIR = Path(__file__).resolve().parent / "controlplane"
# The kstatus helper: cli-utils judges health the way Flux, kpt and Config Sync do.
KSTATUS_MODULE_DIR = Path(__file__).resolve().parent / "kstatus"
CLI_UTILS_VERSION = "v0.37.2"
BINARIES = ("kube-apiserver", "kube-controller-manager", "etcd", "kubectl")
READY_TIMEOUT = 60.0
# What a cluster does for custom resources: cascade owner references, finish namespace deletion,
# give every namespace its default ServiceAccount.
CONTROLLERS = ("garbagecollector", "namespace", "serviceaccount", "serviceaccount-token")

# Extra users in the token file: an unprivileged user for RBAC tests.
UNPRIVILEGED_USER = "tester"


def cache_root() -> Path:
    default = Path.home() / ".cache" / "cvm-operator" / "controlplane"
    return Path(os.environ.get("CVM_CONTROLPLANE_CACHE", default))


def _go_sum_digest(module_dir: Path) -> str:
    # The versions name the folder; the go.sum digest guards against an edited module.
    return hashlib.sha256((module_dir / "go.sum").read_bytes()).hexdigest()[:12]


def cache_key() -> str:
    return f"k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}-{_go_sum_digest(MODULE_DIR)}"


def bin_dir() -> Path:
    return cache_root() / cache_key() / "bin"


def kstatus_path() -> Path:
    folder = f"kstatus-cli-utils-{CLI_UTILS_VERSION}-{_go_sum_digest(KSTATUS_MODULE_DIR)}"
    return cache_root() / folder / "bin" / "kstatus"


def _log(message: str) -> None:
    print(f"controlplane: {message}", file=sys.stderr, flush=True)


def build() -> Path:
    """Build kube-apiserver, kube-controller-manager, etcd and kubectl if the cache does not have them yet."""
    minor = KUBERNETES_VERSION.split(".")[1]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
            "-X k8s.io/component-base/version.gitMajor=1",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
        ]
    )
    packages = [
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes/cmd/kubectl",
        "./cmd/etcd",
    ]
    what = f"kube-apiserver {KUBERNETES_VERSION}, kube-controller-manager, etcd {ETCD_VERSION} and kubectl"
    return _go_build(MODULE_DIR, bin_dir(), BINARIES, packages, ldflags, what)


def build_kstatus() -> Path:
    """Build the kstatus helper (cli-utils' health judgement, for tests) if the cache does not have it yet."""
    target = kstatus_path()
    _go_build(
        KSTATUS_MODULE_DIR, target.parent, (target.name,), ["."], "-s -w", f"kstatus (cli-utils {CLI_UTILS_VERSION})"
    )
    return target


def _go_build(
    module_dir: Path, target: Path, binaries: Sequence[str], packages: Sequence[str], ldflags: str, what: str
) -> Path:
    """Build ``packages`` of ``module_dir`` into ``target`` unless it already holds ``binaries``."""
    if all((target / name).exists() for name in binaries):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one Go build at a time on this machine: each takes every core
        if all((target / name).exists() for name in binaries):
            return target
        if shutil.which("go") is None:
            raise SystemExit(f"controlplane: Go is not installed; it is needed to build {what}")
        staging = target.parent / "bin.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        env = dict(os.environ, GOWORK="off", GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod")
        _log(f"building {what} (first time only)")
        started = time.monotonic()
        command = ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(staging) + "/", *packages]
        subprocess.run(command, cwd=module_dir, env=env, check=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        _log(f"built in {time.monotonic() - started:.0f}s into {target}")
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class State:
    """What ``up`` leaves in DIR/state.json for ``status``, ``down`` and the test fixtures."""

    etcd_pid: int
    apiserver_pid: int
    etcd_port: int
    apiserver_port: int
    admin_token: str
    user_tokens: dict[str, str] = field(default_factory=dict)
    controller_manager_pid: int = 0
    controller_manager_port: int = 0

    @property
    def pids(self) -> tuple[int, ...]:
        # The order ``down`` stops them in: clients of the apiserver first, etcd last.
        return tuple(pid for pid in (self.controller_manager_pid, self.apiserver_pid, self.etcd_pid) if pid)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


class ControlPlane:
    """One control plane living in a directory."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory).resolve()

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    @property
    def kubectl(self) -> Path:
        return bin_dir() / "kubectl"

    def state(self) -> State | None:
        path = self.dir / "state.json"
        if not path.exists():
            return None
        return State(**json.loads(path.read_text()))

    def running(self) -> bool:
        state = self.state()
        return state is not None and all(_alive(pid) for pid in state.pids)

    def up(self) -> State:
        if self.running():
            state = self.state()
            assert state is not None
            _log(f"already running at {state.server} (kubeconfig {self.kubeconfig})")
            return state
        self.down()  # a half-dead previous run leaves nothing behind
        binaries = build()
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = self.dir / "pki"
        pki.mkdir(exist_ok=True)
        _write_pki(pki)
        admin_token = secrets.token_hex(16)
        user_tokens = {UNPRIVILEGED_USER: secrets.token_hex(16)}
        lines = [f'{admin_token},admin,admin-uid,"system:masters"']
        lines += [f"{token},{user},{user}-uid" for user, token in user_tokens.items()]
        (pki / "tokens.csv").write_text("\n".join(lines) + "\n")
        (pki / "tokens.csv").chmod(0o600)

        etcd_port, peer_port, apiserver_port, manager_port = free_port(), free_port(), free_port(), free_port()
        etcd = _spawn(
            [
                str(binaries / "etcd"),
                "--name=cvm-test",
                f"--data-dir={self.dir / 'etcd-data'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=cvm-test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.dir / "etcd.log",
        )
        apiserver = _spawn(
            [
                str(binaries / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={apiserver_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--service-account-issuer=https://127.0.0.1:{apiserver_port}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                f"--cert-dir={pki}",
                "--v=0",
            ],
            self.dir / "kube-apiserver.log",
        )
        state = State(etcd.pid, apiserver.pid, etcd_port, apiserver_port, admin_token, user_tokens)
        (self.dir / "state.json").write_text(json.dumps(asdict(state), indent=2))
        self._write_kubeconfig(self.kubeconfig, state.server, admin_token, "admin")
        try:
            self._wait_ready(state.server, "/readyz", state)
            manager_kubeconfig = self.dir / "controller-manager.kubeconfig"
            self._write_kubeconfig(manager_kubeconfig, state.server, admin_token, "admin")
            manager = _spawn(
                [
                    str(binaries / "kube-controller-manager"),
                    f"--kubeconfig={manager_kubeconfig}",
                    f"--controllers={','.join(CONTROLLERS)}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={manager_port}",
                    f"--cert-dir={self.dir / 'controller-manager-certs'}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    "--v=0",
                ],
                self.dir / "kube-controller-manager.log",
            )
            state.controller_manager_pid, state.controller_manager_port = manager.pid, manager_port
            (self.dir / "state.json").write_text(json.dumps(asdict(state), indent=2))
            self._wait_ready(f"https://127.0.0.1:{manager_port}", "/healthz", state)
        except Exception:
            self.down()
            raise
        _log(f"ready at {state.server} in {time.monotonic() - started:.1f}s; KUBECONFIG={self.kubeconfig}")
        return state

    def _write_kubeconfig(self, path: Path, server: str, token: str, user: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": "local", "user": user}}],
            "current-context": user,
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def kubeconfig_for_token(self, token: str, user: str, path: Path) -> Path:
        """A kubeconfig that authenticates with another bearer token (users, service accounts)."""
        state = self.state()
        assert state is not None, "control plane is not up"
        self._write_kubeconfig(path, state.server, token, user)
        return path

    def _wait_ready(self, server: str, path: str, state: State) -> None:
        if server == state.server:
            context = ssl.create_default_context(cafile=str(self.ca_file))
        else:  # the controller-manager serves health with a certificate of its own making
            context = ssl._create_unverified_context()
        deadline = time.monotonic() + READY_TIMEOUT
        last_error = ""
        while time.monotonic() < deadline:
            if not all(_alive(pid) for pid in state.pids):
                raise RuntimeError(f"control plane exited during start-up; see logs in {self.dir}")
            headers = {"Authorization": f"Bearer {state.admin_token}"}
            request = urllib.request.Request(f"{server}{path}", headers=headers)
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.2)
        raise TimeoutError(f"{server}{path} not ready after {READY_TIMEOUT:.0f}s: {last_error}")

    def down(self) -> None:
        state = self.state()
        if state is not None:
            # Clients first, so none logs a storm of connection errors.
            for pid in state.pids:
                _stop_group(pid)
            (self.dir / "state.json").unlink(missing_ok=True)
        shutil.rmtree(self.dir / "etcd-data", ignore_errors=True)

    def status(self) -> str:
        state = self.state()
        if state is None:
            return "stopped"
        if self.running():
            return (
                f"running at {state.server} (etcd pid {state.etcd_pid}, kube-apiserver pid {state.apiserver_pid}, "
                f"kube-controller-manager pid {state.controller_manager_pid})"
            )
        return "broken: a process exited; run down then up"


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still "exists"; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def _stop_group(pid: int, grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    while _group_alive(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    return any(_alive(pid) for pid in _group_members(pgid))


def _group_members(pgid: int) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            yield int(entry.name)


def _write_pki(pki: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost and a service-account key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cvm-operator-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    import ipaddress

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
        "ca.key": pem_key(ca_key),
        "apiserver.crt": server_cert.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": pem_key(server_key),
        "sa.key": pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, content in files.items():
        (pki / name).write_bytes(content)
        if name.endswith(".key"):
            (pki / name).chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the binaries and the kstatus helper into the cache (no-op when cached)")
    commands.add_parser("bin-dir", help="print the folder holding the built binaries")
    for name in ("up", "down", "status"):
        sub = commands.add_parser(name)
        sub.add_argument("--dir", required=True, help="folder holding this control plane's state")
    args = parser.parse_args(argv)
    if args.command == "build":
        build_kstatus()
        print(build())
        return 0
    if args.command == "bin-dir":
        print(bin_dir())
        return 0
    plane = ControlPlane(args.dir)
    if args.command == "up":
        plane.up()
        print(plane.kubeconfig)
        return 0
    if args.command == "down":
        plane.down()
        return 0
    print(plane.status())
    return 0 if plane.running() else 3


if __name__ == "__main__":
    sys.exit(main())
