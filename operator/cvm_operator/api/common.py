"""Types shared by every kind: the wire-format base model, references, conditions and base status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "cvm.operator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "cvm"

# Tencent region ids: ap-guangzhou, na-siliconvalley, ap-shanghai-fsi, ...
REGION_PATTERN = r"^[a-z]{2}-[a-z]+(-[a-z]+)*$"
# Zones are "<region>-<n>", e.g. ap-guangzhou-3.
ZONE_PATTERN = r"^[a-z]{2}-[a-z]+(-[a-z]+)*-[0-9]+$"
IMAGE_ID_PATTERN = r"^img-[a-z0-9]{8}$"
INSTANCE_ID_PATTERN = r"^ins-[a-z0-9]{8}$"
DISK_ID_PATTERN = r"^disk-[a-z0-9]{8}$"
KEY_ID_PATTERN = r"^skey-[a-z0-9]{8}$"
ACCOUNT_ID_PATTERN = r"^[0-9]{5,20}$"
# A Kubernetes object name (DNS-1123 subdomain).
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Secret data keys.
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# metav1.Condition reason.
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

IMAGE_NAME_MAX = 60
IMAGE_DESCRIPTION_MAX = 256
TAGS_MAX = 50
TAG_KEY_MAX = 127
TAG_VALUE_MAX = 255

DeletionPolicy = Literal["Delete", "Retain"]
ConditionStatus = Literal["True", "False", "Unknown"]
Phase = Literal["Pending", "Creating", "Importing", "Copying", "Available", "Running", "Stopped", "Failed", "Deleting"]
PHASES: tuple[Phase, ...] = (
    "Pending",
    "Creating",
    "Importing",
    "Copying",
    "Available",
    "Running",
    "Stopped",
    "Failed",
    "Deleting",
)


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def with_rules(*rules: JsonDict) -> ConfigDict:
    """Model config attaching CEL rules to the model's schema, beside the fields they check."""
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})


def immutable(path: str) -> JsonDict:
    """A transition rule that refuses any change of the field it is attached to."""
    return cel("self == oldSelf", f"{path} is immutable")


def _drop_nulls(value: Any) -> Any:
    # The API server prunes nulls from fields that are not nullable; so do the models.
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if v is not None}
    return value


class WireModel(BaseModel):
    """Base of every API type: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
    )

    @model_validator(mode="before")
    @classmethod
    def _prune_nulls(cls, data: Any) -> Any:
        return _drop_nulls(data)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(WireModel):
    """Base of user-written types: unknown fields and type coercion are refused, as the API server does."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LocalObjectReference(SpecModel):
    """A reference to an object of the given kind in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME_PATTERN,
        description="Name of the referenced object in the same namespace.",
    )


class SecretReference(SpecModel):
    """A Secret in the same namespace holding Tencent Cloud API credentials."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME_PATTERN,
        description=(
            "Name of a Secret in the same namespace with the keys `secretId` and `secretKey`. "
            "Without it the operator's default credentials are used."
        ),
    )


class SecretKeyReference(SpecModel):
    """One key of a Secret in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME_PATTERN,
        description="Name of the Secret in the same namespace.",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY_PATTERN,
        description="Key inside the Secret's data whose value is used.",
    )


class ObjectMeta(WireModel):
    """The parts of metadata the operator reads; anything else is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(default=None, description="Object name.")
    namespace: str | None = Field(default=None, description="Object namespace.")
    uid: str | None = Field(default=None, description="Object UID.")
    generation: int | None = Field(default=None, description="Spec generation.")
    resource_version: str | None = Field(default=None, description="Resource version.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    finalizers: list[str] = Field(default_factory=list, description="Finalizers.")
    deletion_timestamp: str | None = Field(default=None, description="Set when deletion was requested.")


class Condition(WireModel):
    """A kstatus-compatible condition (the shape of metav1.Condition)."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Condition type: Ready, Reconciling or Stalled.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the spec this condition was computed from.",
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="One CamelCase word saying why the condition has its status.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable details about the condition.",
    )
    last_transition_time: dt.datetime = Field(
        description="When the status of this condition last changed (RFC 3339).",
    )


class BaseStatus(WireModel):
    """Fields every kind reports."""

    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the spec the operator last reconciled.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description=("Ready, Reconciling and Stalled, kstatus-compatible: `kubectl wait --for=condition=Ready` works."),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    phase: Phase | None = Field(
        default=None,
        description=(
            "One word for people: Pending, Creating, Importing, Copying, Available, Running, Stopped, "
            "Failed or Deleting."
        ),
    )
    cloud_state: str | None = Field(
        default=None,
        max_length=64,
        description="The raw state reported by the cloud, e.g. NORMAL, SYNCING or RUNNING.",
    )


def unique(values: list[str], path: str) -> list[str]:
    """Refuse duplicates in a list that the schema declares a set."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise ValueError(f"{path}[{index}]: Duplicate value: {value!r}")
        seen.add(value)
    return values


def _check_tag_keys(tags: dict[str, str]) -> dict[str, str]:
    for key in tags:
        if not 1 <= len(key) <= TAG_KEY_MAX:
            raise ValueError(f"spec.tags: tag keys must be 1 to {TAG_KEY_MAX} characters")
    return tags


TagValue = Annotated[str, StringConstraints(max_length=TAG_VALUE_MAX)]
Tags = Annotated[
    dict[str, TagValue],
    Field(
        max_length=TAGS_MAX,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.all(k, size(k) >= 1 && size(k) <= {TAG_KEY_MAX})",
                    f"spec.tags: tag keys must be 1 to {TAG_KEY_MAX} characters",
                )
            ]
        },
    ),
    AfterValidator(_check_tag_keys),
]


class UpdateCheck:
    """Python mirror of the CEL transition rules (`oldSelf`), collecting one message per violation."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def same(self, old: object, new: object, path: str) -> None:
        if old != new:
            self.errors.append(f"{path} is immutable")

    def fail(self, message: str) -> None:
        self.errors.append(message)
