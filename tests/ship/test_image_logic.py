"""Pure parts of hack/image.py: reading apt's answers, judging PyPI advisories, the lock, and a
scan that could not look never passing."""

from __future__ import annotations

import http.server
import json
import resource
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.image import ROOT, load_image_module


@pytest.fixture(scope="module")
def image() -> ModuleType:
    return load_image_module()


APT_OUTPUT = """\
Reading package lists...
Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian:12.11/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/oldstable-updates [all])
Inst sensible-utils (0.0.17+nmu1 Debian:12.15/oldstable [all])
Conf libssl3 (3.0.17-1~deb12u2 Debian:12.11/oldstable, Debian-Security:12/oldstable-security [amd64])
"""


def test_apt_simulation_upgrades_and_their_origins(image: ModuleType) -> None:
    updates = image.parse_apt_simulation(APT_OUTPUT)
    assert [(u.package, u.installed, u.candidate, u.security) for u in updates] == [
        ("libssl3", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2", True),
        ("tzdata", "2024a-0+deb12u1", "2025b-0+deb12u1", False),
    ]  # a new package (no installed version) is not an update


def test_indextargets_give_the_suites_in_order(image: ModuleType) -> None:
    listed = "\n".join(
        [
            "http://deb.debian.org/debian-security/|bookworm-security|main",
            "http://deb.debian.org/debian/|bookworm|main",
            "http://deb.debian.org/debian/|bookworm|contrib",
            "https://deb.nodesource.com/node_20.x/|nodistro|main",
            "http://deb.debian.org/debian/|bookworm-updates|main",
        ]
    )
    sources = image.parse_indextargets(listed, image.SUITES)
    assert [source.line() for source in sources] == [
        "deb http://deb.debian.org/debian/ bookworm main contrib",
        "deb http://deb.debian.org/debian/ bookworm-updates main",
        "deb http://deb.debian.org/debian-security/ bookworm-security main",
    ]


def test_dpkg_status_counts_installed_packages_only(image: ModuleType) -> None:
    status = (
        "Package: a\nStatus: install ok installed\nVersion: 1\n\n"
        "Package: b\nStatus: deinstall ok config-files\nVersion: 1\n\n"
        "Package: c\nStatus: install ok installed\nVersion: 2\n"
    )
    assert image.count_dpkg_packages(status) == 2


def test_a_root_without_dpkg_status_cannot_be_checked(image: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(image.ScanError, match="no dpkg status"):
        image.scan_debian(tmp_path)


def advisory(identifier: str, fixed_in: list[str], withdrawn: str | None = None) -> dict[str, Any]:
    return {"id": identifier, "aliases": [], "fixed_in": fixed_in, "withdrawn": withdrawn}


def test_advisories_for_the_installed_version_all_apply(image: ModuleType) -> None:
    listed = [advisory("GHSA-1", ["2.0"]), advisory("GHSA-2", [], withdrawn="2024-01-01")]
    assert image.affecting(listed, "1.0", for_installed=True) == ["GHSA-1"]


def test_advisories_of_the_latest_release_apply_to_older_versions_without_a_backported_fix(
    image: ModuleType,
) -> None:
    listed = [advisory("GHSA-open", []), advisory("GHSA-backported", ["3.1.4", "3.3.0"])]
    assert image.affecting(listed, "3.1.5", for_installed=False) == ["GHSA-open"]
    assert image.affecting(listed, "3.1.2", for_installed=False) == ["GHSA-open", "GHSA-backported"]
    assert image.affecting(listed, "not-a-version", for_installed=False) == ["GHSA-open", "GHSA-backported"]


class FakePyPI(http.server.ThreadingHTTPServer):
    documents: dict[str, Any]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakePyPI

    def do_GET(self) -> None:
        document = self.server.documents.get(self.path)
        if document is None:
            self.send_error(404)
            return
        if document == 500:
            self.send_error(500)
            return
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pypi(image: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, Any]]]:
    monkeypatch.setattr(image, "HTTP_ATTEMPTS", 1)
    server = FakePyPI(("127.0.0.1", 0), _Handler)
    server.documents = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pypi", server.documents
    finally:
        server.shutdown()
        server.server_close()


def project(version: str, vulnerabilities: list[dict[str, Any]]) -> dict[str, Any]:
    return {"info": {"name": "x", "version": version}, "vulnerabilities": vulnerabilities}


def test_each_way_a_distribution_is_judged(image: ModuleType, pypi: tuple[str, dict[str, Any]]) -> None:
    index, documents = pypi
    documents.update(
        {
            "/pypi/current/json": project("1.0", []),
            "/pypi/current-vulnerable/json": project("1.0", [advisory("PYSEC-1", [])]),
            "/pypi/older/json": project("2.0", []),
            "/pypi/older-with-answer/json": project("2.0", []),
            "/pypi/older-with-answer/1.0/json": project("1.0", [advisory("GHSA-old", ["1.1"])]),
            "/pypi/broken/json": 500,
            "/pypi/no-field/json": {"info": {"version": "1.0"}},
        }
    )
    names = ["current", "current-vulnerable", "older", "older-with-answer", "missing", "broken", "no-field"]
    results = {
        r.name: r
        for r in image.scan_python([image.Distribution(name, "1.0", "site-packages") for name in names], index)
    }
    assert (results["current"].coverage, results["current"].advisories) == ("checked", [])
    assert (results["current-vulnerable"].coverage, results["current-vulnerable"].advisories) == (
        "checked",
        ["PYSEC-1"],
    )
    assert (results["older"].coverage, results["older"].latest) == ("partly", "2.0")
    assert (results["older-with-answer"].coverage, results["older-with-answer"].advisories) == (
        "checked",
        ["GHSA-old"],
    )
    for name in ("missing", "broken", "no-field"):
        assert results[name].coverage == "error", name

    report = image.ScanReport("test", python=[results["current"], results["older"]])
    assert not report.failed() and report.failed(strict=True)
    assert any("PARTLY CHECKED: older 1.0" in line for line in report.lines())
    assert image.ScanReport("test", python=[results["current-vulnerable"]]).failed()
    for name in ("missing", "broken", "no-field"):
        assert image.ScanReport("test", python=[results[name]]).failed(), name


def test_the_debian_verdict(image: ModuleType) -> None:
    update, security = image.parse_apt_simulation(APT_OUTPUT)[::-1]
    assert not image.ScanReport("test", debian=image.DebianScan(90, "bookworm", [update])).failed()
    assert image.ScanReport("test", debian=image.DebianScan(90, "bookworm", [security])).failed()
    assert image.ScanReport("test", debian_error="Debian packages: no lists").failed()


def test_distributions_are_found_and_debians_set_apart(image: ModuleType, tmp_path: Path) -> None:
    site = tmp_path / "opt/venv/lib/python3.11/site-packages"
    dist = tmp_path / "usr/lib/python3/dist-packages"
    for directory, name, version in ((site, "aiohttp", "3.14.5"), (dist, "six", "1.16.0")):
        info = directory / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    (tmp_path / "var/lib/dpkg/info").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/info/python3-six.list").write_text(
        "/usr/lib/python3/dist-packages/six-1.16.0.dist-info\n/usr/lib/python3/dist-packages/six.py\n"
    )
    found, debian = image.image_distributions(tmp_path)
    assert [(d.name, d.version) for d in found] == [("aiohttp", "3.14.5")]
    assert [(d.name, d.version) for d in debian] == [("six", "1.16.0")]


def test_the_committed_lock_satisfies_pyproject(image: ModuleType) -> None:
    assert image.lock_mismatches(image.LOCK.read_text(), image.PROJECT["project"]["dependencies"]) == []
    build = image.parse_lock(image.BUILD_LOCK.read_text())
    assert {"pip", "setuptools", "wheel"} <= set(build)
    for path in (image.LOCK, image.BUILD_LOCK):
        for line in path.read_text().splitlines():
            if "==" in line:
                assert line.endswith("\\"), f"{path.name}: {line} has no hash"


def test_lock_mismatches_are_named(image: ModuleType) -> None:
    lock = "kopf==1.45.2 \\\n    --hash=sha256:00\npyyaml==5.4 \\\n    --hash=sha256:00\n"
    assert image.lock_mismatches(lock, ["kopf>=1.45,<2", "PyYAML>=6,<7", "httpx>=0.27"]) == [
        "PyYAML==5.4 does not satisfy PyYAML<7,>=6",
        "httpx is not pinned",
    ]


def test_wheels_that_fit_cpython_311_on_any_platform(image: ModuleType) -> None:
    assert image.wheel_fits("kopf-1.45.2-py3-none-any.whl")
    assert image.wheel_fits("aiohttp-3.14.5-cp311-cp311-musllinux_1_2_aarch64.whl")
    assert image.wheel_fits("cryptography-46.0.0-cp39-abi3-manylinux_2_34_x86_64.whl")
    assert not image.wheel_fits("aiohttp-3.14.5-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert not image.wheel_fits("something-1.0-cp312-abi3-manylinux_2_17_x86_64.whl")
    assert not image.wheel_fits("not-a-wheel.tar.gz")


def test_the_dockerfile_keeps_its_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ${BASE_IMAGE}") == 2, "two stages on the same build-argument base"
    assert "ARG BASE_IMAGE=docker.io/library/python:3.11-slim" in text
    assert "USER 65532:65532" in text
    assert "--require-hashes -r image/requirements.txt" in text


def test_containers_conf_stays_within_the_hard_limits(image: ModuleType) -> None:
    text = image.containers_conf().read_text()
    assert 'runtime = "runc"' in text and 'cgroup_manager = "cgroupfs"' in text
    nofile = int(text.split("nofile=")[1].split(":")[0])
    nproc = int(text.split("nproc=")[1].split(":")[0])
    assert nofile <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert nproc <= resource.getrlimit(resource.RLIMIT_NPROC)[1]


BUILD_LOG = """\
[1/2] STEP 1/3: FROM localhost/cvm-operator-base:bookworm-1ef1c44dde5c AS builder
[1/2] STEP 2/3: COPY image/ image/
--> Using cache 704fd26d0594aa2c38c4bd3cfb1f3bf8f4b5b1c6a0e6cfa2a2b3c1d4e5f60718
--> 704fd26d059
[1/2] STEP 3/3: RUN pip install .
--> d7580d272e7
[2/2] STEP 1/2: FROM localhost/cvm-operator-base:bookworm-1ef1c44dde5c
[2/2] STEP 2/2: COPY --from=builder /opt/venv /opt/venv
[2/2] COMMIT localhost/cvm-operator:candidate
--> 9c1a8a002a1
"""


def test_the_builder_stage_leaf_is_read_from_the_build_log(image: ModuleType) -> None:
    assert image.stage_leaves(BUILD_LOG) == ["d7580d272e7"]
