"""The kinds: names, printer columns, and parsing of API bodies into models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from .common import GROUP, VERSION, WireModel
from .image import Image, ImageSpec, ImageStatus, check_image_update
from .imagecopy import ImageCopy, ImageCopySpec, ImageCopyStatus, check_image_copy_update
from .imageschedule import ImageSchedule, ImageScheduleSpec, ImageScheduleStatus, check_image_schedule_update
from .imageshare import ImageShare, ImageShareSpec, ImageShareStatus, check_image_share_update
from .instance import Instance, InstanceSpec, InstanceStatus, check_instance_update
from .instanceset import InstanceSet, InstanceSetSpec, InstanceSetStatus, check_instance_set_update

IMAGES = "images"
IMAGE_SHARES = "imageshares"
IMAGE_COPIES = "imagecopies"
INSTANCES = "instances"
IMAGE_SCHEDULES = "imageschedules"
INSTANCE_SETS = "instancesets"

READY_COLUMN = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    "description": "Ready condition status.",
}
PHASE_COLUMN = {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase."}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _column(name: str, path: str, description: str, *, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        column["priority"] = priority
    return column


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    model: type[WireModel]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    printer_columns: tuple[dict[str, Any], ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{VERSION}"


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="Image",
        plural=IMAGES,
        short_names=("cvmimg",),
        model=Image,
        spec_model=ImageSpec,
        status_model=ImageStatus,
        printer_columns=(
            _column("ID", ".status.imageId", "Cloud image id."),
            _column("Region", ".spec.region", "Region."),
            _column("Type", ".status.imageType", "Public, Marketplace, Custom or Shared."),
            PHASE_COLUMN,
            READY_COLUMN,
            _column("Progress", ".status.progress", "Percent done.", type_="integer", priority=1),
            _column("OS", ".status.osName", "Operating system.", priority=1),
            AGE_COLUMN,
        ),
    ),
    KindInfo(
        kind="ImageShare",
        plural=IMAGE_SHARES,
        short_names=("cvmshare",),
        model=ImageShare,
        spec_model=ImageShareSpec,
        status_model=ImageShareStatus,
        printer_columns=(
            _column("ID", ".status.imageId", "Cloud id of the shared image."),
            _column("Region", ".status.region", "Region of the shared image."),
            PHASE_COLUMN,
            READY_COLUMN,
            _column("Accounts", ".spec.accountIds", "Accounts to share with.", priority=1),
            AGE_COLUMN,
        ),
    ),
    KindInfo(
        kind="ImageCopy",
        plural=IMAGE_COPIES,
        short_names=("cvmcopy",),
        model=ImageCopy,
        spec_model=ImageCopySpec,
        status_model=ImageCopyStatus,
        printer_columns=(
            _column("ID", ".status.sourceImageId", "Cloud id of the source image."),
            _column("Region", ".status.sourceRegion", "Region of the source image."),
            _column("Destinations", ".spec.destinationRegions", "Destination regions."),
            PHASE_COLUMN,
            READY_COLUMN,
            AGE_COLUMN,
        ),
    ),
    KindInfo(
        kind="Instance",
        plural=INSTANCES,
        short_names=("cvmins",),
        model=Instance,
        spec_model=InstanceSpec,
        status_model=InstanceStatus,
        printer_columns=(
            _column("ID", ".status.instanceId", "Cloud instance id."),
            _column("Region", ".spec.region", "Region."),
            _column("Zone", ".spec.zone", "Zone.", priority=1),
            _column("Type", ".spec.instanceType", "Instance type."),
            _column("Image", ".status.imageId", "Image the instance runs."),
            _column("State", ".status.cloudState", "Cloud state."),
            PHASE_COLUMN,
            READY_COLUMN,
            _column("Private-IP", ".status.privateIpAddresses[0]", "First private IP.", priority=1),
            AGE_COLUMN,
        ),
    ),
    KindInfo(
        kind="ImageSchedule",
        plural=IMAGE_SCHEDULES,
        short_names=("cvmsched",),
        model=ImageSchedule,
        spec_model=ImageScheduleSpec,
        status_model=ImageScheduleStatus,
        printer_columns=(
            _column("ID", ".status.latestImage.imageId", "Cloud id of the newest usable image."),
            _column("Region", ".spec.region", "Region of the images."),
            _column("Schedule", ".spec.schedule", "When runs are due."),
            _column("Suspend", ".spec.suspend", "Whether scheduled runs are stopped.", type_="boolean"),
            _column("Last-Run", ".status.lastScheduleTime", "Scheduled time of the last run.", type_="date"),
            _column("Next-Run", ".status.nextScheduleTime", "When the next run is due.", priority=1),
            PHASE_COLUMN,
            READY_COLUMN,
            AGE_COLUMN,
        ),
    ),
    KindInfo(
        kind="InstanceSet",
        plural=INSTANCE_SETS,
        short_names=("cvmset",),
        model=InstanceSet,
        spec_model=InstanceSetSpec,
        status_model=InstanceSetStatus,
        printer_columns=(
            _column("Desired", ".spec.replicas", "Replicas asked for.", type_="integer"),
            _column("Ready", ".status.readyReplicas", "Replicas whose Instance is Ready.", type_="integer"),
            _column("Up-To-Date", ".status.updatedReplicas", "Replicas Ready on the desired image.", type_="integer"),
            _column("Image", ".status.updateImageId", "Image the replicas are rolled onto."),
            _column("Available", ".status.availableReplicas", "Available replicas.", type_="integer", priority=1),
            _column("Region", ".spec.region", "Region.", priority=1),
            AGE_COLUMN,
        ),
    ),
)

KINDS_BY_NAME: dict[str, KindInfo] = {info.kind: info for info in KINDS}
KINDS_BY_PLURAL: dict[str, KindInfo] = {info.plural: info for info in KINDS}

ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(model: type[ModelT], body: Mapping[str, Any]) -> ModelT:
    # Wire bodies use camelCase only; snake_case keys are not accepted from the API.
    return model.model_validate(dict(body), by_alias=True, by_name=False)


def parse_image(body: Mapping[str, Any]) -> Image:
    return _parse(Image, body)


def parse_image_share(body: Mapping[str, Any]) -> ImageShare:
    return _parse(ImageShare, body)


def parse_image_copy(body: Mapping[str, Any]) -> ImageCopy:
    return _parse(ImageCopy, body)


def parse_instance(body: Mapping[str, Any]) -> Instance:
    return _parse(Instance, body)


def parse_image_schedule(body: Mapping[str, Any]) -> ImageSchedule:
    return _parse(ImageSchedule, body)


def parse_instance_set(body: Mapping[str, Any]) -> InstanceSet:
    return _parse(InstanceSet, body)


def parse_object(body: Mapping[str, Any]) -> WireModel:
    """Parse a body of any of the kinds, chosen by its `kind`."""
    kind = body.get("kind")
    info = KINDS_BY_NAME.get(kind) if isinstance(kind, str) else None
    if info is None:
        raise ValueError(f"kind: not one of {', '.join(KINDS_BY_NAME)}: {kind!r}")
    return _parse(info.model, body)


def check_update(old: WireModel, new: WireModel) -> list[str]:
    """Messages of the transition rules (immutability) that an update from `old` to `new` breaks."""
    if isinstance(old, Image) and isinstance(new, Image):
        return check_image_update(old.spec, new.spec)
    if isinstance(old, ImageShare) and isinstance(new, ImageShare):
        return check_image_share_update(old.spec, new.spec)
    if isinstance(old, ImageCopy) and isinstance(new, ImageCopy):
        return check_image_copy_update(old.spec, new.spec)
    if isinstance(old, Instance) and isinstance(new, Instance):
        return check_instance_update(old.spec, new.spec)
    if isinstance(old, ImageSchedule) and isinstance(new, ImageSchedule):
        return check_image_schedule_update(old.spec, new.spec)
    if isinstance(old, InstanceSet) and isinstance(new, InstanceSet):
        return check_instance_set_update(old.spec, new.spec)
    raise ValueError(f"kind: cannot compare {type(old).__name__} with {type(new).__name__}")
