"""ImageCopy: copy a custom image to other regions of the same account (SyncImages)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from .common import (
    API_VERSION,
    IMAGE_ID_PATTERN,
    IMAGE_NAME_MAX,
    REGION_PATTERN,
    BaseStatus,
    DeletionPolicy,
    LocalObjectReference,
    ObjectMeta,
    SecretReference,
    SpecModel,
    UpdateCheck,
    WireModel,
    cel,
    immutable,
    unique,
    with_rules,
)

KIND = "ImageCopy"
MAX_DESTINATION_REGIONS = 50

RegionId = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=REGION_PATTERN)]

MSG_SOURCE_ONE_OF = "spec.sourceRef: exactly one of sourceRef, sourceImageId must be set"
MSG_SOURCE_REGION = "spec.sourceRegion: must be set together with spec.sourceImageId, and only with it"
MSG_SOURCE_IMMUTABLE = "spec.sourceRef: the source (sourceRef, or sourceImageId and sourceRegion) is immutable"
MSG_KMS_NEEDS_ENCRYPT = "spec.kmsKeyId: may be set only when spec.encrypt is true"
MSG_ENCRYPT_ONE_REGION = "spec.destinationRegions: an encrypted copy has exactly one destination, the source region"
MSG_ENCRYPT_SOURCE_REGION = "spec.destinationRegions: an encrypted copy goes only to spec.sourceRegion"


class ImageCopySpec(SpecModel):
    """Desired state of an ImageCopy."""

    model_config = with_rules(
        cel("has(self.sourceRef) != has(self.sourceImageId)", MSG_SOURCE_ONE_OF),
        cel("has(self.sourceImageId) == has(self.sourceRegion)", MSG_SOURCE_REGION),
        cel(
            "has(self.sourceRef) == has(oldSelf.sourceRef) && has(self.sourceImageId) == "
            "has(oldSelf.sourceImageId) && has(self.sourceRegion) == has(oldSelf.sourceRegion)",
            MSG_SOURCE_IMMUTABLE,
        ),
        cel("!has(self.kmsKeyId) || self.encrypt", MSG_KMS_NEEDS_ENCRYPT, field_path=".kmsKeyId"),
        cel(
            "!self.encrypt || size(self.destinationRegions) == 1",
            MSG_ENCRYPT_ONE_REGION,
            field_path=".destinationRegions",
        ),
        cel(
            "!self.encrypt || !has(self.sourceRegion) || self.destinationRegions.all(r, r == self.sourceRegion)",
            MSG_ENCRYPT_SOURCE_REGION,
            field_path=".destinationRegions",
        ),
    )

    source_ref: LocalObjectReference | None = Field(
        default=None,
        description="An Image object in this namespace to copy. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.sourceRef")]},
    )
    source_image_id: str | None = Field(
        default=None,
        pattern=IMAGE_ID_PATTERN,
        description="Id of the image to copy, instead of sourceRef; needs sourceRegion. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.sourceImageId")]},
    )
    source_region: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=REGION_PATTERN,
        description="Region of spec.sourceImageId, e.g. ap-guangzhou. Only with sourceImageId. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.sourceRegion")]},
    )
    destination_regions: list[RegionId] = Field(
        min_length=1,
        max_length=MAX_DESTINATION_REGIONS,
        description=(
            "Regions to copy the image to, a non-empty set. A custom image cannot be copied into its own "
            "region unless encrypted; a shared image only into its own region (a private copy). Adding a "
            "region makes one more copy."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    image_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=IMAGE_NAME_MAX,
        description=(
            f"Name of the copies in the cloud, at most {IMAGE_NAME_MAX} characters. Default: the source "
            "image's name. Applies to copies made after it is set."
        ),
    )
    encrypt: bool = Field(
        default=False,
        description="Make encrypted copies; the only destination is then the source region. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.encrypt")]},
    )
    kms_key_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="KMS key for encrypted copies (only with encrypt); default: the CBS KMS key. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.kmsKeyId")]},
    )
    deletion_policy: DeletionPolicy = Field(
        default="Retain",
        description=(
            "Retain: copies are independent images and stay when this object is deleted. Delete: delete them too."
        ),
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the Tencent Cloud credentials to use; default: the operator's credentials.",
    )

    @field_validator("destination_regions")
    @classmethod
    def _regions_are_a_set(cls, value: list[str]) -> list[str]:
        return unique(value, "spec.destinationRegions")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.source_ref is None) == (self.source_image_id is None):
            raise ValueError(MSG_SOURCE_ONE_OF)
        if (self.source_image_id is None) != (self.source_region is None):
            raise ValueError(MSG_SOURCE_REGION)
        if self.kms_key_id is not None and not self.encrypt:
            raise ValueError(MSG_KMS_NEEDS_ENCRYPT)
        if self.encrypt and len(self.destination_regions) != 1:
            raise ValueError(MSG_ENCRYPT_ONE_REGION)
        if (
            self.encrypt
            and self.source_region is not None
            and any(region != self.source_region for region in self.destination_regions)
        ):
            raise ValueError(MSG_ENCRYPT_SOURCE_REGION)
        return self


class ImageCopyEntry(WireModel):
    """One copy in one destination region."""

    region: str = Field(description="Destination region of this copy.")
    image_id: str | None = Field(default=None, description="Cloud id of the copy in that region.")
    cloud_state: str | None = Field(default=None, description="Raw cloud state of the copy, e.g. SYNCING or NORMAL.")
    progress: int | None = Field(default=None, ge=0, le=100, description="Percent copied.")
    image_name: str | None = Field(
        default=None, description="Name of the Image object (source existing) that represents this copy."
    )


class ImageCopyStatus(BaseStatus):
    """Observed state of an ImageCopy."""

    source_image_id: str | None = Field(default=None, description="Cloud id of the source image.")
    source_region: str | None = Field(default=None, description="Region of the source image.")
    copies: list[ImageCopyEntry] = Field(
        default_factory=list,
        description="One entry per destination region.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["region"]},
    )


class ImageCopy(WireModel):
    """Copies an image to other regions."""

    api_version: str = Field(default=API_VERSION, description="cvm.operator.dev/v1alpha1")
    kind: str = Field(default=KIND, description="ImageCopy")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ImageCopySpec = Field(description="Desired state.")
    status: ImageCopyStatus = Field(default_factory=ImageCopyStatus, description="Observed state.")


def check_image_copy_update(old: ImageCopySpec, new: ImageCopySpec) -> list[str]:
    """What the API server's transition rules refuse when `old` is changed into `new`."""
    check = UpdateCheck()
    if (
        (old.source_ref is None) != (new.source_ref is None)
        or (old.source_image_id is None) != (new.source_image_id is None)
        or (old.source_region is None) != (new.source_region is None)
    ):
        check.fail(MSG_SOURCE_IMMUTABLE)
    if old.source_ref is not None and new.source_ref is not None:
        check.same(old.source_ref, new.source_ref, "spec.sourceRef")
    if old.source_image_id is not None and new.source_image_id is not None:
        check.same(old.source_image_id, new.source_image_id, "spec.sourceImageId")
    if old.source_region is not None and new.source_region is not None:
        check.same(old.source_region, new.source_region, "spec.sourceRegion")
    check.same(old.encrypt, new.encrypt, "spec.encrypt")
    if old.kms_key_id is not None and new.kms_key_id is not None:
        check.same(old.kms_key_id, new.kms_key_id, "spec.kmsKeyId")
    return check.errors
