"""ImageShare: keep a custom image's share list equal to spec.accountIds, for the accounts this object manages.

The object owns only the shares it added (``status.sharedAccounts``): it adds what is missing (one
SHARE call), cancels what it added and no longer wants (one CANCEL call), puts back shares cancelled
out of band, and never cancels a share someone else made. The share calls are synchronous in the
cloud, so a pass that changed the list ends Ready at once.

Crash safety: before SHARE the accounts about to be shared are recorded in ``status.sharedAccounts``,
so a crash after the call cannot turn this object's shares into someone else's (which it would then
leave behind on deletion). CANCEL runs before SHARE so a failing SHARE never hides a CANCEL.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from cvm_operator.api import IMAGE_SHARES, ImageShare
from cvm_operator.api.imageshare import MAX_SHARE_ACCOUNTS
from cvm_operator.cloud import CloudError, CloudImage, CvmApi
from cvm_operator.cloud.resources import (
    IMAGE_BUSY_STATES,
    IMAGE_NORMAL,
    PRIVATE_IMAGE,
    PUBLIC_IMAGE,
    SHARED_IMAGE,
)
from cvm_operator.reconcilers.base import Blocked, Context, ManagedReconciler, Observation, Waiting
from cvm_operator.reconcilers.references import ImageTarget, ready_image

# Share errors that name a rule the user broke, mapped to the reason shown in Stalled.
_SHARE_ERROR_REASONS = {
    "InvalidAccountId.NotFound": "AccountNotFound",
    "FailedOperation.AccountIsYourSelf": "ShareWithSelf",
    "InvalidAccountIs.YourSelf": "ShareWithSelf",
    "FailedOperation.NotMasterAccount": "NotRootAccount",
    "OverQuota": "TooManyAccounts",
    "UnauthorizedOperation.ImageNotBelongToAccount": "NotShareable",
    "FailedOperation.BYOLImageShareFailed": "NotShareable",
    "UnsupportedOperation.EncryptedImagesNotSupported": "NotShareable",
    "InvalidParameter.InstanceImageNotSupport": "NotShareable",
}

_TYPE_WORDS = {PUBLIC_IMAGE: "a public image", SHARED_IMAGE: "a shared image"}


@dataclass(frozen=True)
class SharePlan:
    """What one pass does to the cloud's share list."""

    share: tuple[str, ...]
    """Wanted accounts missing from the cloud list (never shared, or cancelled out of band)."""
    cancel: tuple[str, ...]
    """Accounts this object added, no longer wants, and the cloud still lists."""
    owned: tuple[str, ...]
    """Accounts this object holds once the plan is carried out (status.sharedAccounts)."""
    total_after: int
    """Size of the cloud list once the plan is carried out."""

    @property
    def up_to_date(self) -> bool:
        return not self.share and not self.cancel


def plan_shares(wanted: Iterable[str], cloud: Iterable[str], owned_before: Iterable[str]) -> SharePlan:
    """Compare the wanted accounts with the cloud list; only accounts this object added are cancelled."""
    wanted_set, cloud_set, before = set(wanted), set(cloud), set(owned_before)
    share = wanted_set - cloud_set
    cancel = (before - wanted_set) & cloud_set
    owned = (before & wanted_set) | share
    return SharePlan(
        share=tuple(sorted(share)),
        cancel=tuple(sorted(cancel)),
        owned=tuple(sorted(owned)),
        total_after=len((cloud_set - cancel) | wanted_set),
    )


SharePass = tuple[ImageTarget, SharePlan]
"""What observe hands to update: the image shared, and what to change."""


def share_rule_violation(image: CloudImage, wanted: Collection[str], plan: SharePlan) -> Blocked | None:
    """The first sharing rule the spec breaks, as Blocked, or None. Only checks; calls nothing."""
    if image.type != PRIVATE_IMAGE:
        what = "a marketplace image" if image.is_marketplace else _TYPE_WORDS.get(image.type, f"of type {image.type}")
        return Blocked(
            "NotShareable",
            f"image {image.image_id} is {what}; only the account's own custom images can be shared",
        )
    if image.creator and image.creator in wanted:
        return Blocked(
            "ShareWithSelf",
            f"spec.accountIds: {image.creator} is the account that owns image {image.image_id}; remove it",
        )
    if plan.share and plan.total_after > MAX_SHARE_ACCOUNTS:
        return Blocked(
            "TooManyAccounts",
            f"sharing with {len(plan.share)} more account(s) would give image {image.image_id} "
            f"{plan.total_after} shares; the cloud allows at most {MAX_SHARE_ACCOUNTS}",
        )
    return None


def blocked_by_share_error(error: CloudError, image_id: str) -> Blocked | None:
    reason = _SHARE_ERROR_REASONS.get(error.code)
    if reason is None:
        return None
    return Blocked(reason, f"sharing image {image_id}: {error.code}: {error.message}")


class ImageShareReconciler(ManagedReconciler[ImageShare, SharePass]):
    kind: ClassVar[str] = "ImageShare"
    plural: ClassVar[str] = IMAGE_SHARES
    model = ImageShare
    creating_phase = "Pending"
    ready_phase = "Available"

    def region(self, obj: ImageShare) -> str | None:
        return None  # the shared image's region, known once the target is resolved

    async def _target(self, ctx: Context[ImageShare]) -> ImageTarget:
        spec, status = ctx.obj.spec, ctx.obj.status
        if ctx.deleting and status.image_id and status.region:
            # What was shared is what must be cancelled, whatever state the Image object is in now.
            return ImageTarget(status.image_id, status.region)
        if spec.image_ref is not None:
            return await ready_image(self.runtime, ctx.key.namespace, spec.image_ref.name)
        assert spec.image_id is not None and spec.region is not None  # the model guarantees one of both
        return ImageTarget(spec.image_id, spec.region)

    async def observe(self, ctx: Context[ImageShare]) -> Observation[SharePass]:
        target = await self._target(ctx)
        api = ctx.session.cvm(target.region)
        if ctx.deleting:
            return await self._observe_for_deletion(ctx, api, target)
        image = await api.describe_image(target.image_id)
        if image is None:
            raise Blocked("ImageNotFound", f"image {target.image_id} does not exist in {target.region}")
        wanted = list(ctx.obj.spec.account_ids)
        if image.type != PRIVATE_IMAGE:  # DescribeImageSharePermission refuses images of others
            violation = share_rule_violation(image, wanted, plan_shares(wanted, [], []))
            assert violation is not None
            raise violation
        if image.state != IMAGE_NORMAL:
            if image.state in IMAGE_BUSY_STATES:
                raise Waiting("ImageNotReady", f"image {image.image_id} is {image.state}; shares wait for NORMAL")
            raise Blocked("ImageNotShareable", f"image {image.image_id} is {image.state} and cannot be shared")
        cloud = await api.describe_share_permission(image.image_id)
        plan = plan_shares(wanted, cloud, ctx.obj.status.shared_accounts)
        violation = share_rule_violation(image, wanted, plan)
        if violation is not None:
            raise violation
        status: dict[str, Any] = {
            "image_id": image.image_id,
            "region": target.region,
            # Recorded as is if the update fails: accounts about to be shared count as ours (a failed
            # SHARE leaves nothing to cancel), those about to be cancelled stay ours until they are.
            "shared_accounts": sorted(set(plan.owned) | set(plan.cancel)),
        }
        return Observation(
            exists=True,
            up_to_date=plan.up_to_date,
            status=status,
            cloud_state=image.state,
            ready=not plan.share,
            reason="Sharing",
            message=_summary(image.image_id, plan),
            resource=(target, plan),
        )

    async def _observe_for_deletion(
        self, ctx: Context[ImageShare], api: CvmApi, target: ImageTarget
    ) -> Observation[SharePass]:
        try:
            cloud = await api.describe_share_permission(target.image_id)
        except CloudError as error:
            if error.transient:
                raise
            return Observation(exists=False)  # the image is gone or not ours: nothing of ours is shared
        held = sorted(set(ctx.obj.status.shared_accounts) & set(cloud))
        return Observation(
            exists=bool(held),
            status={"image_id": target.image_id, "region": target.region, "shared_accounts": held},
        )

    async def create(self, ctx: Context[ImageShare], observation: Observation[SharePass]) -> dict[str, Any]:
        raise AssertionError("observe always reports the share list as existing")  # pragma: no cover

    async def update(self, ctx: Context[ImageShare], observation: Observation[SharePass]) -> dict[str, Any]:
        target, plan = observation.found
        api = ctx.session.cvm(target.region)
        if plan.cancel:
            await api.unshare_image(target.image_id, plan.cancel)
            self.runtime.post(ctx.body, "Normal", "Unshared", f"stopped sharing with {', '.join(plan.cancel)}")
        if plan.share:
            await self._record_owned(ctx, target, plan.owned)
            try:
                await api.share_image(target.image_id, plan.share)
            except CloudError as error:
                blocked = blocked_by_share_error(error, target.image_id)
                if blocked is not None:
                    raise blocked from error
                raise
            self.runtime.post(ctx.body, "Normal", "Shared", f"shared with {', '.join(plan.share)}")
        # Both calls take effect at once: the list now equals the plan.
        observation.up_to_date = observation.ready = True
        observation.message = f"image {target.image_id} is shared with {len(ctx.obj.spec.account_ids)} account(s)"
        return {"shared_accounts": list(plan.owned)}

    async def _record_owned(self, ctx: Context[ImageShare], target: ImageTarget, owned: Iterable[str]) -> None:
        """Write down, before SHARE, which image and accounts this object is about to hold."""
        meta = ctx.body["metadata"]
        record = {"imageId": target.image_id, "region": target.region, "sharedAccounts": sorted(owned)}
        await self.runtime.kube.patch_status(self.plural, str(meta["namespace"]), str(meta["name"]), record)

    async def delete(self, ctx: Context[ImageShare], observation: Observation[SharePass]) -> Waiting | None:
        held: list[str] = observation.status.get("shared_accounts") or []
        image_id = str(observation.status["image_id"])
        if held:
            api = ctx.session.cvm(str(observation.status["region"]))
            await api.unshare_image(image_id, held)
            self.runtime.post(ctx.body, "Normal", "Unshared", f"stopped sharing {image_id} with {', '.join(held)}")
        return Waiting("Unsharing", f"cancelled the shares of {image_id} this object made", phase="Deleting")


def _summary(image_id: str, plan: SharePlan) -> str:
    parts = []
    if plan.share:
        parts.append(f"to share with {', '.join(plan.share)}")
    if plan.cancel:
        parts.append(f"to cancel for {', '.join(plan.cancel)}")
    if not parts:
        return f"image {image_id} is shared with every account in spec.accountIds"
    return f"image {image_id}: " + "; ".join(parts)
