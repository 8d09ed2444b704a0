"""ImageCopy: copy an image to other regions with SyncImages and track every copy.

One SyncImages call covers every destination region that has no copy yet (the first time, and again
when regions are added). Each copy gets an ``Image`` object (source ``existing``, labelled with the
ImageCopy) so that Instances in that region can name it. Ready when every copy is NORMAL.

Removing a region from spec.destinationRegions keeps its copy and its Image object: a copy is an
independent image that instances may already run from. It stays in ``status.copies`` (so that
``deletionPolicy: Delete`` still removes it) and the Ready message names it.

Crash safety: SyncImages takes no client token and its copies carry no tags. Before each call the
create-pending annotation is set to the current time; a region without a recorded copy is first
searched for a private image of the copy's name, made after that mark and matching the source, and
such an image is adopted instead of copying again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cvm_operator.api import API_VERSION, IMAGE_COPIES, IMAGES, ImageCopy, ImageCopyEntry, parse_time, utc_now
from cvm_operator.cloud import CloudError, CloudImage
from cvm_operator.cloud.resources import (
    IMAGE_BUSY_STATES,
    IMAGE_FAILED_STATES,
    IMAGE_NORMAL,
    PRIVATE_IMAGE,
    PUBLIC_IMAGE,
    SHARED_IMAGE,
)
from cvm_operator.kube import Conflict
from cvm_operator.reconcilers.base import (
    ANNOTATION_PREFIX,
    CREATE_PENDING,
    Blocked,
    Context,
    ManagedReconciler,
    Observation,
    Waiting,
)
from cvm_operator.reconcilers.outcomes import ObjectKey
from cvm_operator.reconcilers.references import IMAGE_KIND, ImageTarget, owner_reference, ready_image

COPY_LABEL = f"{ANNOTATION_PREFIX}/image-copy"
"""Label on the Image objects of an ImageCopy's copies; the value is the ImageCopy's name."""
CLOCK_SKEW = dt.timedelta(minutes=2)
"""How much earlier than the pending mark a cloud image may claim to be made and still be ours."""


def copy_object_name(copy_name: str, region: str) -> str:
    """Name of the Image object of the copy in ``region``."""
    return f"{copy_name}-{region}"


def copy_rule_violation(
    source: CloudImage, source_region: str, destinations: Sequence[str], *, encrypt: bool, name: str
) -> Blocked | None:
    """The first copy rule the spec breaks, as Blocked, or None. Only checks; calls nothing."""
    if source.type == PUBLIC_IMAGE:
        what = "a marketplace" if source.is_marketplace else "a public"
        return Blocked(
            "NotCopyable",
            f"image {source.image_id} is {what} image; only custom and shared images can be copied "
            "(public and marketplace images already exist in every region)",
        )
    others = [region for region in destinations if region != source_region]
    if source.type == SHARED_IMAGE:
        if others:
            return Blocked(
                "SharedImageRegion",
                f"image {source.image_id} is shared with this account and can be copied only into its own "
                f"region {source_region} (a private copy); spec.destinationRegions has {', '.join(others)}",
            )
        return None
    if source.type != PRIVATE_IMAGE:
        return Blocked("NotCopyable", f"image {source.image_id} is of type {source.type} and cannot be copied")
    if encrypt:
        if others:
            return Blocked(
                "EncryptedCopyRegion",
                f"an encrypted copy goes only to the source region {source_region}, not {', '.join(others)}",
            )
        if name == source.name:
            return Blocked(
                "DuplicateName",
                f"the encrypted copy in {source_region} needs a name other than its source's ({name!r}): "
                "set spec.imageName",
            )
        return None
    if source_region in destinations:
        return Blocked(
            "SameRegionCopy",
            f"image {source.image_id} is already in {source_region}: a custom image is copied into its own "
            "region only with spec.encrypt; remove that region from spec.destinationRegions",
        )
    return None


def adoptable(
    candidate: CloudImage, source: CloudImage | None, name: str, *, pending_since: dt.datetime | None
) -> bool:
    """Whether a cloud image found by name is the copy an earlier SyncImages (whose result was lost) made."""
    if candidate.type != PRIVATE_IMAGE or candidate.name != name or pending_since is None:
        return False
    created = parse_time(candidate.created_time)
    if created is None or created < pending_since - CLOCK_SKEW:
        return False
    if source is None:
        return True
    return (candidate.os_name, candidate.platform, candidate.architecture) == (
        source.os_name,
        source.platform,
        source.architecture,
    )


def entry_for(region: str, image: CloudImage, object_name: str) -> ImageCopyEntry:
    progress = 100 if image.state == IMAGE_NORMAL else image.sync_percent
    return ImageCopyEntry(
        region=region,
        image_id=image.image_id,
        cloud_state=image.state,
        progress=None if progress is None else max(0, min(100, progress)),
        image_name=object_name,
    )


def copies_summary(copies: Sequence[ImageCopyEntry], wanted: Sequence[str]) -> str:
    parts = []
    for copy in copies:
        state = copy.cloud_state or "not copied"
        if copy.cloud_state in IMAGE_BUSY_STATES and copy.progress is not None:
            state = f"{state} {copy.progress}%"
        kept = "" if copy.region in wanted else " (kept: no longer in spec.destinationRegions)"
        parts.append(f"{copy.region}: {copy.image_id or '-'} {state}{kept}")
    return "; ".join(parts)


@dataclass
class CopyPlan:
    """What observe found and what update (or create) must do, for the same pass."""

    source: ImageTarget
    source_image: CloudImage
    name: str
    copies: dict[str, ImageCopyEntry]
    to_copy: list[str]
    """Destination regions with no copy yet (one SyncImages call)."""
    objects_missing: list[ImageCopyEntry] = field(default_factory=list)
    objects_stale: list[str] = field(default_factory=list)
    """Image objects of ours that point to a copy that no longer exists."""


class ImageCopyReconciler(ManagedReconciler[ImageCopy, CopyPlan]):
    kind: ClassVar[str] = "ImageCopy"
    plural: ClassVar[str] = IMAGE_COPIES
    model = ImageCopy
    creating_phase = "Copying"
    ready_phase = "Available"

    def region(self, obj: ImageCopy) -> str | None:
        return None  # the source's region and each destination's, known once the source is resolved

    async def _source(self, ctx: Context[ImageCopy]) -> tuple[ImageTarget, CloudImage]:
        spec = ctx.obj.spec
        if spec.source_ref is not None:
            target = await ready_image(self.runtime, ctx.key.namespace, spec.source_ref.name)
        else:
            assert spec.source_image_id is not None and spec.source_region is not None  # the model guarantees it
            target = ImageTarget(spec.source_image_id, spec.source_region)
        image = await ctx.session.cvm(target.region).describe_image(target.image_id)
        if image is None:
            raise Blocked("SourceNotFound", f"source image {target.image_id} does not exist in {target.region}")
        return target, image

    # ------------------------------------------------------------------ observe

    async def observe(self, ctx: Context[ImageCopy]) -> Observation[CopyPlan]:
        if ctx.deleting:
            return await self._observe_for_deletion(ctx)
        spec = ctx.obj.spec
        target, source = await self._source(ctx)
        name = spec.image_name or source.name
        wanted = list(spec.destination_regions)
        violation = copy_rule_violation(source, target.region, wanted, encrypt=spec.encrypt, name=name)
        if violation is not None:
            raise violation
        if source.state != IMAGE_NORMAL:
            if source.state in IMAGE_FAILED_STATES:
                raise Blocked("SourceFailed", f"source image {source.image_id} is {source.state}")
            raise Waiting("SourceNotReady", f"source image {source.image_id} is {source.state}; copies wait for NORMAL")

        recorded = {copy.region: copy for copy in ctx.obj.status.copies if copy.image_id}
        regions = list(dict.fromkeys([*wanted, *recorded]))
        found = await self._find_copies(ctx, regions, recorded, source, name)
        copies = {region: found[region] for region in regions if region in found}
        to_copy = [region for region in wanted if region not in copies]
        plan = CopyPlan(target, source, name, copies, to_copy)
        await self._check_objects(ctx, plan)

        failed = [copy for copy in copies.values() if copy.cloud_state in IMAGE_FAILED_STATES]
        ordered = [copies[region] for region in regions if region in copies]
        ordered += [ImageCopyEntry(region=region) for region in to_copy]
        up_to_date = not to_copy and not plan.objects_missing and not plan.objects_stale
        ready = not to_copy and all(copies[region].cloud_state == IMAGE_NORMAL for region in wanted)
        summary = copies_summary(ordered, wanted)
        return Observation(
            exists=bool(copies),
            up_to_date=up_to_date,
            status={"source_image_id": source.image_id, "source_region": target.region, "copies": ordered},
            phase=None if ready else "Copying",
            cloud_state=_overall_state([copies[r] for r in wanted if r in copies], to_copy),
            ready=ready,
            reason="CopyFailed" if failed else "Copying",
            message=f"copies: {summary}" if ready or not failed else f"a copy failed: {summary}",
            failed=bool(failed),
            resource=plan,
        )

    async def _find_copies(
        self,
        ctx: Context[ImageCopy],
        regions: Sequence[str],
        recorded: Mapping[str, ImageCopyEntry],
        source: CloudImage | None,
        name: str | None,
    ) -> dict[str, ImageCopyEntry]:
        """The copy in each region: recorded ones described (batched per region), others looked up by name."""
        pending_since = parse_time(ctx.annotation(CREATE_PENDING))

        async def one(region: str) -> tuple[str, CloudImage | None]:
            api = ctx.session.cvm(region)
            known = recorded.get(region)
            if known is not None and known.image_id:
                image = await api.describe_image(known.image_id)
                if image is not None:
                    return region, image
            if name is None or pending_since is None:
                return region, None  # never asked to copy there: nothing to find
            candidates = await api.find_images({"image-type": [PRIVATE_IMAGE], "image-name": [name]})
            for candidate in candidates:
                if adoptable(candidate, source, name, pending_since=pending_since):
                    return region, candidate
            return region, None

        results = await asyncio.gather(*(one(region) for region in regions))
        return {
            region: entry_for(region, image, copy_object_name(ctx.key.name, region))
            for region, image in results
            if image is not None
        }

    async def _check_objects(self, ctx: Context[ImageCopy], plan: CopyPlan) -> None:
        """Find copies whose Image object is missing, or whose Image object names a vanished copy."""
        namespace = ctx.key.namespace

        async def one(copy: ImageCopyEntry) -> None:
            object_name = copy_object_name(ctx.key.name, copy.region)
            body = await self.runtime.read(IMAGES, ObjectKey(IMAGE_KIND, namespace, object_name))
            if body is None:
                plan.objects_missing.append(copy)
                return
            if (body["metadata"].get("labels") or {}).get(COPY_LABEL) != ctx.key.name:
                raise Blocked(
                    "ImageObjectConflict",
                    f"Image {object_name!r} exists and does not belong to this ImageCopy; rename or delete it",
                )
            existing = ((body.get("spec") or {}).get("source") or {}).get("existing") or {}
            if existing.get("imageId") != copy.image_id and not body["metadata"].get("deletionTimestamp"):
                plan.objects_stale.append(object_name)

        await asyncio.gather(*(one(copy) for copy in plan.copies.values()))

    # ------------------------------------------------------------------ create and update

    async def create(self, ctx: Context[ImageCopy], observation: Observation[CopyPlan]) -> dict[str, Any]:
        """The first SyncImages (the driver has just set the create-pending mark)."""
        plan = observation.found
        await self._sync(ctx, plan)
        return {
            "source_image_id": plan.source_image.image_id,
            "source_region": plan.source.region,
            "copies": [plan.copies[region] for region in ctx.obj.spec.destination_regions if region in plan.copies],
        }

    async def update(self, ctx: Context[ImageCopy], observation: Observation[CopyPlan]) -> dict[str, Any] | None:
        plan = observation.found
        for object_name in plan.objects_stale:
            await self.runtime.kube.delete(IMAGES, ctx.key.namespace, object_name)
        for copy in plan.objects_missing:
            await self._create_object(ctx, copy)
        if plan.to_copy:
            await self._mark_pending(ctx)
            await self._sync(ctx, plan)
            self.runtime.post(ctx.body, "Normal", "Copying", f"copying to {', '.join(plan.to_copy)}")
            copies: list[ImageCopyEntry] = observation.status["copies"]
            return {"copies": [plan.copies.get(copy.region, copy) for copy in copies]}
        if not plan.objects_stale:
            observation.up_to_date = True  # only Image objects were missing, and now they exist
        return None

    async def _mark_pending(self, ctx: Context[ImageCopy]) -> None:
        meta = ctx.body["metadata"]
        try:
            await self.runtime.kube.patch_metadata(
                self.plural,
                ctx.key.namespace,
                ctx.key.name,
                str(meta["resourceVersion"]),
                annotations={CREATE_PENDING: utc_now().isoformat()},
            )
        except Conflict as error:
            raise Waiting("Conflict", f"{error}; trying again", phase="Copying") from error

    async def _sync(self, ctx: Context[ImageCopy], plan: CopyPlan) -> None:
        spec = ctx.obj.spec
        api = ctx.session.cvm(plan.source.region)
        synced = await api.sync_images(
            plan.source_image.image_id,
            plan.to_copy,
            name=spec.image_name,
            encrypt=spec.encrypt,
            kms_key_id=spec.kms_key_id,
        )
        for copy in synced:
            plan.copies[copy.region] = ImageCopyEntry(
                region=copy.region,
                image_id=copy.image_id,
                cloud_state="SYNCING",
                progress=0,
                image_name=copy_object_name(ctx.key.name, copy.region),
            )

    async def _create_object(self, ctx: Context[ImageCopy], copy: ImageCopyEntry) -> None:
        spec = ctx.obj.spec
        image_spec: dict[str, Any] = {
            "region": copy.region,
            "source": {"existing": {"imageId": copy.image_id}},
            # The Image object only observes the copy; removing copies is the ImageCopy's job.
            "deletionPolicy": "Retain",
        }
        if spec.credentials_secret_ref is not None:
            image_spec["credentialsSecretRef"] = {"name": spec.credentials_secret_ref.name}
        body = {
            "apiVersion": API_VERSION,
            "kind": IMAGE_KIND,
            "metadata": {
                "name": copy_object_name(ctx.key.name, copy.region),
                "namespace": ctx.key.namespace,
                "labels": {COPY_LABEL: ctx.key.name},
                "ownerReferences": [owner_reference(self.kind, ctx.key.name, ctx.uid)],
            },
            "spec": image_spec,
        }
        await self.runtime.kube.create(IMAGES, ctx.key.namespace, body)

    # ------------------------------------------------------------------ delete

    async def _observe_for_deletion(self, ctx: Context[ImageCopy]) -> Observation[CopyPlan]:
        """Recorded copies, and copies a SyncImages made whose result was lost (found by name after the mark)."""
        recorded = {copy.region: copy for copy in ctx.obj.status.copies if copy.image_id}
        regions = list(dict.fromkeys([*recorded, *ctx.obj.spec.destination_regions]))
        source: CloudImage | None = None
        name = ctx.obj.spec.image_name
        if ctx.annotation(CREATE_PENDING) is not None:
            try:
                _, source = await self._source(ctx)
            except (Waiting, Blocked):
                pass  # the source may be gone by now; the copy's own name is enough to find it
            else:
                name = name or source.name
        found = await self._find_copies(ctx, regions, recorded, source, name)
        objects = await self.runtime.kube.list(IMAGES, ctx.key.namespace, f"{COPY_LABEL}={ctx.key.name}")
        return Observation(
            exists=bool(found) or bool(objects),
            status={"copies": [found[region] for region in regions if region in found]},
        )

    async def retain(self, body: Mapping[str, Any]) -> None:
        # The copies stay, so their Image objects must outlive the ImageCopy's garbage collection.
        meta = body["metadata"]
        namespace = str(meta["namespace"])
        for image in await self.runtime.kube.list(IMAGES, namespace, f"{COPY_LABEL}={meta['name']}"):
            await self.runtime.kube.orphan(IMAGES, namespace, str(image["metadata"]["name"]), str(meta["uid"]))

    async def delete(self, ctx: Context[ImageCopy], observation: Observation[CopyPlan]) -> Waiting | None:
        objects = await self.runtime.kube.list(IMAGES, ctx.key.namespace, f"{COPY_LABEL}={ctx.key.name}")
        for body in objects:
            await self.runtime.kube.delete(IMAGES, ctx.key.namespace, str(body["metadata"]["name"]))
        copies: list[ImageCopyEntry] = observation.status.get("copies") or []
        busy = [copy.region for copy in copies if copy.cloud_state in IMAGE_BUSY_STATES]
        problems: list[str] = []
        for copy in copies:
            if copy.region in busy or copy.image_id is None:
                continue
            try:
                await ctx.session.cvm(copy.region).delete_images([copy.image_id])
            except CloudError as error:
                problems.append(f"{copy.region}: {error.code}: {error.message}")
            else:
                self.runtime.post(ctx.body, "Normal", "DeletedCopy", f"deleted copy {copy.image_id} in {copy.region}")
        if problems:
            return Waiting("CopyNotDeleted", "; ".join(problems), phase="Deleting")
        if busy:
            return Waiting("CopyBusy", f"copies still syncing in {', '.join(busy)}", phase="Deleting")
        return Waiting("DeletingCopies", "deleting the copies and their Image objects", phase="Deleting")


def _overall_state(copies: Sequence[ImageCopyEntry], to_copy: Sequence[str]) -> str | None:
    states = {copy.cloud_state for copy in copies if copy.cloud_state}
    if to_copy or not states:
        return None
    if states == {IMAGE_NORMAL}:
        return IMAGE_NORMAL
    return sorted(states - {IMAGE_NORMAL})[0]
