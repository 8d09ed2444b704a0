"""Instance: a CVM instance launched from an image, kept running or stopped, optionally reinstalled on image change."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from .common import (
    API_VERSION,
    IMAGE_ID_PATTERN,
    KEY_ID_PATTERN,
    REGION_PATTERN,
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
RunState = Literal["Running", "Stopped"]
ReimagePolicy = Literal["Never", "OnImageChange"]

# Instance types look like S5.MEDIUM2, SA5.MEDIUM4, S5.16XLARGE256, GNV4v.4XLARGE64.
INSTANCE_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9]*\.[A-Z0-9]+$"
# Dot-separated segments of letters, digits and single hyphens (Linux rules; Windows allows 2..15).
HOST_NAME_PATTERN = r"^[A-Za-z0-9]+([.-][A-Za-z0-9]+)*$"

KeyId = Annotated[str, StringConstraints(pattern=KEY_ID_PATTERN)]

MSG_LOGIN_ONE_OF = "spec.loginSettings: exactly one of keyIds, passwordSecretRef, keepImageLogin must be set"
MSG_KEEP_IMAGE_LOGIN_TRUE = (
    "spec.loginSettings.keepImageLogin: must be true when set (omit it and use keyIds or passwordSecretRef)"
)
MSG_IMAGE_ONE_OF = "spec.imageRef: exactly one of imageRef, imageId must be set"
MSG_ZONE_IN_REGION = "spec.zone: must be a zone of spec.region (<region>-<n>)"
MSG_DISK_SHRINK = "spec.systemDisk.sizeGB: cannot shrink"


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


class InstanceSpec(SpecModel):
    """Desired state of an Instance."""

    model_config = with_rules(
        cel("has(self.imageRef) != has(self.imageId)", MSG_IMAGE_ONE_OF),
        cel("self.zone.startsWith(self.region + '-')", MSG_ZONE_IN_REGION, field_path=".zone"),
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
        description="Name of the instance in the cloud, at most 128 characters. Default: metadata.name.",
    )
    host_name: str | None = Field(
        default=None,
        min_length=2,
        max_length=60,
        pattern=HOST_NAME_PATTERN,
        description=(
            "Host name of the operating system, 2 to 60 characters (Windows: 2 to 15). Applied at creation "
            "and when the instance is reinstalled."
        ),
    )
    system_disk: SystemDisk = Field(
        default_factory=SystemDisk,
        description="System disk type and size.",
        json_schema_extra={"default": {}},
    )
    login_settings: LoginSettings = Field(
        description=(
            "How to log in: exactly one of keyIds, passwordSecretRef, keepImageLogin. Applied at creation "
            "and when the instance is reinstalled."
        )
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
    return check.errors
