"""Instance actions: launch, describe, start, stop, reboot, terminate, reinstall (ResetInstance), modify.

Each action parses its request, calls :class:`~cvm_emulator.backend.instances.InstanceBackend` and
renders what it returns.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from typing import Any

from .backend.emulator import Emulator
from .backend.instances import (
    INSTANCE_FILTERS,
    DiskSpec,
    LaunchSpec,
    check_instance_ids,
    check_password,
    instance_names,
)
from .context import Call, iso_time
from .errors import ApiError
from .filters import paging, parse_filters
from .images import parse_tags

__all__ = ["ACTIONS", "check_password", "instance_names", "instance_to_api"]

CHARGE_TYPES = ("POSTPAID_BY_HOUR", "PREPAID", "SPOTPAID")
INTERNET_CHARGE_TYPES = (
    "BANDWIDTH_PREPAID",
    "TRAFFIC_POSTPAID_BY_HOUR",
    "BANDWIDTH_POSTPAID_BY_HOUR",
    "BANDWIDTH_PACKAGE",
)
RENEW_FLAGS = ("NOTIFY_AND_AUTO_RENEW", "NOTIFY_AND_MANUAL_RENEW", "DISABLE_NOTIFY_AND_MANUAL_RENEW")
PERIODS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36, 48, 60)
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
MAX_INSTANCE_COUNT = 500
MAX_INSTANCE_NAME = 128
MAX_MODIFIED_NAME = 60
MAX_CLIENT_TOKEN = 64
MAX_DATA_DISKS = 21
MAX_USER_DATA = 16 * 1024
MAX_BANDWIDTH_OUT = 200
DATA_DISK_SIZES = (10, 32000)
MIN_SSD_DATA_DISK = 20
DEFAULT_INSTANCE_TYPE = "S1.SMALL1"
DEFAULT_INSTANCE_NAME = "未命名"
MODIFIABLE = ("InstanceName", "UserData", "SecurityGroups", "CamRoleName", "HostName", "DisableApiTermination")


# ---------------------------------------------------------------- rendering


def instance_to_api(row: sqlite3.Row, tags: list[dict[str, str]]) -> dict[str, Any]:
    details = json.loads(row["details"])
    windows = row["platform"] == "Windows"
    prepaid = row["charge_type"] == "PREPAID"
    failed = row["state"] == "LAUNCH_FAILED"
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
        "CamRoleName": details.get("CamRoleName", ""),
        "HpcClusterId": "",
        "RdmaIpAddresses": None,
        "IsolatedSource": "MANMADE" if row["state"] == "SHUTDOWN" else "NOTISOLATED",
        "LicenseType": "TencentCloud",
        "DisableApiTermination": bool(row["disable_api_termination"]),
        "HostName": details.get("HostName") or "",
        "DefaultLoginUser": "Administrator" if windows else "root",
        "DefaultLoginPort": 3389 if windows else 22,
        "LatestOperationErrorMsg": "The cloud could not allocate resources for the instance." if failed else "",
    }


# ---------------------------------------------------------------- parsing


def _check_user_data(user_data: str | None) -> bool:
    if user_data is None:
        return False
    try:
        decoded = base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("InvalidParameterValue.InvalidUserDataFormat", "`UserData` must be base64.") from None
    if len(user_data) > MAX_USER_DATA or len(decoded) > MAX_USER_DATA:
        raise ApiError("InvalidParameterValue.InvalidUserDataFormat", "`UserData` must be at most 16 KB in base64.")
    return True


def _disk_type(value: str | None, member: str) -> str:
    disk_type = value or "CLOUD_PREMIUM"
    if disk_type not in DISK_TYPES:
        raise ApiError("InvalidParameterValue", f"`{member}` {disk_type!r} is not valid.")
    return disk_type


def _data_disks(raw: list[dict[str, Any]]) -> list[DiskSpec]:
    if len(raw) > MAX_DATA_DISKS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_DATA_DISKS} data disks are allowed.")
    disks = []
    for index, disk in enumerate(raw):
        disk_type = _disk_type(disk.get("DiskType"), f"DataDisks.{index}.DiskType")
        size = int(disk["DiskSize"])
        if disk_type == "CLOUD_SSD" and size < MIN_SSD_DATA_DISK:
            raise ApiError(
                "InvalidParameterValue.CloudSsdDataDiskSizeTooSmall",
                f"A CLOUD_SSD data disk needs at least {MIN_SSD_DATA_DISK} GiB, got {size}.",
            )
        low, high = DATA_DISK_SIZES
        if not low <= size <= high:
            raise ApiError(
                "InvalidParameterValue.Range", f"`DataDisks.{index}.DiskSize` must be {low}-{high} GiB, got {size}."
            )
        delete = disk.get("DeleteWithInstance")
        disks.append(DiskSpec(disk_type, size, True if delete is None else bool(delete)))
    return disks


def _charge(params: dict[str, Any]) -> tuple[str, int | None, str | None, float | None]:
    """Charge type, prepaid period and renew flag, spot bid."""
    charge_type = params.get("InstanceChargeType") or "POSTPAID_BY_HOUR"
    if charge_type not in CHARGE_TYPES:
        raise ApiError("InvalidParameterValue", f"`InstanceChargeType` {charge_type!r} is not valid.")
    period = renew_flag = None
    prepaid = params.get("InstanceChargePrepaid")
    if charge_type == "PREPAID":
        if not prepaid:
            raise ApiError("MissingParameter", "PREPAID instances need `InstanceChargePrepaid`.")
        period = int(prepaid["Period"])
        if period not in PERIODS:
            raise ApiError("InvalidPeriod", f"`InstanceChargePrepaid.Period` {period} is not valid.")
        renew_flag = prepaid.get("RenewFlag") or "NOTIFY_AND_MANUAL_RENEW"
        if renew_flag not in RENEW_FLAGS:
            raise ApiError("InvalidParameterValue", f"`InstanceChargePrepaid.RenewFlag` {renew_flag!r} is not valid.")
    elif prepaid:
        raise ApiError("InvalidParameterCombination", "`InstanceChargePrepaid` is only for PREPAID instances.")
    market = params.get("InstanceMarketOptions")
    bid = None
    if market:
        if charge_type != "SPOTPAID":
            raise ApiError("InvalidParameterCombination", "`InstanceMarketOptions` is only for SPOTPAID instances.")
        if (market.get("MarketType") or "spot") != "spot":
            raise ApiError("InvalidParameterValue", "`InstanceMarketOptions.MarketType` must be `spot`.")
        spot = market.get("SpotOptions") or {}
        if (spot.get("SpotInstanceType") or "one-time") != "one-time":
            raise ApiError("InvalidParameterValue", "`SpotOptions.SpotInstanceType` must be `one-time`.")
        if spot.get("MaxPrice") is not None:
            try:
                bid = float(spot["MaxPrice"])
            except ValueError:
                raise ApiError("InvalidParameterValue", "`SpotOptions.MaxPrice` must be a number.") from None
    return charge_type, period, renew_flag, bid


def parse_launch(params: dict[str, Any]) -> LaunchSpec:
    token = params.get("ClientToken")
    if token is not None and (len(token) > MAX_CLIENT_TOKEN or not token.isascii()):
        raise ApiError(
            "InvalidClientToken.TooLong", f"`ClientToken` must be at most {MAX_CLIENT_TOKEN} ASCII characters."
        )
    if params.get("LaunchTemplate"):
        raise ApiError("UnsupportedOperation", "Launch templates are not supported by this emulator.")
    charge_type, period, renew_flag, bid = _charge(params)
    count = params.get("InstanceCount")
    count = 1 if count is None else int(count)
    if not 1 <= count <= MAX_INSTANCE_COUNT:
        raise ApiError("InvalidParameterValue.Range", f"`InstanceCount` must be 1-{MAX_INSTANCE_COUNT}, got {count}.")
    base_name = params.get("InstanceName") or DEFAULT_INSTANCE_NAME
    if len(base_name) > MAX_INSTANCE_NAME:
        raise ApiError("InvalidInstanceName.TooLong", f"`InstanceName` must be at most {MAX_INSTANCE_NAME} characters.")
    system_disk = params.get("SystemDisk") or {}
    size = system_disk.get("DiskSize")
    internet = params.get("InternetAccessible") or {}
    internet_charge = internet.get("InternetChargeType") or "TRAFFIC_POSTPAID_BY_HOUR"
    if internet_charge not in INTERNET_CHARGE_TYPES:
        raise ApiError("InvalidParameterValue", f"`InternetChargeType` {internet_charge!r} is not valid.")
    if internet_charge == "BANDWIDTH_PREPAID" and charge_type != "PREPAID":
        raise ApiError("InvalidParameterCombination", "BANDWIDTH_PREPAID needs a PREPAID instance.")
    bandwidth = int(internet.get("InternetMaxBandwidthOut") or 0)
    if not 0 <= bandwidth <= MAX_BANDWIDTH_OUT:
        raise ApiError(
            "InvalidParameterValue.Range", f"`InternetMaxBandwidthOut` must be 0-{MAX_BANDWIDTH_OUT}, got {bandwidth}."
        )
    wants_public_ip = internet.get("PublicIpAssigned")
    vpc = params.get("VirtualPrivateCloud") or {}
    return LaunchSpec(
        zone=params["Placement"]["Zone"],
        project_id=int(params["Placement"].get("ProjectId") or 0),
        image_id=params["ImageId"],
        instance_type=params.get("InstanceType") or DEFAULT_INSTANCE_TYPE,
        count=count,
        names=instance_names(base_name, count),
        charge_type=charge_type,
        period=period,
        renew_flag=renew_flag,
        spot_max_price=bid,
        system_disk=DiskSpec(_disk_type(system_disk.get("DiskType"), "SystemDisk.DiskType"), size and int(size)),
        data_disks=_data_disks(params.get("DataDisks") or []),
        internet_charge_type=internet_charge,
        bandwidth_out=bandwidth,
        public_ip=bool(wants_public_ip) if wants_public_ip is not None else bandwidth > 0,
        token=token,
        login=params.get("LoginSettings") or {},
        host_name=params.get("HostName"),
        has_user_data=_check_user_data(params.get("UserData")),
        tags=parse_tags(params.get("TagSpecification"), "instance"),
        vpc_id=vpc.get("VpcId"),
        subnet_id=vpc.get("SubnetId"),
        private_ips=list(vpc.get("PrivateIpAddresses") or []),
        security_group_ids=list(params.get("SecurityGroupIds") or []),
        disable_api_termination=bool(params.get("DisableApiTermination")),
        cam_role_name=params.get("CamRoleName") or "",
        dry_run=bool(params.get("DryRun")),
    )


def _check_stop_type(params: dict[str, Any], deprecated_flag: str) -> None:
    """StopType is one of its values, and never given together with the deprecated flag it replaces."""
    stop_type = params.get("StopType")
    if stop_type is None:
        return
    if stop_type not in ("SOFT", "HARD", "SOFT_FIRST"):
        raise ApiError("InvalidParameterValue", f"`StopType` {stop_type!r} is not valid.")
    if params.get(deprecated_flag) is not None:
        raise ApiError("InvalidParameterCombination", f"`{deprecated_flag}` and `StopType` cannot be given together.")


# ---------------------------------------------------------------- actions


def run_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    spec = parse_launch(params)
    ids = emu.instances.launch(call, spec)
    return {} if spec.dry_run else {"InstanceIdSet": ids}


def describe_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    ids = params.get("InstanceIds")
    raw_filters = params.get("Filters")
    if ids and raw_filters:
        raise ApiError("InvalidParameter", "`InstanceIds` and `Filters` cannot be specified at the same time.")
    offset, limit = paging(params)
    filters = parse_filters(raw_filters, INSTANCE_FILTERS)
    total, rows = emu.instances.describe(call, ids, filters, offset, limit)
    tags = emu.instances.tags_for([r["instance_id"] for r in rows])
    return {"TotalCount": total, "InstanceSet": [instance_to_api(r, tags.get(r["instance_id"], [])) for r in rows]}


def describe_instances_status(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    ids = params.get("InstanceIds")
    offset, limit = paging(params)
    total, rows = emu.instances.describe(call, ids, [], offset, limit)
    return {
        "TotalCount": total,
        "InstanceStatusSet": [{"InstanceId": r["instance_id"], "InstanceState": r["state"]} for r in rows],
    }


def start_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    emu.instances.start(call, params["InstanceIds"])
    return {}


def stop_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _check_stop_type(params, "ForceStop")
    mode = params.get("StoppedMode") or "KEEP_CHARGING"
    if mode not in ("KEEP_CHARGING", "STOP_CHARGING"):
        raise ApiError("InvalidParameterValue", f"`StoppedMode` {mode!r} is not valid.")
    emu.instances.stop(call, params["InstanceIds"], mode)
    return {}


def reboot_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _check_stop_type(params, "ForceReboot")
    emu.instances.reboot(call, params["InstanceIds"])
    return {}


def terminate_instances(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    emu.instances.terminate(call, params["InstanceIds"])
    return {}


def reset_instance(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    wanted = params.get("SystemDisk") or {}
    size = wanted.get("DiskSize")
    emu.instances.reset(
        call,
        params["InstanceId"],
        params.get("ImageId"),
        wanted.get("DiskType"),
        int(size) if size is not None else None,
        params.get("LoginSettings") or {},
        params.get("HostName"),
    )
    return {}


def modify_instances_attribute(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    check_instance_ids(params["InstanceIds"])
    given = [name for name in MODIFIABLE if params.get(name) is not None]
    if not given:
        raise ApiError("MissingParameter", f"Give one attribute to modify: {', '.join(MODIFIABLE)}.")
    if len(given) > 1:
        raise ApiError("InvalidParameter", f"Each request modifies one attribute; got {', '.join(given)}.")
    attribute = given[0]
    value = params[attribute]
    if attribute == "InstanceName" and len(value) > MAX_MODIFIED_NAME:
        raise ApiError("InvalidInstanceName.TooLong", f"`InstanceName` must be at most {MAX_MODIFIED_NAME} characters.")
    if attribute == "UserData":
        _check_user_data(value)
    if attribute == "SecurityGroups" and not value:
        raise ApiError("InvalidParameterValue", "`SecurityGroups` must name at least one security group.")
    emu.instances.modify(call, params["InstanceIds"], attribute, value)
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
    "ModifyInstancesAttribute": modify_instances_attribute,
}
