"""Image actions: describe, create from an instance, import, copy (sync), share, modify, delete, quota.

Each action parses its request, calls :class:`~cvm_emulator.backend.images.ImageBackend` and renders
what it returns.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from .backend.emulator import Emulator
from .backend.images import BUSY_STATES, ImportSpec
from .catalogue import TENCENT_CREATOR
from .clock import progress_percent
from .context import Call, iso_time
from .errors import ApiError
from .filters import paging, parse_filters

FAMILY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$")
MAX_NAME = 60
MAX_DESCRIPTION = 256
MAX_TAGS = 50
IMPORT_ARCHITECTURES = ("x86_64", "i386", "arm_64")
LICENSE_TYPES = ("TencentCloud", "BYOL")
BOOT_MODES = ("Legacy BIOS", "UEFI")

# The filters DescribeImages documents today; anything else (image-family, the long-gone image-state)
# is refused with InvalidFilter, as the real service does. Families have DescribeImageFromFamily.
IMAGE_FILTERS = frozenset({"image-id", "image-type", "image-name", "platform", "tag-key", "tag-value", "tag:"})

# ---------------------------------------------------------------- validation helpers


def check_name(name: str, member: str = "ImageName") -> None:
    if not name.strip():
        raise ApiError("InvalidParameterValue", f"`{member}` must not be empty.")
    if len(name) > MAX_NAME:
        raise ApiError("InvalidParameterValue.TooLarge", f"`{member}` must be at most {MAX_NAME} characters.")


def check_description(description: str | None) -> None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise ApiError(
            "InvalidParameterValue.TooLarge", f"`ImageDescription` must be at most {MAX_DESCRIPTION} characters."
        )


def check_family(family: str | None) -> None:
    if family is not None and family != "" and not FAMILY_RE.match(family):
        raise ApiError(
            "InvalidParameterValue.InvalidImageFamily",
            f"`ImageFamily` {family!r} must be 1-60 letters, digits, '.', '_' or '-'.",
        )


def parse_bool_string(value: str | None, member: str) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ApiError("InvalidParameterValue", f'`{member}` must be "true" or "false", got {value!r}.')
    return lowered == "true"


def parse_tags(specs: Sequence[dict[str, Any]] | None, resource_type: str) -> list[tuple[str, str]]:
    """Tags from ``TagSpecification`` entries of the given resource type."""
    tags: dict[str, str] = {}
    for spec in specs or ():
        if spec["ResourceType"] != resource_type:
            raise ApiError(
                "InvalidParameterValue",
                f"`TagSpecification.ResourceType` must be `{resource_type}`, got {spec['ResourceType']!r}.",
            )
        for tag in spec["Tags"]:
            key, value = str(tag["Key"]), str(tag["Value"])
            if not key or len(key) > 127:
                raise ApiError("FailedOperation.IllegalTagKey", f"The tag key {key!r} is not valid.")
            if key.lower().startswith("qcloud:"):
                raise ApiError("FailedOperation.TagKeyReserved", f"The tag key {key!r} uses a reserved prefix.")
            if len(value) > 255:
                raise ApiError("FailedOperation.IllegalTagValue", f"The tag value for {key!r} is too long.")
            tags[key] = value
    if len(tags) > MAX_TAGS:
        raise ApiError("InvalidParameterValue.TagQuotaLimitExceeded", f"At most {MAX_TAGS} tags are allowed.")
    return list(tags.items())


# ---------------------------------------------------------------- rendering


def sync_percent(row: sqlite3.Row, now: float) -> int:
    state = row["state"]
    if state in BUSY_STATES:
        return progress_percent(row["started_at"], row["due_at"], now)
    return 100 if state == "NORMAL" else 0


def image_to_api(row: sqlite3.Row, tags: list[dict[str, str]], now: float) -> dict[str, Any]:
    state = row["state"]
    owner = row["owner"]
    return {
        "ImageId": row["image_id"],
        "OsName": row["os_name"],
        "ImageType": row["visible_type"],
        "CreatedTime": iso_time(row["created_at"]),
        "ImageName": row["image_name"],
        "ImageDescription": row["description"],
        "ImageSize": row["size_gb"],
        "Architecture": row["architecture"],
        "ImageState": state,
        "Platform": row["platform"],
        "ImageCreator": row["creator"] or owner or TENCENT_CREATOR,
        "ImageSource": row["image_source"],
        "SyncPercent": sync_percent(row, now),
        "IsSupportCloudinit": bool(row["cloudinit"]),
        "SnapshotSet": json.loads(row["snapshots"]),
        "Tags": tags,
        "LicenseType": row["license_type"],
        "ImageFamily": row["family"],
        "ImageDeprecated": bool(row["deprecated"]),
    }


def _import_os_name(os_type: str, os_version: str, architecture: str) -> str:
    bits = "32位" if architecture == "i386" else "64位"
    version = "" if os_version in ("-", "") else f" {os_version}"
    return f"{os_type}{version} {bits}"


def describe_import_image_os(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    linux = [o for o in emu.catalogue.import_os.values() if not o.windows]
    windows = [o for o in emu.catalogue.import_os.values() if o.windows]
    return {
        "ImportImageOsListSupported": {"Linux": [o.os_type for o in linux], "Windows": [o.os_type for o in windows]},
        "ImportImageOsVersionSet": [
            {
                "OsName": o.os_type,
                "OsVersions": list(o.versions),
                "Architecture": list(emu.catalogue.import_architectures),
            }
            for o in [*linux, *windows]
        ],
    }


# ---------------------------------------------------------------- actions


def describe_images(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    image_ids = params.get("ImageIds")
    raw_filters = params.get("Filters")
    if image_ids and raw_filters:
        raise ApiError(
            "InvalidParameter.InvalidParameterCoexistImageIdsFilters",
            "`ImageIds` and `Filters` cannot be specified at the same time.",
        )
    offset, limit = paging(params)
    filters = parse_filters(raw_filters, IMAGE_FILTERS)
    architectures: tuple[str, ...] | None = None
    instance_type = params.get("InstanceType")
    if instance_type is not None:
        itype = emu.catalogue.instance_types.get(instance_type)
        if itype is None:
            raise ApiError(
                "InvalidParameterValue.InstanceTypeNotFound", f"The instance type `{instance_type}` does not exist."
            )
        architectures = ("arm",) if itype.architecture == "arm" else ("x86_64", "i386")
    total, rows = emu.images.describe(call, image_ids, filters, architectures, offset, limit)
    # Rendering (tags, snapshots, times) costs more than the cached query, and rows and tags change only
    # with a write: a page is rendered once per store generation, and only a busy image's SyncPercent
    # follows the clock. The rendered dicts are shared between answers, so nothing may change them.
    key = ("ImageSet", tuple((r["image_id"], r["region"], r["visible_type"]) for r in rows))
    rendered = emu.store.cached(key, lambda: render_images(emu, rows, call.now))
    return {
        "ImageSet": [
            {**image, "SyncPercent": sync_percent(row, call.now)} if row["state"] in BUSY_STATES else image
            for image, row in zip(rendered, rows, strict=True)
        ],
        "TotalCount": total,
    }


def render_images(emu: Emulator, rows: Sequence[sqlite3.Row], now: float) -> list[dict[str, Any]]:
    tags = emu.images.tags_for([(r["image_id"], r["region"]) for r in rows])
    return [image_to_api(r, tags.get((r["image_id"], r["region"]), []), now) for r in rows]


def create_image(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ImageName"]
    check_name(name)
    description = params.get("ImageDescription") or ""
    check_description(description)
    family = params.get("ImageFamily") or ""
    check_family(family)
    force_poweroff = parse_bool_string(params.get("ForcePoweroff"), "ForcePoweroff")
    parse_bool_string(params.get("Sysprep"), "Sysprep")
    tags = parse_tags(params.get("TagSpecification"), "image")
    instance_id = params.get("InstanceId")
    snapshot_ids = params.get("SnapshotIds")
    if instance_id and snapshot_ids:
        raise ApiError("InvalidParameterConflict", "`InstanceId` and `SnapshotIds` cannot be given together.")
    if not instance_id and not snapshot_ids:
        raise ApiError("InvalidParameter.SpecifyOneParameter", "Give exactly one of `InstanceId` or `SnapshotIds`.")
    if snapshot_ids:
        raise ApiError(
            "InvalidParameter.SnapshotNotFound",
            f"The snapshot `{snapshot_ids[0]}` does not exist (the emulator keeps no snapshots).",
        )
    image_id = emu.images.create(
        call,
        str(instance_id),
        name,
        description,
        family,
        params.get("DataDiskIds") or [],
        force_poweroff,
        tags,
        bool(params.get("DryRun")),
    )
    return {} if image_id is None else {"ImageId": image_id}


def import_image(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    architecture = params["Architecture"]
    if architecture not in IMPORT_ARCHITECTURES:
        raise ApiError(
            "InvalidParameterValue",
            f"`Architecture` must be one of {', '.join(IMPORT_ARCHITECTURES)}, got {architecture!r}.",
        )
    os_type, os_version = params["OsType"], params["OsVersion"]
    import_os = emu.catalogue.import_os.get(os_type)
    if import_os is None:
        raise ApiError(
            "InvalidImageOsType.Unsupported", f"The OS type {os_type!r} is not supported; see DescribeImportImageOs."
        )
    if os_version not in import_os.versions:
        raise ApiError(
            "InvalidImageOsVersion.Unsupported",
            f"The version {os_version!r} of {os_type} is not supported; see DescribeImportImageOs.",
        )
    url = params["ImageUrl"]
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https", "file") or (parsed.scheme != "file" and not parsed.netloc):
        raise ApiError(
            "InvalidParameter.InvalidParameterUrlError", f"`ImageUrl` must be an http, https or file URL, got {url!r}."
        )
    force = bool(params.get("Force"))
    if parsed.path.lower().endswith(".iso") and not force:
        raise ApiError("InvalidParameterValue.ISOMustImportByForce", "ISO files must be imported with `Force`.")
    name = params["ImageName"]
    check_name(name)
    description = params.get("ImageDescription") or ""
    check_description(description)
    family = params.get("ImageFamily") or ""
    check_family(family)
    license_type = params.get("LicenseType") or "TencentCloud"
    if license_type not in LICENSE_TYPES:
        raise ApiError("InvalidParameterValue.InvalidLicenseType", f"`LicenseType` {license_type!r} is not valid.")
    boot_mode = params.get("BootMode") or "Legacy BIOS"
    if boot_mode not in BOOT_MODES:
        raise ApiError("InvalidParameterValue.InvalidBootMode", f"`BootMode` {boot_mode!r} is not valid.")
    tags = parse_tags(params.get("TagSpecification"), "image")
    for disk in params.get("ImportImageDataDiskList") or []:
        if urlparse(disk["ImageUrl"]).scheme not in ("http", "https", "file"):
            raise ApiError("InvalidParameter.InvalidParameterUrlError", "Data disk `ImageUrl` is not valid.")
    spec = ImportSpec(
        name=name,
        description=description,
        family=family,
        os_name=_import_os_name(os_type, os_version, architecture),
        platform="Windows" if import_os.windows else os_type,
        architecture="arm" if architecture == "arm_64" else architecture,
        license_type=license_type,
        boot_mode=boot_mode,
        url=url,
        force=force,
        tags=tags,
        dry_run=bool(params.get("DryRun")),
    )
    image_id = emu.images.import_(call, spec)
    return {} if image_id is None else {"ImageId": image_id}


def sync_images(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    image_ids: list[str] = params["ImageIds"]
    if len(image_ids) > 1:
        raise ApiError("InvalidParameterValue.LimitExceeded", "SyncImages copies one image per call.")
    name = params.get("ImageName")
    if name is not None:
        check_name(name)
    created = emu.images.sync(
        call,
        image_ids[0],
        list(dict.fromkeys(params["DestinationRegions"])),
        name,
        bool(params.get("Encrypt")),
        params.get("KmsKeyId"),
        bool(params.get("DryRun")),
    )
    return {"ImageSet": created if params.get("ImageSetRequired") else []}


def modify_image_share_permission(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    permission = str(params["Permission"]).upper()
    if permission not in ("SHARE", "CANCEL"):
        raise ApiError("InvalidParameterValue", f"`Permission` must be SHARE or CANCEL, got {params['Permission']!r}.")
    accounts = list(dict.fromkeys(str(a) for a in params["AccountIds"]))
    emu.images.share(call, params["ImageId"], accounts, permission)
    return {}


def describe_image_share_permission(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    rows = emu.images.shares(call, params["ImageId"])
    return {
        "SharePermissionSet": [{"CreatedTime": iso_time(r["created_at"]), "AccountId": r["account_id"]} for r in rows]
    }


def delete_images(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    emu.images.delete(call, list(dict.fromkeys(params["ImageIds"])), bool(params.get("DryRun")))
    return {}


def modify_image_attribute(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    if params.get("ImageName") is not None:
        check_name(params["ImageName"])
        updates["image_name"] = params["ImageName"]
    if params.get("ImageDescription") is not None:
        check_description(params["ImageDescription"])
        updates["description"] = params["ImageDescription"]
    if params.get("ImageFamily") is not None:
        check_family(params["ImageFamily"])
        updates["family"] = params["ImageFamily"]
    if params.get("ImageDeprecated") is not None:
        updates["deprecated"] = int(bool(params["ImageDeprecated"]))
    emu.images.modify(call, params["ImageId"], updates)
    return {}


def describe_image_quota(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {"ImageNumQuota": emu.config.image_quota}


def describe_image_from_family(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    family = params["ImageFamily"]
    check_family(family)
    row = emu.images.latest_in_family(call, family)
    if row is None:
        return {"Image": None}
    return {"Image": render_images(emu, [row], call.now)[0]}


ACTIONS = {
    "DescribeImages": describe_images,
    "CreateImage": create_image,
    "ImportImage": import_image,
    "DescribeImportImageOs": describe_import_image_os,
    "SyncImages": sync_images,
    "ModifyImageSharePermission": modify_image_share_permission,
    "DescribeImageSharePermission": describe_image_share_permission,
    "DeleteImages": delete_images,
    "ModifyImageAttribute": modify_image_attribute,
    "DescribeImageQuota": describe_image_quota,
    "DescribeImageFromFamily": describe_image_from_family,
}
