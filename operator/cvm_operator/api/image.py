"""Image: a CVM image made from an instance, imported from a URL, or an existing image observed by id or lookup."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from .common import (
    ACCOUNT_ID_PATTERN,
    API_VERSION,
    DISK_ID_PATTERN,
    IMAGE_DESCRIPTION_MAX,
    IMAGE_ID_PATTERN,
    IMAGE_NAME_MAX,
    INSTANCE_ID_PATTERN,
    REGION_PATTERN,
    BaseStatus,
    DeletionPolicy,
    LocalObjectReference,
    ObjectMeta,
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

KIND = "Image"

Architecture = Literal["x86_64", "i386", "arm_64"]
BootMode = Literal["Legacy BIOS", "UEFI"]
LicenseType = Literal["TencentCloud", "BYOL"]
# MARKET_IMAGE is not a cloud ImageType: it selects the marketplace part of PUBLIC_IMAGE (see lookup).
LookupImageType = Literal["PUBLIC_IMAGE", "MARKET_IMAGE", "SHARED_IMAGE", "PRIVATE_IMAGE"]
ImageType = Literal["Public", "Marketplace", "Custom", "Shared"]

# Cloud ImageType (DescribeImages) to the status word; Marketplace comes from CloudImage.is_marketplace.
IMAGE_TYPE_FROM_CLOUD: dict[str, ImageType] = {
    "PUBLIC_IMAGE": "Public",
    "PRIVATE_IMAGE": "Custom",
    "SHARED_IMAGE": "Shared",
}

IMAGE_FAMILY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
IMPORT_URL_PATTERN = r"^(https?|file)://.+$"

DiskId = Annotated[str, StringConstraints(pattern=DISK_ID_PATTERN)]

MSG_FROM_INSTANCE_ONE_OF = "spec.source.fromInstance: exactly one of instanceRef, instanceId must be set"
MSG_EXISTING_ONE_OF = "spec.source.existing: exactly one of imageId, lookup must be set"
MSG_LOOKUP_CRITERIA = "spec.source.existing.lookup: at least one of name, platform, family must be set"
MSG_LOOKUP_OWNER_REQUIRED = (
    "spec.source.existing.lookup.ownerAccountId: required for SHARED_IMAGE lookups "
    "(any account can share an image of the same name)"
)
MSG_LOOKUP_OWNER_ONLY_SHARED = "spec.source.existing.lookup.ownerAccountId: may be set only for SHARED_IMAGE lookups"
MSG_SOURCE_ONE_OF = "spec.source: exactly one of fromInstance, fromImport, existing must be set"
MSG_EXISTING_ATTRIBUTES = (
    "spec.source.existing: cannot be combined with spec.imageName, spec.description, spec.family, "
    "spec.tags or spec.deprecated (an existing image is only observed, never changed)"
)


class FromInstanceSource(SpecModel):
    """Make a custom image from an instance (a backup of a working environment) with CreateImage."""

    model_config = with_rules(cel("has(self.instanceRef) != has(self.instanceId)", MSG_FROM_INSTANCE_ONE_OF))

    instance_ref: LocalObjectReference | None = Field(
        default=None,
        description="An Instance object in this namespace; the image is made once it has an instance id.",
    )
    instance_id: str | None = Field(
        default=None,
        pattern=INSTANCE_ID_PATTERN,
        description="Id of any instance of the account in spec.region, e.g. ins-1vogaxgk.",
    )
    force_poweroff: bool = Field(
        default=False,
        description=(
            "Shut the instance down before imaging it. Without it the image is taken while the instance "
            "runs, which risks data not yet written to disk."
        ),
    )
    sysprep: bool = Field(default=False, description="Run Sysprep before imaging (Windows instances only).")
    data_disk_ids: list[DiskId] = Field(
        default_factory=list,
        max_length=21,
        description="Data disks of the instance to include (a whole-machine image), e.g. disk-0a1b2c3d.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @field_validator("data_disk_ids")
    @classmethod
    def _disks_are_a_set(cls, value: list[str]) -> list[str]:
        return unique(value, "spec.source.fromInstance.dataDiskIds")

    @model_validator(mode="after")
    def _one_instance(self) -> Self:
        if (self.instance_ref is None) == (self.instance_id is None):
            raise ValueError(MSG_FROM_INSTANCE_ONE_OF)
        return self


class FromImportSource(SpecModel):
    """Import a custom image from an external disk file (qcow2, VHD, VMDK, raw; ISO needs force) with ImportImage."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        pattern=IMPORT_URL_PATTERN,
        description="Where the disk file is fetched from: an http, https or file URL.",
    )
    os_type: str = Field(
        min_length=1,
        max_length=64,
        description="Operating system of the disk, as listed by DescribeImportImageOs, e.g. CentOS or Ubuntu.",
    )
    os_version: str = Field(
        min_length=1,
        max_length=64,
        description='Operating system version, as listed by DescribeImportImageOs, e.g. "7" or "22.04".',
    )
    architecture: Architecture = Field(
        default="x86_64", description="CPU architecture of the disk: x86_64, i386 or arm_64."
    )
    boot_mode: BootMode = Field(default="Legacy BIOS", description='Boot mode: "Legacy BIOS" or UEFI.')
    license_type: LicenseType = Field(
        default="TencentCloud",
        description="TencentCloud (licences provided by the cloud) or BYOL (bring your own licence).",
    )
    force: bool = Field(default=False, description="Skip the image checks; required to import ISO files.")


class ImageLookup(SpecModel):
    """Criteria selecting the newest usable image (state NORMAL, not deprecated) that matches all of them."""

    model_config = with_rules(
        cel("has(self.name) || has(self.platform) || has(self.family)", MSG_LOOKUP_CRITERIA),
        cel("self.imageType != 'SHARED_IMAGE' || has(self.ownerAccountId)", MSG_LOOKUP_OWNER_REQUIRED),
        cel("self.imageType == 'SHARED_IMAGE' || !has(self.ownerAccountId)", MSG_LOOKUP_OWNER_ONLY_SHARED),
    )

    image_type: LookupImageType = Field(
        description=(
            "Image type to search: PUBLIC_IMAGE (Tencent's own public images), MARKET_IMAGE (marketplace "
            "images: public images made by a vendor, i.e. ImageCreator other than tencent), SHARED_IMAGE "
            "or PRIVATE_IMAGE."
        )
    )
    name: str | None = Field(default=None, min_length=1, max_length=IMAGE_NAME_MAX, description="Exact image name.")
    platform: str | None = Field(
        default=None, min_length=1, max_length=64, description="Operating system platform, e.g. Ubuntu or CentOS."
    )
    family: str | None = Field(
        default=None,
        min_length=1,
        max_length=IMAGE_NAME_MAX,
        pattern=IMAGE_FAMILY_PATTERN,
        description=(
            "Image family. The newest usable image of the family is chosen, so an Image following a family "
            "moves to each new image made in it (e.g. by an ImageSchedule)."
        ),
    )
    owner_account_id: str | None = Field(
        default=None,
        pattern=ACCOUNT_ID_PATTERN,
        description=(
            "Root account id of the account that owns and shares the image; required for SHARED_IMAGE lookups "
            "and only allowed there, so that an image of the same name shared by another account is never chosen."
        ),
    )

    @model_validator(mode="after")
    def _some_criteria(self) -> Self:
        if self.name is None and self.platform is None and self.family is None:
            raise ValueError(MSG_LOOKUP_CRITERIA)
        if self.image_type == "SHARED_IMAGE" and self.owner_account_id is None:
            raise ValueError(MSG_LOOKUP_OWNER_REQUIRED)
        if self.image_type != "SHARED_IMAGE" and self.owner_account_id is not None:
            raise ValueError(MSG_LOOKUP_OWNER_ONLY_SHARED)
        return self


class ExistingImageSource(SpecModel):
    """Observe an image that already exists (public, marketplace, shared or custom); it is never changed or deleted."""

    model_config = with_rules(cel("has(self.imageId) != has(self.lookup)", MSG_EXISTING_ONE_OF))

    image_id: str | None = Field(
        default=None, pattern=IMAGE_ID_PATTERN, description="Id of the image in spec.region, e.g. img-487zeit5."
    )
    lookup: ImageLookup | None = Field(
        default=None,
        description=(
            "Find the image by type, name, platform or family instead of by id: the newest match in state "
            "NORMAL that is not deprecated. status.imageId follows newer matches (an Event names the switch)."
        ),
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.image_id is None) == (self.lookup is None):
            raise ValueError(MSG_EXISTING_ONE_OF)
        return self


class ImageSource(SpecModel):
    """Where the image comes from: exactly one member. Immutable."""

    model_config = with_rules(
        cel(
            "[has(self.fromInstance), has(self.fromImport), has(self.existing)].filter(x, x).size() == 1",
            MSG_SOURCE_ONE_OF,
        ),
        immutable("spec.source"),
    )

    from_instance: FromInstanceSource | None = Field(
        default=None, description="Make a custom image from an instance (backup of an environment)."
    )
    from_import: FromImportSource | None = Field(
        default=None, description="Import a custom image from an external disk file."
    )
    existing: ExistingImageSource | None = Field(
        default=None,
        description="Observe an existing public, marketplace, shared or custom image; never changed or deleted.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(member is not None for member in (self.from_instance, self.from_import, self.existing)) != 1:
            raise ValueError(MSG_SOURCE_ONE_OF)
        return self


class ImageSpec(SpecModel):
    """Desired state of an Image."""

    model_config = with_rules(
        cel(
            "!has(self.source.existing) || (!has(self.imageName) && !has(self.description) && "
            "!has(self.family) && !has(self.tags) && !self.deprecated)",
            MSG_EXISTING_ATTRIBUTES,
        )
    )

    region: str = Field(
        min_length=1,
        max_length=40,
        pattern=REGION_PATTERN,
        description="Tencent Cloud region of the image, e.g. ap-guangzhou. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.region")]},
    )
    image_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=IMAGE_NAME_MAX,
        description=(
            f"Name of the image in the cloud, at most {IMAGE_NAME_MAX} characters and unique in the account. "
            "Default: metadata.name. Kept in sync."
        ),
    )
    description: str | None = Field(
        default=None,
        max_length=IMAGE_DESCRIPTION_MAX,
        description=f"Image description, at most {IMAGE_DESCRIPTION_MAX} characters. Kept in sync.",
    )
    family: str | None = Field(
        default=None,
        min_length=1,
        max_length=IMAGE_NAME_MAX,
        pattern=IMAGE_FAMILY_PATTERN,
        description="Image family, so that the newest image of a family can be found. Kept in sync.",
    )
    deprecated: bool = Field(
        default=False, description="Mark the image deprecated so that it is not chosen for new instances."
    )
    tags: Tags = Field(default_factory=dict, description="Cloud tags of the image (key to value). Kept in sync.")
    source: ImageSource = Field(description="Where the image comes from: exactly one member. Immutable.")
    deletion_policy: DeletionPolicy = Field(
        default="Delete",
        description=(
            "Delete: delete the cloud image when this object is deleted (after its shares are gone). "
            "Retain: keep it. Images from source.existing are never deleted."
        ),
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the Tencent Cloud credentials to use; default: the operator's credentials.",
    )

    @model_validator(mode="after")
    def _existing_is_observed_only(self) -> Self:
        if self.source.existing is not None and (
            self.image_name is not None
            or self.description is not None
            or self.family is not None
            or "tags" in self.model_fields_set
            or self.deprecated
        ):
            raise ValueError(MSG_EXISTING_ATTRIBUTES)
        return self


class ImageStatus(BaseStatus):
    """Observed state of an Image."""

    image_id: str | None = Field(default=None, description="Cloud id of the image, e.g. img-487zeit5.")
    image_name: str | None = Field(default=None, description="Name of the image in the cloud.")
    image_type: ImageType | None = Field(default=None, description="Public, Marketplace, Custom or Shared.")
    os_name: str | None = Field(default=None, description="Operating system name, e.g. Ubuntu Server 22.04 LTS 64位.")
    platform: str | None = Field(default=None, description="Operating system platform, e.g. Ubuntu.")
    architecture: str | None = Field(default=None, description="CPU architecture, e.g. x86_64.")
    size_gb: int | None = Field(default=None, ge=0, alias="sizeGB", description="Image size in GiB.")
    image_source: str | None = Field(
        default=None, description="How the cloud says the image was made, e.g. OFFICIAL, CREATE_IMAGE, IMPORT_IMAGE."
    )
    owner: str | None = Field(
        default=None, description="Account that owns the image (the cloud's ImageCreator; tencent for public images)."
    )
    created_time: str | None = Field(default=None, description="When the image was created (RFC 3339).")
    progress: int | None = Field(
        default=None, ge=0, le=100, description="Percent done while creating, importing or copying."
    )


class Image(WireModel):
    """A CVM image managed or observed by the operator."""

    api_version: str = Field(default=API_VERSION, description="cvm.operator.dev/v1alpha1")
    kind: str = Field(default=KIND, description="Image")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ImageSpec = Field(description="Desired state.")
    status: ImageStatus = Field(default_factory=ImageStatus, description="Observed state.")


def check_image_update(old: ImageSpec, new: ImageSpec) -> list[str]:
    """What the API server's transition rules refuse when `old` is changed into `new`."""
    check = UpdateCheck()
    check.same(old.region, new.region, "spec.region")
    check.same(old.source, new.source, "spec.source")
    return check.errors
