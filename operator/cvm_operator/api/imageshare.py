"""ImageShare: share a custom image with other Tencent Cloud accounts."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from .common import (
    ACCOUNT_ID_PATTERN,
    API_VERSION,
    IMAGE_ID_PATTERN,
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

KIND = "ImageShare"
MAX_SHARE_ACCOUNTS = 500

AccountId = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]

MSG_IMAGE_ONE_OF = "spec.imageRef: exactly one of imageRef, imageId must be set"
MSG_REGION_WITH_IMAGE_ID = "spec.region: must be set together with spec.imageId, and only with it"
MSG_TARGET_IMMUTABLE = "spec.imageRef: the shared image (imageRef, or imageId and region) is immutable"


class ImageShareSpec(SpecModel):
    """Desired state of an ImageShare."""

    model_config = with_rules(
        cel("has(self.imageRef) != has(self.imageId)", MSG_IMAGE_ONE_OF),
        cel("has(self.imageId) == has(self.region)", MSG_REGION_WITH_IMAGE_ID),
        cel(
            "has(self.imageRef) == has(oldSelf.imageRef) && has(self.imageId) == has(oldSelf.imageId) "
            "&& has(self.region) == has(oldSelf.region)",
            MSG_TARGET_IMMUTABLE,
        ),
    )

    image_ref: LocalObjectReference | None = Field(
        default=None,
        description="An Image object in this namespace whose cloud image is shared. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.imageRef")]},
    )
    image_id: str | None = Field(
        default=None,
        pattern=IMAGE_ID_PATTERN,
        description="Id of a custom image of the account, instead of imageRef; needs region. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.imageId")]},
    )
    region: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=REGION_PATTERN,
        description="Region of spec.imageId, e.g. ap-guangzhou. Only with imageId. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.region")]},
    )
    account_ids: list[AccountId] = Field(
        min_length=1,
        max_length=MAX_SHARE_ACCOUNTS,
        description=(
            'Root account ids to share the image with, a set of 1 to 500, e.g. "200000000002". '
            "The cloud's share list is kept equal to it for the accounts this object manages."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    deletion_policy: DeletionPolicy = Field(
        default="Delete",
        description="Delete: cancel the shares this object made when it is deleted. Retain: leave them.",
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the Tencent Cloud credentials to use; default: the operator's credentials.",
    )

    @field_validator("account_ids")
    @classmethod
    def _accounts_are_a_set(cls, value: list[str]) -> list[str]:
        return unique(value, "spec.accountIds")

    @model_validator(mode="after")
    def _one_image(self) -> Self:
        if (self.image_ref is None) == (self.image_id is None):
            raise ValueError(MSG_IMAGE_ONE_OF)
        if (self.image_id is None) != (self.region is None):
            raise ValueError(MSG_REGION_WITH_IMAGE_ID)
        return self


class ImageShareStatus(BaseStatus):
    """Observed state of an ImageShare."""

    image_id: str | None = Field(default=None, description="Cloud id of the shared image.")
    region: str | None = Field(default=None, description="Region of the shared image.")
    shared_accounts: list[str] = Field(
        default_factory=list,
        description="Accounts the image is currently shared with by this object.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class ImageShare(WireModel):
    """Shares a custom image with other accounts."""

    api_version: str = Field(default=API_VERSION, description="cvm.operator.dev/v1alpha1")
    kind: str = Field(default=KIND, description="ImageShare")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ImageShareSpec = Field(description="Desired state.")
    status: ImageShareStatus = Field(default_factory=ImageShareStatus, description="Observed state.")


def check_image_share_update(old: ImageShareSpec, new: ImageShareSpec) -> list[str]:
    """What the API server's transition rules refuse when `old` is changed into `new`."""
    check = UpdateCheck()
    if (
        (old.image_ref is None) != (new.image_ref is None)
        or (old.image_id is None) != (new.image_id is None)
        or (old.region is None) != (new.region is None)
    ):
        check.fail(MSG_TARGET_IMMUTABLE)
    if old.image_ref is not None and new.image_ref is not None:
        check.same(old.image_ref, new.image_ref, "spec.imageRef")
    if old.image_id is not None and new.image_id is not None:
        check.same(old.image_id, new.image_id, "spec.imageId")
    if old.region is not None and new.region is not None:
        check.same(old.region, new.region, "spec.region")
    return check.errors
