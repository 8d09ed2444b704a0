"""ImageSchedule: make an Image object on a schedule and apply retention to the ones made.

The schedule's "resource" is the set of Image objects it made; the existing reconcilers do the cloud
work. ``observe`` lists them and decides (see :mod:`cvm_operator.schedule`) whether a run is due,
what retention changes and which ImageCopy/ImageShare objects are missing; ``update`` carries that out.

Crash safety: a run's Image object is named after the run's scheduled time and annotated with it (and
with the requestedAt value it answers), so a pass repeated after a crash finds the object instead of
making a second one, and the last run time is read back from the objects when status was lost.

Ownership: each Image has a controller owner reference to the schedule, and its ImageCopy and
ImageShare one to the Image, so Kubernetes' garbage collector removes them with their owner.
Deleting the schedule therefore deletes its Images, each per its own deletionPolicy; those whose
deletionPolicy is Retain are released (owner reference dropped) first, so they stay as objects that
still stand for their retained cloud image.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cvm_operator.api import (
    API_VERSION,
    IMAGE_COPIES,
    IMAGE_SCHEDULES,
    IMAGE_SHARES,
    IMAGES,
    ImageReference,
    ImageSchedule,
    ScheduledImage,
    parse_time,
)
from cvm_operator.api.conditions import READY, STALLED
from cvm_operator.api.imageschedule import IMAGE_NAME_PREFIX_MAX
from cvm_operator.cloud.resources import IMAGE_BUSY_STATES, IMAGE_FAILED_STATES, IMAGE_NORMAL
from cvm_operator.kube import AlreadyExists
from cvm_operator.reconcilers.base import (
    ANNOTATION_PREFIX,
    Blocked,
    Context,
    ManagedReconciler,
    Observation,
    Waiting,
)
from cvm_operator.reconcilers.references import owner_reference
from cvm_operator.schedule import (
    RetentionPlan,
    RetentionRules,
    Run,
    RunDecision,
    RunState,
    Schedule,
    ScheduleError,
    decide_run,
    newest_first,
    parse_duration,
    plan_retention,
    run_suffix,
)

SCHEDULE_LABEL = f"{ANNOTATION_PREFIX}/image-schedule"
"""Label on the Images (and their ImageCopy and ImageShare) a schedule made; the value is its name."""
REQUESTED_AT = f"{ANNOTATION_PREFIX}/requestedAt"
"""Set on a schedule to a new value to run it now (the convention of Flux's reconcile.fluxcd.io/requestedAt)."""
SCHEDULED_AT = f"{ANNOTATION_PREFIX}/scheduled-at"
"""On an Image: the time its run was scheduled for."""
ANSWERS_REQUEST = f"{ANNOTATION_PREFIX}/requested-at"
"""On an Image: the requestedAt value its run answered."""
RETIRED_AT = f"{ANNOTATION_PREFIX}/retired-at"
"""On an Image: when it left the kept set (or failed); deleteAfter counts from here."""

NAME_MAX = 63
"""A label value's limit: the schedule's name is the value of SCHEDULE_LABEL."""
STATUS_IMAGES_MAX = 100


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _condition(body: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return dict(condition)
    return None


def owned_by(body: Mapping[str, Any], uid: str) -> bool:
    references = body["metadata"].get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in references)


def run_state(body: Mapping[str, Any]) -> RunState:
    """Creating until the cloud image is NORMAL (Available) or failed; Failed also when the Image is
    Stalled without a cloud image in progress (e.g. its instance is in another region)."""
    if body["metadata"].get("deletionTimestamp"):
        return "Deleting"
    status = body.get("status") or {}
    cloud_state = status.get("cloudState")
    if cloud_state == IMAGE_NORMAL and status.get("imageId"):
        return "Available"
    if cloud_state in IMAGE_FAILED_STATES:
        return "Failed"
    stalled = _condition(body, STALLED)
    if stalled is not None and stalled.get("status") == "True" and cloud_state not in IMAGE_BUSY_STATES:
        return "Failed"
    return "Creating"


def run_of(body: Mapping[str, Any], schedule_uid: str) -> Run | None:
    """The run an Image object stands for, or None when it is not one of this schedule's."""
    meta = body["metadata"]
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    scheduled = parse_time(annotations.get(SCHEDULED_AT))
    if scheduled is None or not owned_by(body, schedule_uid):
        return None
    status = body.get("status") or {}
    condition = _condition(body, STALLED) or _condition(body, READY) or {}
    return Run(
        name=str(meta["name"]),
        scheduled=scheduled,
        state=run_state(body),
        deprecated=bool((body.get("spec") or {}).get("deprecated")),
        retired_at=parse_time(annotations.get(RETIRED_AT)),
        requested_at=annotations.get(ANSWERS_REQUEST),
        image_id=status.get("imageId"),
        created_time=status.get("createdTime"),
        message=str(condition.get("message") or ""),
    )


def image_object_name(schedule_name: str, scheduled: dt.datetime) -> str:
    return f"{schedule_name}-{run_suffix(scheduled, with_seconds=True)}"


def image_body(
    schedule: ImageSchedule, uid: str, scheduled: dt.datetime, prefix: str, requested: str | None
) -> dict[str, Any]:
    """The Image object of a run."""
    spec, template = schedule.spec, schedule.spec.template.spec
    schedule_name = str(schedule.metadata.name)
    image_spec: dict[str, Any] = {
        "region": spec.region,
        "imageName": prefix + run_suffix(scheduled),
        "source": template.source.to_wire(),
        "deletionPolicy": template.deletion_policy,
    }
    if template.description is not None:
        image_spec["description"] = template.description
    if template.family is not None:
        image_spec["family"] = template.family
    if template.tags:
        image_spec["tags"] = dict(template.tags)
    if spec.credentials_secret_ref is not None:
        image_spec["credentialsSecretRef"] = spec.credentials_secret_ref.to_wire()
    annotations = {SCHEDULED_AT: iso(scheduled)}
    if requested is not None:
        annotations[ANSWERS_REQUEST] = requested
    return {
        "apiVersion": API_VERSION,
        "kind": "Image",
        "metadata": {
            "name": image_object_name(schedule_name, scheduled),
            "labels": {SCHEDULE_LABEL: schedule_name},
            "annotations": annotations,
            "ownerReferences": [owner_reference("ImageSchedule", schedule_name, uid)],
        },
        "spec": image_spec,
    }


def child_body(schedule: ImageSchedule, kind: str, image_name: str, image_uid: str) -> dict[str, Any]:
    """The ImageCopy or ImageShare of one Image, owned by it."""
    spec = schedule.spec
    child: dict[str, Any]
    if kind == "ImageCopy":
        child = {"sourceRef": {"name": image_name}, "destinationRegions": list(spec.copy_to_regions)}
    else:
        child = {"imageRef": {"name": image_name}, "accountIds": list(spec.share_with_accounts)}
    child["deletionPolicy"] = spec.template.spec.deletion_policy
    if spec.credentials_secret_ref is not None:
        child["credentialsSecretRef"] = spec.credentials_secret_ref.to_wire()
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": image_name,
            "labels": {SCHEDULE_LABEL: str(schedule.metadata.name)},
            "ownerReferences": [owner_reference("Image", image_name, image_uid)],
        },
        "spec": child,
    }


def status_images(runs: Sequence[Run], retention: RetentionPlan) -> list[ScheduledImage]:
    unique = {run.name: run for run in runs}  # a list map keyed by name: one entry per Image
    return [
        ScheduledImage(
            name=run.name,
            image_id=run.image_id,
            scheduled_time=run.scheduled,
            created_time=run.created_time,
            state=retention.states.get(run.name, "Creating"),
        )
        for run in newest_first(unique.values())[:STATUS_IMAGES_MAX]
    ]


@dataclass
class SchedulePlan:
    """What observe found and what update carries out in the same pass."""

    schedule: Schedule
    prefix: str
    runs: list[Run]
    decision: RunDecision
    retention: RetentionPlan
    missing_children: list[tuple[str, str]] = field(default_factory=list)
    """(kind, Image name) of ImageCopy/ImageShare objects to make."""

    @property
    def changes(self) -> bool:
        decision = self.decision
        return bool(
            decision.start or decision.skipped or decision.replace or self.retention.changes or self.missing_children
        )


@dataclass(frozen=True)
class ReleasePlan:
    """What a deleting schedule found: its Images under deletionPolicy Retain, still owned by it."""

    retained: list[str]


ScheduleFindings = SchedulePlan | ReleasePlan
"""What observe hands on: a plan, or, while deleting, the Images to release."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ImageScheduleReconciler(ManagedReconciler[ImageSchedule, ScheduleFindings]):
    kind: ClassVar[str] = "ImageSchedule"
    plural: ClassVar[str] = IMAGE_SCHEDULES
    model = ImageSchedule
    creating_phase = "Creating"
    ready_phase = "Available"
    clock: Callable[[], dt.datetime] = staticmethod(_utc_now)

    def retains(self, obj: ImageSchedule) -> bool:
        return False  # the schedule has no cloud side of its own; its Images carry their own policy

    # ------------------------------------------------------------------ observe

    async def observe(self, ctx: Context[ImageSchedule]) -> Observation[ScheduleFindings]:
        if ctx.deleting:
            return await self._observe_for_deletion(ctx)
        spec, status = ctx.obj.spec, ctx.obj.status
        name = ctx.key.name
        if len(name) > NAME_MAX:
            raise Blocked("NameTooLong", f"metadata.name is longer than {NAME_MAX} characters (a label value)")
        prefix = spec.image_name_prefix or f"{name}-"
        if len(prefix) > IMAGE_NAME_PREFIX_MAX:
            raise Blocked(
                "InvalidName",
                f"metadata.name is too long for the default image name prefix ({IMAGE_NAME_PREFIX_MAX} characters "
                "at most); set spec.imageNamePrefix",
            )
        try:
            schedule = Schedule.parse(spec.schedule, spec.time_zone)
        except ScheduleError as error:
            raise Blocked(error.reason, str(error)) from error
        rules = RetentionRules()
        if spec.retention is not None:
            delete_after = parse_duration(spec.retention.delete_after) if spec.retention.delete_after else None
            rules = RetentionRules(spec.retention.keep, spec.retention.deprecate_older, delete_after)

        now = self.clock()
        images = await self.runtime.kube.list(IMAGES, ctx.key.namespace, f"{SCHEDULE_LABEL}={name}")
        runs = [run for run in (run_of(body, ctx.uid) for body in images) if run is not None]
        created = parse_time(ctx.body["metadata"].get("creationTimestamp")) or now
        since = max(
            [created, *(run.scheduled for run in runs)]
            + [moment for moment in (status.last_schedule_time, status.last_skipped_time) if moment is not None]
        )
        decision = decide_run(
            schedule,
            since=since,
            now=now,
            runs=runs,
            suspended=spec.suspend,
            replace=spec.concurrency_policy == "Replace",
            deadline=None
            if spec.starting_deadline_seconds is None
            else dt.timedelta(seconds=spec.starting_deadline_seconds),
            requested=ctx.annotation(REQUESTED_AT),
            handled_request=status.last_handled_requested_at,
        )
        retention = plan_retention(runs, rules, now)
        plan = SchedulePlan(schedule, prefix, runs, decision, retention)
        await self._find_missing_children(ctx, plan)
        self._announce_outcomes(ctx, runs, retention)

        kept = [run for run in newest_first(runs) if run.name in retention.kept]
        latest = kept[0] if kept else None
        known = [run.scheduled for run in runs]
        last_run = max([*known, status.last_schedule_time] if status.last_schedule_time else known, default=None)
        last_skipped = decision.skipped or status.last_skipped_time
        in_progress = [run for run in runs if run.state == "Creating" and run.name not in decision.replace]
        observed: dict[str, Any] = {
            "last_schedule_time": last_run,
            "last_successful_time": latest.scheduled if latest else status.last_successful_time,
            "next_schedule_time": decision.next_time,
            "last_skipped_time": last_skipped,
            "latest_image": ImageReference(name=latest.name, image_id=latest.image_id) if latest else None,
            "images": status_images(runs, retention),
        }
        # A request already answered by an Image whose status write was lost counts as handled.
        request = ctx.annotation(REQUESTED_AT)
        if request is not None and any(run.requested_at == request for run in runs):
            observed["last_handled_requested_at"] = request

        wakes = [moment for moment in (decision.next_time, retention.next_deletion) if moment is not None]
        requeue = max(0.0, (min(wakes) - now).total_seconds()) if wakes else None
        observation: Observation[ScheduleFindings] = Observation(
            exists=True,
            up_to_date=not plan.changes,
            status=observed,
            resource=plan,
            requeue_after=requeue,
        )
        self._judge(observation, ctx, in_progress, decision.waiting, latest)
        return observation

    def _judge(
        self,
        observation: Observation[ScheduleFindings],
        ctx: Context[ImageSchedule],
        in_progress: Sequence[Run],
        waiting: str,
        latest: Run | None,
    ) -> None:
        """Ready between runs; Reconciling while a run's image is being made."""
        if in_progress:
            run = in_progress[0]
            observation.ready = False
            observation.phase = "Creating"
            observation.reason = "RunInProgress"
            detail = f": {run.message}" if run.message else ""
            observation.message = f"Image {run.name!r} is being made{detail}" + (f"; {waiting}" if waiting else "")
            return
        observation.ready = True
        observation.phase = "Available" if latest is not None else "Pending"
        when = (
            "suspended"
            if ctx.obj.spec.suspend
            else f"next run at {iso(observation.status['next_schedule_time'])}"
            if observation.status.get("next_schedule_time")
            else "no run due"
        )
        made = f"latest image {latest.name} ({latest.image_id})" if latest is not None else "no usable image yet"
        observation.message = f"{when}; {made}"

    async def _find_missing_children(self, ctx: Context[ImageSchedule], plan: SchedulePlan) -> None:
        """ImageCopy/ImageShare objects the spec asks for and kept or in-progress images lack."""
        spec = ctx.obj.spec
        asked = (("ImageCopy", spec.copy_to_regions), ("ImageShare", spec.share_with_accounts))
        wanted = [kind for kind, values in asked if values]
        if not wanted:
            return
        current = [run.name for run in plan.runs if plan.retention.states.get(run.name) in ("Kept", "Creating")]
        if not current:
            return
        selector = f"{SCHEDULE_LABEL}={ctx.key.name}"
        existing: dict[str, set[str]] = {}
        for kind in wanted:
            plural = IMAGE_COPIES if kind == "ImageCopy" else IMAGE_SHARES
            bodies = await self.runtime.kube.list(plural, ctx.key.namespace, selector)
            existing[kind] = {str(body["metadata"]["name"]) for body in bodies}
        plan.missing_children = [(kind, name) for name in current for kind in wanted if name not in existing[kind]]

    def _announce_outcomes(self, ctx: Context[ImageSchedule], runs: Sequence[Run], retention: RetentionPlan) -> None:
        """An Event when a run's image becomes usable or fails (compared with the last status)."""
        before = {image.name: image.state for image in ctx.obj.status.images}
        for run in runs:
            if before.get(run.name) != "Creating":
                continue
            if run.state == "Available":
                self.runtime.post(ctx.body, "Normal", "RunSucceeded", f"image {run.image_id} of {run.name} is usable")
            elif run.state == "Failed":
                self.runtime.post(ctx.body, "Warning", "RunFailed", f"{run.name} failed: {run.message}")

    # ------------------------------------------------------------------ create and update

    async def create(self, ctx: Context[ImageSchedule], observation: Observation[ScheduleFindings]) -> dict[str, Any]:
        raise AssertionError("observe always reports the schedule as existing")  # pragma: no cover

    async def update(
        self, ctx: Context[ImageSchedule], observation: Observation[ScheduleFindings]
    ) -> dict[str, Any] | None:
        plan = observation.found
        assert isinstance(plan, SchedulePlan)  # a ReleasePlan only while deleting
        decision, retention = plan.decision, plan.retention
        namespace = ctx.key.namespace
        changed: dict[str, Any] = {}
        if decision.skipped is not None:
            missed = f" ({decision.missed} earlier run(s) also missed)" if decision.missed else ""
            self.runtime.post(
                ctx.body,
                "Warning",
                "MissedRun",
                f"the run scheduled for {iso(decision.skipped)} is skipped: it could not start within "
                f"startingDeadlineSeconds ({ctx.obj.spec.starting_deadline_seconds}s){missed}",
            )
        for name in decision.replace:
            await self.runtime.kube.delete(IMAGES, namespace, name)
            self.runtime.post(ctx.body, "Normal", "Replaced", f"deleting {name}, still in progress, for a new run")
        await self._apply_retention(ctx, retention)
        if decision.start is not None:
            body = await self._start_run(ctx, plan, decision.start, decision.requested)
            run = run_of(body, ctx.uid)
            assert run is not None
            plan.runs.append(run)
            retention.states[run.name] = "Creating"
            changed["last_schedule_time"] = max(
                decision.start, observation.status["last_schedule_time"] or decision.start
            )
            changed["images"] = status_images(plan.runs, retention)
            if decision.requested is not None:
                changed["last_handled_requested_at"] = decision.requested
            self._judge(observation, ctx, [run], "", None)
        for kind, image_name in plan.missing_children:
            await self._make_child(ctx, kind, image_name)
        observation.up_to_date = True
        return changed or None

    async def _start_run(
        self, ctx: Context[ImageSchedule], plan: SchedulePlan, scheduled: dt.datetime, requested: str | None
    ) -> Mapping[str, Any]:
        body = image_body(ctx.obj, ctx.uid, scheduled, plan.prefix, requested)
        name = str(body["metadata"]["name"])
        try:
            made: Mapping[str, Any] = await self.runtime.kube.create(IMAGES, ctx.key.namespace, body)
        except AlreadyExists:
            # Made by a pass whose status write was lost, or someone else's object of that name.
            found = await self.runtime.kube.get(IMAGES, ctx.key.namespace, name)
            if found is None or not owned_by(found, ctx.uid):
                raise Blocked(
                    "ImageObjectConflict", f"Image {name!r} exists and does not belong to this schedule"
                ) from None
            made = found
        else:
            why = (
                f"requested ({REQUESTED_AT}={requested})"
                if requested is not None
                else f"scheduled for {iso(scheduled)}"
            )
            missed = f"; {plan.decision.missed} earlier run(s) missed" if plan.decision.missed else ""
            self.runtime.post(ctx.body, "Normal", "RunStarted", f"made Image {name}, {why}{missed}")
        uid = str(made["metadata"]["uid"])
        spec = ctx.obj.spec
        for kind, wanted in (("ImageCopy", spec.copy_to_regions), ("ImageShare", spec.share_with_accounts)):
            if wanted:
                await self._make_child(ctx, kind, name, uid)
        return made

    async def _make_child(self, ctx: Context[ImageSchedule], kind: str, image_name: str, image_uid: str = "") -> None:
        namespace = ctx.key.namespace
        if not image_uid:
            image = await self.runtime.kube.get(IMAGES, namespace, image_name)
            if image is None or image["metadata"].get("deletionTimestamp"):
                return
            image_uid = str(image["metadata"]["uid"])
        plural = IMAGE_COPIES if kind == "ImageCopy" else IMAGE_SHARES
        try:
            await self.runtime.kube.create(plural, namespace, child_body(ctx.obj, kind, image_name, image_uid))
        except AlreadyExists:
            return
        self.runtime.post(ctx.body, "Normal", f"Made{kind}", f"made {kind} {image_name} for Image {image_name}")

    async def _apply_retention(self, ctx: Context[ImageSchedule], retention: RetentionPlan) -> None:
        namespace, now = ctx.key.namespace, iso(self.clock())
        patches: dict[str, dict[str, Any]] = {}

        def patch(name: str) -> dict[str, Any]:
            return patches.setdefault(name, {"metadata": {"annotations": {}}})

        for name in retention.retire:
            patch(name)["metadata"]["annotations"][RETIRED_AT] = now
        for name in retention.unretire:
            patch(name)["metadata"]["annotations"][RETIRED_AT] = None
        for name in retention.deprecate:
            patch(name)["spec"] = {"deprecated": True}
        for name in retention.undeprecate:
            patch(name)["spec"] = {"deprecated": False}
        for name, body in patches.items():
            if name in retention.delete:
                continue
            await self.runtime.kube.patch(IMAGES, namespace, name, body)
        for name in retention.deprecate:
            self.runtime.post(ctx.body, "Normal", "Deprecated", f"{name} left the kept images and is deprecated")
        for name in retention.undeprecate:
            self.runtime.post(ctx.body, "Normal", "Restored", f"{name} is among the kept images again")
        for name in retention.delete:
            await self.runtime.kube.delete(IMAGES, namespace, name)
            self.runtime.post(ctx.body, "Normal", "DeletingImage", f"deleting {name}: retired longer than deleteAfter")

    # ------------------------------------------------------------------ delete

    async def _observe_for_deletion(self, ctx: Context[ImageSchedule]) -> Observation[ScheduleFindings]:
        """Images that are Retain and still owned: they are released before the collector sees them."""
        images = await self.runtime.kube.list(IMAGES, ctx.key.namespace, f"{SCHEDULE_LABEL}={ctx.key.name}")
        retained = [
            str(body["metadata"]["name"])
            for body in images
            if owned_by(body, ctx.uid) and (body.get("spec") or {}).get("deletionPolicy") == "Retain"
        ]
        return Observation(exists=bool(retained), resource=ReleasePlan(retained))

    async def delete(self, ctx: Context[ImageSchedule], observation: Observation[ScheduleFindings]) -> Waiting | None:
        release = observation.found
        assert isinstance(release, ReleasePlan)  # observe hands delete nothing else
        retained = release.retained
        for name in retained:
            await self.runtime.kube.orphan(IMAGES, ctx.key.namespace, name, ctx.uid)
        self.runtime.post(
            ctx.body,
            "Normal",
            "Released",
            f"Images with deletionPolicy Retain stay as objects: {', '.join(retained)}",
        )
        return Waiting("Releasing", "released the retained Images; the others are deleted with the schedule")
