"""Instance actions: launch, describe, start, stop, reboot, terminate, reinstall (ResetInstance)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

from .context import Call, Emulator, iso_time
from .errors import ApiError, invalid_state_code
from .filters import MAX_IDS, build_where, exact, fuzzy, paging, parse_filters
from .ids import INSTANCE_ID_RE, KEY_ID_RE
from .images import parse_tags, usable_image
from .store import random_suffix

LINUX_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,58}[A-Za-z0-9])?$")
WINDOWS_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9-]{2,15}$")
NAME_PATTERN_RE = re.compile(r"\{R:(\d+)(?:,F:(\d+))?\}")
CHARGE_TYPES = ("POSTPAID_BY_HOUR", "PREPAID", "SPOTPAID")
DISK_TYPES = (
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "CLOUD_BASIC",
    "CLOUD_SSD",
    "CLOUD_PREMIUM",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
)
RESETTABLE_DISK_TYPES = ("CLOUD_BASIC", "CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_BSSD")
MAX_INSTANCE_COUNT = 500
MAX_INSTANCE_NAME = 128
MAX_CLIENT_TOKEN = 64
MAX_DATA_DISKS = 21
MAX_USER_DATA = 16 * 1024
DEFAULT_INSTANCE_TYPE = "S1.SMALL1"
DEFAULT_INSTANCE_NAME = "未命名"

INSTANCE_FILTERS = frozenset(
    {
        "instance-id",
        "instance-name",
        "zone",
        "instance-state",
        "instance-charge-type",
        "project-id",
        "private-ip-address",
        "public-ip-address",
        "image-id",
        "tag-key",
        "tag-value",
        "tag:",
    }
)


# ---------------------------------------------------------------- pure helpers


def instance_names(base: str, count: int) -> list[str]:
    """Names for a batch: ``{R:x}`` / ``{R:x,F:y}`` counters, else a numeric suffix when count > 1."""
    match = NAME_PATTERN_RE.search(base)
    if match:
        start = int(match.group(1))
        width = int(match.group(2) or 0)
        return [NAME_PATTERN_RE.sub(str(start + i).zfill(width), base, count=1) for i in range(count)]
    if count == 1:
        return [base]
    return [f"{base}{i + 1}" for i in range(count)]


def check_password(password: str, windows: bool) -> None:
    """Linux: 8-30 characters of at least 2 classes; Windows: 12-30 of at least 3 classes."""
    classes = sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )
    low, need = (12, 3) if windows else (8, 2)
    if not (low <= len(password) <= 30) or classes < need:
        raise ApiError(
            "InvalidPassword",
            f"The password must be {low}-30 characters with at least {need} of lowercase, uppercase, "
            "digits and symbols.",
        )


def _ip(sequence: int, public: bool) -> str:
    if public:
        blocks = ("203.0.113", "198.51.100", "192.0.2")
        n = (sequence - 1) % (254 * len(blocks))
        return f"{blocks[n // 254]}.{n % 254 + 1}"
    n = sequence - 1
    return f"10.{(n // 64516) % 256}.{(n // 254) % 254}.{n % 254 + 1}"


def _check_instance_ids(ids: Sequence[str]) -> None:
    if len(ids) > MAX_IDS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_IDS} `InstanceIds` are allowed.")
    for instance_id in ids:
        if not INSTANCE_ID_RE.match(instance_id):
            raise ApiError("InvalidInstanceId.Malformed", f"The instance id `{instance_id}` is malformed.")


# ---------------------------------------------------------------- queries


def _owned_instances(emu: Emulator, call: Call, ids: Sequence[str]) -> list[sqlite3.Row]:
    """The caller's live instances for ``ids`` (in request order) or ``InvalidInstanceId.NotFound``."""
    _check_instance_ids(ids)
    unique = list(dict.fromkeys(ids))
    rows = emu.store.conn.execute(
        f"SELECT * FROM instances WHERE instance_id IN ({', '.join('?' * len(unique))}) AND owner = ? "
        "AND region = ? AND state != 'TERMINATED'",
        [*unique, call.account.account_id, call.region],
    ).fetchall()
    by_id = {r["instance_id"]: r for r in rows}
    missing = [i for i in unique if i not in by_id]
    if missing:
        raise ApiError("InvalidInstanceId.NotFound", f"The instance `{missing[0]}` does not exist.")
    return [by_id[i] for i in unique]


def _tags_for(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    result: dict[str, list[dict[str, str]]] = {}
    if not ids:
        return result
    rows = conn.execute(
        f"SELECT instance_id, key, value FROM instance_tags WHERE instance_id IN ({', '.join('?' * len(ids))}) "
        "ORDER BY key",
        list(ids),
    ).fetchall()
    for row in rows:
        result.setdefault(row["instance_id"], []).append({"Key": row["key"], "Value": row["value"]})
    return result


def instance_to_api(row: sqlite3.Row, tags: list[dict[str, str]]) -> dict[str, Any]:
    details = json.loads(row["details"])
    windows = row["platform"] == "Windows"
    prepaid = row["charge_type"] == "PREPAID"
    return {
        "Placement": {"Zone": row["zone"], "ProjectId": details.get("ProjectId", 0)},
        "InstanceId": row["instance_id"],
        "InstanceType": row["instance_type"],
        "CPU": details["CPU"],
        "Memory": details["Memory"],
        "RestrictState": "NORMAL",
        "InstanceName": row["instance_name"],
        "InstanceChargeType": row["charge_type"],
        "SystemDisk": details["SystemDisk"],
        "DataDisks": details.get("DataDisks") or None,
        "PrivateIpAddresses": [row["private_ip"]],
        "PublicIpAddresses": [row["public_ip"]] if row["public_ip"] else None,
        "InternetAccessible": details["InternetAccessible"],
        "VirtualPrivateCloud": details["VirtualPrivateCloud"],
        "ImageId": row["image_id"],
        "RenewFlag": details.get("RenewFlag") if prepaid else None,
        "CreatedTime": iso_time(row["created_at"]),
        "ExpiredTime": iso_time(row["expired_at"]) if row["expired_at"] else None,
        "OsName": row["os_name"],
        "SecurityGroupIds": details.get("SecurityGroupIds", []),
        "LoginSettings": {"KeyIds": details["KeyIds"]} if details.get("KeyIds") else {},
        "InstanceState": row["state"],
        "Tags": tags,
        "StopChargingMode": "NOT_APPLICABLE"
        if row["state"] != "STOPPED"
        else details.get("StopChargingMode", "KEEP_CHARGING"),
        "Uuid": details["Uuid"],
        "LatestOperation": row["latest_operation"],
        "LatestOperationState": row["latest_operation_state"],
        "LatestOperationRequestId": row["latest_request_id"],
        "DisasterRecoverGroupId": "",
        "IPv6Addresses": None,
        "CamRoleName": "",
        "HpcClusterId": "",
        "RdmaIpAddresses": None,
        "IsolatedSource": "MANMADE" if row["state"] == "SHUTDOWN" else "NOTISOLATED",
        "LicenseType": "TencentCloud",
        "DisableApiTermination": bool(row["disable_api_termination"]),
        "DefaultLoginUser": "Administrator" if windows else "root",
        "DefaultLoginPort": 3389 if windows else 22,
        "LatestOperationErrorMsg": "",
    }


# ---------------------------------------------------------------- RunInstances


def _system_disk(params: dict[str, Any], image_size: int) -> dict[str, Any]:
    disk = params.get("SystemDisk") or {}
    disk_type = disk.get("DiskType") or "CLOUD_PREMIUM"
    if disk_type not in DISK_TYPES:
        raise ApiError("InvalidParameterValue", f"`SystemDisk.DiskType` {disk_type!r} is not valid.")
    size = disk.get("DiskSize")
    size = max(50, image_size) if size is None else int(size)
    if size < max(20, image_size) or size > 2048:
        raise ApiError(
            "InvalidParameterValue.Range",
            f"`SystemDisk.DiskSize` must be {max(20, image_size)}-2048 GiB for this image, got {size}.",
        )
    return {"DiskType": disk_type, "DiskId": f"disk-{random_suffix()}", "DiskSize": size}


def _login(params: dict[str, Any], image: sqlite3.Row) -> list[str]:
    login = params.get("LoginSettings") or {}
    windows = image["platform"] == "Windows"
    password, key_ids, keep = login.get("Password"), login.get("KeyIds") or [], login.get("KeepImageLogin")
    if sum(bool(x) for x in (password, key_ids, keep)) > 1:
        raise ApiError(
            "InvalidParameterCombination", "`LoginSettings` takes only one of Password, KeyIds and KeepImageLogin."
        )
    if password is not None:
        check_password(password, windows)
    for key_id in key_ids:
        if not KEY_ID_RE.match(key_id):
            raise ApiError("InvalidKeyPairId.Malformed", f"The key pair id `{key_id}` is malformed.")
    if key_ids and windows:
        raise ApiError("UnsupportedOperation.KeyPairUnsupportedWindows", "Windows instances cannot use key pairs.")
    if keep is not None:
        if str(keep).lower() not in ("true", "false"):
            raise ApiError("InvalidParameterValue", '`LoginSettings.KeepImageLogin` must be "true" or "false".')
        if str(keep).lower() == "true" and image["visible_type"] in ("PUBLIC_IMAGE", "MARKET_IMAGE"):
            raise ApiError(
                "InvalidParameterValue", "`KeepImageLogin` is allowed only with custom, shared or imported images."
            )
    return list(key_ids)


def _check_host_name(host_name: str | None, windows: bool) -> None:
    if host_name is None:
        return
    pattern = WINDOWS_HOSTNAME_RE if windows else LINUX_HOSTNAME_RE
    if not pattern.match(host_name) or host_name.replace("-", "").isdigit():
        raise ApiError("InvalidParameter.HostNameIllegal", f"The host name {host_name!r} is not valid.")


def run_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    conn = emu.store.conn
    owner = call.account.account_id
    token = params.get("ClientToken")
    if token is not None:
        if len(token) > MAX_CLIENT_TOKEN or not token.isascii():
            raise ApiError(
                "InvalidClientToken.TooLong", f"`ClientToken` must be at most {MAX_CLIENT_TOKEN} ASCII characters."
            )
        seen = conn.execute(
            "SELECT instance_ids FROM client_tokens WHERE owner = ? AND region = ? AND token = ?",
            (owner, call.region, token),
        ).fetchone()
        if seen is not None:
            return {"InstanceIdSet": json.loads(seen["instance_ids"])}
    if params.get("LaunchTemplate"):
        raise ApiError("UnsupportedOperation", "Launch templates are not supported by this emulator.")
    zone_name = params["Placement"]["Zone"]
    zone = emu.catalogue.zones.get(zone_name)
    if zone is None:
        raise ApiError("InvalidParameterValue.ZoneNotSupported", f"The zone `{zone_name}` does not exist.")
    if zone.region != call.region:
        raise ApiError("InvalidZone.MismatchRegion", f"The zone `{zone_name}` is not in {call.region}.")
    image = usable_image(emu, call, params["ImageId"])
    type_name = params.get("InstanceType") or DEFAULT_INSTANCE_TYPE
    itype = emu.catalogue.instance_types.get(type_name)
    if itype is None:
        raise ApiError("InvalidParameterValue.InstanceTypeNotFound", f"The instance type `{type_name}` does not exist.")
    image_arm = image["architecture"] == "arm"
    if image_arm != (itype.architecture == "arm"):
        raise ApiError(
            "InvalidParameterValue.InvalidImageForGivenInstanceType",
            f"The image `{image['image_id']}` ({image['architecture']}) cannot run on {type_name}.",
        )
    charge_type = params.get("InstanceChargeType") or "POSTPAID_BY_HOUR"
    if charge_type not in CHARGE_TYPES:
        raise ApiError("InvalidParameterValue", f"`InstanceChargeType` {charge_type!r} is not valid.")
    expired_at = None
    renew_flag = None
    if charge_type == "PREPAID":
        prepaid = params.get("InstanceChargePrepaid")
        if not prepaid:
            raise ApiError("MissingParameter", "PREPAID instances need `InstanceChargePrepaid`.")
        period = int(prepaid["Period"])
        if period not in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36, 48, 60):
            raise ApiError("InvalidPeriod", f"`InstanceChargePrepaid.Period` {period} is not valid.")
        expired_at = call.now + period * 30 * 86400
        renew_flag = prepaid.get("RenewFlag") or "NOTIFY_AND_MANUAL_RENEW"
    count = params.get("InstanceCount")
    count = 1 if count is None else int(count)
    if not 1 <= count <= MAX_INSTANCE_COUNT:
        raise ApiError("InvalidParameterValue.Range", f"`InstanceCount` must be 1-{MAX_INSTANCE_COUNT}, got {count}.")
    base_name = params.get("InstanceName") or DEFAULT_INSTANCE_NAME
    if len(base_name) > MAX_INSTANCE_NAME:
        raise ApiError("InvalidInstanceName.TooLong", f"`InstanceName` must be at most {MAX_INSTANCE_NAME} characters.")
    windows = image["platform"] == "Windows"
    system_disk = _system_disk(params, int(image["size_gb"]))
    data_disks_in = params.get("DataDisks") or []
    if len(data_disks_in) > MAX_DATA_DISKS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_DATA_DISKS} data disks are allowed.")
    key_ids = _login(params, image)
    _check_host_name(params.get("HostName"), windows)
    user_data = params.get("UserData")
    if user_data is not None:
        try:
            decoded = base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("InvalidParameterValue.InvalidUserDataFormat", "`UserData` must be base64.") from None
        if len(decoded) > MAX_USER_DATA:
            raise ApiError("InvalidParameterValue.InvalidUserDataFormat", "`UserData` must be at most 16 KB.")
    tags = parse_tags(params.get("TagSpecification"), "instance")
    internet = params.get("InternetAccessible") or {}
    bandwidth = int(internet.get("InternetMaxBandwidthOut") or 0)
    wants_public_ip = internet.get("PublicIpAssigned")
    public = bool(wants_public_ip) if wants_public_ip is not None else bandwidth > 0
    if params.get("DryRun"):
        return {}
    vpc = params.get("VirtualPrivateCloud") or {}
    names = instance_names(base_name, count)
    ids: list[str] = []
    due_at = call.now + emu.clock.duration("instance.launch")
    for name in names:
        instance_id = emu.store.new_id("ins", "instances", "instance_id")
        data_disks = [
            {
                "DiskType": d.get("DiskType") or "CLOUD_PREMIUM",
                "DiskId": f"disk-{random_suffix()}",
                "DiskSize": int(d.get("DiskSize") or 50),
                "DeleteWithInstance": d.get("DeleteWithInstance", True),
            }
            for d in data_disks_in
        ]
        details = {
            "CPU": itype.cpu,
            "Memory": itype.memory,
            "Architecture": image["architecture"],
            "Cloudinit": bool(image["cloudinit"]),
            "SystemDisk": system_disk | {"DiskId": f"disk-{random_suffix()}"},
            "DataDisks": data_disks,
            "InternetAccessible": {
                "InternetChargeType": internet.get("InternetChargeType") or "TRAFFIC_POSTPAID_BY_HOUR",
                "InternetMaxBandwidthOut": bandwidth,
                "PublicIpAssigned": public,
            },
            "VirtualPrivateCloud": {
                "VpcId": vpc.get("VpcId") or f"vpc-{call.region[-6:].replace('-', '')[:4]}dflt",
                "SubnetId": vpc.get("SubnetId") or f"subnet-{zone_name[-1]}dflt{zone.zone_id[-3:]}",
                "AsVpcGateway": False,
            },
            "SecurityGroupIds": params.get("SecurityGroupIds") or [],
            "KeyIds": key_ids,
            "Uuid": str(uuid.uuid4()),
            "RenewFlag": renew_flag,
            "HostName": params.get("HostName"),
            "ProjectId": int(params["Placement"].get("ProjectId") or 0),
        }
        private_ip = _ip(emu.store.next_counter("private_ip"), public=False)
        public_ip = _ip(emu.store.next_counter("public_ip"), public=True) if public else None
        conn.execute(
            "INSERT INTO instances (instance_id, owner, region, zone, instance_type, instance_name, charge_type, "
            "image_id, os_name, platform, state, next_state, started_at, due_at, latest_operation, "
            "latest_operation_state, latest_request_id, private_ip, public_ip, created_at, expired_at, "
            "disable_api_termination, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', 'RUNNING', ?, ?, "
            "'RunInstances', 'OPERATING', ?, ?, ?, ?, ?, ?, ?)",
            (
                instance_id,
                owner,
                call.region,
                zone_name,
                type_name,
                name,
                charge_type,
                image["image_id"],
                image["os_name"],
                image["platform"],
                call.now,
                due_at,
                call.request_id,
                private_ip,
                public_ip,
                call.now,
                expired_at,
                int(bool(params.get("DisableApiTermination"))),
                json.dumps(details),
            ),
        )
        conn.executemany(
            "INSERT INTO instance_tags (instance_id, key, value) VALUES (?, ?, ?)",
            [(instance_id, k, v) for k, v in tags],
        )
        ids.append(instance_id)
    emu.store.note_due(due_at)
    if token is not None:
        conn.execute(
            "INSERT INTO client_tokens (owner, region, token, instance_ids, created_at) VALUES (?, ?, ?, ?, ?)",
            (owner, call.region, token, json.dumps(ids), call.now),
        )
    return {"InstanceIdSet": ids}


# ---------------------------------------------------------------- describe


def describe_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    ids = params.get("InstanceIds")
    raw_filters = params.get("Filters")
    if ids and raw_filters:
        raise ApiError("InvalidParameter", "`InstanceIds` and `Filters` cannot be specified at the same time.")
    offset, limit = paging(params)
    clauses = ["i.owner = ?", "i.region = ?", "i.state != 'TERMINATED'"]
    args: list[Any] = [call.account.account_id, call.region]
    if ids:
        _check_instance_ids(ids)
        clauses.append(f"i.instance_id IN ({', '.join('?' * len(ids))})")
        args.extend(ids)
    filters = parse_filters(raw_filters, INSTANCE_FILTERS)
    rules = {
        "instance-id": exact("i.instance_id"),
        "instance-name": fuzzy("i.instance_name"),
        "zone": exact("i.zone"),
        "instance-state": exact("i.state"),
        "instance-charge-type": exact("i.charge_type"),
        "project-id": exact("CAST(json_extract(i.details, '$.ProjectId') AS TEXT)"),
        "private-ip-address": exact("i.private_ip"),
        "public-ip-address": exact("i.public_ip"),
        "image-id": exact("i.image_id"),
    }
    more, more_args = build_where(filters, rules, "instance_tags", "t.instance_id = i.instance_id")
    where = " AND ".join([*clauses, *more])
    conn = emu.store.conn
    total = conn.execute(f"SELECT COUNT(*) FROM instances i WHERE {where}", [*args, *more_args]).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM instances i WHERE {where} ORDER BY i.created_at DESC, i.instance_id LIMIT ? OFFSET ?",
        [*args, *more_args, limit, offset],
    ).fetchall()
    tags = _tags_for(conn, [r["instance_id"] for r in rows])
    return {"TotalCount": total, "InstanceSet": [instance_to_api(r, tags.get(r["instance_id"], [])) for r in rows]}


def describe_instances_status(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    ids = params.get("InstanceIds")
    offset, limit = paging(params)
    clauses = ["owner = ?", "region = ?", "state != 'TERMINATED'"]
    args: list[Any] = [call.account.account_id, call.region]
    if ids:
        _check_instance_ids(ids)
        clauses.append(f"instance_id IN ({', '.join('?' * len(ids))})")
        args.extend(ids)
    where = " AND ".join(clauses)
    conn = emu.store.conn
    total = conn.execute(f"SELECT COUNT(*) FROM instances WHERE {where}", args).fetchone()[0]
    rows = conn.execute(
        f"SELECT instance_id, state FROM instances WHERE {where} "
        "ORDER BY created_at DESC, instance_id LIMIT ? OFFSET ?",
        [*args, limit, offset],
    ).fetchall()
    return {
        "TotalCount": total,
        "InstanceStatusSet": [{"InstanceId": r["instance_id"], "InstanceState": r["state"]} for r in rows],
    }


# ---------------------------------------------------------------- state changes


def _transition(
    emu: Emulator,
    call: Call,
    rows: Sequence[sqlite3.Row],
    operation: str,
    state: str,
    next_state: str,
    duration_key: str,
    **extra: Any,
) -> None:
    due_at = call.now + emu.clock.duration(duration_key)
    assignments = "".join(f", {column} = ?" for column in extra)
    emu.store.conn.executemany(
        "UPDATE instances SET state = ?, next_state = ?, started_at = ?, due_at = ?, latest_operation = ?, "
        f"latest_operation_state = 'OPERATING', latest_request_id = ?{assignments} WHERE instance_id = ?",
        [
            (state, next_state, call.now, due_at, operation, call.request_id, *extra.values(), r["instance_id"])
            for r in rows
        ],
    )
    emu.store.note_due(due_at)


def _require_state(rows: Sequence[sqlite3.Row], allowed: Sequence[str]) -> None:
    for row in rows:
        if row["state"] not in allowed:
            raise ApiError(
                invalid_state_code(row["state"]),
                f"The instance `{row['instance_id']}` is {row['state']}; this operation needs {' or '.join(allowed)}.",
            )
        if row["latest_operation_state"] == "OPERATING":
            raise ApiError(
                "OperationDenied.InstanceOperationInProgress",
                f"The instance `{row['instance_id']}` has an operation in progress.",
            )


def start_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    rows = _owned_instances(emu, call, params["InstanceIds"])
    _require_state(rows, ("STOPPED",))
    _transition(emu, call, rows, "StartInstances", "STARTING", "RUNNING", "instance.start")
    return {}


def _check_stop_type(params: dict[str, Any], deprecated_flag: str) -> None:
    """StopType is one of its values, and never given together with the deprecated flag it replaces."""
    stop_type = params.get("StopType")
    if stop_type is None:
        return
    if stop_type not in ("SOFT", "HARD", "SOFT_FIRST"):
        raise ApiError("InvalidParameterValue", f"`StopType` {stop_type!r} is not valid.")
    if params.get(deprecated_flag) is not None:
        raise ApiError("InvalidParameterCombination", f"`{deprecated_flag}` and `StopType` cannot be given together.")


def stop_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _check_stop_type(params, "ForceStop")
    mode = params.get("StoppedMode") or "KEEP_CHARGING"
    if mode not in ("KEEP_CHARGING", "STOP_CHARGING"):
        raise ApiError("InvalidParameterValue", f"`StoppedMode` {mode!r} is not valid.")
    rows = _owned_instances(emu, call, params["InstanceIds"])
    _require_state(rows, ("RUNNING",))
    if mode == "STOP_CHARGING" and any(r["charge_type"] != "POSTPAID_BY_HOUR" for r in rows):
        raise ApiError(
            "UnsupportedOperation.StoppedModeStopCharging", "No-charge shutdown is only for pay-as-you-go instances."
        )
    for row in rows:
        details = json.loads(row["details"]) | {"StopChargingMode": mode}
        emu.store.conn.execute(
            "UPDATE instances SET details = ? WHERE instance_id = ?", (json.dumps(details), row["instance_id"])
        )
    _transition(emu, call, rows, "StopInstances", "STOPPING", "STOPPED", "instance.stop")
    return {}


def reboot_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _check_stop_type(params, "ForceReboot")
    rows = _owned_instances(emu, call, params["InstanceIds"])
    _require_state(rows, ("RUNNING",))
    _transition(emu, call, rows, "RebootInstances", "REBOOTING", "RUNNING", "instance.reboot")
    return {}


def terminate_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    rows = _owned_instances(emu, call, params["InstanceIds"])
    if len({r["charge_type"] == "PREPAID" for r in rows}) > 1:
        raise ApiError(
            "UnsupportedOperation.InstanceMixedPricingModel",
            "Prepaid and pay-as-you-go instances cannot be terminated in one call.",
        )
    protected = [r["instance_id"] for r in rows if r["disable_api_termination"]]
    if protected:
        raise ApiError(
            "UnsupportedOperation.InstancesProtected",
            f"The instance `{protected[0]}` has termination protection enabled.",
        )
    _require_state(rows, ("RUNNING", "STOPPED", "SHUTDOWN", "LAUNCH_FAILED"))
    to_recycle = [r for r in rows if r["charge_type"] == "PREPAID" and r["state"] != "SHUTDOWN"]
    to_destroy = [r for r in rows if r not in to_recycle]
    # A prepaid instance first goes to the recycle bin (SHUTDOWN); a second call destroys it.
    emu.store.conn.executemany(
        "UPDATE instances SET state = 'SHUTDOWN', latest_operation = 'TerminateInstances', "
        "latest_operation_state = 'SUCCESS', latest_request_id = ? WHERE instance_id = ?",
        [(call.request_id, r["instance_id"]) for r in to_recycle],
    )
    if to_destroy:
        _transition(emu, call, to_destroy, "TerminateInstances", "TERMINATING", "TERMINATED", "instance.terminate")
    return {}


def reset_instance(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    (row,) = _owned_instances(emu, call, [params["InstanceId"]])
    _require_state([row], ("RUNNING", "STOPPED"))
    image = usable_image(emu, call, params.get("ImageId") or row["image_id"])
    details = json.loads(row["details"])
    arm_type = details.get("Architecture") == "arm"
    if (image["architecture"] == "arm") != arm_type:
        raise ApiError(
            "InvalidParameterValue.InvalidImageForGivenInstanceType",
            f"The image `{image['image_id']}` cannot run on {row['instance_type']}.",
        )
    system_disk = dict(details["SystemDisk"])
    if system_disk["DiskType"] not in RESETTABLE_DISK_TYPES:
        raise ApiError(
            "UnsupportedOperation.InvalidDisk",
            f"Instances with a {system_disk['DiskType']} system disk cannot be reinstalled.",
        )
    wanted = params.get("SystemDisk") or {}
    if wanted.get("DiskType") not in (None, system_disk["DiskType"]):
        raise ApiError("InvalidParameterValue", "`SystemDisk.DiskType` cannot change on reinstall.")
    size = int(wanted.get("DiskSize") or system_disk["DiskSize"])
    if size < int(system_disk["DiskSize"]) or size < int(image["size_gb"]):
        raise ApiError(
            "InvalidParameterValue.Range",
            f"`SystemDisk.DiskSize` can grow but not shrink below {system_disk['DiskSize']} GiB "
            f"or the image size {image['size_gb']} GiB.",
        )
    windows = image["platform"] == "Windows"
    key_ids = _login(params, image)
    _check_host_name(params.get("HostName"), windows)
    system_disk["DiskSize"] = size
    details.update(
        {
            "SystemDisk": system_disk,
            "KeyIds": key_ids,
            "Architecture": image["architecture"],
            "Cloudinit": bool(image["cloudinit"]),
        }
    )
    emu.store.conn.execute(
        "UPDATE instances SET details = ? WHERE instance_id = ?", (json.dumps(details), row["instance_id"])
    )
    # ImageId and OsName change when the reinstall completes; the instance then runs.
    _transition(
        emu,
        call,
        [row],
        "ResetInstance",
        row["state"],
        "RUNNING",
        "instance.reset",
        pending_image_id=image["image_id"],
        pending_os_name=image["os_name"],
        pending_platform=image["platform"],
    )
    return {}


ACTIONS = {
    "RunInstances": run_instances,
    "DescribeInstances": describe_instances,
    "DescribeInstancesStatus": describe_instances_status,
    "StartInstances": start_instances,
    "StopInstances": stop_instances,
    "RebootInstances": reboot_instances,
    "TerminateInstances": terminate_instances,
    "ResetInstance": reset_instance,
}
