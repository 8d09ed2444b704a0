"""The managed-resource reconciler: observe the cloud, then create, update or delete, then write status once.

Each kind implements :class:`ManagedReconciler`; :class:`Driver` runs it the same way for all of them
(Crossplane's managed reconciler, in asyncio): errors become conditions, cloud errors are classified
into transient (Reconciling, backoff) and user-fixable (Stalled, slow retry), and the status is
patched only when it changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import pydantic

from cvm_operator import metrics
from cvm_operator.api import (
    BaseStatus,
    ConditionStatus,
    Phase,
    SecretReference,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    set_condition,
    utc_now,
)
from cvm_operator.api.common import WireModel
from cvm_operator.api.conditions import READY, STALLED, get_condition
from cvm_operator.cloud import CloudError, CvmApi, audit, backoff
from cvm_operator.kube import Conflict, Forbidden, NotFound

# Re-exported: reconcilers take everything they build on from this module.
from cvm_operator.reconcilers.outcomes import Blocked as Blocked
from cvm_operator.reconcilers.outcomes import ObjectKey as ObjectKey
from cvm_operator.reconcilers.outcomes import Waiting as Waiting
from cvm_operator.reconcilers.runtime import Runtime, Session

logger = logging.getLogger(__name__)

ANNOTATION_PREFIX = "cvm.operator.dev"
FINALIZER = f"{ANNOTATION_PREFIX}/finalizer"
"""Held from before the first cloud create until the cloud side is cleaned per deletionPolicy."""
CREATE_PENDING = f"{ANNOTATION_PREFIX}/create-pending"
UID_TAG = f"{ANNOTATION_PREFIX}/uid"
"""Cloud tag carrying the object UID: how a resource made by a lost create is found again."""

CRASH_POINT_ENV = "CVM_OPERATOR_CRASH_AFTER"
"""Test hook: ``create`` (or ``create:<Kind>``) makes the process exit hard right after a cloud create
call returned and before its status is written, to prove that a lost create is adopted, not repeated."""
CRASH_EXIT_CODE = 86


def crash_point(point: str, kind: str) -> None:
    """Exit at once (no cleanup, no status write) when the test hook names this point."""
    wanted = {item.strip() for item in os.environ.get(CRASH_POINT_ENV, "").split(",")}
    if point in wanted or f"{point}:{kind}" in wanted:
        logger.warning("crash point %s:%s reached (%s); exiting", point, kind, CRASH_POINT_ENV)
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)


class KindObject(Protocol):
    """Any of the four kinds' models: metadata, spec, status."""

    spec: Any
    status: Any


M = TypeVar("M", bound=KindObject)


@dataclass(frozen=True)
class ExtraCondition:
    """A condition type beyond Ready/Reconciling/Stalled (kstatus ignores it), e.g. ImageUpToDate."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


R = TypeVar("R")
"""What a kind's observe finds and hands to create/update/delete (the cloud resource, or a plan)."""


@dataclass
class Observation(Generic[R]):
    """What the cloud says about the object's resource, and what that means for the object."""

    exists: bool
    up_to_date: bool = True
    status: dict[str, Any] = field(default_factory=dict)
    """Kind-specific status fields (snake_case names of the status model)."""
    phase: Phase | None = None
    cloud_state: str | None = None
    ready: bool = False
    reason: str = ""
    """Why it is not ready yet (Reconciling) or what is wrong (Stalled when ``failed``)."""
    message: str = ""
    failed: bool = False
    """The resource ended in a state only the user can fix (CREATEFAILED, IMPORTFAILED, ...)."""
    conditions: list[ExtraCondition] = field(default_factory=list)
    """Kind-specific conditions to record alongside Ready (written whenever the resource exists)."""
    resource: R | None = None
    """The cloud resource as observed, handed to update/delete so they need not read it again."""
    requeue_after: float | None = None
    """Seconds until something is due (e.g. a scheduled run), when sooner than the regular poll."""

    @property
    def found(self) -> R:
        """The resource observe handed on: update and delete run only on an observation that has one."""
        if self.resource is None:
            raise AssertionError("observe handed on no resource")
        return self.resource


@dataclass
class Context(Generic[M]):
    obj: M
    body: Mapping[str, Any]
    runtime: Runtime
    session: Session

    @property
    def api(self) -> CvmApi:
        """The CVM client of the object's own region."""
        return self.session.cvm()

    @property
    def key(self) -> ObjectKey:
        meta = self.body["metadata"]
        return ObjectKey(str(self.body["kind"]), str(meta["namespace"]), str(meta["name"]))

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    @property
    def generation(self) -> int:
        return int(self.body["metadata"].get("generation") or 0)

    @property
    def deleting(self) -> bool:
        return bool(self.body["metadata"].get("deletionTimestamp"))

    def annotation(self, name: str) -> str | None:
        annotations: Mapping[str, str] = self.body["metadata"].get("annotations") or {}
        return annotations.get(name)


class Created(Protocol):
    """A cloud resource as the Describe calls return it: enough to choose the newest."""

    @property
    def created_time(self) -> str | None: ...


C = TypeVar("C", bound=Created)


async def find_lost_create(
    ctx: Context[Any],
    find: Callable[[dict[str, list[str]]], Awaitable[Sequence[C]]],
    ident: Callable[[C], str],
) -> C | None:
    """What a create whose answer was lost (a crash before the status write) made, so it is adopted, never
    made twice: nothing unless the create-pending mark says a create was attempted, else the newest
    resource carrying the object's UID tag (ties broken by id, so the choice is stable)."""
    if ctx.annotation(CREATE_PENDING) is None:
        return None
    found = await find({f"tag:{UID_TAG}": [ctx.uid]})
    return max(found, key=lambda one: (one.created_time or "", ident(one))) if found else None


class ManagedReconciler(ABC, Generic[M, R]):
    """One kind's cloud logic in the observe/create/update/delete shape. Free of Kopf."""

    kind: ClassVar[str]
    plural: ClassVar[str]
    model: ClassVar[type[WireModel]]
    creating_phase: ClassVar[Phase] = "Creating"
    ready_phase: ClassVar[Phase] = "Available"
    observe_after_create: ClassVar[bool] = False
    """Observe again right after create (finding the new resource by its UID tag), so that one status
    write records both the id and the cloud's first state. A resource not found yet is just Creating."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def parse(self, body: Mapping[str, Any]) -> M:
        return cast(M, self.model.model_validate(dict(body)))

    def region(self, obj: M) -> str | None:
        """The object's own region: where ``ctx.api`` calls. Kinds that act in another object's region return None
        and call ``ctx.session.cvm(region)``."""
        return str(obj.spec.region)

    def credentials_ref(self, obj: M) -> SecretReference | None:
        ref: SecretReference | None = obj.spec.credentials_secret_ref
        return ref

    def retains(self, obj: M) -> bool:
        """True when deleting the object must leave the cloud side alone."""
        return bool(obj.spec.deletion_policy == "Retain")

    def holds_finalizer(self, obj: M) -> bool:
        """False for objects whose deletion has nothing to do at all (not even under Retain): Kubernetes
        may delete them at once, and they cost no write to hold the finalizer."""
        return True

    @abstractmethod
    async def observe(self, ctx: Context[M]) -> Observation[R]:
        """Read the cloud. Raise Waiting or Blocked when the object cannot be judged yet."""

    @abstractmethod
    async def create(self, ctx: Context[M], observation: Observation[R]) -> dict[str, Any]:
        """Create the cloud resource (``observation`` says what observe found missing); return the status
        fields to record at once (its id)."""

    async def update(self, ctx: Context[M], observation: Observation[R]) -> dict[str, Any] | None:
        """Bring an existing resource in line with the spec (only called when not up to date).

        May return status fields that the changes made (recorded over ``observation.status``), and may
        set ``observation.up_to_date``/``ready`` when the change took effect at once.
        """
        return None

    @abstractmethod
    async def delete(self, ctx: Context[M], observation: Observation[R]) -> Waiting | None:
        """Start or continue deleting; return Waiting while the cloud refuses or is still busy."""

    async def retain(self, body: Mapping[str, Any]) -> None:
        """Leave the cloud side, and the objects that stand for it, when the object goes under Retain."""

    def can_create(self, ctx: Context[M]) -> bool:
        """False for objects that only observe (they are Stalled when the resource is missing)."""
        return True


def _finalizers_to_hold(reconciler: ManagedReconciler[Any, Any], ctx: Context[Any]) -> list[str] | None:
    """The object's finalizers with ours added, or None when there is nothing to add (held, or not needed)."""
    finalizers = list(ctx.body["metadata"].get("finalizers") or [])
    if FINALIZER in finalizers or not reconciler.holds_finalizer(ctx.obj):
        return None
    return [*finalizers, FINALIZER]


def _status_model(reconciler: ManagedReconciler[Any, Any]) -> type[BaseStatus]:
    annotation = reconciler.model.model_fields["status"].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseStatus)
    return annotation


FIRST_LOOK = 1.0
"""Seconds from a create (or the first sight of a resource in progress) to the next look at it."""


@dataclass
class Pass:
    """One reconcile pass under way: the status it builds and when to look next."""

    reconciler: ManagedReconciler[Any, Any]
    key: ObjectKey
    uid: str
    generation: int
    status: BaseStatus
    delay: float
    result: str = "ok"
    created: bool = False
    """This pass asked the cloud to create the resource."""
    first_sight: bool = False
    """This pass is the first to record the resource's cloud state (it was just made, by this pass or
    another object's, e.g. an InstanceSet's batch)."""

    def reconciling(self, reason: str, message: str, phase: Phase | None = None) -> None:
        self.status.conditions = mark_reconciling(
            self.status.conditions, reason, message, observed_generation=self.generation
        )
        if phase is not None:
            self.status.phase = phase


class Driver:
    """Runs reconcilers against object bodies: the part every kind shares."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def reconcile(self, reconciler: ManagedReconciler[Any, Any], body: Mapping[str, Any]) -> float:
        """One level-triggered pass; returns the delay until the next one."""
        meta = body["metadata"]
        key = ObjectKey(str(body["kind"]), str(meta["namespace"]), str(meta["name"]))
        scope = self.runtime.unannounced.begin(audit.ObjectRef(key.kind, key.namespace, key.name, str(meta["uid"])))
        try:
            return await self._reconcile(reconciler, body, key)
        finally:
            self.runtime.unannounced.end(scope)

    async def _reconcile(
        self, reconciler: ManagedReconciler[Any, Any], body: Mapping[str, Any], key: ObjectKey
    ) -> float:
        started = time.monotonic()
        meta = body["metadata"]
        old_status = _parse_status(_status_model(reconciler), body)
        pass_ = Pass(
            reconciler,
            key,
            str(meta["uid"]),
            int(meta.get("generation") or 0),
            old_status.model_copy(deep=True),
            self.runtime.config.poll_interval,
        )
        try:
            await self._run(pass_, body)
            self.runtime.attempts.pop(pass_.uid, None)
        except Waiting as waiting:
            pass_.reconciling(waiting.reason, waiting.message, waiting.phase)
            if waiting.on is not None:
                self.runtime.wakeups.wait_for(waiting.on, key)
            pass_.delay = self.runtime.config.progress_interval if waiting.delay is None else waiting.delay
            pass_.result = "waiting"
        except Blocked as blocked:
            self._stalled(pass_, blocked.reason, blocked.message, blocked.phase)
            if blocked.on is not None:
                self.runtime.wakeups.wait_for(blocked.on, key)
        except pydantic.ValidationError as invalid:
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
            self._stalled(pass_, "InvalidSpec", message, "Failed")
        except (Conflict, NotFound):
            # The object changed or went under us (a watch event is on its way): look again shortly.
            # Nothing was judged for this generation: keep observedGeneration, or kstatus reads the old
            # conditions (or none at all) as Current.
            pass_.generation = old_status.observed_generation or 0
            pass_.delay = min(1.0, self.runtime.config.progress_interval)
            pass_.result = "conflict"
        except Forbidden as error:
            # RBAC refuses a write (or the namespace is being deleted and takes no new objects).
            self._stalled(pass_, "Forbidden", str(error), "Failed")
        except CloudError as error:
            if error.transient:
                pass_.reconciling(error.reason, str(error))
                pass_.delay = self._retry_delay(pass_.uid, 1.0, self.runtime.config.transient_backoff_cap)
                pass_.result = "transient_error"
            else:
                self._stalled(pass_, error.reason, str(error), "Failed")
        pass_.status.observed_generation = pass_.generation
        await self._write_status(reconciler, body, old_status, pass_.status)
        metrics.reconciles_total.labels(reconciler.kind, pass_.result).inc()
        metrics.reconcile_duration_seconds.labels(reconciler.kind).observe(time.monotonic() - started)
        return pass_.delay

    async def _run(self, pass_: Pass, body: Mapping[str, Any]) -> None:
        """Observe; create when missing; then record what the cloud says and act on it."""
        reconciler = pass_.reconciler
        obj = reconciler.parse(body)
        session = await self.runtime.connect(
            pass_.key.namespace, reconciler.credentials_ref(obj), reconciler.region(obj)
        )
        ctx: Context[Any] = Context(obj, body, self.runtime, session)
        observation = await reconciler.observe(ctx)
        if not observation.exists:
            observation = await self._create(pass_, ctx, observation)
        if observation.exists:
            await self._hold_finalizer(reconciler, ctx)
            await self._apply(pass_, ctx, observation)
        else:
            pass_.reconciling("Creating", f"{reconciler.kind} is being created in the cloud", reconciler.creating_phase)

    async def _create(self, pass_: Pass, ctx: Context[Any], observation: Observation[Any]) -> Observation[Any]:
        """Create the missing resource, crash-safely; the observation to record for it."""
        reconciler = pass_.reconciler
        if observation.failed:
            raise Blocked(observation.reason, observation.message)
        if not reconciler.can_create(ctx):
            raise Blocked(observation.reason or "NotFound", observation.message or "the resource does not exist")
        await self._mark_create_pending(reconciler, ctx)
        created = await reconciler.create(ctx, observation)
        crash_point("create", reconciler.kind)
        logger.info("%s %s/%s: requested %s", *pass_.key, _describe(created))
        pass_.status = pass_.status.model_copy(update=created)
        pass_.created = True
        pass_.delay = self._progress_delay(pass_)
        if reconciler.observe_after_create:
            # Found by its UID tag: the first status write already says what the cloud says.
            return await reconciler.observe(ctx)
        return observation

    async def _apply(self, pass_: Pass, ctx: Context[Any], observation: Observation[Any]) -> None:
        """Record an existing resource's state, update it when it differs from the spec, judge readiness."""
        reconciler = pass_.reconciler
        # What the cloud says is recorded even when the resource failed (its id, its state).
        pass_.first_sight = pass_.status.cloud_state is None and observation.cloud_state is not None
        pass_.status = pass_.status.model_copy(update=observation.status)
        pass_.status.cloud_state = observation.cloud_state
        for extra in observation.conditions:
            pass_.status.conditions = set_condition(
                pass_.status.conditions,
                extra.type,
                extra.status,
                extra.reason,
                extra.message,
                observed_generation=pass_.generation,
            )
        if observation.failed:
            raise Blocked(observation.reason, observation.message)
        if not observation.up_to_date:
            changed = await reconciler.update(ctx, observation)
            if changed:
                pass_.status = pass_.status.model_copy(update=changed)
        if observation.ready and observation.up_to_date:
            pass_.status.conditions = mark_ready(
                pass_.status.conditions,
                "Available",
                observation.message or f"{reconciler.kind} is ready",
                observed_generation=pass_.generation,
            )
            pass_.status.phase = observation.phase or reconciler.ready_phase
        else:
            reason = observation.reason or ("Updating" if not observation.up_to_date else "Progressing")
            phase = observation.phase or pass_.status.phase or reconciler.creating_phase
            pass_.reconciling(reason, observation.message, phase)
            pass_.delay = self._progress_delay(pass_)
        if observation.requeue_after is not None and observation.requeue_after < 1.5 * pass_.delay:
            # Exactly then: a regular poll is aligned to its grid and may end half an interval later.
            pass_.delay = max(observation.requeue_after, 0.0)

    def _progress_delay(self, pass_: Pass) -> float:
        """The next look at a resource the cloud is working on. The first comes sooner: many launches
        and imports end within seconds, and the Ready they reach should not wait a whole interval."""
        interval = self.runtime.config.progress_interval
        return min(FIRST_LOOK, interval) if pass_.created or pass_.first_sight else interval

    def _stalled(self, pass_: Pass, reason: str, message: str, phase: Phase) -> None:
        pass_.status.conditions = mark_stalled(
            pass_.status.conditions, reason, message, observed_generation=pass_.generation
        )
        pass_.status.phase = phase
        config = self.runtime.config
        pass_.delay = self._retry_delay(pass_.uid, config.stalled_interval, config.stalled_interval_max)
        pass_.result = "stalled"

    async def finalize(self, reconciler: ManagedReconciler[Any, Any], body: Mapping[str, Any]) -> Waiting | None:
        """Delete the cloud side per deletionPolicy; returns Waiting while that is not finished."""
        meta = body["metadata"]
        ref = audit.ObjectRef(str(body["kind"]), str(meta["namespace"]), str(meta["name"]), str(meta["uid"]))
        scope = self.runtime.unannounced.begin(ref)
        try:
            return await self._finalize(reconciler, body)
        finally:
            self.runtime.unannounced.end(scope)

    async def _finalize(self, reconciler: ManagedReconciler[Any, Any], body: Mapping[str, Any]) -> Waiting | None:
        meta = body["metadata"]
        try:
            obj = reconciler.parse(body)
        except pydantic.ValidationError:
            self.runtime.post(body, "Warning", "InvalidSpec", "spec is invalid; the cloud side is left as it is")
            return None
        if reconciler.retains(obj):
            await reconciler.retain(body)
            self.runtime.post(body, "Normal", "Retained", "deletionPolicy is Retain: the cloud side is left as it is")
            return None
        try:
            session = await self.runtime.connect(
                str(meta["namespace"]), reconciler.credentials_ref(obj), reconciler.region(obj)
            )
            ctx: Context[Any] = Context(obj, body, self.runtime, session)
            try:
                observation = await reconciler.observe(ctx)
            except (Waiting, Blocked):
                observation = Observation(exists=False)  # never created, or nothing of ours to clean
            if not observation.exists:
                self.runtime.post(body, "Normal", "Deleted", f"{reconciler.kind} is gone from the cloud")
                return None
            waiting = await reconciler.delete(ctx, observation)
        except CloudError as error:
            # The finalizer stays until the cloud answers; the retry is paced by the caller.
            waiting = Waiting(error.reason, str(error), phase="Deleting")
        except Blocked as blocked:
            # No way into the account (NoCredentials, SecretForbidden): the finalizer stays and says why.
            waiting = Waiting(blocked.reason, f"{blocked.message}; deletion continues once fixed", phase="Deleting")
        if waiting is None:
            waiting = Waiting("Deleting", f"{reconciler.kind} is being deleted in the cloud", phase="Deleting")
        status_model = _status_model(reconciler)
        old_status = _parse_status(status_model, body)
        status = old_status.model_copy(deep=True)
        status.conditions = mark_reconciling(
            status.conditions,
            waiting.reason,
            waiting.message,
            observed_generation=int(meta.get("generation") or 0),
        )
        status.phase = "Deleting"
        await self._write_status(reconciler, body, old_status, status)
        return waiting

    def _retry_delay(self, uid: str, base: float, cap: float) -> float:
        attempt = self.runtime.attempts.get(uid, 0)
        self.runtime.attempts[uid] = attempt + 1
        return backoff(attempt, base=base, cap=cap)

    async def _mark_create_pending(self, reconciler: ManagedReconciler[Any, Any], ctx: Context[Any]) -> None:
        """Record that a create is about to happen, and hold the finalizer, in one guarded write.

        If this process dies after the cloud call, the next pass sees the mark and finds the resource
        by its UID tag instead of creating a second one (observe always looks it up by tag); the
        finalizer is in place before anything exists in the cloud.
        """
        meta = ctx.body["metadata"]
        updated = await self.runtime.kube.patch_metadata(
            reconciler.plural,
            str(meta["namespace"]),
            str(meta["name"]),
            str(meta["resourceVersion"]),
            annotations={CREATE_PENDING: utc_now().isoformat()},
            finalizers=_finalizers_to_hold(reconciler, ctx),
        )
        self.runtime.bodies.remember(updated)
        ctx.body = updated

    async def _hold_finalizer(self, reconciler: ManagedReconciler[Any, Any], ctx: Context[Any]) -> None:
        """Objects found already in the cloud (adopted, or made before the finalizer existed) get it now."""
        finalizers = _finalizers_to_hold(reconciler, ctx)
        if finalizers is None:
            return
        meta = ctx.body["metadata"]
        updated = await self.runtime.kube.patch_metadata(
            reconciler.plural,
            str(meta["namespace"]),
            str(meta["name"]),
            str(meta["resourceVersion"]),
            finalizers=finalizers,
        )
        self.runtime.bodies.remember(updated)
        ctx.body = updated

    async def release(self, reconciler: ManagedReconciler[Any, Any], body: Mapping[str, Any]) -> None:
        """Drop the finalizer once the cloud side is cleaned, so that Kubernetes deletes the object."""
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        with contextlib.suppress(NotFound):
            await self.runtime.kube.patch_metadata(
                reconciler.plural,
                str(meta["namespace"]),
                str(meta["name"]),
                str(meta["resourceVersion"]),
                finalizers=[name for name in finalizers if name != FINALIZER],
            )

    async def _write_status(
        self, reconciler: ManagedReconciler[Any, Any], body: Mapping[str, Any], old: BaseStatus, new: BaseStatus
    ) -> None:
        before, after = old.to_wire(), new.to_wire()
        if before == after:
            return
        # A merge patch keeps what it does not mention: fields that went away are sent as null.
        after.update({key: None for key in before if key not in after})
        meta = body["metadata"]
        updated = await self.runtime.kube.patch_status(
            reconciler.plural, str(meta["namespace"]), str(meta["name"]), after
        )
        if updated is not None:
            self.runtime.bodies.remember(updated)
        self._announce(reconciler, body, old, new)

    def _announce(
        self, reconciler: ManagedReconciler[Any, Any], body: Mapping[str, Any], old: BaseStatus, new: BaseStatus
    ) -> None:
        """An Event when an object becomes Ready, becomes Stalled, or stops being Ready; the steps of
        getting there (Creating, Launching...) are in its conditions, not in Events (one per object)."""
        was_ready, now_ready = get_condition(old.conditions, READY), get_condition(new.conditions, READY)
        now_stalled = get_condition(new.conditions, STALLED)
        if now_ready is None:
            return
        if was_ready is not None and (was_ready.status, was_ready.reason) == (now_ready.status, now_ready.reason):
            return
        was_ready_true = was_ready is not None and was_ready.status == "True"
        if now_ready.status == "True":
            self.runtime.post(body, "Normal", "Ready", now_ready.message)
            created = body["metadata"].get("creationTimestamp")
            if was_ready is None or was_ready.status != "True":
                self.runtime.observe_time_to_ready(reconciler.kind, body["metadata"]["uid"], created)
        elif now_stalled is not None:
            self.runtime.post(body, "Warning", now_stalled.reason, now_stalled.message)
        elif was_ready_true:
            self.runtime.post(body, "Normal", now_ready.reason, now_ready.message)


def _parse_status(status_model: type[BaseStatus], body: Mapping[str, Any]) -> BaseStatus:
    try:
        return status_model.model_validate(body.get("status") or {})
    except pydantic.ValidationError:
        logger.warning("unreadable status of %s/%s; starting afresh", body.get("kind"), body["metadata"].get("name"))
        return status_model()


def _describe(fields: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in fields.items()) or "creation"
