"""ImportImage: real fetches from a local HTTP server and from file URLs, format checks, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.emulator import (
    DiskFileServer,
    EmulatorProcess,
    sdk_client,
    write_iso,
    write_qcow2,
    write_raw_disk,
)

from .helpers import call, expect_error, image, unique, wait_image_state


def import_params(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "Architecture": "x86_64",
        "OsType": "CentOS",
        "OsVersion": "7",
        "ImageUrl": url,
        "ImageName": unique("imported"),
        **extra,
    }


def test_import_qcow2_over_http(shared_emulator: EmulatorProcess, disk_server: DiskFileServer) -> None:
    write_qcow2(disk_server.directory / "disk.qcow2", virtual_size=8 * 2**30)
    client = sdk_client(shared_emulator)
    image_id = call(
        client,
        "ImportImage",
        **import_params(
            disk_server.url("disk.qcow2"),
            BootMode="UEFI",
            ImageDescription="from qcow2",
            TagSpecification=[{"ResourceType": "image", "Tags": [{"Key": "source", "Value": "qcow2"}]}],
        ),
    ).ImageId
    assert image(client, image_id).ImageState == "IMPORTING"
    done = wait_image_state(client, image_id, "NORMAL", "IMPORTFAILED")
    assert done.ImageState == "NORMAL"
    assert (done.ImageSource, done.ImageType, done.ImageSize) == ("EXTERNAL_IMPORT", "PRIVATE_IMAGE", 8)
    assert (done.OsName, done.Platform, done.Architecture) == ("CentOS 7 64位", "CentOS", "x86_64")
    assert [(t.Key, t.Value) for t in done.Tags] == [("source", "qcow2")]
    assert disk_server.requests == ["/disk.qcow2"]
    # The imported image launches instances.
    from .helpers import launch

    launch(client, image_id=image_id, wait=False)


def test_import_failures_end_in_importfailed(shared_emulator: EmulatorProcess, disk_server: DiskFileServer) -> None:
    corrupted = bytearray(write_qcow2(disk_server.directory / "broken.qcow2").read_bytes())
    corrupted[20:24] = b"\xff\xff\xff\xff"  # impossible cluster size
    (disk_server.directory / "broken.qcow2").write_bytes(bytes(corrupted))
    (disk_server.directory / "notes.img").write_text("definitely not a disk")
    write_iso(disk_server.directory / "installer.img")
    client = sdk_client(shared_emulator)
    ids = {
        name: call(client, "ImportImage", **import_params(disk_server.url(name))).ImageId
        for name in ("broken.qcow2", "notes.img", "missing.qcow2", "installer.img")
    }
    for image_id in ids.values():
        assert wait_image_state(client, image_id, "NORMAL", "IMPORTFAILED").ImageState == "IMPORTFAILED"
    # A failed import can be deleted, and counts until it is.
    call(client, "DeleteImages", ImageIds=[ids["missing.qcow2"]])
    unreachable = call(client, "ImportImage", **import_params("http://127.0.0.1:9/disk.qcow2")).ImageId
    assert wait_image_state(client, unreachable, "NORMAL", "IMPORTFAILED").ImageState == "IMPORTFAILED"


def test_import_from_file_url_raw_and_forced_iso(shared_emulator: EmulatorProcess, tmp_path: Path) -> None:
    raw = write_raw_disk(tmp_path / "disk.raw", size=3 * 2**20)
    iso = write_iso(tmp_path / "tools.iso")
    client = sdk_client(shared_emulator, account=1)
    raw_id = call(client, "ImportImage", **import_params(raw.as_uri(), Architecture="i386")).ImageId
    expect_error("InvalidParameterValue.ISOMustImportByForce", client, "ImportImage", **import_params(iso.as_uri()))
    iso_id = call(client, "ImportImage", **import_params(iso.as_uri(), Force=True)).ImageId
    raw_image = wait_image_state(client, raw_id, "NORMAL", "IMPORTFAILED")
    assert (raw_image.ImageState, raw_image.ImageSize, raw_image.OsName) == ("NORMAL", 1, "CentOS 7 32位")
    assert wait_image_state(client, iso_id, "NORMAL", "IMPORTFAILED").ImageState == "NORMAL"
    missing = call(client, "ImportImage", **import_params((tmp_path / "nope.raw").as_uri())).ImageId
    assert wait_image_state(client, missing, "NORMAL", "IMPORTFAILED").ImageState == "IMPORTFAILED"


def test_import_parameter_rules(shared_emulator: EmulatorProcess) -> None:
    client = sdk_client(shared_emulator)
    url = "http://127.0.0.1:9/disk.qcow2"
    expect_error("InvalidImageOsType.Unsupported", client, "ImportImage", **import_params(url, OsType="BeOS"))
    expect_error("InvalidImageOsVersion.Unsupported", client, "ImportImage", **import_params(url, OsVersion="99"))
    expect_error(
        "InvalidParameter.InvalidParameterUrlError",
        client,
        "ImportImage",
        **import_params("ftp://example.invalid/disk.qcow2"),
    )
    expect_error("InvalidParameterValue", client, "ImportImage", **import_params(url, Architecture="sparc"))
    expect_error(
        "InvalidParameterValue.InvalidLicenseType", client, "ImportImage", **import_params(url, LicenseType="FREE")
    )
    expect_error("InvalidParameterValue.InvalidBootMode", client, "ImportImage", **import_params(url, BootMode="EFI"))
    expect_error(
        "MissingParameter",
        client,
        "ImportImage",
        Architecture="x86_64",
        OsType="CentOS",
        OsVersion="7",
        ImageName=unique(),
    )
    name = unique("dup")
    call(client, "ImportImage", **(import_params(url) | {"ImageName": name}))
    expect_error("InvalidImageName.Duplicate", client, "ImportImage", **(import_params(url) | {"ImageName": name}))


def test_byol_images_cannot_be_shared(shared_emulator: EmulatorProcess, disk_server: DiskFileServer) -> None:
    write_qcow2(disk_server.directory / "byol.qcow2")
    client = sdk_client(shared_emulator)
    image_id = call(client, "ImportImage", **import_params(disk_server.url("byol.qcow2"), LicenseType="BYOL")).ImageId
    assert wait_image_state(client, image_id, "NORMAL").LicenseType == "BYOL"
    expect_error(
        "FailedOperation.BYOLImageShareFailed",
        client,
        "ModifyImageSharePermission",
        ImageId=image_id,
        AccountIds=["200000000002"],
        Permission="SHARE",
    )
