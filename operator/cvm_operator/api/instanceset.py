"""InstanceSet: a fleet of identical Instances from one image, spread over zones and rolled onto new images."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema, field_validator, model_validator

from .common import (
    API_VERSION,
    IMAGE_ID_PATTERN,
    REGION_PATTERN,
    ZONE_PATTERN,
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
from .instance import (
    HOST_NAME_PATTERN,
    IMMUTABLE_LAUNCH_FIELDS,
    INSTANCE_TYPE_PATTERN,
    LAUNCH_RULES,
    LaunchSettings,
    LoginSettings,
    RunState,
    SystemDisk,
    launch_changes,
    unchanged,
)

KIND = "InstanceSet"

SET_LABEL = "cvm.operator.dev/instance-set"
"""Label on every replica (Instance object) of a set; the value is the set's name."""
MAX_REPLICAS = 5000
MAX_ZONES = 20
MAX_TEMPLATE_LABELS = 64

UpdateStrategyType = Literal["RollingReimage", "RollingReplace", "OnDelete"]

PERCENT_RE = re.compile(r"^(100|[1-9]?[0-9])%$")
MSG_INT_OR_PERCENT = "must be a non-negative integer or a percentage such as 25%"
MSG_TEMPLATE_IMAGE_ONE_OF = "spec.template.spec.imageRef: exactly one of imageRef, imageId must be set"
MSG_TEMPLATE_REGION = "spec.template.spec.region: must not be set; the replicas are in spec.region"
MSG_TEMPLATE_ZONE = "spec.template.spec.zone: must not be set; spec.zones places the replicas"
MSG_TEMPLATE_LABEL = f"spec.template.metadata.labels: {SET_LABEL} is set by the InstanceSet"
MSG_ZONES_IN_REGION = "spec.zones: every zone must be a zone of spec.region (<region>-<n>)"
MSG_TEMPLATE_PRIVATE_IP = (
    "spec.template.spec.network.privateIpAddress: must not be set; each replica gets an address of the subnet"
)
MSG_SUBNET_ONE_ZONE = (
    "spec.template.spec.network.subnetId: a subnet is in one zone, so spec.zones must list exactly one zone"
)
TEMPLATE_PREFIX = "spec.template.spec"
MSG_NO_PROGRESS = (
    "spec.updateStrategy.maxUnavailable: must be at least 1 (or maxSurge at least 1 with RollingReplace), "
    "otherwise a rollout can never take a step"
)

_IS_ZERO = "(type({0}) == int ? {0} == 0 : {0} == '0%')"


def _check_int_or_percent(value: int | str) -> int | str:
    if isinstance(value, int) and value < 0:
        raise ValueError(MSG_INT_OR_PERCENT)
    if isinstance(value, str) and not PERCENT_RE.match(value):
        raise ValueError(MSG_INT_OR_PERCENT)
    return value


def int_or_percent(path: str) -> object:
    """An integer or a percentage (Kubernetes IntOrString), checked by the schema and by the model."""
    message = f"{path}: {MSG_INT_OR_PERCENT}"

    def check(value: int | str) -> int | str:
        try:
            return _check_int_or_percent(value)
        except ValueError:
            raise ValueError(message) from None

    return Annotated[
        int | str,
        WithJsonSchema(
            {
                "x-kubernetes-int-or-string": True,
                "x-kubernetes-validations": [
                    cel("type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')", message)
                ],
            }
        ),
        AfterValidator(check),
    ]


MaxUnavailable = int_or_percent("spec.updateStrategy.maxUnavailable")
MaxSurge = int_or_percent("spec.updateStrategy.maxSurge")
ZoneId = Annotated[str, StringConstraints(min_length=1, max_length=48, pattern=ZONE_PATTERN)]


def is_zero(value: int | str) -> bool:
    return value == 0 or value == "0%"


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """An absolute count from an integer or a percentage of ``total`` (maxSurge rounds up, maxUnavailable down)."""
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    whole, rest = divmod(percent * total, 100)
    return whole + (1 if round_up and rest else 0)


class InstanceTemplateMeta(SpecModel):
    """Metadata copied to each replica."""

    model_config = with_rules(
        cel(f"!has(self.labels) || !('{SET_LABEL}' in self.labels)", MSG_TEMPLATE_LABEL, field_path=".labels")
    )

    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_TEMPLATE_LABELS,
        description=f"Labels of each Instance object, beside {SET_LABEL}: <set name>, which the set adds.",
    )

    @field_validator("labels")
    @classmethod
    def _own_label(cls, value: dict[str, str]) -> dict[str, str]:
        if SET_LABEL in value:
            raise ValueError(MSG_TEMPLATE_LABEL)
        return value


class InstanceTemplateSpec(LaunchSettings):
    """The spec of every replica: the Instance fields, without region and zone (the set places replicas).

    Each replica's cloud name is its object name; reimagePolicy and deletionPolicy come from the set.
    """

    model_config = with_rules(
        cel("has(self.imageRef) != has(self.imageId)", MSG_TEMPLATE_IMAGE_ONE_OF),
        cel("!has(self.region)", MSG_TEMPLATE_REGION, field_path=".region"),
        cel("!has(self.zone)", MSG_TEMPLATE_ZONE, field_path=".zone"),
        cel(
            "!has(self.network) || !has(self.network.privateIpAddress)",
            MSG_TEMPLATE_PRIVATE_IP,
            field_path=".network.privateIpAddress",
        ),
        *LAUNCH_RULES,
        *(unchanged(path, prefix=TEMPLATE_PREFIX) for path in IMMUTABLE_LAUNCH_FIELDS),
    )

    region: str | None = Field(default=None, description="Not allowed: every replica is in the set's spec.region.")
    zone: str | None = Field(default=None, description="Not allowed: the set spreads replicas over spec.zones.")
    instance_type: str = Field(
        min_length=3,
        max_length=64,
        pattern=INSTANCE_TYPE_PATTERN,
        description="Instance type of every replica, e.g. S5.MEDIUM2. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.template.spec.instanceType")]},
    )
    image_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            "An Image object in this namespace. The set waits until it is Ready and rolls the replicas onto "
            "its image whenever it resolves to another one (e.g. a family lookup that found a newer image)."
        ),
    )
    image_id: str | None = Field(
        default=None,
        pattern=IMAGE_ID_PATTERN,
        description="Id of any image usable in spec.region, instead of imageRef. A change starts a rollout.",
    )
    host_name: str | None = Field(
        default=None,
        min_length=2,
        max_length=60,
        pattern=HOST_NAME_PATTERN,
        description="Host name of the operating system of every replica, 2 to 60 characters (Windows: 2 to 15).",
    )
    system_disk: SystemDisk = Field(
        default_factory=SystemDisk,
        description="System disk type and size of every replica.",
        json_schema_extra={"default": {}},
    )
    login_settings: LoginSettings | None = Field(
        default=None,
        description=(
            "How to log in to every replica: exactly one of keyIds, passwordSecretRef, keepImageLogin; omitted: "
            "the cloud sets a random password."
        ),
    )
    run_state: RunState = Field(default="Running", description="Running or Stopped: the power state of every replica.")
    tags: Tags = Field(default_factory=dict, description="Cloud tags of every replica (key to value).")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.region is not None:
            raise ValueError(MSG_TEMPLATE_REGION)
        if self.zone is not None:
            raise ValueError(MSG_TEMPLATE_ZONE)
        if (self.image_ref is None) == (self.image_id is None):
            raise ValueError(MSG_TEMPLATE_IMAGE_ONE_OF)
        if self.network is not None and self.network.private_ip_address is not None:
            raise ValueError(MSG_TEMPLATE_PRIVATE_IP)
        return self


class InstanceTemplate(SpecModel):
    """What each replica (an Instance object) is made from."""

    metadata: InstanceTemplateMeta = Field(
        default_factory=InstanceTemplateMeta,
        description="Labels copied to each Instance object.",
        json_schema_extra={"default": {}},
    )
    spec: InstanceTemplateSpec = Field(description="Spec of each replica, without region and zone.")


class UpdateStrategy(SpecModel):
    """How replicas move to a new image."""

    model_config = with_rules(
        cel(
            f"!(has(self.maxUnavailable) && {_IS_ZERO.format('self.maxUnavailable')} && "
            f"(!has(self.type) || self.type != 'RollingReplace' || !has(self.maxSurge) || "
            f"{_IS_ZERO.format('self.maxSurge')}))",
            MSG_NO_PROGRESS,
            field_path=".maxUnavailable",
        )
    )

    type: UpdateStrategyType = Field(
        default="RollingReimage",
        description=(
            "RollingReimage: reinstall replicas in place (ResetInstance; the system disk is formatted). "
            "RollingReplace: launch a replica on the new image, then terminate an old one. "
            "OnDelete: replicas change only when deleted; their replacements use the new image."
        ),
    )
    max_unavailable: MaxUnavailable = Field(  # type: ignore[valid-type]
        default=1,
        description=(
            "At most this many replicas (an integer, or a percentage of spec.replicas rounded down) are "
            "unavailable at any moment of a rollout. Default 1."
        ),
    )
    max_surge: MaxSurge = Field(  # type: ignore[valid-type]
        default=0,
        description=(
            "RollingReplace only: at most this many replicas (an integer, or a percentage of spec.replicas "
            "rounded up) above spec.replicas during a rollout. Default 0."
        ),
    )

    @model_validator(mode="after")
    def _can_progress(self) -> Self:
        surge = self.type == "RollingReplace" and not is_zero(self.max_surge)
        if is_zero(self.max_unavailable) and not surge:
            raise ValueError(MSG_NO_PROGRESS)
        return self


class InstanceSetSpec(SpecModel):
    """Desired state of an InstanceSet."""

    model_config = with_rules(
        cel("self.zones.all(z, z.startsWith(self.region + '-'))", MSG_ZONES_IN_REGION, field_path=".zones"),
        cel(
            "!has(self.template.spec.network) || !has(self.template.spec.network.subnetId) || size(self.zones) == 1",
            MSG_SUBNET_ONE_ZONE,
            field_path=".template.spec.network.subnetId",
        ),
    )

    region: str = Field(
        min_length=1,
        max_length=40,
        pattern=REGION_PATTERN,
        description="Tencent Cloud region of every replica, e.g. ap-guangzhou. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.region")]},
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=MAX_REPLICAS,
        description=(
            f"Number of replicas, 0 to {MAX_REPLICAS}; also set by the scale subresource "
            "(kubectl scale instanceset/<name> --replicas=N)."
        ),
    )
    zones: list[ZoneId] = Field(
        min_length=1,
        max_length=MAX_ZONES,
        description="Zones of spec.region; replicas are spread evenly across them (the first zones take the rest).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    template: InstanceTemplate = Field(description="What each replica is made from.")
    update_strategy: UpdateStrategy = Field(
        default_factory=UpdateStrategy,
        description="How replicas move to a new image: RollingReimage (default), RollingReplace or OnDelete.",
        json_schema_extra={"default": {}},
    )
    paused: bool = Field(
        default=False,
        description="Hold a rollout where it is (scaling continues; new replicas use the new image).",
    )
    deletion_policy: DeletionPolicy = Field(
        default="Delete",
        description=(
            "deletionPolicy of every replica. Delete: deleting the set terminates its instances. "
            "Retain: the cloud instances stay."
        ),
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the Tencent Cloud credentials to use; default: the operator's credentials.",
    )

    @field_validator("zones")
    @classmethod
    def _zones_are_a_set(cls, value: list[str]) -> list[str]:
        return unique(value, "spec.zones")

    @model_validator(mode="after")
    def _zones_in_region(self) -> Self:
        if not all(zone.startswith(self.region + "-") for zone in self.zones):
            raise ValueError(MSG_ZONES_IN_REGION)
        network = self.template.spec.network
        if network is not None and network.subnet_id is not None and len(self.zones) != 1:
            raise ValueError(MSG_SUBNET_ONE_ZONE)
        return self


class PendingLaunch(WireModel):
    """A batch the set has decided to launch and has not yet made the Instance objects of."""

    batch: str = Field(description="Batch id: with the set's UID, the RunInstances ClientToken.")
    zone: str = Field(description="Zone of the batch's instances.")
    image_id: str = Field(description="Image the batch launches.")
    count: int = Field(ge=1, description="Instances in the batch (RunInstances InstanceCount).")


class InstanceSetStatus(BaseStatus):
    """Observed state of an InstanceSet."""

    pending_launches: list[PendingLaunch] = Field(
        default_factory=list,
        description=(
            "Batches recorded before their RunInstances call, until their Instance objects exist: "
            "after a crash the call is made again with the same ClientToken, which returns the same instances."
        ),
    )

    replicas: int = Field(
        default=0, ge=0, description="Replicas (Instance objects) that exist and are not being deleted."
    )
    ready_replicas: int = Field(default=0, ge=0, description="Replicas whose Instance is Ready.")
    available_replicas: int = Field(
        default=0,
        ge=0,
        description="Ready replicas whose Ready condition speaks for their current spec (not being changed).",
    )
    updated_replicas: int = Field(default=0, ge=0, description="Replicas that run the desired image and are Ready.")
    current_image_id: str | None = Field(
        default=None, description="Image the replicas not yet updated run (the desired one once all are updated)."
    )
    update_image_id: str | None = Field(default=None, description="Image the replicas are rolled onto.")
    selector: str | None = Field(
        default=None, description="Label selector of the replicas, for the scale subresource and kubectl."
    )


class InstanceSet(WireModel):
    """A fleet of identical CVM instances, each an owned Instance object."""

    api_version: str = Field(default=API_VERSION, description="cvm.operator.dev/v1alpha1")
    kind: str = Field(default=KIND, description="InstanceSet")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: InstanceSetSpec = Field(description="Desired state.")
    status: InstanceSetStatus = Field(default_factory=InstanceSetStatus, description="Observed state.")


def check_instance_set_update(old: InstanceSetSpec, new: InstanceSetSpec) -> list[str]:
    """What the API server's transition rules refuse when `old` is changed into `new`."""
    check = UpdateCheck()
    check.same(old.region, new.region, "spec.region")
    check.same(old.template.spec.instance_type, new.template.spec.instance_type, "spec.template.spec.instanceType")
    old_disk, new_disk = old.template.spec.system_disk, new.template.spec.system_disk
    check.same(old_disk.disk_type, new_disk.disk_type, "spec.systemDisk.diskType")
    if new_disk.size_gb < old_disk.size_gb:
        check.fail("spec.systemDisk.sizeGB: cannot shrink")
    check.errors.extend(launch_changes(old.template.spec, new.template.spec, TEMPLATE_PREFIX))
    return check.errors
