"""Image actions: describe, create from an instance, import, copy (sync), share, modify, delete, quota."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from .backend.images import TYPE_SQL, TYPE_SQL_NUMBERED, VISIBLE_SQL, VISIBLE_SQL_NUMBERED, check_image_id
from .catalogue import MARKET_IMAGE, PRIVATE_IMAGE, PUBLIC_IMAGE, SHARED_IMAGE
from .clock import progress_percent
from .context import Call, Emulator, iso_time
from .errors import ApiError, invalid_state_code
from .filters import MAX_IDS, build_where, exact, fuzzy, paging, parse_filters
from .ids import INSTANCE_ID_RE
from .store import random_suffix

FAMILY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$")
MAX_NAME = 60
MAX_DESCRIPTION = 256
MAX_TAGS = 50
BUSY_STATES = ("CREATING", "SYNCING", "IMPORTING")
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


# ---------------------------------------------------------------- queries


def visible_image(emu: Emulator, call: Call, image_id: str, region: str | None = None) -> sqlite3.Row | None:
    return emu.images.visible(call, image_id, region)


def _name_taken(conn: sqlite3.Connection, owner: str, region: str, name: str, except_id: str = "") -> bool:
    row = conn.execute(
        "SELECT 1 FROM images WHERE owner = ? AND region = ? AND image_type = 'PRIVATE_IMAGE' "
        "AND image_name = ? AND image_id != ? LIMIT 1",
        (owner, region, name, except_id),
    ).fetchone()
    return row is not None


def _check_new_image(emu: Emulator, owner: str, region: str, name: str) -> None:
    conn = emu.store.conn
    if _name_taken(conn, owner, region, name):
        raise ApiError("InvalidImageName.Duplicate", f"An image named {name!r} already exists in {region}.")
    count = conn.execute(
        "SELECT COUNT(*) FROM images WHERE owner = ? AND region = ? AND image_type = 'PRIVATE_IMAGE'", (owner, region)
    ).fetchone()[0]
    if count >= emu.config.image_quota:
        raise ApiError(
            "ImageQuotaLimitExceeded", f"The custom image quota of {emu.config.image_quota} in {region} is used up."
        )


def _tags_for(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, str]]]:
    result: dict[tuple[str, str], list[dict[str, str]]] = {}
    if not keys:
        return result
    ids = sorted({k[0] for k in keys})
    rows = conn.execute(
        f"SELECT image_id, region, key, value FROM image_tags WHERE image_id IN ({', '.join('?' * len(ids))}) "
        "ORDER BY key",
        ids,
    ).fetchall()
    for row in rows:
        result.setdefault((row["image_id"], row["region"]), []).append({"Key": row["key"], "Value": row["value"]})
    return result


def image_to_api(row: sqlite3.Row, tags: list[dict[str, str]], now: float) -> dict[str, Any]:
    state = row["state"]
    if state in BUSY_STATES:
        percent = progress_percent(row["started_at"], row["due_at"], now)
    elif state == "NORMAL":
        percent = 100
    else:
        percent = 0
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
        "ImageCreator": owner or "tencent",
        "ImageSource": row["image_source"],
        "SyncPercent": percent,
        "IsSupportCloudinit": bool(row["cloudinit"]),
        "SnapshotSet": json.loads(row["snapshots"]),
        "Tags": tags,
        "LicenseType": row["license_type"],
        "ImageFamily": row["family"],
        "ImageDeprecated": bool(row["deprecated"]),
    }


def _snapshot(usage: str, size: int) -> dict[str, Any]:
    return {"SnapshotId": f"snap-{random_suffix()}", "DiskUsage": usage, "DiskSize": size}


def _insert_image(
    emu: Emulator,
    call: Call,
    *,
    region: str,
    name: str,
    description: str,
    os_name: str,
    platform: str,
    architecture: str,
    size_gb: int,
    source: str,
    state: str,
    next_state: str | None,
    duration: float,
    family: str = "",
    license_type: str = "TencentCloud",
    boot_mode: str = "Legacy BIOS",
    cloudinit: bool = True,
    encrypted: bool = False,
    snapshots: list[dict[str, Any]] | None = None,
    import_url: str | None = None,
    import_force: bool = False,
    source_image_id: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
) -> str:
    conn = emu.store.conn
    image_id = emu.store.new_id("img", "images", "image_id")
    due_at = call.now + duration
    conn.execute(
        "INSERT INTO images (image_id, region, image_type, owner, image_name, description, os_name, platform, "
        "architecture, size_gb, image_source, state, next_state, started_at, due_at, family, license_type, "
        "boot_mode, cloudinit, encrypted, snapshots, created_at, import_url, import_force, source_image_id) "
        "VALUES (?, ?, 'PRIVATE_IMAGE', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            image_id,
            region,
            call.account.account_id,
            name,
            description,
            os_name,
            platform,
            architecture,
            size_gb,
            source,
            state,
            next_state,
            call.now,
            due_at,
            family,
            license_type,
            boot_mode,
            int(cloudinit),
            int(encrypted),
            json.dumps(snapshots or [_snapshot("SYSTEM_DISK", size_gb)]),
            call.now,
            import_url,
            int(import_force),
            source_image_id,
        ),
    )
    conn.executemany(
        "INSERT INTO image_tags (image_id, region, key, value) VALUES (?, ?, ?, ?)",
        [(image_id, region, k, v) for k, v in tags],
    )
    if next_state is not None:
        emu.store.note_due(due_at)
    return image_id


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
    caller = call.account.account_id
    clauses: list[str] = []
    args: list[Any] = []
    if image_ids:
        if len(image_ids) > MAX_IDS:
            raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_IDS} `ImageIds` are allowed.")
        for image_id in image_ids:
            check_image_id(image_id)
        clauses.append(f"i.image_id IN ({', '.join('?' * len(image_ids))})")
        args.extend(image_ids)
    filters = parse_filters(raw_filters, IMAGE_FILTERS)
    for flt in filters:
        if flt.name == "image-id":
            for image_id in flt.values:
                check_image_id(image_id)
    rules = {
        "image-id": exact("i.image_id"),
        "image-type": exact(f"({TYPE_SQL_NUMBERED})"),
        "image-name": fuzzy("i.image_name"),
        "platform": fuzzy("i.platform"),
    }
    filter_clauses, filter_args = build_where(
        filters, rules, "image_tags", "t.image_id = i.image_id AND t.region = i.region"
    )
    instance_type = params.get("InstanceType")
    if instance_type is not None:
        itype = emu.catalogue.instance_types.get(instance_type)
        if itype is None:
            raise ApiError(
                "InvalidParameterValue.InstanceTypeNotFound", f"The instance type `{instance_type}` does not exist."
            )
        archs = ("arm",) if itype.architecture == "arm" else ("x86_64", "i386")
        filter_clauses.append(f"i.architecture IN ({', '.join('?' * len(archs))})")
        filter_args.extend(archs)
    # ?1 is the caller in every caller-relative expression; the rest bind in order.
    where = " AND ".join([VISIBLE_SQL_NUMBERED, *clauses, *filter_clauses])
    all_args = [caller, call.region, *args, *filter_args]
    conn = emu.store.conn
    # Listing a region: count through the visibility index, page through the ordered one (the planner
    # picks worse plans for both); id lookups go through the primary key.
    count_index, page_index = ("", "") if image_ids else ("INDEXED BY images_visible", "INDEXED BY images_listing")

    def query() -> tuple[int, list[tuple[dict[str, Any], sqlite3.Row]]]:
        total = conn.execute(f"SELECT COUNT(*) FROM images i {count_index} WHERE {where}", all_args).fetchone()[0]
        rows = conn.execute(
            f"SELECT i.*, {TYPE_SQL_NUMBERED} AS visible_type FROM images i {page_index} WHERE {where} "
            "ORDER BY i.region, i.created_at DESC, i.image_id LIMIT ? OFFSET ?",
            [*all_args, limit, offset],
        ).fetchall()
        tags = _tags_for(conn, [(r["image_id"], r["region"]) for r in rows])
        return int(total), [(image_to_api(r, tags.get((r["image_id"], r["region"]), []), call.now), r) for r in rows]

    total, items = emu.store.cached(("DescribeImages", where, tuple(all_args), limit, offset), query)
    image_set = []
    for item, row in items:
        if row["state"] in BUSY_STATES:  # progress moves with time, everything else only with writes
            item = item | {"SyncPercent": progress_percent(row["started_at"], row["due_at"], call.now)}
        image_set.append(item)
    return {"ImageSet": image_set, "TotalCount": total}


def _instance_for_image(emu: Emulator, call: Call, instance_id: str) -> sqlite3.Row:
    if not INSTANCE_ID_RE.match(instance_id):
        raise ApiError("InvalidInstanceId.Malformed", f"The instance id `{instance_id}` is malformed.")
    row: sqlite3.Row | None = emu.store.conn.execute(
        "SELECT * FROM instances WHERE instance_id = ? AND owner = ? AND region = ? AND state != 'TERMINATED'",
        (instance_id, call.account.account_id, call.region),
    ).fetchone()
    if row is None:
        raise ApiError("InvalidInstanceId.NotFound", f"The instance `{instance_id}` does not exist.")
    return row


def create_image(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ImageName"]
    check_name(name)
    description = params.get("ImageDescription") or ""
    check_description(description)
    family = params.get("ImageFamily") or ""
    check_family(family)
    parse_bool_string(params.get("ForcePoweroff"), "ForcePoweroff")
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
    instance = _instance_for_image(emu, call, str(instance_id))
    if instance["state"] not in ("RUNNING", "STOPPED"):
        raise ApiError(
            invalid_state_code(instance["state"]),
            f"The instance `{instance_id}` is {instance['state']}; it must be RUNNING or STOPPED.",
        )
    if instance["latest_operation_state"] == "OPERATING":
        raise ApiError(
            "OperationDenied.InstanceOperationInProgress", f"The instance `{instance_id}` has an operation in progress."
        )
    details = json.loads(instance["details"])
    system_disk = details["SystemDisk"]
    data_disks = {d["DiskId"]: d for d in details.get("DataDisks", [])}
    snapshots = [_snapshot("SYSTEM_DISK", int(system_disk["DiskSize"]))]
    for disk_id in params.get("DataDiskIds") or []:
        if disk_id == system_disk["DiskId"]:
            raise ApiError(
                "InvalidParameter.DataDiskIdContainsRootDisk", f"`DataDiskIds` contains the system disk `{disk_id}`."
            )
        if disk_id not in data_disks:
            raise ApiError(
                "InvalidParameter.DataDiskNotBelongSpecifiedInstance",
                f"The disk `{disk_id}` is not a data disk of `{instance_id}`.",
            )
        snapshots.append(_snapshot("DATA_DISK", int(data_disks[disk_id]["DiskSize"])))
    _check_new_image(emu, call.account.account_id, call.region, name)
    if params.get("DryRun"):
        return {}
    image_id = _insert_image(
        emu,
        call,
        region=call.region,
        name=name,
        description=description,
        os_name=instance["os_name"],
        platform=instance["platform"],
        architecture=details.get("Architecture", "x86_64"),
        size_gb=int(system_disk["DiskSize"]),
        source="CREATE_IMAGE",
        state="CREATING",
        next_state="NORMAL",
        duration=emu.clock.duration("image.create"),
        family=family,
        cloudinit=bool(details.get("Cloudinit", True)),
        snapshots=snapshots,
        tags=tags,
    )
    emu.store.conn.execute(
        "UPDATE instances SET latest_operation = 'CreateImage', latest_operation_state = 'SUCCESS', "
        "latest_request_id = ? WHERE instance_id = ?",
        (call.request_id, instance_id),
    )
    return {"ImageId": image_id}


def _import_os_name(os_type: str, os_version: str, architecture: str) -> str:
    bits = "32位" if architecture == "i386" else "64位"
    version = "" if os_version in ("-", "") else f" {os_version}"
    return f"{os_type}{version} {bits}"


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
    _check_new_image(emu, call.account.account_id, call.region, name)
    if params.get("DryRun"):
        return {}
    image_id = _insert_image(
        emu,
        call,
        region=call.region,
        name=name,
        description=description,
        os_name=_import_os_name(os_type, os_version, architecture),
        platform="Windows" if import_os.windows else os_type,
        architecture="arm" if architecture == "arm_64" else architecture,
        size_gb=0,
        source="EXTERNAL_IMPORT",
        state="IMPORTING",
        next_state=None,
        duration=emu.clock.duration("image.import"),
        family=family,
        license_type=license_type,
        boot_mode=boot_mode,
        cloudinit=False,
        import_url=url,
        import_force=force,
        snapshots=[],
        tags=tags,
    )
    region = call.region
    call.after_commit.append(lambda: emu.start_import(image_id, region))
    return {"ImageId": image_id}


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


def _owned_or_error(row: sqlite3.Row | None, call: Call, image_id: str) -> sqlite3.Row:
    if row is None:
        raise ApiError("InvalidImageId.NotFound", f"The image `{image_id}` does not exist in {call.region}.")
    return row


def sync_images(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    image_ids: list[str] = params["ImageIds"]
    if len(image_ids) > 1:
        raise ApiError("InvalidParameterValue.LimitExceeded", "SyncImages copies one image per call.")
    image_id = image_ids[0]
    check_image_id(image_id)
    source = _owned_or_error(visible_image(emu, call, image_id), call, image_id)
    if source["visible_type"] in (PUBLIC_IMAGE, MARKET_IMAGE):
        raise ApiError(
            "InvalidParameterValue.InvalidImageId",
            f"The image `{image_id}` is a {source['visible_type']}; only custom and shared images can be copied.",
        )
    if source["state"] != "NORMAL":
        raise ApiError("InvalidImageId.IncorrectState", f"The image `{image_id}` is {source['state']}, not NORMAL.")
    if any(s["DiskUsage"] == "DATA_DISK" for s in json.loads(source["snapshots"])):
        raise ApiError("InvalidParameter.InstanceImageNotSupport", "Whole-machine images cannot be copied.")
    destinations: list[str] = list(dict.fromkeys(params["DestinationRegions"]))
    for region in destinations:
        if region not in emu.catalogue.regions:
            raise ApiError("InvalidRegion.NotFound", f"The region `{region}` does not exist.")
    encrypt = bool(params.get("Encrypt"))
    if params.get("KmsKeyId") and not encrypt:
        raise ApiError("InvalidParameter.InvalidKmsKeyId", "`KmsKeyId` is used only with `Encrypt`.")
    shared = source["visible_type"] == SHARED_IMAGE
    if shared or encrypt:
        wrong = [r for r in destinations if r != call.region]
        if wrong:
            what = "A shared image" if shared else "An encrypted copy"
            raise ApiError(
                "InvalidParameterValue.InvalidRegion",
                f"{what} can only be copied into its own region {call.region}, not {wrong[0]}.",
            )
    else:
        if call.region in destinations:
            raise ApiError(
                "InvalidParameterValue.InvalidRegion",
                f"A custom image cannot be copied into its own region {call.region} unless encrypted.",
            )
        if source["encrypted"]:
            raise ApiError(
                "UnsupportedOperation.SyncEncryptImageNotSupport", "Encrypted images cannot be copied to other regions."
            )
    name = params.get("ImageName") or source["image_name"]
    check_name(name)
    for region in destinations:
        _check_new_image(emu, call.account.account_id, region, name)
    if params.get("DryRun"):
        return {"ImageSet": []}
    created = []
    for region in destinations:
        new_id = _insert_image(
            emu,
            call,
            region=region,
            name=name,
            description=source["description"],
            os_name=source["os_name"],
            platform=source["platform"],
            architecture=source["architecture"],
            size_gb=source["size_gb"],
            source=source["image_source"],
            state="SYNCING",
            next_state="NORMAL",
            duration=emu.clock.duration("image.sync"),
            family=source["family"],
            license_type=source["license_type"],
            boot_mode=source["boot_mode"],
            cloudinit=bool(source["cloudinit"]),
            encrypted=encrypt or bool(source["encrypted"]),
            snapshots=[_snapshot(s["DiskUsage"], s["DiskSize"]) for s in json.loads(source["snapshots"])],
            source_image_id=image_id,
        )
        created.append({"ImageId": new_id, "Region": region})
    return {"ImageSet": created if params.get("ImageSetRequired") else []}


def _own_custom_image(emu: Emulator, call: Call, image_id: str, shared_code: str) -> sqlite3.Row:
    """The caller's own custom image, or the error for public, marketplace or received shared images."""
    check_image_id(image_id)
    row = _owned_or_error(visible_image(emu, call, image_id), call, image_id)
    if row["visible_type"] == SHARED_IMAGE:
        raise ApiError(shared_code, f"The image `{image_id}` was shared with you by another account.")
    if row["visible_type"] != PRIVATE_IMAGE:
        raise ApiError(
            "InvalidParameterValue.InvalidImageId",
            f"The image `{image_id}` is a {row['visible_type']} and does not allow this operation.",
        )
    return row


def modify_image_share_permission(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    image_id = params["ImageId"]
    permission = str(params["Permission"]).upper()
    if permission not in ("SHARE", "CANCEL"):
        raise ApiError("InvalidParameterValue", f"`Permission` must be SHARE or CANCEL, got {params['Permission']!r}.")
    row = _own_custom_image(emu, call, image_id, "UnauthorizedOperation.ImageNotBelongToAccount")
    accounts: list[str] = list(dict.fromkeys(str(a) for a in params["AccountIds"]))
    conn = emu.store.conn
    existing = {
        r[0]
        for r in conn.execute(
            "SELECT account_id FROM image_shares WHERE image_id = ? AND region = ?", (image_id, call.region)
        )
    }
    if permission == "CANCEL":
        conn.executemany(
            "DELETE FROM image_shares WHERE image_id = ? AND region = ? AND account_id = ?",
            [(image_id, call.region, a) for a in accounts],
        )
        return {}
    if row["state"] != "NORMAL":
        raise ApiError(
            "InvalidParameterValue.InvalidImageState",
            f"The image `{image_id}` is {row['state']}; only NORMAL images can be shared.",
        )
    if row["encrypted"]:
        raise ApiError("UnsupportedOperation.EncryptedImagesNotSupported", "Encrypted images cannot be shared.")
    if row["license_type"] == "BYOL":
        raise ApiError("FailedOperation.BYOLImageShareFailed", "BYOL images cannot be shared.")
    if any(s["DiskUsage"] == "DATA_DISK" for s in json.loads(row["snapshots"])):
        raise ApiError("InvalidParameter.InstanceImageNotSupport", "Whole-machine images cannot be shared.")
    for account_id in accounts:
        if account_id == call.account.account_id:
            raise ApiError("FailedOperation.AccountIsYourSelf", "An image cannot be shared with its own account.")
        if account_id not in emu.accounts_by_id:
            raise ApiError("InvalidAccountId.NotFound", f"The account `{account_id}` does not exist.")
        if account_id in existing:
            raise ApiError(
                "FailedOperation.AccountAlreadyExists", f"The image `{image_id}` is already shared with `{account_id}`."
            )
    if len(existing) + len(accounts) > emu.config.share_limit:
        raise ApiError("OverQuota", f"An image can be shared with at most {emu.config.share_limit} accounts.")
    conn.executemany(
        "INSERT INTO image_shares (image_id, region, account_id, created_at) VALUES (?, ?, ?, ?)",
        [(image_id, call.region, a, call.now) for a in accounts],
    )
    return {}


def describe_image_share_permission(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    image_id = params["ImageId"]
    check_image_id(image_id)
    row = _owned_or_error(visible_image(emu, call, image_id), call, image_id)
    if row["visible_type"] != PRIVATE_IMAGE:
        raise ApiError(
            "UnauthorizedOperation.ImageNotBelongToAccount", f"The image `{image_id}` does not belong to your account."
        )
    rows = emu.store.conn.execute(
        "SELECT account_id, created_at FROM image_shares WHERE image_id = ? AND region = ? "
        "ORDER BY created_at, account_id",
        (image_id, call.region),
    ).fetchall()
    return {
        "SharePermissionSet": [{"CreatedTime": iso_time(r["created_at"]), "AccountId": r["account_id"]} for r in rows]
    }


def delete_images(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    image_ids: list[str] = list(dict.fromkeys(params["ImageIds"]))
    if len(image_ids) > MAX_IDS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_IDS} `ImageIds` are allowed.")
    conn = emu.store.conn
    for image_id in image_ids:
        row = _own_custom_image(emu, call, image_id, "InvalidParameterValue.InvalidImageIdIsShared")
        if row["state"] in BUSY_STATES:
            raise ApiError(
                "InvalidImageId.IncorrectState", f"The image `{image_id}` is {row['state']} and cannot be deleted yet."
            )
        shared = conn.execute(
            "SELECT 1 FROM image_shares WHERE image_id = ? AND region = ? LIMIT 1", (image_id, call.region)
        ).fetchone()
        if shared is not None:
            raise ApiError(
                "InvalidImageId.InShared",
                f"The image `{image_id}` is shared; cancel all its shares before deleting it.",
            )
    if params.get("DryRun"):
        return {}
    for image_id in image_ids:
        conn.execute("DELETE FROM images WHERE image_id = ? AND region = ?", (image_id, call.region))
        conn.execute("DELETE FROM image_tags WHERE image_id = ? AND region = ?", (image_id, call.region))
    return {}


def modify_image_attribute(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    image_id = params["ImageId"]
    row = _own_custom_image(emu, call, image_id, "UnsupportedOperation.SharedImageModifyUnsupported")
    if row["state"] in BUSY_STATES:
        raise ApiError("InvalidImageId.IncorrectState", f"The image `{image_id}` is {row['state']}.")
    updates: dict[str, Any] = {}
    name = params.get("ImageName")
    if name is not None:
        check_name(name)
        if _name_taken(emu.store.conn, call.account.account_id, call.region, name, except_id=image_id):
            raise ApiError("InvalidImageName.Duplicate", f"An image named {name!r} already exists.")
        updates["image_name"] = name
    if params.get("ImageDescription") is not None:
        check_description(params["ImageDescription"])
        updates["description"] = params["ImageDescription"]
    if params.get("ImageFamily") is not None:
        check_family(params["ImageFamily"])
        updates["family"] = params["ImageFamily"]
    if params.get("ImageDeprecated") is not None:
        updates["deprecated"] = int(bool(params["ImageDeprecated"]))
    if updates:
        assignments = ", ".join(f"{column} = ?" for column in updates)
        emu.store.conn.execute(
            f"UPDATE images SET {assignments} WHERE image_id = ? AND region = ?",
            [*updates.values(), image_id, call.region],
        )
    return {}


def describe_image_quota(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {"ImageNumQuota": emu.config.image_quota}


def describe_image_from_family(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    family = params["ImageFamily"]
    check_family(family)
    caller = call.account.account_id
    row = emu.store.conn.execute(
        f"SELECT i.*, {TYPE_SQL} AS visible_type FROM images i WHERE {VISIBLE_SQL} AND i.family = ? "
        "AND i.state = 'NORMAL' AND i.deprecated = 0 ORDER BY i.created_at DESC, i.image_id LIMIT 1",
        (caller, call.region, caller, caller, family),
    ).fetchone()
    if row is None:
        return {"Image": None}
    tags = _tags_for(emu.store.conn, [(row["image_id"], row["region"])])
    return {"Image": image_to_api(row, tags.get((row["image_id"], row["region"]), []), call.now)}


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
