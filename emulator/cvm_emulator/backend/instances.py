"""Instances: the launch rules, the state machine and the attributes, over the store's ``instances`` table.

The action module (``cvm_emulator.instances``) parses a request into the plain values here, calls one
method, and renders the rows it gets back.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..context import Call
from ..errors import ApiError, invalid_state_code
from ..filters import MAX_IDS, Filter, build_where, exact, fuzzy
from ..ids import INSTANCE_ID_RE, KEY_ID_RE
from ..store import random_suffix
from .images import ImageBackend
from .services import Services
from .vpc import SG_ID_RE, SUBNET_ID_RE, VPC_ID_RE

LINUX_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,58}[A-Za-z0-9])?$")
WINDOWS_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9-]{2,15}$")
CAM_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$")
NAME_PATTERN_RE = re.compile(r"\{R:(\d+)(?:,F:(\d+))?\}")
RESETTABLE_DISK_TYPES = ("CLOUD_BASIC", "CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_BSSD")
# What a spot instance costs per vCPU-hour here: a bid below it is refused.
SPOT_PRICE_PER_CPU = 0.02

# DescribeInstances filters as the SDK documents them; image-id is not one of them.
INSTANCE_FILTERS = frozenset(
    {
        "zone",
        "project-id",
        "host-id",
        "dedicated-cluster-id",
        "vpc-id",
        "subnet-id",
        "instance-id",
        "uuid",
        "security-group-id",
        "instance-name",
        "instance-charge-type",
        "instance-state",
        "private-ip-address",
        "public-ip-address",
        "ipv6-address",
        "creation-start-time",
        "creation-end-time",
        "tag-key",
        "tag-value",
        "tag:",
    }
)


# ---------------------------------------------------------------- pure rules


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


def check_host_name(host_name: str | None, windows: bool) -> None:
    if host_name is None:
        return
    pattern = WINDOWS_HOSTNAME_RE if windows else LINUX_HOSTNAME_RE
    if not pattern.match(host_name) or host_name.replace("-", "").isdigit():
        raise ApiError("InvalidParameter.HostNameIllegal", f"The host name {host_name!r} is not valid.")


def check_instance_ids(ids: Sequence[str]) -> None:
    if len(ids) > MAX_IDS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_IDS} `InstanceIds` are allowed.")
    for instance_id in ids:
        if not INSTANCE_ID_RE.match(instance_id):
            raise ApiError("InvalidInstanceId.Malformed", f"The instance id `{instance_id}` is malformed.")


def public_ip(sequence: int) -> str:
    blocks = ("203.0.113", "198.51.100", "192.0.2")
    n = (sequence - 1) % (254 * len(blocks))
    return f"{blocks[n // 254]}.{n % 254 + 1}"


def check_login(login: dict[str, Any], image: sqlite3.Row) -> list[str]:
    """The key ids of ``LoginSettings``; without any setting the cloud sets a random password."""
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
        if str(keep).lower() == "true" and image["visible_type"] == "PUBLIC_IMAGE":
            raise ApiError(
                "InvalidParameterValue", "`KeepImageLogin` is allowed only with custom, shared or imported images."
            )
    return list(key_ids)


# ---------------------------------------------------------------- launch request


@dataclass(frozen=True)
class DiskSpec:
    disk_type: str
    size: int | None
    delete_with_instance: bool = True


@dataclass
class LaunchSpec:
    """A RunInstances request after its shape is checked; the backend checks it against the cloud."""

    zone: str
    image_id: str
    instance_type: str
    count: int
    names: list[str]
    charge_type: str
    system_disk: DiskSpec
    data_disks: list[DiskSpec]
    internet_charge_type: str
    bandwidth_out: int
    public_ip: bool
    project_id: int = 0
    token: str | None = None
    period: int | None = None
    renew_flag: str | None = None
    spot_max_price: float | None = None
    login: dict[str, Any] = field(default_factory=dict)
    host_name: str | None = None
    has_user_data: bool = False
    tags: list[tuple[str, str]] = field(default_factory=list)
    vpc_id: str | None = None
    subnet_id: str | None = None
    private_ips: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    disable_api_termination: bool = False
    cam_role_name: str = ""
    dry_run: bool = False


# ---------------------------------------------------------------- backend


class InstanceBackend:
    def __init__(self, emu: Services, images: ImageBackend) -> None:
        self.emu = emu
        self.images = images

    @property
    def conn(self) -> sqlite3.Connection:
        return self.emu.store.conn

    # ------------------------------------------------------------ lookups

    def owned(self, call: Call, ids: Sequence[str]) -> list[sqlite3.Row]:
        """The caller's live instances for ``ids`` (in request order) or ``InvalidInstanceId.NotFound``."""
        check_instance_ids(ids)
        unique = list(dict.fromkeys(ids))
        rows = self.conn.execute(
            f"SELECT * FROM instances WHERE instance_id IN ({', '.join('?' * len(unique))}) AND owner = ? "
            "AND region = ? AND state != 'TERMINATED'",
            [*unique, call.account.account_id, call.region],
        ).fetchall()
        by_id = {r["instance_id"]: r for r in rows}
        missing = [i for i in unique if i not in by_id]
        if missing:
            raise ApiError("InvalidInstanceId.NotFound", f"The instance `{missing[0]}` does not exist.")
        return [by_id[i] for i in unique]

    def tags_for(self, ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
        result: dict[str, list[dict[str, str]]] = {}
        if not ids:
            return result
        rows = self.conn.execute(
            f"SELECT instance_id, key, value FROM instance_tags WHERE instance_id IN ({', '.join('?' * len(ids))}) "
            "ORDER BY key",
            list(ids),
        ).fetchall()
        for row in rows:
            result.setdefault(row["instance_id"], []).append({"Key": row["key"], "Value": row["value"]})
        return result

    def describe(
        self, call: Call, ids: Sequence[str] | None, filters: Sequence[Filter], offset: int, limit: int
    ) -> tuple[int, list[sqlite3.Row]]:
        clauses = ["i.owner = ?", "i.region = ?", "i.state != 'TERMINATED'"]
        args: list[Any] = [call.account.account_id, call.region]
        if ids:
            check_instance_ids(ids)
            clauses.append(f"i.instance_id IN ({', '.join('?' * len(ids))})")
            args.extend(ids)
        for flt in filters:
            self._check_filter_values(flt)
        details = "json_extract(i.details, '$.{}')".format
        rules = {
            "instance-id": exact("i.instance_id"),
            "instance-name": fuzzy("i.instance_name"),
            "zone": exact("i.zone"),
            "instance-state": exact("i.state"),
            "instance-charge-type": exact("i.charge_type"),
            "project-id": exact(f"CAST({details('ProjectId')} AS TEXT)"),
            "private-ip-address": exact("i.private_ip"),
            "public-ip-address": exact("i.public_ip"),
            "vpc-id": exact(details("VirtualPrivateCloud.VpcId")),
            "subnet-id": exact(details("VirtualPrivateCloud.SubnetId")),
            "uuid": exact(details("Uuid")),
            "security-group-id": lambda values: (
                "EXISTS (SELECT 1 FROM json_each(i.details, '$.SecurityGroupIds') g "
                f"WHERE g.value IN ({', '.join('?' * len(values))}))",
                list(values),
            ),
            # Nothing here runs on dedicated hosts or clusters, or has IPv6 addresses.
            "host-id": lambda values: ("0", []),
            "dedicated-cluster-id": lambda values: ("0", []),
            "ipv6-address": lambda values: ("0", []),
            "creation-start-time": lambda values: ("i.created_at >= ?", [_parse_time(values[0])]),
            "creation-end-time": lambda values: ("i.created_at <= ?", [_parse_time(values[0])]),
        }
        more, more_args = build_where(filters, rules, "instance_tags", "t.instance_id = i.instance_id")
        where = " AND ".join([*clauses, *more])
        total = self.conn.execute(f"SELECT COUNT(*) FROM instances i WHERE {where}", [*args, *more_args]).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT * FROM instances i WHERE {where} ORDER BY i.created_at DESC, i.instance_id LIMIT ? OFFSET ?",
            [*args, *more_args, limit, offset],
        ).fetchall()
        return int(total), rows

    @staticmethod
    def _check_filter_values(flt: Filter) -> None:
        checks = {
            "vpc-id": (VPC_ID_RE, "InvalidParameterValue.VpcIdMalformed"),
            "subnet-id": (SUBNET_ID_RE, "InvalidParameterValue.SubnetIdMalformed"),
            "security-group-id": (SG_ID_RE, "InvalidSgId.Malformed"),
            "instance-id": (INSTANCE_ID_RE, "InvalidInstanceId.Malformed"),
        }
        check = checks.get(flt.name)
        if check is None:
            return
        pattern, code = check
        for value in flt.values:
            if not pattern.match(value):
                raise ApiError(code, f"The value `{value}` of the filter `{flt.name}` is malformed.")

    # ------------------------------------------------------------ launch

    def _check_project(self, project_id: int) -> None:
        if project_id != 0 and project_id not in self.emu.config.projects:
            raise ApiError("InvalidProjectId.NotFound", f"The project {project_id} does not exist.")

    def check_cam_role(self, call: Call, name: str) -> None:
        if not name:
            return
        if not CAM_ROLE_NAME_RE.match(name):
            raise ApiError("InvalidParameterValue.CamRoleNameMalformed", f"The CAM role name {name!r} is malformed.")
        roles = {r.name for r in self.emu.config.roles if r.account_id == call.account.account_id}
        if name not in roles:
            raise ApiError(
                "AuthFailure.CamRoleNameAuthenticateFailed", f"The CAM role {name!r} does not exist in this account."
            )

    def _system_disk(self, spec: DiskSpec, image_size: int) -> dict[str, Any]:
        size = max(50, image_size) if spec.size is None else spec.size
        if size < max(20, image_size) or size > 2048:
            raise ApiError(
                "InvalidParameterValue.Range",
                f"`SystemDisk.DiskSize` must be {max(20, image_size)}-2048 GiB for this image, got {size}.",
            )
        return {"DiskType": spec.disk_type, "DiskId": f"disk-{random_suffix()}", "DiskSize": size}

    def launch(self, call: Call, spec: LaunchSpec) -> list[str]:
        """Check ``spec`` against the account's images, networks, projects and roles; insert PENDING rows."""
        emu, conn = self.emu, self.conn
        owner = call.account.account_id
        if spec.token is not None:
            seen = conn.execute(
                "SELECT instance_ids FROM client_tokens WHERE owner = ? AND region = ? AND token = ?",
                (owner, call.region, spec.token),
            ).fetchone()
            if seen is not None:
                ids: list[str] = json.loads(seen["instance_ids"])
                return ids
        zone = emu.catalogue.zones.get(spec.zone)
        if zone is None:
            raise ApiError("InvalidParameterValue.ZoneNotSupported", f"The zone `{spec.zone}` does not exist.")
        if zone.region != call.region:
            raise ApiError("InvalidZone.MismatchRegion", f"The zone `{spec.zone}` is not in {call.region}.")
        image = self.images.usable(call, spec.image_id)
        itype = emu.catalogue.instance_types.get(spec.instance_type)
        if itype is None:
            raise ApiError(
                "InvalidParameterValue.InstanceTypeNotFound",
                f"The instance type `{spec.instance_type}` does not exist.",
            )
        if (image["architecture"] == "arm") != (itype.architecture == "arm"):
            raise ApiError(
                "InvalidParameterValue.InvalidImageForGivenInstanceType",
                f"The image `{image['image_id']}` ({image['architecture']}) cannot run on {spec.instance_type}.",
            )
        if spec.spot_max_price is not None and spec.spot_max_price < SPOT_PRICE_PER_CPU * itype.cpu:
            raise ApiError(
                "InvalidParameterValue.InsufficientPrice",
                f"The bid {spec.spot_max_price} is below the spot price {SPOT_PRICE_PER_CPU * itype.cpu:.2f} "
                f"of {spec.instance_type}.",
            )
        windows = image["platform"] == "Windows"
        system_disk = self._system_disk(spec.system_disk, int(image["size_gb"]))
        key_ids = check_login(spec.login, image)
        check_host_name(spec.host_name, windows)
        self._check_project(spec.project_id)
        self.check_cam_role(call, spec.cam_role_name)
        network = emu.vpc.allocate(
            owner,
            call.region,
            spec.zone,
            spec.vpc_id,
            spec.subnet_id,
            spec.security_group_ids,
            spec.private_ips,
            spec.count,
        )
        emu.faults.check_call("RunInstances", zone=spec.zone)
        if spec.dry_run:
            return []
        expired_at = call.now + spec.period * 30 * 86400 if spec.period is not None else None
        due_at = call.now + emu.clock.duration("instance.launch")
        failed = emu.faults.failed_operations("RunInstances", spec.count)
        ids = []
        for index, (name, private_ip) in enumerate(zip(spec.names, network.private_ips, strict=True)):
            instance_id = emu.store.new_id("ins", "instances", "instance_id")
            details = {
                "CPU": itype.cpu,
                "Memory": itype.memory,
                "Architecture": image["architecture"],
                "Cloudinit": bool(image["cloudinit"]),
                "SystemDisk": system_disk | {"DiskId": f"disk-{random_suffix()}"},
                "DataDisks": [
                    {
                        "DiskType": d.disk_type,
                        "DiskId": f"disk-{random_suffix()}",
                        "DiskSize": d.size,
                        "DeleteWithInstance": d.delete_with_instance,
                        "Encrypt": False,
                    }
                    for d in spec.data_disks
                ],
                "InternetAccessible": {
                    "InternetChargeType": spec.internet_charge_type,
                    "InternetMaxBandwidthOut": spec.bandwidth_out,
                    "PublicIpAssigned": spec.public_ip,
                },
                "VirtualPrivateCloud": {
                    "VpcId": network.vpc.vpc_id,
                    "SubnetId": network.subnet.subnet_id,
                    "AsVpcGateway": False,
                    "PrivateIpAddresses": [private_ip],
                    "Ipv6AddressCount": 0,
                },
                "SecurityGroupIds": list(network.security_group_ids),
                "KeyIds": key_ids,
                "Uuid": str(uuid.uuid4()),
                "RenewFlag": spec.renew_flag,
                "HostName": spec.host_name,
                "ProjectId": spec.project_id,
                "CamRoleName": spec.cam_role_name,
                "UserData": spec.has_user_data,
            }
            address = public_ip(emu.store.next_counter("public_ip")) if spec.public_ip else None
            next_state, outcome = ("LAUNCH_FAILED", "FAILED") if index < failed else ("RUNNING", None)
            conn.execute(
                "INSERT INTO instances (instance_id, owner, region, zone, instance_type, instance_name, charge_type, "
                "image_id, os_name, platform, state, next_state, started_at, due_at, latest_operation, "
                "latest_operation_state, latest_request_id, private_ip, public_ip, created_at, expired_at, "
                "disable_api_termination, details, next_operation_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "'PENDING', ?, ?, ?, 'RunInstances', 'OPERATING', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    instance_id,
                    owner,
                    call.region,
                    spec.zone,
                    spec.instance_type,
                    name,
                    spec.charge_type,
                    image["image_id"],
                    image["os_name"],
                    image["platform"],
                    next_state,
                    call.now,
                    due_at,
                    call.request_id,
                    private_ip,
                    address,
                    call.now,
                    expired_at,
                    int(spec.disable_api_termination),
                    json.dumps(details),
                    outcome,
                ),
            )
            conn.executemany(
                "INSERT INTO instance_tags (instance_id, key, value) VALUES (?, ?, ?)",
                [(instance_id, k, v) for k, v in spec.tags],
            )
            ids.append(instance_id)
        emu.store.note_due(due_at)
        if spec.token is not None:
            conn.execute(
                "INSERT INTO client_tokens (owner, region, token, instance_ids, created_at) VALUES (?, ?, ?, ?, ?)",
                (owner, call.region, spec.token, json.dumps(ids), call.now),
            )
        return ids

    # ------------------------------------------------------------ state changes

    def transition(
        self,
        call: Call,
        rows: Sequence[sqlite3.Row],
        operation: str,
        state: str,
        next_state: str,
        duration_key: str,
        **extra: Any,
    ) -> None:
        due_at = call.now + self.emu.clock.duration(duration_key)
        assignments = "".join(f", {column} = ?" for column in extra)
        self.conn.executemany(
            "UPDATE instances SET state = ?, next_state = ?, started_at = ?, due_at = ?, latest_operation = ?, "
            f"latest_operation_state = 'OPERATING', latest_request_id = ?{assignments} WHERE instance_id = ?",
            [
                (state, next_state, call.now, due_at, operation, call.request_id, *extra.values(), r["instance_id"])
                for r in rows
            ],
        )
        self.emu.store.note_due(due_at)

    @staticmethod
    def require_state(rows: Sequence[sqlite3.Row], allowed: Sequence[str]) -> None:
        for row in rows:
            if row["state"] not in allowed:
                raise ApiError(
                    invalid_state_code(row["state"]),
                    f"The instance `{row['instance_id']}` is {row['state']}; this operation needs "
                    f"{' or '.join(allowed)}.",
                )
            if row["latest_operation_state"] == "OPERATING":
                raise ApiError(
                    "OperationDenied.InstanceOperationInProgress",
                    f"The instance `{row['instance_id']}` has an operation in progress.",
                )

    def start(self, call: Call, ids: Sequence[str]) -> None:
        rows = self.owned(call, ids)
        self.require_state(rows, ("STOPPED",))
        self.transition(call, rows, "StartInstances", "STARTING", "RUNNING", "instance.start")

    def stop(self, call: Call, ids: Sequence[str], mode: str) -> None:
        rows = self.owned(call, ids)
        self.require_state(rows, ("RUNNING",))
        if mode == "STOP_CHARGING" and any(r["charge_type"] != "POSTPAID_BY_HOUR" for r in rows):
            raise ApiError(
                "UnsupportedOperation.StoppedModeStopCharging",
                "No-charge shutdown is only for pay-as-you-go instances.",
            )
        for row in rows:
            self._set_details(row, StopChargingMode=mode)
        self.transition(call, rows, "StopInstances", "STOPPING", "STOPPED", "instance.stop")

    def reboot(self, call: Call, ids: Sequence[str]) -> None:
        rows = self.owned(call, ids)
        self.require_state(rows, ("RUNNING",))
        self.transition(call, rows, "RebootInstances", "REBOOTING", "RUNNING", "instance.reboot")

    def terminate(self, call: Call, ids: Sequence[str]) -> None:
        rows = self.owned(call, ids)
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
        self.require_state(rows, ("RUNNING", "STOPPED", "SHUTDOWN", "LAUNCH_FAILED"))
        to_recycle = [r for r in rows if r["charge_type"] == "PREPAID" and r["state"] != "SHUTDOWN"]
        to_destroy = [r for r in rows if r not in to_recycle]
        # A prepaid instance first goes to the recycle bin (SHUTDOWN); a second call destroys it.
        self.conn.executemany(
            "UPDATE instances SET state = 'SHUTDOWN', latest_operation = 'TerminateInstances', "
            "latest_operation_state = 'SUCCESS', latest_request_id = ? WHERE instance_id = ?",
            [(call.request_id, r["instance_id"]) for r in to_recycle],
        )
        if to_destroy:
            self.transition(call, to_destroy, "TerminateInstances", "TERMINATING", "TERMINATED", "instance.terminate")

    def reset(
        self,
        call: Call,
        instance_id: str,
        image_id: str | None,
        disk_type: str | None,
        disk_size: int | None,
        login: dict[str, Any],
        host_name: str | None,
    ) -> None:
        (row,) = self.owned(call, [instance_id])
        self.require_state([row], ("RUNNING", "STOPPED"))
        image = self.images.usable(call, image_id or row["image_id"])
        details = json.loads(row["details"])
        if (image["architecture"] == "arm") != (details.get("Architecture") == "arm"):
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
        if disk_type not in (None, system_disk["DiskType"]):
            raise ApiError("InvalidParameterValue", "`SystemDisk.DiskType` cannot change on reinstall.")
        size = disk_size or int(system_disk["DiskSize"])
        if size < int(system_disk["DiskSize"]) or size < int(image["size_gb"]):
            raise ApiError(
                "InvalidParameterValue.Range",
                f"`SystemDisk.DiskSize` can grow but not shrink below {system_disk['DiskSize']} GiB "
                f"or the image size {image['size_gb']} GiB.",
            )
        key_ids = check_login(login, image)
        check_host_name(host_name, image["platform"] == "Windows")
        system_disk["DiskSize"] = size
        renamed = {"HostName": host_name} if host_name else {}  # ResetInstance sets the host name it is given
        self._set_details(
            row,
            SystemDisk=system_disk,
            KeyIds=key_ids,
            Architecture=image["architecture"],
            Cloudinit=bool(image["cloudinit"]),
            **renamed,
        )
        # ImageId and OsName change when the reinstall completes; the instance then runs.
        self.transition(
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

    # ------------------------------------------------------------ attributes

    def _set_details(self, row: sqlite3.Row, **changes: Any) -> None:
        details = json.loads(row["details"]) | changes
        self.conn.execute(
            "UPDATE instances SET details = ? WHERE instance_id = ?", (json.dumps(details), row["instance_id"])
        )

    def modify(self, call: Call, ids: Sequence[str], attribute: str, value: Any) -> None:
        """One attribute of each instance, as ModifyInstancesAttribute changes one per call."""
        rows = self.owned(call, ids)
        for row in rows:
            if row["state"] in ("LAUNCH_FAILED", "TERMINATING", "SHUTDOWN"):
                raise ApiError(
                    invalid_state_code(row["state"]), f"The instance `{row['instance_id']}` is {row['state']}."
                )
        if attribute == "SecurityGroups":
            groups = self.emu.vpc.check_security_groups(call.account.account_id, call.region, value)
            for row in rows:
                self._set_details(row, SecurityGroupIds=list(groups))
        elif attribute == "InstanceName":
            self.conn.executemany(
                "UPDATE instances SET instance_name = ? WHERE instance_id = ?",
                [(value, r["instance_id"]) for r in rows],
            )
        elif attribute == "DisableApiTermination":
            self.conn.executemany(
                "UPDATE instances SET disable_api_termination = ? WHERE instance_id = ?",
                [(int(bool(value)), r["instance_id"]) for r in rows],
            )
        elif attribute == "CamRoleName":
            self.check_cam_role(call, value)
            for row in rows:
                self._set_details(row, CamRoleName=value)
        elif attribute == "HostName":
            for row in rows:
                check_host_name(value, row["platform"] == "Windows")
                self._set_details(row, HostName=value)
        elif attribute == "UserData":
            for row in rows:
                self._set_details(row, UserData=True)
        # An operation in progress keeps reporting itself; the change is done at once.
        self.conn.executemany(
            "UPDATE instances SET latest_operation = 'ModifyInstancesAttribute', latest_request_id = ?, "
            "latest_operation_state = 'SUCCESS' WHERE instance_id = ? AND latest_operation_state IS NOT 'OPERATING'",
            [(call.request_id, r["instance_id"]) for r in rows],
        )


def _parse_time(text: str) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ApiError("InvalidParameterValue.InvalidTimeFormat", f"{text!r} is not `YYYY-MM-DD hh:mm:ss`.") from None
