"""Unit tests of the emulator's pure logic: format detection, filters, names, clock, signatures, params."""

from __future__ import annotations

import hashlib
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.sign import Sign

from cvm_emulator.auth import SignedRequest, authenticate
from cvm_emulator.catalogue import BUILTIN_ACCOUNTS, load_catalogue, load_config
from cvm_emulator.clock import FAST_DURATIONS, REALISTIC_DURATIONS, Clock, progress_percent
from cvm_emulator.errors import ApiError, invalid_state_code
from cvm_emulator.filters import paging, parse_filters
from cvm_emulator.importer import DiskProbe, detect_format, size_in_gib
from cvm_emulator.instances import check_password, instance_names
from cvm_emulator.params import validate_request
from cvm_emulator.store import Store
from tests.support.emulator import write_iso, write_qcow2, write_raw_disk


def probe_of(data: bytes) -> DiskProbe:
    return DiskProbe(data[: 64 * 1024], data[-512:], len(data))


# ---------------------------------------------------------------- disk formats


def test_qcow2_header_is_recognised_with_its_virtual_size(tmp_path: Path) -> None:
    data = write_qcow2(tmp_path / "d.qcow2", virtual_size=3 * 2**30).read_bytes()
    detection = detect_format(probe_of(data), force=False)
    assert (detection.disk_format, detection.virtual_size) == ("qcow2", 3 * 2**30)
    assert size_in_gib(detection.virtual_size) == 3


def test_corrupted_qcow2_header_is_rejected(tmp_path: Path) -> None:
    data = bytearray(write_qcow2(tmp_path / "d.qcow2").read_bytes())
    data[4:8] = struct.pack(">I", 99)  # unknown version
    assert detect_format(probe_of(bytes(data)), force=False).disk_format is None


def test_vhd_footer_vmdk_and_raw_are_recognised() -> None:
    footer = bytearray(512)
    footer[:8] = b"conectix"
    footer[48:56] = struct.pack(">Q", 5 * 2**30)
    vhd = bytes(4096) + bytes(footer)
    assert detect_format(probe_of(vhd), False).disk_format == "vhd"
    assert detect_format(probe_of(vhd), False).virtual_size == 5 * 2**30

    sparse = bytearray(4096)
    sparse[:4] = b"KDMV"
    sparse[12:20] = struct.pack("<Q", 2 * 2**30 // 512)
    assert detect_format(probe_of(bytes(sparse)), False).virtual_size == 2 * 2**30

    descriptor = b'# Disk DescriptorFile\nversion=1\nRW 4194304 VMFS "disk-flat.vmdk"\n'
    detection = detect_format(probe_of(descriptor), False)
    assert (detection.disk_format, detection.virtual_size) == ("vmdk", 4194304 * 512)

    gpt = bytearray(4096)
    gpt[512:520] = b"EFI PART"
    assert detect_format(probe_of(bytes(gpt)), False).disk_format == "raw"


def test_raw_needs_a_partition_table_unless_forced(tmp_path: Path) -> None:
    mbr = write_raw_disk(tmp_path / "disk.raw", 4096).read_bytes()
    assert detect_format(probe_of(mbr), False).disk_format == "raw"
    junk = b"this is not a disk image" * 100
    assert detect_format(probe_of(junk), False).disk_format is None
    assert detect_format(probe_of(junk), True).disk_format == "raw"
    assert detect_format(probe_of(b"tiny"), True).disk_format is None


def test_iso_only_with_force(tmp_path: Path) -> None:
    iso = write_iso(tmp_path / "cd.iso").read_bytes()
    refused = detect_format(probe_of(iso), force=False)
    assert refused.disk_format is None and "Force" in refused.reason
    assert detect_format(probe_of(iso), force=True).disk_format == "iso"


# ---------------------------------------------------------------- filters and paging


def test_filter_limits_and_names() -> None:
    allowed = frozenset({"image-id", "tag:"})
    assert parse_filters([{"Name": "tag:team", "Values": ["web"]}], allowed)[0].name == "tag:team"
    with pytest.raises(ApiError) as too_many:
        parse_filters([{"Name": "image-id", "Values": ["a"]}] * 11, allowed)
    assert too_many.value.code == "InvalidFilterValue.LimitExceeded"
    with pytest.raises(ApiError) as too_many_values:
        parse_filters([{"Name": "image-id", "Values": list("abcdef")}], allowed)
    assert too_many_values.value.code == "InvalidFilterValue.LimitExceeded"
    with pytest.raises(ApiError) as unknown:
        parse_filters([{"Name": "colour", "Values": ["red"]}], allowed)
    assert unknown.value.code == "InvalidFilter"


def test_paging_defaults_and_bounds() -> None:
    assert paging({}) == (0, 20)
    assert paging({"Offset": 5, "Limit": 100}) == (5, 100)
    for bad in ({"Limit": 101}, {"Limit": 0}, {"Offset": -1}):
        with pytest.raises(ApiError):
            paging(bad)


# ---------------------------------------------------------------- instances


def test_instance_names_follow_the_documented_patterns() -> None:
    assert instance_names("web", 1) == ["web"]
    assert instance_names("web-", 3) == ["web-1", "web-2", "web-3"]
    assert instance_names("node{R:8}", 2) == ["node8", "node9"]
    assert instance_names("node{R:1,F:3}x", 2) == ["node001x", "node002x"]


def test_password_policy() -> None:
    check_password("abcd1234", windows=False)
    with pytest.raises(ApiError):
        check_password("abcdefgh", windows=False)
    with pytest.raises(ApiError):
        check_password("abcd1234", windows=True)
    check_password("Abcd1234!xyz", windows=True)


def test_state_error_codes() -> None:
    assert invalid_state_code("RUNNING") == "UnsupportedOperation.InstanceStateRunning"
    assert invalid_state_code("LAUNCH_FAILED") == "UnsupportedOperation.InstanceStateLaunchFailed"


# ---------------------------------------------------------------- clock


def test_clock_presets_and_factor() -> None:
    assert Clock.parse("fast").durations == FAST_DURATIONS
    assert Clock.parse("realistic").durations == REALISTIC_DURATIONS
    assert Clock.parse("0.5").duration("image.sync") == REALISTIC_DURATIONS["image.sync"] * 0.5
    for bad in ("slow", "0", "-1"):
        with pytest.raises(ValueError):
            Clock.parse(bad)


def test_progress_percent() -> None:
    assert progress_percent(100.0, 200.0, 100.0) == 0
    assert progress_percent(100.0, 200.0, 150.0) == 50
    assert progress_percent(100.0, 200.0, 500.0) == 99
    assert progress_percent(None, None, 1.0) == 0


# ---------------------------------------------------------------- signatures and parameters


def sign(secret_key: str, headers: dict[str, str], body: bytes, timestamp: int, date: str) -> str:
    canonical = (
        f"POST\n/\n\ncontent-type:{headers['content-type']}\nhost:{headers['host']}\n\n"
        f"content-type;host\n{hashlib.sha256(body).hexdigest()}"
    )
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{date}/cvm/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return str(Sign.sign_tc3(secret_key, date, "cvm", to_sign))


def signed_request(secret_id: str, secret_key: str, timestamp: int) -> SignedRequest:
    body = b'{"Limit": 1}'
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    headers = {"content-type": "application/json", "host": "127.0.0.1:9000", "x-tc-timestamp": str(timestamp)}
    signature = sign(secret_key, headers, body, timestamp, date)
    headers["authorization"] = (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{date}/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )
    return SignedRequest("POST", "/", "", headers, body)


def test_authenticate_accepts_good_and_rejects_bad_signatures() -> None:
    account = BUILTIN_ACCOUNTS[0]
    by_secret = {a.secret_id: a for a in BUILTIN_ACCOUNTS}
    now = int(time.time())
    assert authenticate(signed_request(account.secret_id, account.secret_key, now), by_secret, now) == account
    cases = {
        "AuthFailure.SignatureFailure": signed_request(account.secret_id, "wrong", now),
        "AuthFailure.SecretIdNotFound": signed_request("AKIDnobody", account.secret_key, now),
        "AuthFailure.SignatureExpire": signed_request(account.secret_id, account.secret_key, now - 301),
    }
    for code, req in cases.items():
        with pytest.raises(ApiError) as info:
            authenticate(req, by_secret, now)
        assert info.value.code == code


def test_validate_request_follows_the_sdk_models() -> None:
    validate_request("DescribeImages", {"Filters": [{"Name": "image-type", "Values": ["PUBLIC_IMAGE"]}], "Limit": 5})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Bogus": 1}, "UnknownParameter"),
        ({"Limit": "5"}, "InvalidParameter"),
        ({"Filters": [{"Name": "x"}]}, "MissingParameter"),
        ({"Filters": [{"Name": "x", "Values": ["a"], "Extra": 1}]}, "UnknownParameter"),
        ({"ImageIds": "img-12345678"}, "InvalidParameter"),
    ]
    for params, code in cases:
        with pytest.raises(ApiError) as info:
            validate_request("DescribeImages", params)
        assert info.value.code == code, params
    with pytest.raises(ApiError) as missing:
        validate_request("SyncImages", {"ImageIds": ["img-12345678"]})
    assert missing.value.code == "MissingParameter"


# ---------------------------------------------------------------- catalogue and config


def test_catalogue_has_required_regions_and_images() -> None:
    catalogue = load_catalogue()
    for region in (
        "ap-guangzhou",
        "ap-shanghai",
        "ap-beijing",
        "ap-singapore",
        "ap-tokyo",
        "na-siliconvalley",
        "eu-frankfurt",
    ):
        assert catalogue.regions[region].zones
    platforms = {i.platform for i in catalogue.images}
    assert {"TencentOS", "Ubuntu", "CentOS", "Debian", "OpenCloudOS", "Windows"} <= platforms
    assert {i.image_type for i in catalogue.images} == {"PUBLIC_IMAGE"}
    vendors = {i.image_id: i.creator for i in catalogue.images if i.creator != "tencent"}
    assert "img-mkt0wp01" in vendors and all(creator.isdigit() for creator in vendors.values())
    for itype in ("S5.SMALL1", "S5.SMALL2", "S5.MEDIUM2", "S5.MEDIUM4", "S5.LARGE8", "SA5.MEDIUM4"):
        assert itype in catalogue.instance_types


def test_config_replaces_accounts_and_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("accounts:\n  - {accountId: '42', secretId: AKIDx, secretKey: k}\nclock: realistic\n")
    config = load_config(path)
    assert [a.account_id for a in config.accounts] == ["42"]
    assert config.clock == "realistic"
    path.write_text("acounts: []\n")
    with pytest.raises(ValueError):
        load_config(path)


def test_a_database_from_before_operation_outcomes_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Store(path)
    old.conn.execute("ALTER TABLE instances DROP COLUMN next_operation_state")
    old.close()
    reopened = Store(path)
    columns = {row["name"] for row in reopened.conn.execute("PRAGMA table_info(instances)")}
    reopened.close()
    assert "next_operation_state" in columns
