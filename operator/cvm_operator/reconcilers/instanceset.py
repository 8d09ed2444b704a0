"""InstanceSet: keep ``replicas`` Instance objects from one template, launched in batches, rolled onto new images.

Each replica is an Instance object named ``<set>-<batch>-<n>``, labelled with the set's name, owned by
the set (so the garbage collector removes it with the set) and reconciled by the Instance reconciler
like any other Instance. The set decides only which replicas exist and which image each should run;
the decisions are the pure functions of ``fleet.py``.

Batched, crash-safe launches: missing replicas of a zone become one batch per 500. The set first
records the batch in ``status.pendingLaunches`` (zone, image, count), then makes one ``RunInstances``
call with ``InstanceCount``, the name pattern ``<set>-<batch>-{R:0}``, the batch tag and a ClientToken
of the set UID and the batch, then makes one Instance object per instance, created with the id of its
instance (so a replica never waits for its own and never launches one), and finally clears the record.
A crash anywhere leaves the batch recorded; the next pass calls ``RunInstances`` again with the same
token, which returns the same instances, and makes the objects still missing, so the set ends with
exactly ``replicas`` instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import secrets
import string
import time
from collections import defaultdict
from collections.abc import Awaitable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

from cvm_operator.api import API_VERSION, INSTANCES, SET_LABEL, InstanceSet
from cvm_operator.api.instanceset import PendingLaunch, resolve_int_or_percent
from cvm_operator.api.kinds import IMAGES, INSTANCE_SETS
from cvm_operator.cloud import CloudError, SystemDisk, backoff
from cvm_operator.kube import AlreadyExists, Forbidden
from cvm_operator.reconcilers import fleet
from cvm_operator.reconcilers.base import (
    FINALIZER,
    Blocked,
    Context,
    ManagedReconciler,
    ObjectKey,
    Observation,
    Waiting,
    crash_point,
)
from cvm_operator.reconcilers.fleet import ASSIGNED_INSTANCE, BATCH_TAG, LAUNCH_BATCH, Replica
from cvm_operator.reconcilers.launch import read_launch_options
from cvm_operator.reconcilers.references import image_ready, login_settings, owner_reference
from cvm_operator.reconcilers.runtime import Runtime

logger = logging.getLogger(__name__)

MAX_SET_NAME = 63
"""The set's name is the value of the replicas' label, and label values have at most 63 characters."""
MAX_CLOUD_NAME = 128
BATCH_ID_LENGTH = 5
CONCURRENT_WRITES = 16
"""Kubernetes writes (create, patch, delete of replicas) in flight at once per pass."""
REPLACE_BACKOFF_BASE = 5.0
REPLACE_BACKOFF_CAP = 300.0
SOLD_OUT = "InsufficientCapacity"
"""The reason cloud/errors.py gives ResourceInsufficient.* and ResourcesSoldOut.* refusals."""
SHORT_ZONE_HOLD = 300.0
"""Seconds a zone that refused a launch for capacity (or whose launches failed) gets no new replicas."""
_INDEX = re.compile(r"-(\d+)$")


def new_batch_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(BATCH_ID_LENGTH))


def replica_name(set_name: str, batch: str, index: int) -> str:
    return f"{set_name}-{batch}-{index}"


def batch_index(name: str) -> int | None:
    match = _INDEX.search(name)
    return int(match.group(1)) if match else None


def client_token(set_uid: str, batch: str) -> str:
    """At most 64 ASCII characters: the UID (36) and the batch id."""
    return f"{set_uid}-{batch}"


def _condition(body: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (body.get("status") or {}).get("conditions") or ():
        if condition.get("type") == type_:
            return dict(condition)
    return None


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def replica_from_body(body: Mapping[str, Any]) -> Replica:
    """How the set sees one of its Instance objects."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    generation = int(meta.get("generation") or 0)
    ready = _condition(body, "Ready")
    stalled = _condition(body, "Stalled")
    is_ready = (
        ready is not None and ready.get("status") == "True" and int(ready.get("observedGeneration") or 0) >= generation
    )
    failed = stalled is not None and stalled.get("status") == "True"
    return Replica(
        name=str(meta["name"]),
        zone=str(spec.get("zone") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        image_wanted=spec.get("imageId"),
        image_running=status.get("imageId"),
        ready=is_ready,
        deleting=meta.get("deletionTimestamp") is not None,
        failed_reason=str(stalled.get("reason")) if failed and stalled else None,
        failed_message=str(stalled.get("message") or "") if failed and stalled else "",
        failed_since=_epoch(stalled.get("lastTransitionTime")) if failed and stalled else None,
    )


def replica_spec(obj: InstanceSet, zone: str, image_id: str, instance_name: str) -> dict[str, Any]:
    """The Instance spec of a replica in ``zone`` running ``image_id``."""
    spec = obj.spec
    template = spec.template.spec.to_wire()
    template.pop("imageRef", None)
    wanted: dict[str, Any] = {
        **template,
        "region": spec.region,
        "zone": zone,
        "imageId": image_id,
        "instanceName": instance_name,
        "reimagePolicy": "OnImageChange",
        "deletionPolicy": spec.deletion_policy,
    }
    if spec.credentials_secret_ref is not None:
        wanted["credentialsSecretRef"] = {"name": spec.credentials_secret_ref.name}
    return wanted


SYNCED_FIELDS = (
    "hostName",
    "systemDisk",
    "loginSettings",
    "runState",
    "tags",
    "network",
    "disableApiTermination",
    "stopMode",
    "deletionPolicy",
    "credentialsSecretRef",
)
"""Template fields a replica follows in place; the image follows through the rollout instead."""


def spec_drift(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch of a replica's spec that applies template changes (other than the image)."""
    before = {key: current[key] for key in SYNCED_FIELDS if key in current}
    after = {key: wanted[key] for key in SYNCED_FIELDS if key in wanted}
    return fleet.merge_patch(before, after)


def owned_by(body: Mapping[str, Any], uid: str) -> bool:
    references = body["metadata"].get("ownerReferences") or ()
    return any(reference.get("uid") == uid and reference.get("controller") for reference in references)


@dataclass
class SetPlan:
    """What one pass of a set decided, for update to carry out."""

    image: str
    bodies: dict[str, Mapping[str, Any]]
    pending: list[PendingLaunch] = field(default_factory=list)
    """Batches recorded and not finished (a crash, or a refusal, came between)."""
    create: dict[str, int] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    reimage: list[str] = field(default_factory=list)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: Replica | None = None

    def empty(self) -> bool:
        return not (self.pending or self.create or self.delete or self.reimage or self.drift or self.failed)


async def _bounded(tasks: Iterable[Awaitable[Any]]) -> list[Any]:
    semaphore = asyncio.Semaphore(CONCURRENT_WRITES)

    async def one(task: Awaitable[Any]) -> Any:
        async with semaphore:
            return await task

    return list(await asyncio.gather(*(one(task) for task in tasks)))


class InstanceSetReconciler(ManagedReconciler[InstanceSet, SetPlan]):
    kind: ClassVar[str] = "InstanceSet"
    plural: ClassVar[str] = INSTANCE_SETS
    model = InstanceSet
    creating_phase = "Creating"
    ready_phase = "Running"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._replacements: defaultdict[str, int] = defaultdict(int)
        self._short_zones = fleet.ShortZones(SHORT_ZONE_HOLD)

    # ------------------------------------------------------------------ observe

    async def _members(self, ctx: Context[InstanceSet]) -> list[Mapping[str, Any]]:
        bodies = await self.runtime.kube.list(INSTANCES, ctx.key.namespace, f"{SET_LABEL}={ctx.key.name}")
        members: list[Mapping[str, Any]] = [body for body in bodies if owned_by(body, ctx.uid)]
        for body in members:
            # Any change of a replica (Ready, its image) runs the set again at once.
            self.runtime.wakeups.wait_for(ObjectKey("Instance", ctx.key.namespace, body["metadata"]["name"]), ctx.key)
        return members

    async def _desired_image(self, ctx: Context[InstanceSet]) -> str:
        template = ctx.obj.spec.template.spec
        if template.image_id is not None:
            return template.image_id
        assert template.image_ref is not None
        name = template.image_ref.name
        dependency = ObjectKey("Image", ctx.key.namespace, name)
        self.runtime.wakeups.wait_for(dependency, ctx.key)
        body = await self.runtime.kube.get(IMAGES, ctx.key.namespace, name)
        if body is not None and (body.get("spec") or {}).get("region") != ctx.obj.spec.region:
            raise Blocked(
                "RegionMismatch",
                f"spec.template.spec.imageRef: Image {name!r} is in {body['spec'].get('region')}, "
                f"the set in {ctx.obj.spec.region}",
            )
        image_id = image_ready(body) if body is not None else None
        if image_id is not None:
            return image_id
        if ctx.obj.status.update_image_id:
            return ctx.obj.status.update_image_id  # briefly not Ready: keep the fleet where it is
        what = "does not exist" if body is None else "is not Ready"
        raise Waiting("ImageNotReady", f"waiting for Image {name!r}, which {what}", on=dependency)

    async def observe(self, ctx: Context[InstanceSet]) -> Observation[SetPlan]:
        if ctx.obj.metadata.deletion_timestamp is not None:
            members = await self._members(ctx)
            going = SetPlan(
                image=ctx.obj.status.update_image_id or "",
                bodies={str(body["metadata"]["name"]): body for body in members},
            )
            return Observation(exists=bool(members), resource=going)
        if len(ctx.key.name) > MAX_SET_NAME:
            raise Blocked(
                "NameTooLong",
                f"metadata.name: at most {MAX_SET_NAME} characters (it is the value of the {SET_LABEL} label)",
            )
        spec = ctx.obj.spec
        image = await self._desired_image(ctx)
        bodies = {str(body["metadata"]["name"]): body for body in await self._members(ctx)}
        replicas = [replica_from_body(body) for body in bodies.values()]
        live = [replica for replica in replicas if not replica.deleting]
        plan = SetPlan(image=image, bodies=bodies, pending=list(ctx.obj.status.pending_launches))
        self._decide(ctx, plan, live)

        ready = sum(replica.ready for replica in live)
        updated = sum(replica.updated(image) for replica in live)
        status = {
            "replicas": len(live),
            "ready_replicas": sum((_condition(bodies[r.name], "Ready") or {}).get("status") == "True" for r in live),
            "available_replicas": ready,
            "updated_replicas": updated,
            "current_image_id": fleet.current_image(live, image),
            "update_image_id": image,
            "selector": f"{SET_LABEL}={ctx.key.name}",
        }
        settled = len(live) == spec.replicas and updated == spec.replicas and len(replicas) == len(live)
        if settled:
            self._replacements.pop(ctx.uid, None)  # replacements that keep failing back off until then
        reason, message = self._progress(ctx, plan, live, ready, updated, len(replicas) - len(live))
        return Observation(
            exists=True,
            up_to_date=plan.empty(),
            status=status,
            phase="Running" if settled else "Creating",
            ready=settled,
            reason=reason,
            message=message,
            resource=plan,
        )

    def _decide(self, ctx: Context[InstanceSet], plan: SetPlan, live: Sequence[Replica]) -> None:
        spec = ctx.obj.spec
        zones, replicas, image = list(spec.zones), spec.replicas, plan.image
        strategy = spec.update_strategy
        max_unavailable = resolve_int_or_percent(strategy.max_unavailable, replicas, round_up=False)
        max_surge = resolve_int_or_percent(strategy.max_surge, replicas, round_up=True)
        if plan.pending:
            return  # launch first: a replica whose instance is not known yet must not be judged or removed
        wait = backoff(self._replacements[ctx.uid], base=REPLACE_BACKOFF_BASE, cap=REPLACE_BACKOFF_CAP)
        plan.delete = fleet.replace_failed(live, time.time(), wait)
        healthy = [replica for replica in live if replica.name not in plan.delete]
        plan.failed = fleet.rollout_failure(healthy, image)
        rolling = not spec.paused and plan.failed is None
        stale = any(replica.image_wanted != image for replica in healthy)
        if strategy.type == "RollingReplace" and rolling and stale:
            step = fleet.replace_step(healthy, image, replicas, zones, max(max_unavailable, 0), max_surge)
            plan.create, plan.delete = step.create, [*plan.delete, *step.delete]
        else:
            plan.create = fleet.scale_up(healthy, replicas, zones, self._short_zones.of(ctx.uid, time.time()))
            removed = fleet.scale_down(healthy, replicas, zones)
            if not removed and not plan.create:
                # Replicas left in a zone removed from spec.zones move to the others, a few at a time.
                removed = fleet.misplaced(healthy, zones, replicas, max_unavailable)
            plan.delete = [*plan.delete, *removed]
            if strategy.type == "RollingReimage" and rolling:
                kept = [replica for replica in healthy if replica.name not in removed]
                plan.reimage = fleet.reimage_step(kept, image, replicas, max_unavailable)
        for replica in healthy:
            if replica.name in plan.delete:
                continue
            body = plan.bodies[replica.name]
            current = body.get("spec") or {}
            wanted = replica_spec(ctx.obj, replica.zone, str(current.get("imageId")), str(current.get("instanceName")))
            drift = spec_drift(current, wanted)
            if drift:
                plan.drift[replica.name] = drift

    def _progress(
        self,
        ctx: Context[InstanceSet],
        plan: SetPlan,
        live: Sequence[Replica],
        ready: int,
        updated: int,
        deleting: int,
    ) -> tuple[str, str]:
        spec = ctx.obj.spec
        counts = f"{len(live)} replicas, {ready} ready, {updated} on image {plan.image} (want {spec.replicas})"
        if deleting:
            counts += f"; {deleting} being deleted"
        if plan.pending:
            batches = ", ".join(sorted(launch.batch for launch in plan.pending))
            return "Launching", f"launching batches {batches}; {counts}"
        if spec.paused and updated < len(live):
            return "Paused", f"rollout paused; {counts}"
        if spec.update_strategy.type == "OnDelete" and any(r.image_wanted != plan.image for r in live):
            return "OnDelete", f"replicas move to image {plan.image} when deleted; {counts}"
        if len(live) < spec.replicas:
            return "ScalingUp", counts
        if len(live) > spec.replicas:
            return "ScalingDown", counts
        if updated < len(live):
            return "RollingOut", counts
        return "Progressing", counts

    # ------------------------------------------------------------------ create and update

    async def create(self, ctx: Context[InstanceSet], observation: Observation[SetPlan]) -> dict[str, Any]:
        return {}  # never called: a set always exists (observe says so); its replicas are made in update

    async def update(self, ctx: Context[InstanceSet], observation: Observation[SetPlan]) -> dict[str, Any] | None:
        plan = observation.found
        if plan.pending:
            for launch in plan.pending:
                await self._launch(ctx, launch, plan.pending, plan.bodies.keys())
            await self._record_launches(ctx, [])
            return {"pending_launches": []}  # the replicas exist now; the next pass judges them
        namespace = ctx.key.namespace
        if plan.drift:
            await _bounded(
                self.runtime.kube.patch(INSTANCES, namespace, name, {"spec": patch})
                for name, patch in plan.drift.items()
            )
        if plan.delete:
            await _bounded(self.runtime.kube.delete(INSTANCES, namespace, name) for name in plan.delete)
            failed = [replica_from_body(plan.bodies[name]) for name in plan.delete]
            failed = [replica for replica in failed if replica.failed_reason]
            if failed:
                self._replacements[ctx.uid] += 1
            for replica in failed:
                if replica.failed_reason == "LaunchFailed":
                    self._short_zones.mark(ctx.uid, replica.zone, time.time())
            self.runtime.post(ctx.body, "Normal", "DeletingReplicas", f"deleting {', '.join(sorted(plan.delete))}")
        if plan.reimage:
            await _bounded(
                self.runtime.kube.patch(INSTANCES, namespace, name, {"spec": {"imageId": plan.image}})
                for name in plan.reimage
            )
            self.runtime.post(
                ctx.body, "Normal", "Reimaging", f"moving {', '.join(sorted(plan.reimage))} to image {plan.image}"
            )
        launches = [
            PendingLaunch(batch=new_batch_id(), zone=zone, image_id=plan.image, count=size)
            for zone, count in sorted(plan.create.items())
            for size in fleet.batches(count)
        ]
        if launches:
            await self._record_launches(ctx, launches)
            for launch in launches:
                await self._launch(ctx, launch, launches, plan.bodies.keys())
            await self._record_launches(ctx, [])
        if plan.failed is not None:
            replica = plan.failed
            raise Blocked(
                "RolloutFailed",
                f"replica {replica.name} failed to move to image {plan.image}: {replica.failed_message}; "
                "the rollout is stopped (fix or delete the replica, or change the image)",
                phase="Failed",
            )
        return None

    async def _record_launches(self, ctx: Context[InstanceSet], launches: Sequence[PendingLaunch]) -> None:
        """Write down (before their calls) or clear (once their objects exist) the batches of this pass."""
        record = [launch.to_wire() for launch in launches]
        await self.runtime.kube.patch_status(self.plural, ctx.key.namespace, ctx.key.name, {"pendingLaunches": record})

    async def _launch(
        self,
        ctx: Context[InstanceSet],
        launch: PendingLaunch,
        recorded: Sequence[PendingLaunch],
        existing: Collection[str],
    ) -> None:
        """One RunInstances call for a batch (again, with the same token, after a crash), then an Instance
        object for each of its instances that has none (``existing``: the replicas observe found), made
        with the instance's id."""
        template = ctx.obj.spec.template.spec
        prefix = ctx.key.name[: MAX_CLOUD_NAME - BATCH_ID_LENGTH - 6]
        try:
            ids = await ctx.api.launch_instances(
                count=launch.count,
                client_token=client_token(ctx.uid, launch.batch),
                zone=launch.zone,
                image_id=launch.image_id,
                instance_type=template.instance_type,
                name=f"{prefix}-{launch.batch}-{{R:0}}",
                host_name=template.host_name,
                system_disk=SystemDisk(disk_type=template.system_disk.disk_type, size_gb=template.system_disk.size_gb),
                login=await login_settings(
                    self.runtime, ctx.key.namespace, template.login_settings, "spec.template.spec.loginSettings"
                ),
                tags={**template.tags, BATCH_TAG: launch.batch},
                options=await read_launch_options(self.runtime, ctx.key.namespace, template, "spec.template.spec"),
            )
        except CloudError as error:
            if error.reason != SOLD_OUT:
                raise
            await self._leave_short_zone(ctx, launch, recorded, error)
        crash_point("launch", self.kind)
        indexes = {
            instance_id: batch_index(instance.name)
            for instance_id, instance in (await ctx.api.describe_instances(ids)).items()
            if instance is not None
        }
        bodies = [
            self._replica_body(ctx, launch, index, instance_id)
            for instance_id, index in sorted(indexes.items(), key=lambda item: item[1] or 0)
            if index is not None
        ]
        await self._create_replicas(ctx, [body for body in bodies if body["metadata"]["name"] not in existing])
        self.runtime.post(
            ctx.body,
            "Normal",
            "Launched",
            f"batch {launch.batch}: {launch.count} instances in {launch.zone} from image {launch.image_id}",
        )
        logger.info(
            "InstanceSet %s/%s: batch %s launched %d instances in %s", *ctx.key[1:], launch.batch, len(ids), launch.zone
        )

    async def _create_replicas(self, ctx: Context[InstanceSet], bodies: Sequence[Mapping[str, Any]]) -> None:
        async def create(body: Mapping[str, Any]) -> None:
            # Not put in the cache here: the watch event of a new object is what queues its first pass.
            with contextlib.suppress(AlreadyExists):  # made before a crash
                await self.runtime.kube.create(INSTANCES, ctx.key.namespace, body)

        try:
            await _bounded(create(body) for body in bodies)
        except Forbidden as error:
            # A namespace being deleted takes no new objects; the batch stays recorded (its instances are
            # found again by the same token if the namespace stays).
            raise Waiting("CannotCreateReplicas", str(error), delay=self.runtime.config.stalled_interval) from error

    def _replica_body(
        self, ctx: Context[InstanceSet], launch: PendingLaunch, index: int, instance_id: str
    ) -> dict[str, Any]:
        name = replica_name(ctx.key.name, launch.batch, index)
        prefix = ctx.key.name[: MAX_CLOUD_NAME - BATCH_ID_LENGTH - 6]
        labels = {**ctx.obj.spec.template.metadata.labels, SET_LABEL: ctx.key.name}
        return {
            "apiVersion": API_VERSION,
            "kind": "Instance",
            "metadata": {
                "name": name,
                "namespace": ctx.key.namespace,
                "labels": labels,
                "annotations": {LAUNCH_BATCH: launch.batch, ASSIGNED_INSTANCE: instance_id},
                # Held from the start: deleting a replica always terminates its instance.
                "finalizers": [FINALIZER],
                "ownerReferences": [owner_reference(self.kind, ctx.key.name, ctx.uid)],
            },
            "spec": replica_spec(ctx.obj, launch.zone, launch.image_id, replica_name(prefix, launch.batch, index)),
        }

    async def _leave_short_zone(
        self, ctx: Context[InstanceSet], launch: PendingLaunch, recorded: Sequence[PendingLaunch], error: CloudError
    ) -> NoReturn:
        """The cloud has no capacity for the batch in its zone (it launched nothing): the batch is dropped
        and its replicas go to the set's other zones. With no other zone, the launch backs off in place."""
        now = time.time()
        short = self._short_zones.of(ctx.uid, now)
        if not [zone for zone in ctx.obj.spec.zones if zone != launch.zone and zone not in short]:
            raise error
        self._short_zones.mark(ctx.uid, launch.zone, now)
        await self._record_launches(ctx, [other for other in recorded if other.batch != launch.batch])
        message = (
            f"zone {launch.zone} has no capacity for {launch.count} instance(s) ({error.code}); "
            f"they launch in the set's other zones, and {launch.zone} gets none for {SHORT_ZONE_HOLD:.0f} s"
        )
        self.runtime.post(ctx.body, "Warning", "ZoneShort", message)
        raise Waiting("ZoneShort", message, delay=1.0)

    # ------------------------------------------------------------------ delete

    async def delete(self, ctx: Context[InstanceSet], observation: Observation[SetPlan]) -> Waiting | None:
        members = list(observation.found.bodies.values())
        going = [body for body in members if body["metadata"].get("deletionTimestamp") is None]
        await _bounded(
            self.runtime.kube.delete(INSTANCES, ctx.key.namespace, str(body["metadata"]["name"])) for body in going
        )
        return Waiting("DeletingReplicas", f"waiting for {len(members)} replicas to be deleted", phase="Deleting")

    async def retain(self, body: Mapping[str, Any]) -> None:
        # The replicas go with the set (garbage collection); under Retain each must leave its instance.
        meta = body["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        members = await self.runtime.kube.list(INSTANCES, namespace, f"{SET_LABEL}={name}")
        await _bounded(
            self.runtime.kube.patch(
                INSTANCES, namespace, str(member["metadata"]["name"]), {"spec": {"deletionPolicy": "Retain"}}
            )
            for member in members
            if owned_by(member, str(meta["uid"])) and (member.get("spec") or {}).get("deletionPolicy") != "Retain"
        )
