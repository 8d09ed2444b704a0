"""Instance: a CVM instance launched from an image, kept running or stopped, optionally reinstalled on image change.

The launch settings (network, public address, data disks, user data, billing, ...) are shared with the
InstanceSet template through :class:`LaunchSettings`. What the cloud can change on a running instance
(security groups, name, termination protection, tags, stop mode) may change; what it cannot is refused at
admission by transition rules, whose messages name the field.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, field_validator, model_validator
from pydantic.config import JsonDict

from .common import (
    API_VERSION,
    IMAGE_ID_PATTERN,
    KEY_ID_PATTERN,
    OBJECT_NAME_PATTERN,
    REGION_PATTERN,
    SECRET_KEY_PATTERN,
    ZONE_PATTERN,
    BaseStatus,
    DeletionPolicy,
    LocalObjectReference,
    ObjectMeta,
    SecretKeyReference,
    SecretReference,
    SpecModel,
    Tags,
    UpdateCheck,
    WireModel,
    cel,
    immutable,
    unique,
    with_rules,
)

KIND = "Instance"

DiskType = Literal["CLOUD_BASIC", "CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_BSSD"]
DataDiskType = Literal["CLOUD_BASIC", "CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_BSSD", "CLOUD_HSSD", "CLOUD_TSSD"]
RunState = Literal["Running", "Stopped"]
ReimagePolicy = Literal["Never", "OnImageChange"]
ChargeType = Literal["POSTPAID_BY_HOUR", "SPOTPAID", "PREPAID"]
# InternetAccessible.InternetChargeType in the SDK's models.
InternetChargeType = Literal[
    "TRAFFIC_POSTPAID_BY_HOUR", "BANDWIDTH_POSTPAID_BY_HOUR", "BANDWIDTH_PACKAGE", "BANDWIDTH_PREPAID"
]
RenewFlag = Literal["NOTIFY_AND_AUTO_RENEW", "NOTIFY_AND_MANUAL_RENEW", "DISABLE_NOTIFY_AND_MANUAL_RENEW"]
PrepaidPeriod = Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36, 48, 60]
StopMode = Literal["KEEP_CHARGING", "STOP_CHARGING"]

# Instance types look like S5.MEDIUM2, SA5.MEDIUM4, S5.16XLARGE256, GNV4v.4XLARGE64.
INSTANCE_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9]*\.[A-Z0-9]+$"
# Dot-separated segments of letters, digits and single hyphens (Linux rules; Windows allows 2..15).
HOST_NAME_PATTERN = r"^[A-Za-z0-9]+([.-][A-Za-z0-9]+)*$"
VPC_ID_PATTERN = r"^vpc-[a-z0-9]{8}$"
SUBNET_ID_PATTERN = r"^subnet-[a-z0-9]{8}$"
SECURITY_GROUP_ID_PATTERN = r"^sg-[a-z0-9]{8}$"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4_PATTERN = rf"^({_OCTET}\.){{3}}{_OCTET}$"
PRICE_PATTERN = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"
CAM_ROLE_PATTERN = r"^[A-Za-z0-9+=,.@_-]{1,128}$"
USER_DATA_MAX = 16 * 1024
"""Most bytes of user data the cloud takes, counted after base64 encoding."""
MAX_SECURITY_GROUPS = 5
MAX_DATA_DISKS = 20

KeyId = Annotated[str, StringConstraints(pattern=KEY_ID_PATTERN)]
SecurityGroupId = Annotated[str, StringConstraints(pattern=SECURITY_GROUP_ID_PATTERN)]

MSG_LOGIN_ONE_OF = "spec.loginSettings: exactly one of keyIds, passwordSecretRef, keepImageLogin must be set"
MSG_KEEP_IMAGE_LOGIN_TRUE = (
    "spec.loginSettings.keepImageLogin: must be true when set (omit it and use keyIds or passwordSecretRef)"
)
MSG_IMAGE_ONE_OF = "spec.imageRef: exactly one of imageRef, imageId must be set"
MSG_ZONE_IN_REGION = "spec.zone: must be a zone of spec.region (<region>-<n>)"
MSG_DISK_SHRINK = "spec.systemDisk.sizeGB: cannot shrink"
MSG_VPC_WITH_SUBNET = "spec.network.subnetId: vpcId and subnetId go together (both, or neither for the default VPC)"
MSG_IP_NEEDS_SUBNET = "spec.network.privateIpAddress: needs subnetId (the address is one of that subnet)"
MSG_PUBLIC_IP_BANDWIDTH = "spec.internet.maxBandwidthOutMbps: must be above 0 when publicIp is true"
MSG_USER_DATA_ONE_OF = "spec.userData: exactly one of secretRef, configMapRef must be set"
MSG_SPOT_ONLY = "spec.spot: only with chargeType SPOTPAID"
MSG_PREPAID_ONLY = "spec.prepaid: required with chargeType PREPAID, and only then"
MSG_STOP_CHARGING = "spec.stopMode: STOP_CHARGING applies to chargeType POSTPAID_BY_HOUR only"


def cannot_change(path: str) -> str:
    return f"{path} is immutable: the cloud cannot change it on an existing instance"


def _present(root: str, path: str) -> str:
    """CEL: the optional field ``path`` (and every field above it) is set under ``root`` (self or oldSelf)."""
    parts = path.split(".")
    return " && ".join(f"has({root}.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))


def unchanged(path: str, *, prefix: str = "spec") -> JsonDict:
    """A transition rule on the spec: the optional field ``path`` is neither added, removed nor changed."""
    now, before = _present("self", path), _present("oldSelf", path)
    return cel(
        f"({now}) == ({before}) && (!({now}) || self.{path} == oldSelf.{path})",
        cannot_change(f"{prefix}.{path}"),
        field_path="." + path,
    )


# Launch settings the cloud cannot change once the instance exists (ResetInstance and
# ModifyInstancesAttribute take none of them).
IMMUTABLE_LAUNCH_FIELDS = (
    "network.vpcId",
    "network.subnetId",
    "network.privateIpAddress",
    "internet",
    "dataDisks",
    "userData",
    "chargeType",
    "spot",
    "prepaid",
    "projectId",
    "camRoleName",
)


class SystemDisk(SpecModel):
    """The system disk of the instance."""

    disk_type: DiskType = Field(
        default="CLOUD_PREMIUM",
        description="CLOUD_BASIC, CLOUD_PREMIUM, CLOUD_SSD or CLOUD_BSSD. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.systemDisk.diskType")]},
    )
    size_gb: int = Field(
        default=50,
        ge=20,
        le=1024,
        alias="sizeGB",
        description="Size in GiB, 20 to 1024. It can grow (applied when the instance is reinstalled), not shrink.",
        json_schema_extra={"x-kubernetes-validations": [cel("self >= oldSelf", MSG_DISK_SHRINK)]},
    )


class LoginSettings(SpecModel):
    """How to log in to the instance: exactly one member."""

    model_config = with_rules(
        cel(
            "[has(self.keyIds), has(self.passwordSecretRef), has(self.keepImageLogin)].filter(x, x).size() == 1",
            MSG_LOGIN_ONE_OF,
        ),
        cel("!has(self.keepImageLogin) || self.keepImageLogin", MSG_KEEP_IMAGE_LOGIN_TRUE),
    )

    key_ids: list[KeyId] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="SSH key pair ids, e.g. skey-3glfot13 (Linux only).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    password_secret_ref: SecretKeyReference | None = Field(
        default=None,
        description=(
            "Secret key holding the login password (Linux: 8 to 30 characters of at least 2 classes; "
            "Windows: 12 to 30 of at least 3)."
        ),
    )
    keep_image_login: bool | None = Field(
        default=None,
        description="Keep the login settings of the image (custom, shared or imported images only). Must be true.",
    )

    @field_validator("key_ids")
    @classmethod
    def _keys_are_a_set(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else unique(value, "spec.loginSettings.keyIds")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        members = (self.key_ids, self.password_secret_ref, self.keep_image_login)
        if sum(member is not None for member in members) != 1:
            raise ValueError(MSG_LOGIN_ONE_OF)
        if self.keep_image_login is False:
            raise ValueError(MSG_KEEP_IMAGE_LOGIN_TRUE)
        return self


class Network(SpecModel):
    """The VPC, subnet and security groups of the instance's primary network interface."""

    model_config = with_rules(
        cel("has(self.vpcId) == has(self.subnetId)", MSG_VPC_WITH_SUBNET),
        cel("!has(self.privateIpAddress) || has(self.subnetId)", MSG_IP_NEEDS_SUBNET),
    )

    vpc_id: str | None = Field(
        default=None,
        pattern=VPC_ID_PATTERN,
        description="VPC id, e.g. vpc-2x7lhtse, with subnetId; both omitted: the account's default VPC. Immutable.",
    )
    subnet_id: str | None = Field(
        default=None,
        pattern=SUBNET_ID_PATTERN,
        description="Subnet id in spec.zone, e.g. subnet-d9azpyl8, with vpcId. Immutable.",
    )
    security_group_ids: list[SecurityGroupId] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SECURITY_GROUPS,
        description=(
            "Security groups, first the highest priority, e.g. sg-5ujzw3i2; omitted: the project's default group. "
            "Kept in sync: groups changed in the cloud are put back."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    private_ip_address: str | None = Field(
        default=None,
        pattern=IPV4_PATTERN,
        description="Primary private IPv4 address, one of the subnet's; omitted: the cloud picks one. Immutable.",
    )

    @field_validator("security_group_ids")
    @classmethod
    def _groups_are_a_set(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else unique(value, "spec.network.securityGroupIds")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.vpc_id is None) != (self.subnet_id is None):
            raise ValueError(MSG_VPC_WITH_SUBNET)
        if self.private_ip_address is not None and self.subnet_id is None:
            raise ValueError(MSG_IP_NEEDS_SUBNET)
        return self


class Internet(SpecModel):
    """Public network access of the instance."""

    model_config = with_rules(cel("!self.publicIp || self.maxBandwidthOutMbps > 0", MSG_PUBLIC_IP_BANDWIDTH))

    public_ip: bool = Field(
        default=False,
        description="Assign a public IPv4 address (shown in status.publicIpAddresses); needs maxBandwidthOutMbps.",
    )
    charge_type: InternetChargeType | None = Field(
        default=None,
        description=(
            "TRAFFIC_POSTPAID_BY_HOUR, BANDWIDTH_POSTPAID_BY_HOUR, BANDWIDTH_PACKAGE or BANDWIDTH_PREPAID; "
            "omitted: the cloud follows spec.chargeType."
        ),
    )
    max_bandwidth_out_mbps: int = Field(
        default=0,
        ge=0,
        le=10000,
        description="Outbound public bandwidth limit in Mbps (0: none).",
    )

    @model_validator(mode="after")
    def _bandwidth(self) -> Self:
        if self.public_ip and self.max_bandwidth_out_mbps <= 0:
            raise ValueError(MSG_PUBLIC_IP_BANDWIDTH)
        return self


class DataDisk(SpecModel):
    """A cloud disk bought with the instance."""

    disk_type: DataDiskType = Field(
        default="CLOUD_PREMIUM",
        description="CLOUD_BASIC, CLOUD_PREMIUM, CLOUD_SSD, CLOUD_BSSD, CLOUD_HSSD or CLOUD_TSSD.",
    )
    size_gb: int = Field(alias="sizeGB", ge=10, le=32000, description="Size in GiB, 10 to 32000.")
    delete_with_instance: bool = Field(
        default=True, description="Delete the disk with the instance (false: it stays in the account)."
    )


class ConfigMapKeyReference(SpecModel):
    """One key of a ConfigMap in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME_PATTERN,
        description="Name of the ConfigMap in the same namespace.",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY_PATTERN,
        description="Key inside the ConfigMap's data (or binaryData) whose value is used.",
    )


class UserData(SpecModel):
    """Where the user data (e.g. a cloud-init file) is: exactly one member."""

    model_config = with_rules(cel("has(self.secretRef) != has(self.configMapRef)", MSG_USER_DATA_ONE_OF))

    secret_ref: SecretKeyReference | None = Field(default=None, description="A key of a Secret in this namespace.")
    config_map_ref: ConfigMapKeyReference | None = Field(
        default=None, description="A key of a ConfigMap in this namespace."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError(MSG_USER_DATA_ONE_OF)
        return self


class Spot(SpecModel):
    """Spot (SPOTPAID) bidding."""

    max_price: str = Field(
        pattern=PRICE_PATTERN,
        max_length=13,
        description='Highest hourly price to pay, a decimal such as "0.5" (the account\'s currency).',
    )


class Prepaid(SpecModel):
    """Monthly subscription (PREPAID) terms."""

    period: PrepaidPeriod = Field(
        description="Months bought: 1 to 12, 24, 36, 48 or 60.",
    )
    renew_flag: RenewFlag = Field(
        default="NOTIFY_AND_MANUAL_RENEW",
        description="NOTIFY_AND_AUTO_RENEW, NOTIFY_AND_MANUAL_RENEW or DISABLE_NOTIFY_AND_MANUAL_RENEW.",
    )


def _launch_rules() -> tuple[JsonDict, ...]:
    return (
        cel("self.chargeType == 'SPOTPAID' || !has(self.spot)", MSG_SPOT_ONLY, field_path=".spot"),
        cel("(self.chargeType == 'PREPAID') == has(self.prepaid)", MSG_PREPAID_ONLY, field_path=".prepaid"),
        cel(
            "!has(self.stopMode) || self.stopMode != 'STOP_CHARGING' || self.chargeType == 'POSTPAID_BY_HOUR'",
            MSG_STOP_CHARGING,
            field_path=".stopMode",
        ),
    )


class LaunchSettings(SpecModel):
    """The settings of a launch beyond image, type and place: shared by Instance and the InstanceSet template."""

    network: Network | None = Field(
        default=None,
        description="VPC, subnet, security groups and private address; omitted: the default VPC and security group.",
    )
    internet: Internet | None = Field(
        default=None, description="Public IP address and bandwidth; omitted: no public access. Immutable."
    )
    data_disks: list[DataDisk] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_DATA_DISKS,
        description="Cloud data disks bought with the instance (at most 20). Immutable.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    user_data: UserData | None = Field(
        default=None,
        description=(
            f"User data (e.g. cloud-init) from a Secret or ConfigMap key, at most {USER_DATA_MAX} bytes after "
            "base64; read at launch and reinstall, never shown in status, events or logs. Immutable."
        ),
    )
    charge_type: ChargeType = Field(
        default="POSTPAID_BY_HOUR",
        description="POSTPAID_BY_HOUR, SPOTPAID (with spot) or PREPAID (with prepaid). Immutable.",
    )
    spot: Spot | None = Field(default=None, description="Spot bidding, with chargeType SPOTPAID. Immutable.")
    prepaid: Prepaid | None = Field(
        default=None, description="Subscription period and renewal, with chargeType PREPAID. Immutable."
    )
    project_id: int | None = Field(
        default=None, ge=0, description="Cloud project id; omitted: the default project (0). Immutable."
    )
    disable_api_termination: bool = Field(
        default=False,
        description=(
            "Termination protection: the cloud refuses to terminate the instance through the API. Kept in sync; "
            "while true, deleting the object with deletionPolicy Delete waits."
        ),
    )
    cam_role_name: str | None = Field(
        default=None,
        pattern=CAM_ROLE_PATTERN,
        description="CAM role the instance assumes (its metadata service hands out the role's keys). Immutable.",
    )
    stop_mode: StopMode | None = Field(
        default=None,
        description=(
            "KEEP_CHARGING or STOP_CHARGING (pay-as-you-go only): how the instance is stopped when runState is "
            "Stopped; omitted: the cloud's default, KEEP_CHARGING."
        ),
    )

    @model_validator(mode="after")
    def _billing(self) -> Self:
        if self.spot is not None and self.charge_type != "SPOTPAID":
            raise ValueError(MSG_SPOT_ONLY)
        if (self.prepaid is not None) != (self.charge_type == "PREPAID"):
            raise ValueError(MSG_PREPAID_ONLY)
        if self.stop_mode == "STOP_CHARGING" and self.charge_type != "POSTPAID_BY_HOUR":
            raise ValueError(MSG_STOP_CHARGING)
        return self


LAUNCH_RULES = _launch_rules()


class InstanceSpec(LaunchSettings):
    """Desired state of an Instance."""

    model_config = with_rules(
        cel("has(self.imageRef) != has(self.imageId)", MSG_IMAGE_ONE_OF),
        cel("self.zone.startsWith(self.region + '-')", MSG_ZONE_IN_REGION, field_path=".zone"),
        *LAUNCH_RULES,
        *(unchanged(path) for path in IMMUTABLE_LAUNCH_FIELDS),
    )

    region: str = Field(
        min_length=1,
        max_length=40,
        pattern=REGION_PATTERN,
        description="Tencent Cloud region of the instance, e.g. ap-guangzhou. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.region")]},
    )
    zone: str = Field(
        min_length=1,
        max_length=48,
        pattern=ZONE_PATTERN,
        description="Availability zone in spec.region, e.g. ap-guangzhou-3. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.zone")]},
    )
    instance_type: str = Field(
        min_length=3,
        max_length=64,
        pattern=INSTANCE_TYPE_PATTERN,
        description="Instance type, e.g. S5.MEDIUM2. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.instanceType")]},
    )
    image_ref: LocalObjectReference | None = Field(
        default=None,
        description="An Image object in this namespace; the instance waits until it is Ready.",
    )
    image_id: str | None = Field(
        default=None,
        pattern=IMAGE_ID_PATTERN,
        description=(
            "Id of any image usable in spec.region (public, marketplace, custom or shared), instead of imageRef."
        ),
    )
    instance_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description=(
            "Name of the instance in the cloud, at most 128 characters. Default: metadata.name. Kept in sync "
            "(ModifyInstancesAttribute)."
        ),
    )
    host_name: str | None = Field(
        default=None,
        min_length=2,
        max_length=60,
        pattern=HOST_NAME_PATTERN,
        description=(
            "Host name of the operating system, 2 to 60 characters (Windows: 2 to 15). Applied at creation "
            "and when the instance is reinstalled; until then a change is reported in the SpecApplied condition."
        ),
    )
    system_disk: SystemDisk = Field(
        default_factory=SystemDisk,
        description=(
            "System disk type and size. A larger size is applied when the instance is reinstalled; until then "
            "it is reported in the SpecApplied condition."
        ),
        json_schema_extra={"default": {}},
    )
    login_settings: LoginSettings | None = Field(
        default=None,
        description=(
            "How to log in: exactly one of keyIds, passwordSecretRef, keepImageLogin; omitted: the cloud sets a "
            "random password. Applied at creation and when the instance is reinstalled."
        ),
    )
    run_state: RunState = Field(default="Running", description="Running or Stopped: the power state to keep.")
    reimage_policy: ReimagePolicy = Field(
        default="Never",
        description=(
            "Never: an image change is reported, not applied. OnImageChange: reinstall the instance "
            "(ResetInstance) from the new image; the system disk is formatted."
        ),
    )
    tags: Tags = Field(default_factory=dict, description="Cloud tags of the instance (key to value).")
    deletion_policy: DeletionPolicy = Field(
        default="Delete",
        description="Delete: terminate the instance when this object is deleted. Retain: keep it running.",
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the Tencent Cloud credentials to use; default: the operator's credentials.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.image_ref is None) == (self.image_id is None):
            raise ValueError(MSG_IMAGE_ONE_OF)
        if not self.zone.startswith(self.region + "-"):
            raise ValueError(MSG_ZONE_IN_REGION)
        return self


class AttachedDisk(WireModel):
    """A data disk as the cloud reports it."""

    disk_id: str = Field(description="Cloud disk id, e.g. disk-4q4aj0ve.")
    disk_type: str = Field(default="", description="Disk type, e.g. CLOUD_PREMIUM.")
    size_gb: int = Field(default=0, alias="sizeGB", ge=0, description="Size in GiB.")


class InstanceStatus(BaseStatus):
    """Observed state of an Instance."""

    instance_id: str | None = Field(default=None, description="Cloud id of the instance, e.g. ins-1vogaxgk.")
    zone: str | None = Field(default=None, description="Zone the instance runs in.")
    image_id: str | None = Field(
        default=None, description="Id of the image the instance was launched or reinstalled from."
    )
    os_name: str | None = Field(default=None, description="Operating system name.")
    private_ip_addresses: list[str] = Field(
        default_factory=list,
        description="Private IP addresses.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    public_ip_addresses: list[str] = Field(
        default_factory=list,
        description="Public IP addresses.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    created_time: str | None = Field(default=None, description="When the instance was created (RFC 3339).")
    vpc_id: str | None = Field(default=None, description="VPC of the primary network interface.")
    subnet_id: str | None = Field(default=None, description="Subnet of the primary network interface.")
    security_group_ids: list[str] = Field(
        default_factory=list,
        description="Security groups bound to the instance, first the highest priority.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    data_disks: list[AttachedDisk] = Field(
        default_factory=list,
        description="Data disks of the instance.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )


class Instance(WireModel):
    """A CVM instance."""

    api_version: str = Field(default=API_VERSION, description="cvm.operator.dev/v1alpha1")
    kind: str = Field(default=KIND, description="Instance")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: InstanceSpec = Field(description="Desired state.")
    status: InstanceStatus = Field(default_factory=InstanceStatus, description="Observed state.")


def check_instance_update(old: InstanceSpec, new: InstanceSpec) -> list[str]:
    """What the API server's transition rules refuse when `old` is changed into `new`."""
    check = UpdateCheck()
    check.same(old.region, new.region, "spec.region")
    check.same(old.zone, new.zone, "spec.zone")
    check.same(old.instance_type, new.instance_type, "spec.instanceType")
    check.same(old.system_disk.disk_type, new.system_disk.disk_type, "spec.systemDisk.diskType")
    if new.system_disk.size_gb < old.system_disk.size_gb:
        check.fail(MSG_DISK_SHRINK)
    check.errors.extend(launch_changes(old, new))
    return check.errors


def launch_value(spec: LaunchSettings, path: str) -> object:
    """The wire value of a launch field by its camelCase path (None when unset)."""
    value: object = spec.to_wire()
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def launch_changes(old: LaunchSettings, new: LaunchSettings, prefix: str = "spec") -> list[str]:
    """Messages of the launch fields that changed although the cloud cannot change them."""
    return [
        cannot_change(f"{prefix}.{path}")
        for path in IMMUTABLE_LAUNCH_FIELDS
        if launch_value(old, path) != launch_value(new, path)
    ]
