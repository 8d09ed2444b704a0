"""The container image `make image` built, run as a cluster runs it: non-root on a read-only root
filesystem, the emulator and the operator each in a container on the host network, the operator
signed in with its ServiceAccount's token mounted where a Pod has it; an Image and an Instance
go Ready and are deleted. Also: the OCI archive, and scans that cannot look do not pass."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.ship.conftest import OPERATOR_NAMESPACE, SERVICE_ACCOUNT
from tests.support.emulator import BUILTIN_ACCOUNTS, EmulatorProcess, sdk_client
from tests.support.image import built_image, load_image_module, podman
from tests.support.kube import kubectl
from tests.support.operator import Objects, free_port, wait_for

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def image() -> str:
    return built_image()


class Containers:
    """Containers started by one test, all removed at its end; their logs on request."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def run(self, *args: str) -> str:
        name = f"cvm-test-{uuid.uuid4().hex[:8]}"
        podman("run", "--detach", "--name", name, *args)
        self.names.append(name)
        return name

    def running(self, name: str) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        return state == "true"

    def logs(self, name: str) -> str:
        answer = podman("logs", name, check=False)
        return answer.stdout + answer.stderr

    def wait_healthy(self, name: str, url: str, timeout: float) -> None:
        try:
            wait_for(lambda: healthy(url) or not self.running(name), timeout, f"{url} of {name}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs(name)[-6000:]}") from None
        assert self.running(name), f"{name} exited:\n{self.logs(name)[-6000:]}"

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "--force", "--time", "10", name, check=False)


@pytest.fixture
def containers() -> Iterator[Containers]:
    running = Containers()
    try:
        yield running
    finally:
        running.remove_all()


def hardened(image: str) -> list[str]:
    """What the Deployment's securityContext asks for, as podman flags."""
    return ["--network=host", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", image]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_image_is_non_root_and_runs_on_a_read_only_root(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["cvm-operator"]
    uid = podman("run", "--rm", "--read-only", "--network=none", "--entrypoint", "id", image, "-u").stdout
    assert uid.strip() == "65532"
    assert "run" in podman("run", "--rm", "--read-only", "--network=none", image, "--help").stdout
    probe = "import kubernetes, cvm_operator.cli, cvm_emulator.cli; print('ok')"
    imported = podman("run", "--rm", "--read-only", "--network=none", "--entrypoint", "python", image, "-c", probe)
    assert imported.stdout.strip() == "ok"
    compiled = (
        "import importlib.util as u, os, cvm_operator as m; print(os.path.exists(u.cache_from_source(m.__file__)))"
    )
    found = podman("run", "--rm", "--read-only", "--network=none", "--entrypoint", "python", image, "-c", compiled)
    assert found.stdout.strip() == "True", "no byte code: every start would compile the sources again"
    tools = "import importlib.util as u; print([m for m in ('pip', 'setuptools') if u.find_spec(m)])"
    found = podman("run", "--rm", "--read-only", "--network=none", "--entrypoint", "python", image, "-c", tools)
    assert found.stdout.strip() == "[]", "the runtime venv carries build tools"


def test_oci_archive_holds_the_image(image: str) -> None:
    module = load_image_module()
    archive: Path = module.ARCHIVE
    assert archive.is_file(), f"{archive} is missing: run make image"
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.loads(member.read())
    names = [m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"]]
    assert names == [image]
    built = podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    assert (module.OUT / "archive.id").read_text() == built, "the archive is not of the current image"


def service_account_files(controlplane: Any, directory: Path) -> Path:
    """token, ca.crt and namespace, as the kubelet mounts them into a Pod."""
    token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=1h").stdout.strip()
    directory.mkdir(parents=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(controlplane.ca_file.read_bytes())
    (directory / "namespace").write_text(OPERATOR_NAMESPACE)
    for path in directory.iterdir():
        path.chmod(0o644)  # readable by uid 65532
    directory.chmod(0o755)
    return directory


@pytest.mark.operator
@pytest.mark.timeout(300)
def test_operator_and_emulator_containers_take_an_image_and_an_instance_to_ready(
    image: str,
    containers: Containers,
    controlplane: Any,
    operator_rbac: Any,
    k8s_api: kubernetes.client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    emulator_port, metrics_port, health_port = free_port(), free_port(), free_port()
    emulator = containers.run(
        "--tmpfs", "/data:mode=1777", "--entrypoint", "cvm-emulator", *hardened(image),
        "--host", "127.0.0.1", "--port", str(emulator_port), "--db", "/data/emulator.db", "--clock", "fast",
    )  # fmt: skip
    containers.wait_healthy(emulator, f"http://127.0.0.1:{emulator_port}/_emulator/healthz", 60)

    secrets_dir = service_account_files(controlplane, tmp_path / "serviceaccount")
    account = BUILTIN_ACCOUNTS[0]
    apiserver_port = controlplane.state().apiserver_port
    operator = containers.run(
        "--volume", f"{secrets_dir}:{SERVICE_ACCOUNT_DIR}:ro",
        "--env", "KUBERNETES_SERVICE_HOST=127.0.0.1", "--env", f"KUBERNETES_SERVICE_PORT={apiserver_port}",
        "--env", f"TENCENTCLOUD_SECRET_ID={account.secret_id}",
        "--env", f"TENCENTCLOUD_SECRET_KEY={account.secret_key}",
        *hardened(image),
        "run", "--all-namespaces", "--standalone", "--log-format", "json", "--poll-interval", "1",
        "--endpoint", f"http://127.0.0.1:{emulator_port}", "--bind-address", "127.0.0.1",
        "--metrics-port", str(metrics_port), "--health-port", str(health_port),
    )  # fmt: skip
    containers.wait_healthy(operator, f"http://127.0.0.1:{health_port}/healthz", 90)

    objects = Objects(k8s_api, namespace)
    objects.create(
        "images",
        {
            "kind": "Image",
            "metadata": {"name": "ubuntu"},
            "spec": {"region": "ap-guangzhou", "source": {"existing": {"imageId": "img-487zeit5"}}},
        },
    )
    objects.create(
        "instances",
        {
            "kind": "Instance",
            "metadata": {"name": "web-1"},
            "spec": {
                "region": "ap-guangzhou",
                "zone": "ap-guangzhou-3",
                "instanceType": "S5.SMALL2",
                "imageRef": {"name": "ubuntu"},
                "loginSettings": {"keyIds": ["skey-abcdefgh"]},
            },
        },
    )
    try:
        objects.wait_condition("images", "ubuntu", timeout=120)
        instance = objects.wait_condition("instances", "web-1", timeout=180)
    except AssertionError:
        raise AssertionError(f"operator log:\n{containers.logs(operator)[-6000:]}") from None
    cloud = EmulatorProcess(tmp_path / "emulator-client", port=emulator_port)
    described = sdk_client(cloud).call_json("DescribeInstances", {"InstanceIds": [instance["status"]["instanceId"]]})
    assert [i["InstanceState"] for i in described["Response"]["InstanceSet"]] == ["RUNNING"]

    objects.delete("instances", "web-1")
    objects.wait_gone("instances", "web-1", timeout=180)
    objects.delete("images", "ubuntu")
    objects.wait_gone("images", "ubuntu", timeout=60)
    assert cloud.request_count("TerminateInstances", "OK") >= 1

    podman("stop", "--time", "30", operator)
    log = containers.logs(operator)
    assert "Traceback" not in log, log[-6000:]
    assert not re.search(r'system:serviceaccount:[^"\\]*\\?" cannot ', log), f"RBAC refused:\n{log[-6000:]}"
    assert "Traceback" not in containers.logs(emulator)


def test_scan_that_cannot_reach_the_index_fails(image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_image_module()
    monkeypatch.setattr(module, "HTTP_ATTEMPTS", 1)
    report = module.scan(image, index=f"http://127.0.0.1:{free_port()}/pypi")
    assert report.python and all(result.coverage == "error" for result in report.python)
    assert report.failed(), "a scan that could not look passed"
    assert report.debian is not None and report.debian.packages > 50


def security_list(release: str) -> dict[str, set[str]]:
    """package -> versions in the host's lists for ``release``-security."""
    files = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(FILENAME)", "Created-By: Packages", f"Release: {release}-security"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    versions: dict[str, set[str]] = {}
    for name in files:
        text = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", name], capture_output=True, text=True, check=True
        ).stdout
        for stanza in text.split("\n\n"):
            fields = dict(re.findall(r"^(Package|Version): (.+)$", stanza, re.MULTILINE))
            if "Package" in fields:
                versions.setdefault(fields["Package"], set()).add(fields["Version"])
    return versions


def test_debian_scan_finds_a_package_behind_its_security_update(image: str, tmp_path: Path) -> None:
    """The image's packages with one installed from the security suite made to look one step older:
    the scan must report it as a pending security update and fail."""
    module = load_image_module()
    with module.mounted(image) as root:
        status = (root / "var/lib/dpkg/status").read_text()
        os_release = (root / "etc/os-release").read_text()
    release = re.search(r"^VERSION_CODENAME=(\S+)$", os_release, re.MULTILINE)
    assert release is not None
    security = security_list(release.group(1))
    stanzas = status.split("\n\n")
    installed = {
        fields["Package"]: fields["Version"]
        for fields in (dict(re.findall(r"^(Package|Version): (.+)$", s, re.MULTILINE)) for s in stanzas)
        if "Package" in fields and "Version" in fields
    }
    from_security = sorted(name for name, version in installed.items() if version in security.get(name, set()))
    assert from_security, "no package of the image comes from the security suite: nothing to make older"
    victim = "libssl3" if "libssl3" in from_security else from_security[0]
    older = installed[victim] + "~"  # sorts just before the installed version
    for index, stanza in enumerate(stanzas):
        if re.search(rf"^Package: {re.escape(victim)}$", stanza, re.MULTILINE):
            stanzas[index] = re.sub(r"^Version: .+$", f"Version: {older}", stanza, count=1, flags=re.MULTILINE)
    fake = tmp_path / "root"
    (fake / "var/lib/dpkg").mkdir(parents=True)
    (fake / "etc").mkdir()
    (fake / "var/lib/dpkg/status").write_text("\n\n".join(stanzas))
    (fake / "etc/os-release").write_text(os_release)

    result = module.scan_debian(fake)
    assert [(u.package, u.installed) for u in result.security] == [(victim, older)], result.updates
    report = module.ScanReport(image, debian=result)
    assert report.failed()
