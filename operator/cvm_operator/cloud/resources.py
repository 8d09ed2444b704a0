"""Plain, immutable views of cloud resources and request pieces, independent of the SDK's models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Image types as DescribeImages reports them. There is no marketplace type (MARKET_IMAGE was dropped
# from the API in SDK 3.0.102): see CloudImage.is_marketplace.
PUBLIC_IMAGE = "PUBLIC_IMAGE"
PRIVATE_IMAGE = "PRIVATE_IMAGE"
SHARED_IMAGE = "SHARED_IMAGE"

TENCENT_CREATOR = "tencent"
"""ImageCreator of Tencent's own public images."""

# Image states.
IMAGE_CREATING = "CREATING"
IMAGE_NORMAL = "NORMAL"
IMAGE_CREATEFAILED = "CREATEFAILED"
IMAGE_SYNCING = "SYNCING"
IMAGE_IMPORTING = "IMPORTING"
IMAGE_IMPORTFAILED = "IMPORTFAILED"
IMAGE_FAILED_STATES = frozenset({IMAGE_CREATEFAILED, IMAGE_IMPORTFAILED})
IMAGE_BUSY_STATES = frozenset({IMAGE_CREATING, IMAGE_SYNCING, IMAGE_IMPORTING})

# Instance states.
INSTANCE_PENDING = "PENDING"
INSTANCE_LAUNCH_FAILED = "LAUNCH_FAILED"
INSTANCE_RUNNING = "RUNNING"
INSTANCE_STOPPED = "STOPPED"
INSTANCE_SHUTDOWN = "SHUTDOWN"
INSTANCE_TERMINATING = "TERMINATING"

# LatestOperationState values.
OPERATION_OPERATING = "OPERATING"
OPERATION_FAILED = "FAILED"


@dataclass(frozen=True)
class CloudImage:
    image_id: str
    name: str
    description: str
    type: str
    """PUBLIC_IMAGE, PRIVATE_IMAGE (custom) or SHARED_IMAGE."""
    state: str
    """CREATING, NORMAL, CREATEFAILED, SYNCING, IMPORTING or IMPORTFAILED."""
    os_name: str
    platform: str
    architecture: str
    size_gb: int | None
    source: str
    """OFFICIAL, CREATE_IMAGE or EXTERNAL_IMPORT."""
    creator: str
    """``tencent`` for Tencent's public images, else the account that made the image."""
    created_time: str | None
    sync_percent: int | None
    family: str
    deprecated: bool
    tags: dict[str, str] = field(default_factory=dict)
    license_type: str = ""

    @property
    def is_marketplace(self) -> bool:
        """A marketplace (云市场) image: public, but made by a vendor rather than Tencent.

        DescribeImages has no field for it; marketplace images are offered to every account, so the
        closest real fields are ImageType PUBLIC_IMAGE with an ImageCreator other than ``tencent``.
        An image whose creator is not reported is taken as Tencent's own."""
        return self.type == PUBLIC_IMAGE and self.creator.lower() not in ("", TENCENT_CREATOR)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CloudImage:
        return cls(
            image_id=str(data["ImageId"]),
            name=data.get("ImageName") or "",
            description=data.get("ImageDescription") or "",
            type=data.get("ImageType") or "",
            state=data.get("ImageState") or "",
            os_name=data.get("OsName") or "",
            platform=data.get("Platform") or "",
            architecture=data.get("Architecture") or "",
            size_gb=_opt_int(data.get("ImageSize")),
            source=data.get("ImageSource") or "",
            creator=data.get("ImageCreator") or "",
            created_time=data.get("CreatedTime") or None,
            sync_percent=_opt_int(data.get("SyncPercent")),
            family=data.get("ImageFamily") or "",
            deprecated=bool(data.get("ImageDeprecated")),
            tags=tags_from_api(data.get("Tags")),
            license_type=data.get("LicenseType") or "",
        )


@dataclass(frozen=True)
class CloudInstance:
    instance_id: str
    name: str
    state: str
    """PENDING, LAUNCH_FAILED, RUNNING, STOPPED, STARTING, STOPPING, REBOOTING, SHUTDOWN, TERMINATING..."""
    image_id: str
    os_name: str
    zone: str
    instance_type: str
    private_ips: tuple[str, ...]
    public_ips: tuple[str, ...]
    created_time: str | None
    tags: dict[str, str] = field(default_factory=dict)
    latest_operation: str | None = None
    """e.g. ``ResetInstance``, ``StartInstances``."""
    latest_operation_state: str | None = None
    """SUCCESS, OPERATING or FAILED."""
    latest_operation_error: str | None = None
    vpc_id: str = ""
    subnet_id: str = ""
    security_group_ids: tuple[str, ...] = ()
    data_disks: tuple[CloudDisk, ...] = ()
    system_disk: CloudDisk | None = None
    host_name: str | None = None
    """None when the cloud does not report it."""
    disable_api_termination: bool = False
    cam_role_name: str = ""
    charge_type: str = ""
    project_id: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CloudInstance:
        placement = data.get("Placement") or {}
        vpc = data.get("VirtualPrivateCloud") or {}
        system_disk = data.get("SystemDisk")
        return cls(
            instance_id=str(data["InstanceId"]),
            name=data.get("InstanceName") or "",
            state=data.get("InstanceState") or "",
            image_id=data.get("ImageId") or "",
            os_name=data.get("OsName") or "",
            zone=placement.get("Zone") or "",
            instance_type=data.get("InstanceType") or "",
            private_ips=tuple(data.get("PrivateIpAddresses") or ()),
            public_ips=tuple(data.get("PublicIpAddresses") or ()),
            created_time=data.get("CreatedTime") or None,
            tags=tags_from_api(data.get("Tags")),
            latest_operation=data.get("LatestOperation") or None,
            latest_operation_state=data.get("LatestOperationState") or None,
            latest_operation_error=data.get("LatestOperationErrorMsg") or None,
            vpc_id=vpc.get("VpcId") or "",
            subnet_id=vpc.get("SubnetId") or "",
            security_group_ids=tuple(data.get("SecurityGroupIds") or ()),
            data_disks=tuple(CloudDisk.from_api(disk) for disk in data.get("DataDisks") or ()),
            system_disk=CloudDisk.from_api(system_disk) if system_disk else None,
            host_name=data.get("HostName") or None,
            disable_api_termination=bool(data.get("DisableApiTermination")),
            cam_role_name=data.get("CamRoleName") or "",
            charge_type=data.get("InstanceChargeType") or "",
            project_id=_opt_int(placement.get("ProjectId")),
        )


@dataclass(frozen=True)
class CloudDisk:
    """A system or data disk as DescribeInstances reports it."""

    disk_id: str
    disk_type: str
    size_gb: int

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CloudDisk:
        return cls(
            disk_id=data.get("DiskId") or "",
            disk_type=data.get("DiskType") or "",
            size_gb=_opt_int(data.get("DiskSize")) or 0,
        )


@dataclass(frozen=True)
class SyncedImage:
    """One copy made by SyncImages."""

    region: str
    image_id: str


@dataclass(frozen=True)
class Region:
    region: str
    name: str
    state: str


@dataclass(frozen=True)
class Zone:
    zone: str
    name: str
    zone_id: str
    state: str


@dataclass(frozen=True)
class SystemDisk:
    disk_type: str | None = None
    """e.g. CLOUD_PREMIUM, CLOUD_SSD, CLOUD_BSSD; None for the cloud's default."""
    size_gb: int | None = None

    def to_api(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.disk_type:
            params["DiskType"] = self.disk_type
        if self.size_gb is not None:
            params["DiskSize"] = self.size_gb
        return params


@dataclass(frozen=True)
class DataDisk:
    """A data disk to buy with an instance."""

    disk_type: str
    size_gb: int
    delete_with_instance: bool = True

    def to_api(self) -> dict[str, Any]:
        return {"DiskType": self.disk_type, "DiskSize": self.size_gb, "DeleteWithInstance": self.delete_with_instance}


@dataclass(frozen=True)
class LaunchOptions:
    """RunInstances parameters beyond image, type, zone, name and tags; the defaults send nothing."""

    vpc_id: str | None = None
    subnet_id: str | None = None
    private_ip: str | None = None
    security_group_ids: tuple[str, ...] = ()
    public_ip: bool | None = None
    internet_charge_type: str | None = None
    max_bandwidth_out: int | None = None
    data_disks: tuple[DataDisk, ...] = ()
    user_data: str | None = field(default=None, repr=False)
    """Already base64-encoded; kept out of repr so it never reaches a log line."""
    charge_type: str | None = None
    spot_max_price: str | None = None
    prepaid_period: int | None = None
    prepaid_renew_flag: str | None = None
    project_id: int | None = None
    disable_api_termination: bool | None = None
    cam_role_name: str | None = None

    def to_api(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.vpc_id and self.subnet_id:
            vpc: dict[str, Any] = {"VpcId": self.vpc_id, "SubnetId": self.subnet_id}
            if self.private_ip:
                vpc["PrivateIpAddresses"] = [self.private_ip]
            params["VirtualPrivateCloud"] = vpc
        if self.security_group_ids:
            params["SecurityGroupIds"] = list(self.security_group_ids)
        internet: dict[str, Any] = {}
        if self.max_bandwidth_out is not None:
            internet["InternetMaxBandwidthOut"] = self.max_bandwidth_out
        if self.public_ip is not None:
            internet["PublicIpAssigned"] = self.public_ip
        if self.internet_charge_type:
            internet["InternetChargeType"] = self.internet_charge_type
        if internet:
            params["InternetAccessible"] = internet
        if self.data_disks:
            params["DataDisks"] = [disk.to_api() for disk in self.data_disks]
        if self.user_data is not None:
            params["UserData"] = self.user_data
        if self.charge_type:
            params["InstanceChargeType"] = self.charge_type
        if self.spot_max_price is not None:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"MaxPrice": self.spot_max_price, "SpotInstanceType": "one-time"},
            }
        if self.prepaid_period is not None:
            prepaid: dict[str, Any] = {"Period": self.prepaid_period}
            if self.prepaid_renew_flag:
                prepaid["RenewFlag"] = self.prepaid_renew_flag
            params["InstanceChargePrepaid"] = prepaid
        if self.disable_api_termination is not None:
            params["DisableApiTermination"] = self.disable_api_termination
        if self.cam_role_name:
            params["CamRoleName"] = self.cam_role_name
        return params


@dataclass(frozen=True)
class LoginSettings:
    """How to log in to a new or reset instance: a password, key pairs, or the image's own login."""

    password: str | None = field(default=None, repr=False)
    key_ids: tuple[str, ...] = ()
    keep_image_login: bool = False

    def __post_init__(self) -> None:
        chosen = sum((self.password is not None, bool(self.key_ids), self.keep_image_login))
        if chosen > 1:
            raise ValueError("LoginSettings takes only one of password, key_ids, keep_image_login")

    def to_api(self) -> dict[str, Any]:
        if self.password is not None:
            return {"Password": self.password}
        if self.key_ids:
            return {"KeyIds": list(self.key_ids)}
        if self.keep_image_login:
            return {"KeepImageLogin": "TRUE"}
        return {}


def tags_from_api(tags: Any) -> dict[str, str]:
    if not tags:
        return {}
    return {str(tag["Key"]): str(tag.get("Value") or "") for tag in tags}


def tags_to_api(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _opt_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)
