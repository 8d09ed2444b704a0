#!/usr/bin/env python3
"""The operator's container image, built, scanned and exported with podman on a Debian machine.

    python hack/image.py build              # `make image`: tools, base, wheels, build, scan, OCI archive
    python hack/image.py scan [IMAGE]       # Debian and Python advisories of an image; non-zero on a finding
    python hack/image.py lock [--upgrade]   # rewrite image/requirements.txt from pyproject.toml
    python hack/image.py env                # the CONTAINERS_CONF line for running podman by hand

No registry is needed: the base is made from Debian packages with mmdebstrap (the suite, its updates
and its security updates, from the mirrors apt uses) and imported into podman; the Python
dependencies are pinned with hashes in image/requirements.txt and downloaded on the host into
image/wheels/, which the Dockerfile installs with ``--no-index``. podman runs with a private
containers.conf (runc, cgroupfs, ulimits within this user's hard limits); nothing in /etc changes.
Outputs go to build/image/: the OCI archive, the scan report, the containers.conf.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import email.parser
import fcntl
import functools
import gzip
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS_DIR = ROOT / "image"
LOCK = REQUIREMENTS_DIR / "requirements.txt"
BUILD_LOCK = REQUIREMENTS_DIR / "build-requirements.txt"
WHEELS = REQUIREMENTS_DIR / "wheels"
OUT = ROOT / "build" / "image"

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT_NAME = canonicalize_name(PROJECT["project"]["name"])
VERSION = PROJECT["project"]["version"]
IMAGE = f"ghcr.io/cvm-operator/cvm-operator:{VERSION}"
CANDIDATE = "localhost/cvm-operator:candidate"  # tagged as IMAGE only once the scan passes
ARCHIVE = OUT / f"cvm-operator-{VERSION}.oci.tar"

# The image's Python: Debian bookworm's python3 (3.11) on glibc 2.36.
SUITE = "bookworm"
SUITES = (SUITE, f"{SUITE}-updates", f"{SUITE}-security")
PYTHON_VERSION = "3.11"
GLIBC = "2_36"
BASE_REPOSITORY = "localhost/cvm-operator-base"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Documentation and translations are dead weight in an image; copyright files stay.
BASE_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)
# Merged /usr by symlinks, as debootstrap and Debian's own images do: otherwise apt satisfies
# init-system-helpers' "usrmerge | usr-is-merged" with usrmerge, which brings 46 MB of Perl.
BASE_HOOKS = ("/usr/share/mmdebstrap/hooks/merged-usr",)
BASE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
# A fixed epoch makes the same packages give a byte-identical base.
SOURCE_DATE_EPOCH = "1704067200"
TOOLS = {"podman": "podman", "runc": "runc", "skopeo": "skopeo", "mmdebstrap": "mmdebstrap"}
APT_LISTS_MAX_AGE = 6 * 3600.0

PYPI = "https://pypi.org/pypi"
HTTP_TIMEOUT = 30.0
HTTP_ATTEMPTS = 3


def log(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


class ScanError(Exception):
    """The scan could not look: missing lists, an unreachable index, an image that is not Debian."""


# ---------------------------------------------------------------- podman and its configuration


def containers_conf() -> Path:
    """A private containers.conf: this machine's crun cannot run in hybrid cgroups, and podman's
    default ulimits exceed the hard limits of a user without CAP_SYS_RESOURCE."""
    limits = ", ".join(f'"{limit}"' for limit in ulimits())
    text = (
        "# Written by hack/image.py for CONTAINERS_CONF; limits are this user's hard limits.\n"
        "[containers]\n"
        f"default_ulimits = [{limits}]\n"
        "\n[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    path = OUT / "containers.conf"
    if not path.exists() or path.read_text() != text:
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def ulimits() -> list[str]:
    """nofile and nproc within this user's hard limits (podman build does not read default_ulimits).
    podman lowers its own nproc to 32768 at start, and a container cannot get more than podman has."""
    nofile = _hard_limit(resource.RLIMIT_NOFILE, 65536)
    nproc = min(_hard_limit(resource.RLIMIT_NPROC, 32768), 32768)
    return [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]


def _hard_limit(which: int, fallback: int) -> int:
    hard = resource.getrlimit(which)[1]
    return fallback if hard == resource.RLIM_INFINITY else int(hard)


def podman_env() -> dict[str, str]:
    return dict(os.environ, CONTAINERS_CONF=str(containers_conf()))


def podman(*args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=podman_env(), check=check, text=True, capture_output=capture, stdin=subprocess.DEVNULL
    )


def image_exists(reference: str) -> bool:
    if shutil.which("podman") is None:
        return False
    return podman("image", "exists", reference, check=False).returncode == 0


def image_id(reference: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", reference, capture=True).stdout.strip()


@contextlib.contextmanager
def mounted(reference: str) -> Iterator[Path]:
    """The image's root filesystem, read on the host: nothing of the image runs while it is scanned."""
    path = Path(podman("image", "mount", reference, capture=True).stdout.strip())
    try:
        yield path
    finally:
        podman("image", "unmount", reference, capture=True, check=False)


# ---------------------------------------------------------------- tools and package lists


def apt_get(*args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", *args], env=env, check=True, stdin=subprocess.DEVNULL
    )


def ensure_tools() -> None:
    missing = sorted({package for command, package in TOOLS.items() if shutil.which(command) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"image: missing {', '.join(missing)}; install them: apt-get install -y {' '.join(missing)}")
    log(f"installing {', '.join(missing)} from Debian's packages")
    refresh_apt_lists(force=True)
    apt_get("install", "-y", *missing)


def _apt_stamp() -> Path:
    # Machine-wide, like the lists: a fresh clone (CI's) does not refresh them again.
    return Path.home() / ".cache" / "cvm-operator" / "apt-lists.updated"


def refresh_apt_lists(force: bool = False) -> None:
    """`apt-get update` when the lists are older than APT_LISTS_MAX_AGE: both the base and the scan
    are only as current as the host's lists."""
    stamp = _apt_stamp()
    fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < APT_LISTS_MAX_AGE
    if fresh and not force and len(apt_sources()) == len(SUITES):
        return
    if os.geteuid() != 0:
        log("not root: the package lists cannot be refreshed; the base and the scan use the lists as they are")
        return
    apt_get("update")
    _indextargets.cache_clear()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()


@dataclass(frozen=True)
class AptSource:
    uri: str
    release: str
    components: tuple[str, ...]

    def line(self) -> str:
        return f"deb {self.uri} {self.release} {' '.join(self.components)}"


def apt_sources(suites: Sequence[str] = SUITES) -> list[AptSource]:
    """The Debian repositories apt already uses for these suites (the host's mirrors)."""
    return parse_indextargets(_indextargets(), suites)


@functools.cache
def _indextargets() -> str:
    return subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI)|$(RELEASE)|$(COMPONENT)", "Created-By: Packages"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def parse_indextargets(text: str, suites: Sequence[str]) -> list[AptSource]:
    components: dict[tuple[str, str], list[str]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3 or parts[1] not in suites:
            continue
        uri, release, component = parts
        found = components.setdefault((uri, release), [])
        if component not in found:
            found.append(component)
    sources = [AptSource(uri, release, tuple(found)) for (uri, release), found in components.items()]
    return sorted(sources, key=lambda source: (suites.index(source.release), source.uri))


# ---------------------------------------------------------------- the Debian scan


@dataclass(frozen=True)
class DebianUpdate:
    package: str
    installed: str
    candidate: str
    origins: str

    @property
    def security(self) -> bool:
        return "security" in self.origins.lower()


@dataclass
class DebianScan:
    packages: int
    release: str
    updates: list[DebianUpdate] = field(default_factory=list)

    @property
    def security(self) -> list[DebianUpdate]:
        return [update for update in self.updates if update.security]


# Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])
_INST = re.compile(
    r"^Inst (?P<package>\S+) \[(?P<installed>[^\]]+)\] \((?P<candidate>\S+) (?P<origins>.*) \[[^\]]+\]\)"
)


def parse_apt_simulation(text: str) -> list[DebianUpdate]:
    """Upgrades of installed packages in `apt-get -s` output (new packages have no installed version)."""
    updates = []
    for line in text.splitlines():
        match = _INST.match(line)
        if match:
            updates.append(DebianUpdate(**match.groupdict()))
    return updates


def count_dpkg_packages(status: str) -> int:
    return sum(
        1 for stanza in status.split("\n\n") if re.search(r"^Status: install ok installed$", stanza, re.MULTILINE)
    )


def os_release(root: Path) -> dict[str, str]:
    for candidate in (root / "etc/os-release", root / "usr/lib/os-release"):
        if candidate.is_file():
            pairs = (line.split("=", 1) for line in candidate.read_text().splitlines() if "=" in line)
            return {key: value.strip().strip('"') for key, value in pairs}
    return {}


def scan_debian(root: Path) -> DebianScan:
    """Pending updates of the image's packages: apt simulates an upgrade of the image's dpkg status
    against the host's package lists, which must include the image's release and its security suite."""
    status = root / "var/lib/dpkg/status"
    if not status.is_file():
        raise ScanError("the image has no dpkg status (not a Debian image): its packages cannot be checked")
    release = os_release(root).get("VERSION_CODENAME", "")
    if not release:
        raise ScanError("the image's /etc/os-release names no VERSION_CODENAME")
    wanted = (release, f"{release}-security")
    found = {source.release for source in apt_sources(wanted)}
    if set(wanted) - found:
        raise ScanError(
            f"the host's package lists lack {', '.join(sorted(set(wanted) - found))}: "
            "the image's packages cannot be checked against them"
        )
    packages = count_dpkg_packages(status.read_text(errors="replace"))
    if packages == 0:
        raise ScanError("the image's dpkg status lists no installed package")
    return DebianScan(packages, release, simulate_upgrade(status))


APT_LISTS = Path("/var/lib/apt/lists")


def simulate_upgrade(status: Path) -> list[DebianUpdate]:
    """`apt-get -s upgrade` (new dependencies allowed) of a dpkg status against the host's lists.

    The answer depends only on the status and the lists, so it is kept under that key: a warm build
    asks apt once for the base and reuses it for the image, whose packages are the base's.
    """
    lists = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in APT_LISTS.glob("*") if p.is_file())
    key = hashlib.sha256(status.read_bytes() + json.dumps(lists).encode()).hexdigest()[:24]
    cache = OUT / "apt"
    answer = cache / f"{key}.txt"
    if answer.is_file():
        return parse_apt_simulation(answer.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "apt-get", "-s", "-o", f"Dir::State::status={status}", "-o", "Debug::NoLocking=true",
            # The host may be set to keep no cache of the parsed lists; a private one saves seconds.
            "-o", f"Dir::Cache::srcpkgcache={cache / 'srcpkgcache.bin'}", "-o", "Dir::Cache::pkgcache=",
            "-o", "APT::Get::Upgrade-Allow-New=true", "upgrade",
        ],
        capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"),
    )  # fmt: skip
    if result.returncode != 0:
        raise ScanError(f"apt-get could not simulate an upgrade of the image's packages:\n{result.stderr.strip()}")
    for old in sorted(cache.glob("*.txt"), key=lambda p: p.stat().st_mtime)[:-8]:
        old.unlink(missing_ok=True)
    answer.write_text(result.stdout)
    return parse_apt_simulation(result.stdout)


# ---------------------------------------------------------------- the Python scan


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    location: str


def dpkg_owned(root: Path) -> set[str]:
    """Paths (relative to the image root) that Debian packages installed; those are Debian's to fix."""
    owned: set[str] = set()
    info = root / "var/lib/dpkg/info"
    if info.is_dir():
        for listing in info.glob("*.list"):
            owned.update(line.strip().lstrip("/") for line in listing.read_text(errors="replace").splitlines())
    return owned


def image_distributions(root: Path) -> tuple[list[Distribution], list[Distribution]]:
    """Installed Python distributions (dist-info and egg-info in site-packages or dist-packages
    anywhere in the image): those from PyPI, and those Debian packages own."""
    owned = dpkg_owned(root)
    found: list[Distribution] = []
    debian: list[Distribution] = []
    for directory, subdirectories, _files in os.walk(root):
        base = Path(directory)
        if base.name not in ("site-packages", "dist-packages"):
            continue
        for name in sorted(subdirectories):
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            metadata_dir = base / name
            metadata = metadata_dir / ("METADATA" if name.endswith(".dist-info") else "PKG-INFO")
            if not metadata.is_file():
                continue
            headers = email.parser.HeaderParser().parsestr(metadata.read_text(errors="replace"))
            relative = str(metadata_dir.relative_to(root))
            distribution = Distribution(str(headers["Name"]), str(headers["Version"]), relative)
            (debian if relative in owned else found).append(distribution)
    return found, debian


def http_json(url: str) -> dict[str, Any] | None:
    """GET a JSON document; None on 404; ScanError when the index cannot be read."""
    last = ""
    for attempt in range(HTTP_ATTEMPTS):
        try:
            # Project documents list every release's files: megabytes, a tenth of that gzipped.
            request = urllib.request.Request(url, headers={"Accept": "application/json", "Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
                body = answer.read()
                if answer.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                document = json.loads(body)
                if not isinstance(document, dict):
                    raise ScanError(f"{url} answered something other than a JSON object")
                return document
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError, EOFError, json.JSONDecodeError) as error:
            last = str(error)
        time.sleep(1.0 + attempt)
    raise ScanError(f"{url} could not be read: {last}")


@dataclass
class PythonResult:
    name: str
    version: str
    latest: str = ""
    # checked: PyPI's advisories for this very version were read; partly: only those of the latest
    # release (PyPI answers per-version JSON with 404 here), so advisories fixed after this version
    # are not seen; error: nothing could be read.
    coverage: str = "checked"
    advisories: list[str] = field(default_factory=list)
    note: str = ""


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def affecting(vulnerabilities: Iterable[Mapping[str, Any]], installed: str, for_installed: bool) -> list[str]:
    """The advisories (ids) that apply to ``installed``.

    ``for_installed``: the list is PyPI's for this very version, so each applies. Otherwise it is the
    latest release's list; one applies to an older version unless a fix in the same release series
    (major.minor) is not newer than it. Unknown or unparsable versions count as affected.
    """
    mine = _version(installed)
    ids: list[str] = []
    for vulnerability in vulnerabilities:
        if vulnerability.get("withdrawn"):
            continue
        identifier = str(vulnerability.get("id") or ",".join(vulnerability.get("aliases") or []) or "advisory")
        if for_installed or mine is None:
            ids.append(identifier)
            continue
        fixes = [_version(str(fixed)) for fixed in vulnerability.get("fixed_in") or []]
        backported = any(
            fixed is not None and fixed.release[:2] == mine.release[:2] and fixed <= mine for fixed in fixes
        )
        if not backported:
            ids.append(identifier)
    return ids


def check_distribution(distribution: Distribution, index: str = PYPI) -> PythonResult:
    result = PythonResult(distribution.name, distribution.version)
    name = canonicalize_name(distribution.name)
    try:
        project = http_json(f"{index}/{name}/json")
        if project is None:
            result.coverage = "error"
            result.note = "not on PyPI: its advisories cannot be looked up"
            return result
        result.latest = str(project.get("info", {}).get("version", ""))
        if "vulnerabilities" not in project:
            result.coverage = "error"
            result.note = "PyPI's answer has no vulnerabilities field"
            return result
        installed, latest = _version(distribution.version), _version(result.latest)
        if installed is not None and installed == latest:
            result.advisories = affecting(project["vulnerabilities"], distribution.version, for_installed=True)
            return result
        exact = http_json(f"{index}/{name}/{distribution.version}/json")
        if exact is not None and "vulnerabilities" in exact:
            result.advisories = affecting(exact["vulnerabilities"], distribution.version, for_installed=True)
            return result
        result.coverage = "partly"
        result.advisories = affecting(project["vulnerabilities"], distribution.version, for_installed=False)
        result.note = (
            f"behind the latest release {result.latest}: only that release's advisories could be read, "
            f"so ones fixed after {distribution.version} are not seen (`hack/image.py lock --upgrade` moves the pins)"
        )
    except ScanError as error:
        result.coverage = "error"
        result.note = str(error)
    return result


def scan_python(distributions: Sequence[Distribution], index: str = PYPI) -> list[PythonResult]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda d: check_distribution(d, index), distributions))
    return sorted(results, key=lambda result: canonicalize_name(result.name))


# ---------------------------------------------------------------- the whole scan


@dataclass
class ScanReport:
    image: str
    debian: DebianScan | None = None
    debian_error: str = ""
    python: list[PythonResult] = field(default_factory=list)
    debian_python: list[Distribution] = field(default_factory=list)
    local: list[Distribution] = field(default_factory=list)

    @property
    def vulnerable(self) -> list[PythonResult]:
        return [result for result in self.python if result.advisories]

    @property
    def errors(self) -> list[str]:
        errors = [self.debian_error] if self.debian_error else []
        errors += [f"{r.name} {r.version}: {r.note}" for r in self.python if r.coverage == "error"]
        return errors

    @property
    def partly(self) -> list[PythonResult]:
        return [result for result in self.python if result.coverage == "partly"]

    def failed(self, strict: bool = False) -> bool:
        security = self.debian.security if self.debian else []
        return bool(security or self.vulnerable or self.errors or (strict and self.partly))

    def lines(self) -> list[str]:
        lines: list[str] = []
        if self.debian is not None:
            other = len(self.debian.updates) - len(self.debian.security)
            lines.append(
                f"Debian: {self.debian.packages} packages, {len(self.debian.security)} with pending security "
                f"updates, {other} with other pending updates (host lists for {self.debian.release})"
            )
            for update in self.debian.updates:
                kind = "SECURITY" if update.security else "update"
                lines.append(f"  {kind}: {update.package} {update.installed} -> {update.candidate} ({update.origins})")
        checked = [result for result in self.python if result.coverage == "checked"]
        lines.append(
            f"Python: {len(self.python) + len(self.local) + len(self.debian_python)} distributions; "
            f"{len(self.python)} looked up on PyPI: {len(self.vulnerable)} with known advisories, "
            f"{len(checked)} fully checked, {len(self.partly)} partly checked, "
            f"{sum(r.coverage == 'error' for r in self.python)} could not be checked; "
            f"{len(self.local)} built from this checkout; {len(self.debian_python)} from Debian packages "
            "(covered by the Debian check)"
        )
        for result in self.vulnerable:
            lines.append(f"  VULNERABLE: {result.name} {result.version}: {', '.join(result.advisories)}")
        for result in self.partly:
            lines.append(f"  PARTLY CHECKED: {result.name} {result.version}: {result.note}")
        for error in self.errors:
            lines.append(f"  COULD NOT CHECK: {error}")
        return lines


def scan(reference: str, strict: bool = False, report_path: Path | None = None, index: str = PYPI) -> ScanReport:
    report = ScanReport(reference)
    with mounted(reference) as root:
        try:
            report.debian = scan_debian(root)
        except ScanError as error:
            report.debian_error = f"Debian packages: {error}"
        distributions, report.debian_python = image_distributions(root)
    report.local = [d for d in distributions if canonicalize_name(d.name) == PROJECT_NAME]
    report.python = scan_python([d for d in distributions if canonicalize_name(d.name) != PROJECT_NAME], index)
    for line in report.lines():
        log(f"scan: {line}")
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


# ---------------------------------------------------------------- the base image


def base_recipe() -> dict[str, Any]:
    return {
        "suites": list(SUITES),
        "variant": "essential",
        "include": list(BASE_PACKAGES),
        "dpkg": list(BASE_DPKG_OPTIONS),
        "hooks": list(BASE_HOOKS),
        "env": list(BASE_ENV),
        "epoch": SOURCE_DATE_EPOCH,
        "architecture": _dpkg_architecture(),
    }


def _dpkg_architecture() -> str:
    if shutil.which("dpkg") is None:
        return platform.machine()
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def base_tag() -> str:
    digest = hashlib.sha256(json.dumps(base_recipe(), sort_keys=True).encode()).hexdigest()[:12]
    return f"{BASE_REPOSITORY}:{SUITE}-{digest}"


def ensure_base() -> str:
    """The cached base, rebuilt when its recipe changes or Debian has updates for its packages."""
    tag = base_tag()
    if image_exists(tag):
        with mounted(tag) as root:
            updates = scan_debian(root).updates
        if not updates:
            return tag
        log(f"the base has {len(updates)} pending package updates; making it again")
    build_base(tag)
    for other in podman("images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPOSITORY, capture=True).stdout.split():
        old = tagged_id(other)
        if other != tag and old:  # an earlier recipe's base: gone now, or with the last image that uses it
            podman("untag", other, capture=True, check=False)
            remove_unused(old)
    return tag


def build_base(tag: str) -> None:
    sources = apt_sources()
    if {source.release for source in sources} != set(SUITES):
        raise SystemExit(f"image: apt has no lists for all of {', '.join(SUITES)}; is this a Debian {SUITE} host?")
    OUT.mkdir(parents=True, exist_ok=True)
    tarball = OUT / "base.tar"
    command = ["mmdebstrap", "--quiet", "--variant=essential", f"--include={','.join(BASE_PACKAGES)}"]
    command += [f"--dpkgopt={option}" for option in BASE_DPKG_OPTIONS]
    command += [f"--hook-dir={hook}" for hook in BASE_HOOKS]
    command += [SUITE, str(tarball), *(source.line() for source in sources)]
    log(f"making the {SUITE} base from {', '.join(sorted({s.uri for s in sources}))}")
    try:
        made = subprocess.run(
            command, capture_output=True, text=True, env=dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
        )
        if made.returncode != 0:
            raise SystemExit(
                f"image: mmdebstrap failed ({made.returncode}):\n{made.stdout[-4000:]}{made.stderr[-4000:]}"
            )
        changes = [f"--change=ENV {variable}" for variable in BASE_ENV] + ['--change=CMD ["python3"]']
        podman("import", "--quiet", *changes, str(tarball), tag, capture=True)
    finally:
        tarball.unlink(missing_ok=True)


# ---------------------------------------------------------------- pinned dependencies


def pip_platform_options() -> list[str]:
    """pip's options for wheels of the image's Python and glibc. pip takes --platform literally, so
    every manylinux tag up to the image's glibc is named."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(_dpkg_architecture(), platform.machine())
    glibc_minor = int(GLIBC.split("_")[1])
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc_minor, 4, -1)]
    platforms += [f"manylinux{legacy}_{machine}" for legacy in ("2014", "2010", "1")]
    return [
        "--only-binary=:all:",
        *(f"--platform={tag}" for tag in platforms),
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        f"--abi=cp{PYTHON_VERSION.replace('.', '')}",
    ]


def parse_lock(text: str) -> dict[str, str]:
    """name -> version of a requirements file of `name==version` lines (hashes and comments ignored)."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def resolve(requirements: Sequence[str], constraints: Mapping[str, str]) -> dict[str, str]:
    """pip's resolution of ``requirements`` for the image's Python and platform: name -> version."""
    with tempfile.TemporaryDirectory() as scratch:
        requirements_file = Path(scratch) / "requirements.txt"
        requirements_file.write_text("\n".join(requirements) + "\n")
        constraints_file = Path(scratch) / "constraints.txt"
        constraints_file.write_text("".join(f"{name}=={version}\n" for name, version in constraints.items()))
        report = Path(scratch) / "report.json"
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                "--report", str(report), "--target", str(Path(scratch) / "target"), *pip_platform_options(),
                "-r", str(requirements_file), "-c", str(constraints_file),
            ],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


def wheel_fits(filename: str) -> bool:
    """A wheel CPython 3.11 can install on any platform (so the lock also serves other machines)."""
    try:
        tags = parse_wheel_filename(filename)[3]
    except ValueError:
        return False
    ours = f"cp{PYTHON_VERSION.replace('.', '')}"
    for tag in tags:
        if tag.interpreter in ("py3", ours):
            return True
        if tag.abi == "abi3" and tag.interpreter.startswith("cp3") and int(tag.interpreter[3:] or 0) <= 11:
            return True
    return False


def release_hashes(name: str, version: str) -> list[str]:
    project = http_json(f"{PYPI}/{name}/json")
    files = (project or {}).get("releases", {}).get(version, [])
    hashes = {
        str(item["digests"]["sha256"])
        for item in files
        if item.get("packagetype") == "sdist" or (item["filename"].endswith(".whl") and wheel_fits(item["filename"]))
    }
    if not hashes:
        raise SystemExit(f"image: PyPI lists no files of {name} {version} for CPython {PYTHON_VERSION}")
    return sorted(hashes)


def write_lock(path: Path, pins: Mapping[str, str], purpose: str) -> None:
    names = sorted(pins)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        hashes = dict(zip(names, pool.map(lambda n: release_hashes(n, pins[n]), names), strict=True))
    lines = [
        f"# {purpose}",
        f"# Pinned for CPython {PYTHON_VERSION}, with the hashes of each release's CPython {PYTHON_VERSION} wheels",
        "# and source archive. Written by `hack/image.py lock` from pyproject.toml; do not edit by hand.",
    ]
    for name in names:
        lines.append(f"{name}=={pins[name]} \\")
        lines += [f"    --hash=sha256:{digest} \\" for digest in hashes[name][:-1]]
        lines.append(f"    --hash=sha256:{hashes[name][-1]}")
    path.write_text("\n".join(lines) + "\n")


def lock(upgrade: bool = False) -> None:
    """Pin the runtime dependencies (pyproject's) and the build tools (its build-system, plus pip)."""
    REQUIREMENTS_DIR.mkdir(exist_ok=True)
    for path, requirements, purpose in (
        (
            LOCK,
            PROJECT["project"]["dependencies"],
            "The image's Python dependencies (the operator's and the emulator's).",
        ),
        (BUILD_LOCK, ["pip", *PROJECT["build-system"]["requires"]], "What builds the project's wheel in the image."),
    ):
        kept = {} if upgrade or not path.exists() else parse_lock(path.read_text())
        try:
            pins = resolve(requirements, kept)
        except subprocess.CalledProcessError:
            if not kept:
                raise
            log(f"the pins in {path.name} no longer fit pyproject.toml; resolving afresh")
            pins = resolve(requirements, {})
        write_lock(path, pins, purpose)
        log(f"wrote {path.relative_to(ROOT)}: {len(pins)} pinned distributions")


def lock_mismatches(lock_text: str, requirements: Iterable[str]) -> list[str]:
    """Requirements of pyproject.toml that the lock does not satisfy."""
    pins = parse_lock(lock_text)
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} does not satisfy {requirement}")
    return problems


def ensure_wheels() -> None:
    """The pinned wheels in image/wheels/, downloaded (hash-checked) on the host: HTTPS from inside a
    container fails here, so the build installs them with --no-index."""
    problems = lock_mismatches(LOCK.read_text(), PROJECT["project"]["dependencies"])
    if problems:
        raise SystemExit(f"image: {LOCK.relative_to(ROOT)} is stale ({'; '.join(problems)}): run hack/image.py lock")
    options = pip_platform_options()
    digest = hashlib.sha256((LOCK.read_text() + BUILD_LOCK.read_text() + " ".join(options)).encode()).hexdigest()
    stamp = WHEELS / ".digest"
    if stamp.exists() and stamp.read_text() == digest:
        return
    shutil.rmtree(WHEELS, ignore_errors=True)
    WHEELS.mkdir(parents=True)
    log("downloading the pinned wheels")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--require-hashes", *options, "--dest", str(WHEELS), "-r", str(LOCK), "-r", str(BUILD_LOCK),
        ],
        check=True,
    )  # fmt: skip
    stamp.write_text(digest)


# ---------------------------------------------------------------- build


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    # podman's images and tags are machine-wide, so builds from any checkout take turns.
    path = Path.home() / ".cache" / "cvm-operator" / "image.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class Timer:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.steps: list[tuple[str, float]] = []
        self._last = self.started

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.steps.append((name, now - self._last))
        self._last = now

    def summary(self) -> str:
        parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.steps)
        return f"{time.monotonic() - self.started:.1f}s ({parts})"


def build_image(base: str) -> None:
    """podman build of the Dockerfile on ``base``, with no network: everything it installs is in the context."""
    log_path = OUT / "build.log"
    with open(log_path, "w") as build_log:
        built = subprocess.run(
            [
                "podman", "build", "--pull=never", "--network=none", "--build-arg", f"BASE_IMAGE={base}",
                *(f"--ulimit={limit}" for limit in ulimits()),
                "--tag", CANDIDATE, "--file", str(DOCKERFILE), str(ROOT),
            ],
            env=podman_env(), stdout=build_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    if built.returncode != 0:
        sys.stderr.write(log_path.read_text(errors="replace")[-8000:])
        raise SystemExit(f"image: podman build failed ({built.returncode}); the whole log is in {log_path}")
    # The builder stage's last layer has no tag and no child, so nothing would tell it from an old
    # build's leftovers; a tag keeps it (and the layer cache) while the previous builds are removed.
    for stage, leaf in enumerate(stage_leaves(log_path.read_text(errors="replace"))):
        podman("tag", leaf, f"{STAGE_REPOSITORY}:stage-{stage}")


STAGE_REPOSITORY = "localhost/cvm-operator"


def stage_tags() -> list[str]:
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", STAGE_REPOSITORY, capture=True, check=False)
    return [line for line in listed.stdout.split() if re.search(r":stage-\d+$", line)]


def stage_leaves(build_log: str) -> list[str]:
    """The last layer of each stage before the final one, from podman build's output."""
    leaves: dict[int, str] = {}
    stage, stages = 0, 0
    for line in build_log.splitlines():
        step = re.match(r"^\[(\d+)/(\d+)\] STEP", line)
        if step:
            stage, stages = int(step.group(1)), int(step.group(2))
            continue
        layer = re.match(r"^--> (?:Using cache )?([0-9a-f]{11,64})$", line)
        if layer and stage:
            leaves[stage] = layer.group(1)
    return [leaves[n] for n in sorted(leaves) if n < stages]


def tagged_id(reference: str) -> str | None:
    answer = podman("image", "inspect", "--format", "{{.Id}}", reference, capture=True, check=False)
    return answer.stdout.strip() or None if answer.returncode == 0 else None


def remove_unused(image: str) -> None:
    """An earlier build's image and its layers up the chain, until one is tagged or still has children."""
    current = image
    while current:
        answer = podman(
            "image", "inspect", "--format", "{{.Parent}}|{{len .RepoTags}}", current, capture=True, check=False
        )
        if answer.returncode != 0:
            return
        parent, tags = answer.stdout.strip().split("|")
        if tags != "0" or podman("rmi", current, capture=True, check=False).returncode != 0:
            return
        current = parent


def build(strict: bool = False) -> int:
    timer = Timer()
    ensure_tools()
    with build_lock():
        refresh_apt_lists()
        timer.step("tools")
        base = ensure_base()
        timer.step("base")
        ensure_wheels()
        timer.step("wheels")
        # No network inside the build: everything it installs is in the context.
        previous = {tag: tagged_id(tag) for tag in (IMAGE, CANDIDATE, *stage_tags())}
        build_image(base)
        timer.step("build")
        report = scan(CANDIDATE, strict=strict, report_path=OUT / "scan.json")
        timer.step("scan")
        if not report.failed(strict):
            podman("tag", CANDIDATE, IMAGE)
        # Each build that changed leaves its predecessor's layers behind (the venv layer alone is
        # 110 MB); those no tag holds any more go.
        for tag, old in previous.items():
            if old and old != tagged_id(tag):
                remove_unused(old)
        if report.failed(strict):
            log(f"the scan failed: {CANDIDATE} is not tagged {IMAGE}; report in {OUT / 'scan.json'}")
            return 1
        built = image_id(IMAGE)
        stamp = OUT / "archive.id"
        if not (ARCHIVE.exists() and stamp.exists() and stamp.read_text() == built):
            stamp.unlink(missing_ok=True)
            ARCHIVE.unlink(missing_ok=True)
            copied = subprocess.run(
                ["skopeo", "copy", "--quiet", f"containers-storage:{IMAGE}", f"oci-archive:{ARCHIVE}:{IMAGE}"],
                capture_output=True,
                text=True,
            )
            if copied.returncode != 0:
                raise SystemExit(f"image: skopeo copy failed: {copied.stderr.strip()}")
            stamp.write_text(built)
        timer.step("archive")
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE, capture=True).stdout.strip())
    log(f"{IMAGE} ({built[:12]}, {size / 1e6:.0f} MB) on {base}")
    log(f"OCI archive {ARCHIVE.relative_to(ROOT)} ({ARCHIVE.stat().st_size / 1e6:.0f} MB)")
    log(f"done in {timer.summary()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build, scan and export the image")
    build_command.add_argument("--strict", action="store_true", help="also fail on partly checked distributions")
    scan_command = commands.add_parser("scan", help="scan an image; non-zero on a finding or when it cannot look")
    scan_command.add_argument("image", nargs="?", default=IMAGE)
    scan_command.add_argument("--strict", action="store_true", help="also fail on partly checked distributions")
    scan_command.add_argument("--report", type=Path, help="write the findings as JSON")
    lock_command = commands.add_parser("lock", help="pin the image's Python dependencies")
    lock_command.add_argument("--upgrade", action="store_true", help="move every pin to the newest fitting release")
    commands.add_parser("env", help="print CONTAINERS_CONF for podman by hand")
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            return build(args.strict)
        except ScanError as error:
            log(f"the base could not be checked: {error}")
            return 1
    if args.command == "scan":
        return int(scan(args.image, args.strict, args.report).failed(args.strict))
    if args.command == "lock":
        lock(args.upgrade)
        return 0
    print(f"export CONTAINERS_CONF={containers_conf()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
