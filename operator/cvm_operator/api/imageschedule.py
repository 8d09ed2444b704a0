"""ImageSchedule: a golden-image pipeline, an Image made on a cron schedule and retired by retention."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from .common import (
    ACCOUNT_ID_PATTERN,
    API_VERSION,
    IMAGE_DESCRIPTION_MAX,
    IMAGE_NAME_MAX,
    REGION_PATTERN,
    BaseStatus,
    DeletionPolicy,
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
from .image import IMAGE_FAMILY_PATTERN, FromImportSource, FromInstanceSource
from .imagecopy import MAX_DESTINATION_REGIONS, RegionId
from .imageshare import MAX_SHARE_ACCOUNTS

KIND = "ImageSchedule"

NAME_SUFFIX_MAX = len("20240101-030000")
"""Image names end in the run's UTC time, yyyymmdd-hhmm plus ss when the seconds are not zero."""
IMAGE_NAME_PREFIX_MAX = IMAGE_NAME_MAX - NAME_SUFFIX_MAX

# Five cron fields, a macro, or @every with a Go-style duration (checked in full by the operator).
SCHEDULE_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|@every ([0-9]+(h|m|s))+"
    r"|[^@\s]\S*(\s+\S+){4})$"
)
DURATION_PATTERN = r"^([0-9]+(h|m|s))+$"
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"

ConcurrencyPolicy = Literal["Forbid", "Replace"]
ScheduledImageState = Literal["Creating", "Kept", "Deprecated", "Retired", "Failed", "Deleting"]

AccountId = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]

MSG_SOURCE_ONE_OF = "spec.template.spec.source: exactly one of fromInstance, fromImport must be set"


class ScheduledImageSource(SpecModel):
    """Where each run's image comes from: exactly one member. Unlike an Image's source it may change;
    a change applies to the runs after it."""

    model_config = with_rules(cel("has(self.fromInstance) != has(self.fromImport)", MSG_SOURCE_ONE_OF))

    from_instance: FromInstanceSource | None = Field(
        default=None,
        description="Image an instance on every run (CreateImage), e.g. a builder kept up to date by its own tooling.",
    )
    from_import: FromImportSource | None = Field(
        default=None,
        description="Import a disk file on every run (ImportImage), e.g. a URL a build pipeline overwrites.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.from_instance is None) == (self.from_import is None):
            raise ValueError(MSG_SOURCE_ONE_OF)
        return self


class ImageTemplateSpec(SpecModel):
    """The spec of every Image a run makes; region, image name and deprecation are set by the schedule."""

    description: str | None = Field(
        default=None,
        max_length=IMAGE_DESCRIPTION_MAX,
        description=f"Description of each image, at most {IMAGE_DESCRIPTION_MAX} characters.",
    )
    family: str | None = Field(
        default=None,
        min_length=1,
        max_length=IMAGE_NAME_MAX,
        pattern=IMAGE_FAMILY_PATTERN,
        description=(
            "Image family of each image, so that an Image with source.existing.lookup.family follows the "
            "newest usable one."
        ),
    )
    tags: Tags = Field(default_factory=dict, description="Cloud tags of each image (key to value).")
    source: ScheduledImageSource = Field(description="Where each image comes from: fromInstance or fromImport.")
    deletion_policy: DeletionPolicy = Field(
        default="Delete",
        description=(
            "deletionPolicy of each Image, and of its ImageCopy and ImageShare. Delete: an image removed by "
            "retention, or with the schedule, is deleted in the cloud with its copies and shares. Retain: "
            "the cloud keeps it; Images that are Retain when the schedule is deleted stay as objects."
        ),
    )


class ImageTemplate(SpecModel):
    """The Image each run makes."""

    spec: ImageTemplateSpec = Field(description="Spec of each Image (without region and image name).")


class Retention(SpecModel):
    """Which images stay as they are, which are retired (deprecated) and when retired ones are deleted."""

    keep: int = Field(
        ge=1,
        le=100,
        description=(
            "How many of the newest usable images (state NORMAL) are kept as they are. Failed runs and "
            "runs still in progress do not count."
        ),
    )
    deprecate_older: bool = Field(
        default=True,
        description="Mark images that leave the kept set deprecated, so that lookups and new instances skip them.",
    )
    delete_after: str | None = Field(
        default=None,
        max_length=32,
        pattern=DURATION_PATTERN,
        description=(
            "Delete an image (its Image object, whose deletionPolicy applies) this long after it left the "
            "kept set or failed, e.g. 168h or 30m. Without it retired images stay."
        ),
    )


class ImageScheduleSpec(SpecModel):
    """Desired state of an ImageSchedule."""

    region: str = Field(
        min_length=1,
        max_length=40,
        pattern=REGION_PATTERN,
        description="Tencent Cloud region of the images, e.g. ap-guangzhou. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [immutable("spec.region")]},
    )
    schedule: str = Field(
        min_length=1,
        max_length=100,
        pattern=SCHEDULE_PATTERN,
        description=(
            'When to run: five cron fields ("0 3 * * 0" is Sundays at 03:00), a macro (@hourly, @daily, '
            "@weekly, @monthly, @yearly) or @every with a duration of at least 10s (@every 6h, @every 90m; "
            "runs fall on multiples of the duration since the Unix epoch, in UTC)."
        ),
    )
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        description=(
            "IANA time zone of the cron fields, e.g. Asia/Shanghai. Across daylight saving changes a run "
            "whose local time is skipped happens at the first minute after the gap, and one whose local "
            "time repeats happens once."
        ),
    )
    suspend: bool = Field(
        default=False,
        description=(
            "Stop scheduled runs (retention still applies, and cvm.operator.dev/requestedAt still runs one). "
            "The newest run missed while suspended happens on resume unless it is older than "
            "startingDeadlineSeconds."
        ),
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default="Forbid",
        description=(
            "When a run is due while the previous image is still being made. Forbid: the run waits for it "
            "(and is skipped if that takes longer than startingDeadlineSeconds). Replace: the image in "
            "progress is deleted (per its deletionPolicy) and the new run starts."
        ),
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description=(
            "A run that cannot start within this many seconds of its scheduled time (the operator was down, "
            "the schedule suspended, a previous run still in progress) is skipped, and a MissedRun Event says so."
        ),
    )
    image_name_prefix: str | None = Field(
        default=None,
        min_length=1,
        max_length=IMAGE_NAME_PREFIX_MAX,
        description=(
            "Cloud image names are this prefix plus the run's UTC time (yyyymmdd-hhmm, plus ss when the "
            f"seconds are not zero), at most {IMAGE_NAME_MAX} characters in all. Default: metadata.name and '-'."
        ),
    )
    template: ImageTemplate = Field(
        description="The Image each run makes: fromInstance or fromImport, family, tags, description."
    )
    copy_to_regions: list[RegionId] = Field(
        default_factory=list,
        max_length=MAX_DESTINATION_REGIONS,
        description=(
            "Copy each image to these regions: an ImageCopy per image, owned by its Image. Applies to "
            "images made after it is set."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    share_with_accounts: list[AccountId] = Field(
        default_factory=list,
        max_length=MAX_SHARE_ACCOUNTS,
        description=(
            "Share each image with these root accounts: an ImageShare per image, owned by its Image. Applies "
            "to images made after it is set."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    retention: Retention | None = Field(
        default=None, description="Which images are kept, deprecated and deleted; without it all are kept."
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description=(
            "Secret with the Tencent Cloud credentials the images, copies and shares are made with; "
            "default: the operator's credentials."
        ),
    )

    @field_validator("copy_to_regions")
    @classmethod
    def _regions_are_a_set(cls, value: list[str]) -> list[str]:
        return unique(value, "spec.copyToRegions")

    @field_validator("share_with_accounts")
    @classmethod
    def _accounts_are_a_set(cls, value: list[str]) -> list[str]:
        return unique(value, "spec.shareWithAccounts")


class ImageReference(WireModel):
    """An Image object and its cloud id."""

    name: str = Field(description="Name of the Image object.")
    image_id: str | None = Field(default=None, description="Cloud id of its image.")


class ScheduledImage(WireModel):
    """One run's image."""

    name: str = Field(description="Name of the Image object.")
    image_id: str | None = Field(default=None, description="Cloud id of the image, once it has one.")
    scheduled_time: dt.datetime | None = Field(default=None, description="The time the run was scheduled for.")
    created_time: str | None = Field(default=None, description="When the cloud made the image (RFC 3339).")
    state: ScheduledImageState = Field(
        description=(
            "Creating (in progress), Kept, Deprecated or Retired (left the kept set; deprecated or not), "
            "Failed (the run ended in a state such as IMPORTFAILED), Deleting."
        )
    )


class ImageScheduleStatus(BaseStatus):
    """Observed state of an ImageSchedule."""

    last_schedule_time: dt.datetime | None = Field(default=None, description="Scheduled time of the last run started.")
    last_successful_time: dt.datetime | None = Field(
        default=None, description="Scheduled time of the newest run that made a usable image."
    )
    next_schedule_time: dt.datetime | None = Field(
        default=None, description="When the next run is due (absent while suspended)."
    )
    last_skipped_time: dt.datetime | None = Field(
        default=None, description="Scheduled time of the last run skipped past startingDeadlineSeconds."
    )
    last_handled_requested_at: str | None = Field(
        default=None, description="The last cvm.operator.dev/requestedAt value a run was made for."
    )
    latest_image: ImageReference | None = Field(default=None, description="The newest usable image.")
    images: list[ScheduledImage] = Field(
        default_factory=list,
        description="Every image of the schedule, newest first.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class ImageSchedule(WireModel):
    """Makes an Image on a schedule, keeps the newest, deprecates and deletes the rest."""

    api_version: str = Field(default=API_VERSION, description="cvm.operator.dev/v1alpha1")
    kind: str = Field(default=KIND, description="ImageSchedule")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ImageScheduleSpec = Field(description="Desired state.")
    status: ImageScheduleStatus = Field(default_factory=ImageScheduleStatus, description="Observed state.")


def check_image_schedule_update(old: ImageScheduleSpec, new: ImageScheduleSpec) -> list[str]:
    """What the API server's transition rules refuse when `old` is changed into `new`."""
    check = UpdateCheck()
    check.same(old.region, new.region, "spec.region")
    return check.errors
