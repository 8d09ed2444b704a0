"""Image: make a custom image from an instance, import one from a URL, or observe an existing image.

Images the operator creates carry the object UID as a cloud tag (:data:`UID_TAG`); while status has
no image id yet, the image is looked up by that tag, so a create lost to a crash is adopted instead of
repeated. Images from ``source.existing`` are only observed: never created, changed or deleted.

Drift on images the operator made is put back: name, description, family and deprecation through
ModifyImageAttribute, tags (spec.tags plus the UID tag, nothing else) through the Tag API, since the
CVM API cannot change the tags of an existing image.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cvm_operator.api import IMAGE_TYPE_FROM_CLOUD, Image, ImageLookup, ImageSpec, Phase
from cvm_operator.api.kinds import IMAGE_SHARES, IMAGES, INSTANCES
from cvm_operator.cloud import CloudError, CloudImage, CvmApi, resource_name
from cvm_operator.cloud.resources import (
    IMAGE_BUSY_STATES,
    IMAGE_CREATEFAILED,
    IMAGE_CREATING,
    IMAGE_IMPORTFAILED,
    IMAGE_IMPORTING,
    IMAGE_NORMAL,
    IMAGE_SYNCING,
    PUBLIC_IMAGE,
)
from cvm_operator.reconcilers.base import (
    UID_TAG,
    Blocked,
    Context,
    ManagedReconciler,
    Observation,
    Waiting,
    find_lost_create,
)
from cvm_operator.reconcilers.outcomes import ObjectKey

# Re-exported: the tag helpers lived here before they were shared with the Instance reconciler.
from cvm_operator.reconcilers.tags import tag_changes, tags_condition, with_uid_tag

IMAGE_NAME_MAX = 60

MARKET_IMAGE_LOOKUP = "MARKET_IMAGE"
"""The lookup imageType for marketplace images (not a cloud ImageType)."""

# Instance states in which CreateImage is accepted.
_IMAGEABLE_INSTANCE_STATES = frozenset({"RUNNING", "STOPPED"})

# Rough duration of each busy state on the real service, for a progress estimate when the cloud gives none.
_TYPICAL_SECONDS = {IMAGE_CREATING: 120.0, IMAGE_IMPORTING: 300.0, IMAGE_SYNCING: 180.0}
_PHASE_BY_STATE: dict[str, Phase] = {IMAGE_CREATING: "Creating", IMAGE_IMPORTING: "Importing", IMAGE_SYNCING: "Copying"}
_FAILURE_REASON = {IMAGE_CREATEFAILED: "CreateFailed", IMAGE_IMPORTFAILED: "ImportFailed"}


# ---------------------------------------------------------------- pure helpers


def desired_image_name(spec: ImageSpec, object_name: str) -> str:
    return spec.image_name or object_name


def desired_tags(spec: ImageSpec, uid: str) -> dict[str, str]:
    return with_uid_tag(spec.tags, uid)


def lookup_filters(lookup: ImageLookup) -> dict[str, list[str]]:
    """Documented DescribeImages filters narrowing the search; the rest is checked on the answers
    (the cloud has no family or owner filter, and its name and platform filters match substrings)."""
    filters: dict[str, list[str]] = {"image-type": [cloud_image_type(lookup)]}
    if lookup.name is not None:
        filters["image-name"] = [lookup.name]
    if lookup.platform is not None:
        filters["platform"] = [lookup.platform]
    return filters


def cloud_image_type(lookup: ImageLookup) -> str:
    """The DescribeImages image-type a lookup asks for: marketplace images are PUBLIC_IMAGE there."""
    return PUBLIC_IMAGE if lookup.image_type == MARKET_IMAGE_LOOKUP else str(lookup.image_type)


def lookup_kind(image: CloudImage) -> str:
    """The lookup imageType an image answers to. Public lookups leave out marketplace images, so a
    vendor's image named like an official one is never chosen in its place."""
    return MARKET_IMAGE_LOOKUP if image.is_marketplace else image.type


def usable(image: CloudImage) -> bool:
    """Whether a lookup may choose the image: NORMAL (not busy, not failed) and not deprecated."""
    return image.state == IMAGE_NORMAL and not image.deprecated


def matches_lookup(image: CloudImage, lookup: ImageLookup) -> bool:
    return (
        lookup_kind(image) == lookup.image_type
        and (lookup.name is None or image.name == lookup.name)
        and (lookup.platform is None or image.platform.lower() == lookup.platform.lower())
        and (lookup.family is None or image.family == lookup.family)
        and (lookup.owner_account_id is None or image.creator == lookup.owner_account_id)
    )


def choose(images: Sequence[CloudImage], lookup: ImageLookup) -> CloudImage | None:
    """The newest usable image among ``images`` that matches the lookup."""
    return newest([image for image in images if usable(image) and matches_lookup(image, lookup)])


def newest(images: Sequence[CloudImage]) -> CloudImage | None:
    """The most recently created image (ties broken by id, so the choice is stable)."""
    if not images:
        return None
    return max(images, key=lambda image: (image.created_time or "", image.image_id))


async def find_by_lookup(api: CvmApi, lookup: ImageLookup) -> CloudImage | None:
    """The image a lookup chooses. A family is asked with DescribeImageFromFamily, whose answer is the
    newest usable image of the family; only when that one misses another criterion (type, owner, name,
    platform) are the family's images listed through DescribeImages."""
    if lookup.family is not None:
        candidate = await api.image_from_family(lookup.family)
        if candidate is None:
            return None  # the family has no usable image at all
        if usable(candidate) and matches_lookup(candidate, lookup):
            return candidate
    return choose(await api.find_images(lookup_filters(lookup)), lookup)


def describe_lookup(lookup: ImageLookup) -> str:
    given = (
        ("name", lookup.name),
        ("platform", lookup.platform),
        ("family", lookup.family),
        ("owner", lookup.owner_account_id),
    )
    criteria = [f"type {lookup.image_type}", *(f"{field} {value!r}" for field, value in given if value is not None)]
    return ", ".join(criteria) + ", state NORMAL, not deprecated"


def image_progress(image: CloudImage, now: dt.datetime) -> int:
    """Percent done: 100 when NORMAL, the cloud's SyncPercent while busy, else an estimate from its age."""
    if image.state == IMAGE_NORMAL:
        return 100
    if image.state not in IMAGE_BUSY_STATES:
        return 0
    if image.sync_percent is not None:
        return max(0, min(99, image.sync_percent))
    if not image.created_time:
        return 0
    started = dt.datetime.fromisoformat(image.created_time.replace("Z", "+00:00"))
    elapsed = (now - started).total_seconds()
    return max(0, min(95, int(100 * elapsed / _TYPICAL_SECONDS[image.state])))


def image_status(image: CloudImage, now: dt.datetime) -> dict[str, Any]:
    """Status fields (snake_case, as in ImageStatus) describing a cloud image."""
    return {
        "image_id": image.image_id,
        "image_name": image.name or None,
        "image_type": "Marketplace" if image.is_marketplace else IMAGE_TYPE_FROM_CLOUD.get(image.type),
        "os_name": image.os_name or None,
        "platform": image.platform or None,
        "architecture": image.architecture or None,
        "size_gb": image.size_gb,
        "image_source": image.source or None,
        "owner": image.creator or None,
        "created_time": image.created_time,
        "progress": image_progress(image, now),
    }


@dataclass(frozen=True)
class AttributeChanges:
    """What ModifyImageAttribute must set to make the cloud image match the spec (None: leave as is)."""

    name: str | None = None
    description: str | None = None
    family: str | None = None
    deprecated: bool | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.name, self.description, self.family, self.deprecated))

    def describe(self) -> str:
        fields = [name for name in ("name", "description", "family", "deprecated") if getattr(self, name) is not None]
        return ", ".join(fields)


def attribute_changes(spec: ImageSpec, object_name: str, image: CloudImage) -> AttributeChanges:
    """Differences between spec and cloud; description and family are managed only when set in spec."""
    name = desired_image_name(spec, object_name)
    return AttributeChanges(
        name=name if image.name != name else None,
        description=spec.description if spec.description is not None and image.description != spec.description
        else None,
        family=spec.family if spec.family is not None and image.family != spec.family else None,
        deprecated=spec.deprecated if image.deprecated != spec.deprecated else None,
    )  # fmt: skip


def judge_image(image: CloudImage, now: dt.datetime) -> Observation[CloudImage]:
    """What the cloud state of an image means for the object (without the spec comparison)."""
    status = image_status(image, now)
    if image.state in _FAILURE_REASON:
        return Observation(
            exists=True,
            status=status,
            cloud_state=image.state,
            resource=image,
            failed=True,
            reason=_FAILURE_REASON[image.state],
            message=f"image {image.image_id} ended in {image.state}"
            + (
                ": the file could not be fetched or is not a supported disk image"
                if image.state == IMAGE_IMPORTFAILED
                else ""
            ),
        )
    if image.state in IMAGE_BUSY_STATES:
        return Observation(
            exists=True,
            status=status,
            cloud_state=image.state,
            resource=image,
            phase=_PHASE_BY_STATE[image.state],
            reason=_PHASE_BY_STATE[image.state],
            message=f"image {image.image_id} is {image.state} ({status['progress']}%)",
        )
    if image.state == IMAGE_NORMAL:
        kind = status["image_type"] or image.type
        return Observation(
            exists=True,
            status=status,
            cloud_state=image.state,
            resource=image,
            ready=True,
            phase="Available",
            message=f"image {image.image_id} ({kind}) is available",
        )
    return Observation(
        exists=True,
        status=status,
        cloud_state=image.state,
        resource=image,
        reason="UnknownState",
        message=f"image {image.image_id} is in an unexpected state {image.state!r}",
    )


def sharing_message(image_id: str, accounts: Sequence[str], share_objects: Sequence[str]) -> str:
    who = f"accounts {', '.join(accounts)}" if accounts else "other accounts"
    if share_objects:
        owners = f"ImageShare objects: {', '.join(share_objects)}"
    else:
        owners = "no ImageShare object here manages these shares; cancel them in the cloud"
    return f"image {image_id} is still shared with {who} ({owners}); it is deleted once the shares are gone"


def share_objects_for(items: Sequence[Mapping[str, Any]], image_name: str, image_id: str) -> list[str]:
    """Names of ImageShare objects that point at this image, by Image name or cloud id."""
    names = []
    for item in items:
        spec = item.get("spec") or {}
        status = item.get("status") or {}
        ref = (spec.get("imageRef") or {}).get("name")
        if ref == image_name or status.get("imageId") == image_id or spec.get("imageId") == image_id:
            names.append(str(item["metadata"]["name"]))
    return sorted(names)


def controlled_by(items: Sequence[Mapping[str, Any]], owner_uid: str) -> list[Mapping[str, Any]]:
    """The objects whose controller owner reference names ``owner_uid``."""
    return [
        item
        for item in items
        if any(
            ref.get("uid") == owner_uid and ref.get("controller")
            for ref in item["metadata"].get("ownerReferences") or []
        )
    ]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------- reconciler


class ImageReconciler(ManagedReconciler[Image, CloudImage]):
    kind = "Image"
    plural = IMAGES
    model = Image
    creating_phase = "Creating"
    observe_after_create = True
    ready_phase = "Available"

    def can_create(self, ctx: Context[Image]) -> bool:
        return ctx.obj.spec.source.existing is None

    def retains(self, obj: Image) -> bool:
        # Images observed through source.existing are never ours to delete.
        return obj.spec.source.existing is not None or obj.spec.deletion_policy == "Retain"

    def holds_finalizer(self, obj: Image) -> bool:
        # An observed image is not ours: deleting its object touches nothing in the cloud.
        return obj.spec.source.existing is None

    async def observe(self, ctx: Context[Image]) -> Observation[CloudImage]:
        if ctx.obj.spec.source.existing is not None:
            return await self._observe_existing(ctx)
        image = await self._find_created(ctx)
        if image is None:
            if ctx.obj.status.image_id:
                return Observation(
                    exists=False,
                    failed=True,
                    reason="NotFound",
                    message=f"image {ctx.obj.status.image_id} no longer exists in {ctx.api.region} "
                    "(deleted outside the operator); delete this object and create it again to make a new one",
                )
            if ctx.obj.spec.source.from_instance is not None:
                await self._instance_id(ctx)  # waits for the Instance before a create is attempted
            self._check_name(ctx)
            return Observation(exists=False)
        observation = judge_image(image, _now())
        if observation.ready and image.type == "PRIVATE_IMAGE":
            spec = ctx.obj.spec
            desired = desired_tags(spec, ctx.uid)
            attributes = attribute_changes(spec, str(ctx.obj.metadata.name), image)
            drifted = [attributes.describe()] if attributes else []
            if tag_changes(desired, image.tags):
                drifted.append("tags")
            if drifted:
                observation.up_to_date = False
                observation.reason = "Updating"
                observation.message = f"putting back {', '.join(drifted)} of image {image.image_id}"
            observation.conditions.append(tags_condition(desired, image.tags))
        return observation

    async def _observe_existing(self, ctx: Context[Image]) -> Observation[CloudImage]:
        existing = ctx.obj.spec.source.existing
        assert existing is not None
        if existing.image_id is not None:
            image = await ctx.api.describe_image(existing.image_id)
            missing = f"image {existing.image_id} does not exist in {ctx.api.region} or is not visible to this account"
        else:
            assert existing.lookup is not None
            image = await find_by_lookup(ctx.api, existing.lookup)
            missing = f"no image in {ctx.api.region} matches {describe_lookup(existing.lookup)}"
            previous = ctx.obj.status.image_id
            if image is not None and previous and image.image_id != previous:
                self.runtime.post(
                    ctx.body,
                    "Normal",
                    "ImageChanged",
                    f"lookup now matches image {image.image_id} ({image.name}), which replaces {previous}",
                )
        if image is None and existing.lookup is not None and not ctx.obj.status.image_id:
            # Nothing matched yet: often an image still to be shared or made (GitOps applies everything at
            # once), so the object waits and looks again every poll; one that matched before and is gone
            # is Stalled like a missing id.
            raise Waiting(
                "NoMatchingImage", f"{missing}; looking again every poll", delay=self.runtime.config.poll_interval
            )
        if image is None:
            return Observation(exists=False, failed=True, reason="NotFound", message=missing)
        return judge_image(image, _now())

    async def _find_created(self, ctx: Context[Image]) -> CloudImage | None:
        """The image this object made: by status id, else by the UID tag (a create whose id was lost)."""
        if ctx.obj.status.image_id:
            return await ctx.api.describe_image(ctx.obj.status.image_id)
        return await find_lost_create(ctx, ctx.api.find_images, lambda image: image.image_id)

    def _check_name(self, ctx: Context[Image]) -> None:
        name = desired_image_name(ctx.obj.spec, str(ctx.obj.metadata.name))
        if len(name) > IMAGE_NAME_MAX:
            raise Blocked(
                "InvalidName",
                f"metadata.name is longer than {IMAGE_NAME_MAX} characters, the limit of image names; "
                "set spec.imageName",
            )

    async def _instance_id(self, ctx: Context[Image]) -> str:
        source = ctx.obj.spec.source.from_instance
        assert source is not None
        if source.instance_id is not None:
            return source.instance_id
        assert source.instance_ref is not None
        namespace, name = ctx.key.namespace, source.instance_ref.name
        dependency = ObjectKey("Instance", namespace, name)
        body = await ctx.runtime.read(INSTANCES, dependency)
        if body is None:
            raise Waiting("InstanceNotReady", f"waiting for Instance {name!r}, which does not exist", on=dependency)
        spec, status = body.get("spec") or {}, body.get("status") or {}
        if spec.get("region") != ctx.obj.spec.region:
            raise Blocked(
                "RegionMismatch",
                f"spec.source.fromInstance.instanceRef: Instance {name!r} is in {spec.get('region')}, "
                f"the image in {ctx.obj.spec.region}",
            )
        instance_id, state = status.get("instanceId"), status.get("cloudState")
        if not instance_id or state not in _IMAGEABLE_INSTANCE_STATES:
            raise Waiting(
                "InstanceNotReady",
                f"waiting for Instance {name!r} to be launched (instance id {instance_id or 'none yet'}, "
                f"state {state or 'unknown'})",
                on=dependency,
            )
        return str(instance_id)

    async def create(self, ctx: Context[Image], observation: Observation[CloudImage]) -> dict[str, Any]:
        spec = ctx.obj.spec
        name = desired_image_name(spec, str(ctx.obj.metadata.name))
        tags = desired_tags(spec, ctx.uid)
        try:
            if spec.source.from_instance is not None:
                source = spec.source.from_instance
                image_id = await ctx.api.create_image(
                    name,
                    await self._instance_id(ctx),
                    description=spec.description,
                    force_poweroff=source.force_poweroff,
                    sysprep=source.sysprep,
                    data_disk_ids=source.data_disk_ids,
                    family=spec.family,
                    tags=tags,
                )
            else:
                imported = spec.source.from_import
                assert imported is not None
                image_id = await ctx.api.import_image(
                    name,
                    imported.url,
                    os_type=imported.os_type,
                    os_version=imported.os_version,
                    architecture=imported.architecture,
                    description=spec.description,
                    boot_mode=imported.boot_mode,
                    license_type=imported.license_type,
                    force=imported.force,
                    family=spec.family,
                    tags=tags,
                )
        except CloudError as error:
            if error.code != "InvalidImageName.Duplicate":
                raise
            # Names are unique per account: our own earlier create (its tag not yet searchable) is adopted.
            adopted = await self._own_image_named(ctx, name)
            if adopted is None:
                raise
            image_id = adopted
        return {"image_id": image_id, "image_name": name, "image_type": "Custom", "progress": 0}

    async def _own_image_named(self, ctx: Context[Image], name: str) -> str | None:
        found = await ctx.api.find_images({"image-name": [name], "image-type": ["PRIVATE_IMAGE"]})
        mine = [image for image in found if image.name == name and image.tags.get(UID_TAG) == ctx.uid]
        image = newest(mine)
        return image.image_id if image is not None else None

    async def update(self, ctx: Context[Image], observation: Observation[CloudImage]) -> None:
        image = observation.found
        if ctx.obj.spec.source.existing is not None or not isinstance(image, CloudImage) or image.state != IMAGE_NORMAL:
            return None  # images from source.existing are never changed
        changes = attribute_changes(ctx.obj.spec, str(ctx.obj.metadata.name), image)
        if changes:
            await ctx.api.modify_image_attribute(
                image.image_id,
                name=changes.name,
                description=changes.description,
                family=changes.family,
                deprecated=changes.deprecated,
            )
        tags = tag_changes(desired_tags(ctx.obj.spec, ctx.uid), image.tags)
        if tags:
            # The owner's account id is part of the resource name: the image's creator.
            name = resource_name(ctx.api.region, image.creator, "image", image.image_id)
            await ctx.session.tags().modify_resource_tags(name, tags.replace, tags.delete)

    async def delete(self, ctx: Context[Image], observation: Observation[CloudImage]) -> Waiting | None:
        image_id = str(observation.status.get("image_id") or "")
        if observation.cloud_state in IMAGE_BUSY_STATES:
            return Waiting(
                "ImageBusy",
                f"image {image_id} is {observation.cloud_state}; it is deleted once that ends",
                phase="Deleting",
            )
        try:
            await ctx.api.delete_images([image_id])
        except CloudError as error:
            if error.code == "InvalidImageId.InShared":
                return Waiting("ImageShared", await self._sharing(ctx, image_id), phase="Deleting")
            if error.not_found:
                return None
            raise
        return None

    async def _sharing(self, ctx: Context[Image], image_id: str) -> str:
        accounts: list[str] = []
        try:
            accounts = await ctx.api.describe_share_permission(image_id)
        except CloudError as error:
            if error.transient:
                raise
        items = await ctx.runtime.kube.list(IMAGE_SHARES, ctx.key.namespace)
        for item in controlled_by(items, ctx.uid):
            # Shares this Image owns (an ImageSchedule's) go with it; garbage collection would wait for
            # the Image to be gone, and the Image waits for its shares.
            if not item["metadata"].get("deletionTimestamp"):
                await ctx.runtime.kube.delete(IMAGE_SHARES, ctx.key.namespace, str(item["metadata"]["name"]))
        return sharing_message(image_id, accounts, share_objects_for(items, ctx.key.name, image_id))
