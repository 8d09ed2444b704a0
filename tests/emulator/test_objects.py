"""The COS-style object store and the URLs ImportImage takes."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import DiskFileServer, EmulatorProcess, sdk_client, write_qcow2

from .helpers import call, expect_error, unique, wait_image_state

BUCKET = "disks-1250000000"
COS_HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"


@pytest.fixture(scope="module")
def strict_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator as the cloud is: ImportImage takes COS object URLs only."""
    with EmulatorProcess(tmp_path_factory.mktemp("strict"), allow_any_import_url=False) as process:
        yield process


def http(method: str, url: str, data: bytes | None = None, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def put_disk(emulator: EmulatorProcess, tmp_path: Path, key: str) -> bytes:
    data = write_qcow2(tmp_path / "disk.qcow2", virtual_size=6 * 2**30).read_bytes()
    status, _ = http("PUT", f"{emulator.endpoint}/{BUCKET}/{key}", data)
    assert status == 200
    return data


def import_from(client: object, url: str) -> str:
    image_id: str = call(
        client,
        "ImportImage",
        Architecture="x86_64",
        OsType="CentOS",
        OsVersion="7",
        ImageUrl=url,
        ImageName=unique("cos"),
    ).ImageId
    return image_id


def test_put_get_delete_objects(strict_emulator: EmulatorProcess) -> None:
    base = strict_emulator.endpoint
    assert http("PUT", f"{base}/{BUCKET}/dir/a.txt", b"hello")[0] == 200
    assert http("GET", f"{base}/{BUCKET}/dir/a.txt") == (200, b"hello")
    assert http("HEAD", f"{base}/{BUCKET}/dir/a.txt")[0] == 200
    # Host-style names the bucket in the Host header; both styles reach the same object.
    assert http("PUT", f"{base}/dir/b.txt", b"world", host=COS_HOST)[0] == 200
    assert http("GET", f"{base}/{BUCKET}/dir/b.txt") == (200, b"world")
    assert http("GET", f"{base}/dir/a.txt", host=COS_HOST) == (200, b"hello")
    assert http("DELETE", f"{base}/{BUCKET}/dir/a.txt")[0] == 204
    status, body = http("GET", f"{base}/{BUCKET}/dir/a.txt")
    assert status == 404 and b"NoSuchKey" in body
    assert http("GET", f"{base}/{BUCKET}/../escape")[0] in (400, 404)
    # Objects are files beside the database: they outlive a restart.
    strict_emulator.restart()
    assert http("GET", f"{base}/{BUCKET}/dir/b.txt") == (200, b"world")


def test_import_from_cos_urls(strict_emulator: EmulatorProcess, tmp_path: Path) -> None:
    client = sdk_client(strict_emulator)
    put_disk(strict_emulator, tmp_path, "centos.qcow2")
    host_style = import_from(client, f"https://{COS_HOST}/centos.qcow2")
    path_style = import_from(client, f"{strict_emulator.endpoint}/{BUCKET}/centos.qcow2")
    for image_id in (host_style, path_style):
        done = wait_image_state(client, image_id, "NORMAL", "IMPORTFAILED")
        assert (done.ImageState, done.ImageSize) == ("NORMAL", 6)
    # A COS URL of an object that is not there: the import fails, as a missing object does in the cloud.
    missing = import_from(client, f"https://{COS_HOST}/missing.qcow2")
    assert wait_image_state(client, missing, "NORMAL", "IMPORTFAILED").ImageState == "IMPORTFAILED"


def test_other_urls_are_refused_unless_allowed(strict_emulator: EmulatorProcess, disk_server: DiskFileServer) -> None:
    write_qcow2(disk_server.directory / "disk.qcow2")
    params = {"Architecture": "x86_64", "OsType": "CentOS", "OsVersion": "7", "ImageName": unique("x")}
    for url in (disk_server.url("disk.qcow2"), "https://example.com/disk.qcow2", "file:///tmp/disk.qcow2"):
        expect_error(
            "InvalidParameter.InvalidParameterUrlError",
            sdk_client(strict_emulator),
            "ImportImage",
            ImageUrl=url,
            **params,
        )
