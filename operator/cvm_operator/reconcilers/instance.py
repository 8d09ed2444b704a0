"""Instance: launch from an image, keep the power state, reinstall on image change, terminate.

RunInstances gets the object UID as ClientToken, so a repeated launch returns the same instance; the
instance also carries the UID tag so it is found again while status has no id. An instance that
disappears (terminated outside the operator) is reported as Stalled ``NotFound`` and not relaunched:
a silent relaunch would hide the loss of the machine and its disk from its owner.

Tags drift is put back like on images: the cloud tags are spec.tags plus the UID tag (system tags
aside), fixed through the Tag API in the same update pass as a power-state or reinstall action, after
it. The Tag API names the instance by its owner's account id, learnt once per credentials from STS.
The attributes the cloud can change in place (name, security groups, termination protection) are put
back the same way, with ModifyInstancesAttribute. Host name and system disk size change only when the
instance is reinstalled: until then the ``SpecApplied`` condition says which fields wait and why.

User data is read from its Secret or ConfigMap at launch and reinstall only, and passed to the cloud
as it is: never logged, never in an Event or in status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from cvm_operator.api import SET_LABEL, Instance, InstanceSpec, Phase
from cvm_operator.api.instance import AttachedDisk
from cvm_operator.api.kinds import IMAGES, INSTANCES
from cvm_operator.cloud import CloudError, CloudInstance, LoginSettings, SystemDisk, resource_name
from cvm_operator.cloud.resources import (
    INSTANCE_LAUNCH_FAILED,
    INSTANCE_PENDING,
    INSTANCE_RUNNING,
    INSTANCE_SHUTDOWN,
    INSTANCE_STOPPED,
    INSTANCE_TERMINATING,
    OPERATION_FAILED,
    OPERATION_OPERATING,
)
from cvm_operator.kube import Conflict
from cvm_operator.reconcilers.base import (
    ANNOTATION_PREFIX,
    Blocked,
    Context,
    ExtraCondition,
    ManagedReconciler,
    Observation,
    Waiting,
    find_lost_create,
)
from cvm_operator.reconcilers.fleet import ASSIGNED_INSTANCE, BATCH_TAG, LAUNCH_BATCH
from cvm_operator.reconcilers.launch import read_launch_options
from cvm_operator.reconcilers.outcomes import ObjectKey
from cvm_operator.reconcilers.references import image_ready, login_settings, user_data
from cvm_operator.reconcilers.tags import TagChanges, tag_changes, tags_condition, with_uid_tag

IMAGE_UP_TO_DATE = "ImageUpToDate"
"""Extra condition: the instance runs the image the spec asks for."""
SPEC_APPLIED = "SpecApplied"
"""Extra condition: every field of the spec is applied to the cloud instance (or why one is not yet)."""
TERMINATION_PROTECTED = "UnsupportedOperation.InstancesProtected"
RESET_IMAGE_ANNOTATION = f"{ANNOTATION_PREFIX}/reset-image"
"""The image a ResetInstance was last requested for: a failed reinstall is reported, not repeated."""
RESET_INSTANCE = "ResetInstance"

Action = Literal["start", "stop", "reset"]

_PHASE_BY_STATE: dict[str, Phase] = {INSTANCE_RUNNING: "Running", INSTANCE_STOPPED: "Stopped"}
_CLOUD_STATE_FOR: dict[str, str] = {"Running": INSTANCE_RUNNING, "Stopped": INSTANCE_STOPPED}


# ---------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class Verdict:
    """What an instance's cloud state means for the object, and the one action that moves it on."""

    ready: bool
    reason: str = ""
    message: str = ""
    phase: Phase | None = None
    failed: bool = False
    action: Action | None = None
    image_condition: ExtraCondition | None = None


def image_condition(current: str, desired: str | None, policy: str, *, reinstalling: bool = False) -> ExtraCondition:
    if desired is None:
        return ExtraCondition(IMAGE_UP_TO_DATE, "Unknown", "ImageNotReady", "the desired image is not known yet")
    if current == desired:
        return ExtraCondition(IMAGE_UP_TO_DATE, "True", "ImageMatches", f"the instance runs image {desired}")
    if reinstalling or policy == "OnImageChange":
        return ExtraCondition(
            IMAGE_UP_TO_DATE, "False", "Reinstalling", f"reinstalling from image {desired} (was {current})"
        )
    return ExtraCondition(
        IMAGE_UP_TO_DATE,
        "False",
        "ImageDiffers",
        f"the instance runs image {current}, the spec asks for {desired}; reimagePolicy is Never, so nothing is done",
    )


def judge_instance(
    instance: CloudInstance,
    run_state: str,
    desired_image: str | None,
    reimage_policy: str,
    reset_requested_for: str | None,
) -> Verdict:
    """Decide from one observation: ready or not, and whether to start, stop or reinstall."""
    state, iid = instance.state, instance.instance_id
    resetting = instance.latest_operation == RESET_INSTANCE
    if instance.latest_operation_state == OPERATION_OPERATING:
        operation = instance.latest_operation or "an operation"
        return Verdict(
            ready=False,
            reason="Reinstalling" if resetting else "OperationInProgress",
            message=f"instance {iid}: {operation} in progress ({state})",
            image_condition=image_condition(instance.image_id, desired_image, reimage_policy, reinstalling=resetting),
        )
    if state == INSTANCE_PENDING:
        return Verdict(ready=False, reason="Launching", message=f"instance {iid} is launching", phase="Creating")
    if state == INSTANCE_LAUNCH_FAILED:
        detail = f": {instance.latest_operation_error}" if instance.latest_operation_error else ""
        return Verdict(
            ready=False, failed=True, reason="LaunchFailed", message=f"instance {iid} failed to launch{detail}"
        )
    if state == INSTANCE_SHUTDOWN:
        return Verdict(
            ready=False,
            failed=True,
            reason="InstanceShutdown",
            message=f"instance {iid} is isolated (SHUTDOWN, e.g. expired or in the recycle bin)",
        )
    if state == INSTANCE_TERMINATING:
        return Verdict(ready=False, reason="Terminating", message=f"instance {iid} is being terminated")
    if state not in _PHASE_BY_STATE:
        return Verdict(ready=False, reason="Transitioning", message=f"instance {iid} is {state}")
    condition = image_condition(instance.image_id, desired_image, reimage_policy)
    if desired_image is not None and desired_image != instance.image_id and reimage_policy == "OnImageChange":
        if reset_requested_for == desired_image and resetting and instance.latest_operation_state == OPERATION_FAILED:
            detail = f": {instance.latest_operation_error}" if instance.latest_operation_error else ""
            return Verdict(
                ready=False,
                failed=True,
                reason="ResetFailed",
                message=f"reinstalling instance {iid} from image {desired_image} failed{detail}; "
                "change the image to try again",
                image_condition=condition,
            )
        return Verdict(
            ready=False,
            reason="Reinstalling",
            message=f"reinstalling instance {iid} from image {desired_image} (runs {instance.image_id})",
            action="reset",
            image_condition=condition,
        )
    wanted = _CLOUD_STATE_FOR[run_state]
    if state != wanted:
        return Verdict(
            ready=False,
            reason="Starting" if run_state == "Running" else "Stopping",
            message=f"instance {iid} is {state}; runState is {run_state}",
            action="start" if run_state == "Running" else "stop",
            image_condition=condition,
        )
    return Verdict(
        ready=True,
        phase=_PHASE_BY_STATE[state],
        message=f"instance {iid} is {state}",
        image_condition=condition,
    )


def instance_status(instance: CloudInstance) -> dict[str, Any]:
    """Status fields (snake_case, as in InstanceStatus) describing a cloud instance."""
    return {
        "instance_id": instance.instance_id,
        "zone": instance.zone or None,
        "image_id": instance.image_id or None,
        "os_name": instance.os_name or None,
        "private_ip_addresses": list(instance.private_ips),
        "public_ip_addresses": list(instance.public_ips),
        "created_time": instance.created_time,
        "vpc_id": instance.vpc_id or None,
        "subnet_id": instance.subnet_id or None,
        "security_group_ids": list(instance.security_group_ids),
        # Models, not dicts: status is updated with model_copy, which does not validate.
        "data_disks": [
            AttachedDisk(disk_id=disk.disk_id, disk_type=disk.disk_type, size_gb=disk.size_gb)
            for disk in instance.data_disks
        ],
    }


@dataclass(frozen=True)
class AttributeChanges:
    """What ModifyInstancesAttribute must put back (None: that attribute is as the spec says)."""

    name: str | None = None
    security_group_ids: tuple[str, ...] | None = None
    disable_api_termination: bool | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.name, self.security_group_ids, self.disable_api_termination))

    def fields(self) -> list[str]:
        """The spec fields being put back, for messages."""
        return [
            path
            for path, value in (
                ("instanceName", self.name),
                ("network.securityGroupIds", self.security_group_ids),
                ("disableApiTermination", self.disable_api_termination),
            )
            if value is not None
        ]


def attribute_changes(spec: InstanceSpec, default_name: str, instance: CloudInstance) -> AttributeChanges:
    """The cloud attributes that differ from the spec and can be changed in place. Security groups are
    compared only when the spec names them, in order (the first has the highest priority)."""
    name = spec.instance_name or default_name
    groups = tuple(spec.network.security_group_ids or ()) if spec.network else ()
    return AttributeChanges(
        name=name if instance.name != name else None,
        security_group_ids=groups if groups and instance.security_group_ids != groups else None,
        disable_api_termination=(
            spec.disable_api_termination if instance.disable_api_termination != spec.disable_api_termination else None
        ),
    )


def host_name_matches(wanted: str, actual: str, *, numbered: bool = False) -> bool:
    """Whether the cloud's host name is the spec's. Several instances launched in one call with one host name
    get it with a number appended (web: web1, web2 or web-1, web-2), which counts as the same."""
    if actual == wanted:
        return True
    return numbered and re.fullmatch(re.escape(wanted) + r"[-_.]?[0-9]+", actual) is not None


def awaiting_reinstall(spec: InstanceSpec, instance: CloudInstance, *, numbered: bool = False) -> list[str]:
    """Spec fields the cloud applies only when the instance is reinstalled, and which differ now."""
    waiting: list[str] = []
    if (
        spec.host_name
        and instance.host_name is not None
        and not host_name_matches(spec.host_name, instance.host_name, numbered=numbered)
    ):
        waiting.append(f"spec.hostName is {spec.host_name!r}, the instance has {instance.host_name!r}")
    if instance.system_disk is not None and spec.system_disk.size_gb > instance.system_disk.size_gb:
        waiting.append(
            f"spec.systemDisk.sizeGB is {spec.system_disk.size_gb}, the disk has {instance.system_disk.size_gb}"
        )
    return waiting


def spec_applied(
    spec: InstanceSpec, instance: CloudInstance, changes: AttributeChanges, *, numbered: bool = False
) -> ExtraCondition:
    """SpecApplied: False while a field waits for a reinstall (saying whether one will come) or is being put back.
    ``numbered``: the instance was launched in a batch, so its host name may carry the batch's number."""
    waiting = awaiting_reinstall(spec, instance, numbered=numbered)
    if waiting:
        if spec.reimage_policy == "OnImageChange":
            reason, why = "PendingReinstall", "applied when the instance is next reinstalled (a new image)"
        else:
            reason, why = (
                "NeedsReinstall",
                (
                    "the cloud applies it only by reinstalling, and reimagePolicy is Never; recreate the instance, "
                    "or reinstall it with a new image under reimagePolicy OnImageChange"
                ),
            )
        return ExtraCondition(SPEC_APPLIED, "False", reason, f"{'; '.join(waiting)}: {why}")
    if changes:
        return ExtraCondition(
            SPEC_APPLIED, "False", "Updating", f"putting back {', '.join(changes.fields())} (changed in the cloud)"
        )
    return ExtraCondition(SPEC_APPLIED, "True", "Applied", "the cloud instance matches the spec")


def desired_tags(spec: InstanceSpec, uid: str, batch: str | None = None) -> dict[str, str]:
    """spec.tags plus the UID tag; a replica launched in an InstanceSet's batch carries the batch tag instead."""
    return {**spec.tags, BATCH_TAG: batch} if batch else with_uid_tag(spec.tags, uid)


# States in which tags are not compared: launching (RunInstances sets them), failed or going away.
_UNTAGGED_STATES = frozenset({INSTANCE_PENDING, INSTANCE_LAUNCH_FAILED, INSTANCE_SHUTDOWN, INSTANCE_TERMINATING})


@dataclass(frozen=True)
class InstanceUpdate:
    """What ``update`` does in one pass: the verdict's action (if any), then attribute and tag changes (if any)."""

    instance: CloudInstance
    verdict: Verdict
    desired_image: str | None
    tags: TagChanges
    attributes: AttributeChanges = AttributeChanges()


def observe_instance(
    instance: CloudInstance,
    verdict: Verdict,
    desired_image: str | None,
    desired: dict[str, str],
    spec: InstanceSpec | None = None,
    default_name: str = "",
    *,
    batch: str | None = None,
) -> Observation[InstanceUpdate]:
    """The observation of an existing instance: the verdict, plus tag and attribute drift when compared.

    Drift alone makes the object not up to date (Updating); with a pending action the action's
    reason and message stay, and everything is done in the same pass.
    """
    compare_tags = not verdict.failed and instance.state not in _UNTAGGED_STATES
    changes = tag_changes(desired, instance.tags) if compare_tags else TagChanges({}, ())
    attributes = (
        attribute_changes(spec, default_name, instance) if compare_tags and spec is not None else AttributeChanges()
    )
    conditions = [verdict.image_condition] if verdict.image_condition else []
    if compare_tags:
        conditions.append(tags_condition(desired, instance.tags))
        if spec is not None:
            conditions.append(spec_applied(spec, instance, attributes, numbered=batch is not None))
    reason, message = verdict.reason, verdict.message
    if (changes or attributes) and verdict.action is None:
        what = [*attributes.fields(), *(["tags"] if changes else [])]
        reason, message = "Updating", f"putting back {', '.join(what)} of instance {instance.instance_id}"
    return Observation(
        exists=True,
        up_to_date=verdict.action is None and not changes and not attributes,
        status=instance_status(instance),
        phase=verdict.phase,
        cloud_state=instance.state,
        ready=verdict.ready,
        reason=reason,
        message=message,
        failed=verdict.failed,
        conditions=conditions,
        resource=InstanceUpdate(instance, verdict, desired_image, changes, attributes),
    )


# ---------------------------------------------------------------- reconciler


class InstanceReconciler(ManagedReconciler[Instance, InstanceUpdate]):
    kind = "Instance"
    plural = INSTANCES
    model = Instance
    creating_phase = "Creating"
    ready_phase = "Running"
    observe_after_create = True

    async def observe(self, ctx: Context[Instance]) -> Observation[InstanceUpdate]:
        instance = await self._find(ctx)
        batch = ctx.annotation(LAUNCH_BATCH)
        known_id = ctx.obj.status.instance_id or ctx.annotation(ASSIGNED_INSTANCE)
        if instance is None:
            if batch and not known_id:
                # Its InstanceSet launches it with the rest of its batch and then names its instance.
                owner = ctx.obj.metadata.labels.get(SET_LABEL, "")
                raise Waiting(
                    "Launching",
                    f"waiting for InstanceSet {owner!r} to launch batch {batch}",
                    on=ObjectKey("InstanceSet", ctx.key.namespace, owner),
                    phase="Creating",
                )
            if known_id:
                return Observation(
                    exists=False,
                    failed=True,
                    reason="NotFound",
                    message=f"instance {known_id} no longer exists (terminated outside the "
                    "operator); it is not relaunched: delete this object and create it again for a new one",
                )
            await self._desired_image(ctx, strict=True)  # waits for the Image before a launch is attempted
            return Observation(exists=False)
        spec = ctx.obj.spec
        desired_image = await self._desired_image(ctx, strict=False)
        verdict = judge_instance(
            instance, spec.run_state, desired_image, spec.reimage_policy, ctx.annotation(RESET_IMAGE_ANNOTATION)
        )
        return observe_instance(
            instance, verdict, desired_image, desired_tags(spec, ctx.uid, batch), spec, ctx.key.name, batch=batch
        )

    async def _find(self, ctx: Context[Instance]) -> CloudInstance | None:
        """The instance this object launched: by status id, else by the UID tag (a launch whose id was lost).

        A replica of an InstanceSet has the id its batch assigned it, or, while being deleted before that
        was written, is found by the batch tag and its name (the batch may have launched it already)."""
        if ctx.obj.status.instance_id:
            return await ctx.api.describe_instance(ctx.obj.status.instance_id)
        assigned = ctx.annotation(ASSIGNED_INSTANCE)
        if assigned:
            return await ctx.api.describe_instance(assigned)
        batch = ctx.annotation(LAUNCH_BATCH)
        if batch:
            if ctx.obj.metadata.deletion_timestamp is None:
                return None
            name = ctx.obj.spec.instance_name or ctx.key.name
            found = await ctx.api.find_instances({f"tag:{BATCH_TAG}": [batch]})
            return next((one for one in found if one.name == name), None)
        return await find_lost_create(ctx, ctx.api.find_instances, lambda instance: instance.instance_id)

    async def _desired_image(self, ctx: Context[Instance], *, strict: bool) -> str | None:
        """The image id the spec asks for; ``strict`` waits (raises) while a referenced Image is not Ready."""
        spec = ctx.obj.spec
        if spec.image_id is not None:
            return spec.image_id
        assert spec.image_ref is not None
        namespace, name = ctx.key.namespace, spec.image_ref.name
        dependency = ObjectKey("Image", namespace, name)
        # Any change of the Image (a new image id, Ready again) wakes this object at once.
        ctx.runtime.wakeups.wait_for(dependency, ctx.key)
        body = await ctx.runtime.read(IMAGES, dependency)
        image_region = (body.get("spec") or {}).get("region") if body is not None else None
        if body is not None and image_region != spec.region:
            if not strict:
                return None
            raise Blocked(
                "RegionMismatch",
                f"spec.imageRef: Image {name!r} is in {image_region}, the instance in {spec.region}",
            )
        image_id = image_ready(body) if body is not None else None
        if image_id is None and strict:
            # Only a launch waits; a running instance keeps running while its Image is briefly not Ready.
            what = "does not exist" if body is None else "is not Ready"
            raise Waiting("ImageNotReady", f"waiting for Image {name!r}, which {what}", on=dependency)
        return image_id

    async def _login(self, ctx: Context[Instance]) -> LoginSettings:
        return await login_settings(ctx.runtime, ctx.key.namespace, ctx.obj.spec.login_settings)

    async def create(self, ctx: Context[Instance], observation: Observation[InstanceUpdate]) -> dict[str, Any]:
        spec = ctx.obj.spec
        image_id = await self._desired_image(ctx, strict=True)
        assert image_id is not None
        instance_id = await ctx.api.run_instances(
            client_token=ctx.uid,
            zone=spec.zone,
            image_id=image_id,
            instance_type=spec.instance_type,
            name=spec.instance_name or str(ctx.obj.metadata.name),
            host_name=spec.host_name,
            system_disk=SystemDisk(disk_type=spec.system_disk.disk_type, size_gb=spec.system_disk.size_gb),
            login=await self._login(ctx),
            tags=desired_tags(spec, ctx.uid),
            options=await read_launch_options(ctx.runtime, ctx.key.namespace, spec),
        )
        return {"instance_id": instance_id, "image_id": image_id, "zone": spec.zone}

    async def update(self, ctx: Context[Instance], observation: Observation[InstanceUpdate]) -> None:
        planned = observation.resource
        assert isinstance(planned, InstanceUpdate)
        instance, action = planned.instance, planned.verdict.action
        if action == "start":
            await ctx.api.start_instances([instance.instance_id])
        elif action == "stop":
            await ctx.api.stop_instances([instance.instance_id], stopped_mode=ctx.obj.spec.stop_mode)
        elif action == "reset":
            await self._reset(ctx, instance, str(planned.desired_image))
        if planned.attributes:
            changes = planned.attributes
            await ctx.api.modify_instances_attribute(
                [instance.instance_id],
                name=changes.name,
                security_group_ids=changes.security_group_ids,
                disable_api_termination=changes.disable_api_termination,
            )
        if planned.tags:
            await self._put_back_tags(ctx, instance, planned.tags)

    async def _put_back_tags(self, ctx: Context[Instance], instance: CloudInstance, changes: TagChanges) -> None:
        # Instances do not report their owner; the account of the credentials that launched it is.
        owner = await ctx.session.account_id()
        name = resource_name(ctx.api.region, owner, "instance", instance.instance_id)
        await ctx.session.tags().modify_resource_tags(name, changes.replace, changes.delete)

    async def _reset(self, ctx: Context[Instance], instance: CloudInstance, image_id: str) -> None:
        spec = ctx.obj.spec
        meta = ctx.body["metadata"]
        encoded = await user_data(ctx.runtime, ctx.key.namespace, spec.user_data) if spec.user_data else None
        try:
            # Recorded first: if the reinstall fails, the next passes report it instead of retrying it.
            await ctx.runtime.kube.patch_metadata(
                INSTANCES, ctx.key.namespace, ctx.key.name, str(meta["resourceVersion"]),
                annotations={RESET_IMAGE_ANNOTATION: image_id},
            )  # fmt: skip
        except Conflict as error:
            raise Waiting("ObjectChanged", "the object changed while being reconciled; looking again") from error
        await ctx.api.reset_instance(
            instance.instance_id,
            image_id=image_id,
            login=await self._login(ctx),
            host_name=spec.host_name,
            system_disk=SystemDisk(size_gb=spec.system_disk.size_gb),
            user_data=encoded,
        )

    async def delete(self, ctx: Context[Instance], observation: Observation[InstanceUpdate]) -> Waiting | None:
        instance_id = str(observation.status.get("instance_id"))
        if observation.cloud_state == INSTANCE_TERMINATING:
            return Waiting("Terminating", f"instance {instance_id} is being terminated", phase="Deleting")
        planned = observation.resource
        protected = isinstance(planned, InstanceUpdate) and planned.instance.disable_api_termination
        if protected and ctx.obj.spec.disable_api_termination:
            return protected_waiting(instance_id)
        try:
            if protected:
                # The spec no longer asks for protection (edited while deleting): lift it, then terminate.
                await ctx.api.modify_instances_attribute([instance_id], disable_api_termination=False)
            await ctx.api.terminate_instances([instance_id])
        except CloudError as error:
            if error.not_found:
                return None
            if error.code == TERMINATION_PROTECTED:
                return protected_waiting(instance_id)
            if error.transient:
                return Waiting(error.reason, f"instance {instance_id}: {error}", phase="Deleting")
            raise
        return Waiting("Terminating", f"terminating instance {instance_id}", phase="Deleting")


def protected_waiting(instance_id: str) -> Waiting:
    return Waiting(
        "TerminationProtected",
        f"instance {instance_id} has termination protection (spec.disableApiTermination): set it to false to "
        "let the deletion terminate it, or deletionPolicy to Retain to keep it",
        phase="Deleting",
    )
