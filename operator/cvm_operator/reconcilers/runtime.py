"""What every reconcile pass shares: settings, Kubernetes and cloud clients, wake-ups, events."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cvm_operator import metrics
from cvm_operator.api import SecretReference
from cvm_operator.cloud import (
    AnyCredentials,
    CloudPool,
    CredentialsError,
    CvmApi,
    TagApi,
    audit,
    credentials_from_secret_data,
)
from cvm_operator.config import OperatorConfig
from cvm_operator.kube import Forbidden, KubeClient
from cvm_operator.reconcilers.outcomes import Blocked, ObjectKey
from cvm_operator.tenancy import NamespaceGate, no_credentials_message, secret_forbidden_message

logger = logging.getLogger(__name__)

EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


class Wakeups:
    """Who waits for whom: when an object changes, the objects that said they wait for it run again at once."""

    def __init__(self) -> None:
        self._waiters: defaultdict[ObjectKey, set[ObjectKey]] = defaultdict(set)

    def wait_for(self, dependency: ObjectKey, waiter: ObjectKey) -> None:
        self._waiters[dependency].add(waiter)

    def changed(self, dependency: ObjectKey) -> set[ObjectKey]:
        """The waiters of ``dependency``, each told once."""
        return self._waiters.pop(dependency, set())

    def forget(self, key: ObjectKey) -> None:
        self._waiters.pop(key, None)


def object_key(body: Mapping[str, Any]) -> ObjectKey:
    meta = body["metadata"]
    return ObjectKey(str(body["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


def namespace_key(name: str) -> ObjectKey:
    return ObjectKey("Namespace", "", name)


class Bodies:
    """The newest body seen of every object: from watch events and from the answers to our own writes."""

    def __init__(self) -> None:
        self._bodies: dict[ObjectKey, Mapping[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return self._bodies.get(key)

    def stale(self, body: Mapping[str, Any]) -> bool:
        """A version older than one already known (a late watch event after our own write's answer)."""
        previous = self._bodies.get(object_key(body))
        return previous is not None and _older(body, previous)

    def remember(self, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Keep ``body`` unless a newer version of the same object is already known; returns the previous one."""
        key = object_key(body)
        previous = self._bodies.get(key)
        if previous is None or not _older(body, previous):
            self._bodies[key] = _without_managed_fields(body)
        return previous

    def forget(self, key: ObjectKey) -> None:
        self._bodies.pop(key, None)


def _without_managed_fields(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The body without ``metadata.managedFields``, which nothing here reads: about half of a small
    object's memory once decoded."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {key: value for key, value in meta.items() if key != "managedFields"}}


def _older(body: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    meta, other = body["metadata"], than["metadata"]
    if meta.get("uid") != other.get("uid"):
        return False  # a new object of the same name replaces the old one
    try:
        return int(meta["resourceVersion"]) < int(other["resourceVersion"])
    except (KeyError, ValueError):
        return False


def aligned_delay(delay: float, now: float, regular: Collection[float]) -> float:
    """Sleep for a regular poll interval so that it ends on a multiple of it.

    Settled objects of one account and region then wake together, and their Describe calls are
    batched into one. Each sleep stays within half an interval of ``delay``, so the average rate is
    unchanged. Other delays (back-off with jitter) are returned as they are.
    """
    if delay <= 0 or delay not in regular:
        return delay
    return math.ceil((now + delay / 2) / delay) * delay - now


@dataclass(frozen=True)
class Session:
    """The account an object acts as: its credentials, and the cloud clients of any region (the pool caches them)."""

    credentials: AnyCredentials
    pool: CloudPool
    region: str | None = None
    """The object's own region, where it has one."""

    def cvm(self, region: str | None = None) -> CvmApi:
        where = region or self.region
        if where is None:
            raise ValueError("no region: the object names none, and none was given")
        return self.pool.api(self.credentials, where)

    def tags(self, region: str | None = None) -> TagApi:
        where = region or self.region
        if where is None:
            raise ValueError("no region: the object names none, and none was given")
        return self.pool.tags(self.credentials, where)

    async def account_id(self) -> str:
        return await self.pool.account_id(self.credentials)


CREDENTIALS_TTL = 10.0
"""Seconds a credentials Secret, once read, serves passes before it is read again (a rotation takes effect
within this)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Values fetched within the last ``ttl`` seconds; concurrent gets of one key share one fetch, and a
    fetch that fails is not kept."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._values: dict[K, tuple[float, V]] = {}
        self._fetches: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        kept = self._values.get(key)
        if kept is not None and self._clock() - kept[0] < self._ttl:
            return kept[1]
        running = self._fetches.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # a failure nobody else waited for is not reported as lost
        self._fetches[key] = future
        try:
            value = await fetch()
        except Exception as error:
            future.set_exception(error)
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._fetches.pop(key, None)
        self._values[key] = (self._clock(), value)
        future.set_result(value)
        return value


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Runtime:
    def __init__(self, config: OperatorConfig, kube: KubeClient, pool: CloudPool, post: EventPoster) -> None:
        self.config = config
        self.kube = kube
        self.pool = pool
        self._post = post
        selector = config.default_credentials_namespaces
        self.namespaces = NamespaceGate(selector, kube.namespace_labels) if selector is not None else None
        """Which namespaces may use the default account (None: all)."""
        self.wakeups = Wakeups()
        self.bodies = Bodies()
        self.attempts: dict[str, int] = {}
        self._secret_credentials: Recent[tuple[str, str], AnyCredentials] = Recent(CREDENTIALS_TTL)
        """Credentials Secrets read lately: a poll of thousands of objects sharing one reads it once."""
        self.unannounced = audit.Unannounced()
        """Cloud writes of each object no Event has named yet."""
        self._ready_seen: set[str] = set()

    def post(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event; it names the RequestIds of the cloud writes this pass made for the object (audit)."""
        self._post(body, type_, reason, audit.annotate((body.get("metadata") or {}).get("uid"), message))

    async def secret_data(self, namespace: str, name: str, field: str) -> dict[str, str] | None:
        """A Secret an object names in ``field``; None when missing; Stalled SecretForbidden (with the
        RBAC grant to make) when the operator may not read it in that namespace."""
        try:
            return await self.kube.secret_data(namespace, name)
        except Forbidden as error:
            raise Blocked("SecretForbidden", secret_forbidden_message(namespace, name, field)) from error

    async def default_credentials(self, namespace: str) -> AnyCredentials:
        """The operator's own account, for namespaces allowed to use it."""
        default = self.config.default_credentials
        if default is None:
            raise Blocked(
                "CredentialsMissing",
                "no credentialsSecretRef and the operator has no default credentials "
                "(TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY, an assumed role or a web identity)",
            )
        if self.namespaces is not None:
            try:
                allowed = await self.namespaces.allows(namespace)
            except Forbidden as error:
                raise Blocked("NoCredentials", f"cannot read the labels of namespace {namespace!r}: {error}") from error
            if not allowed:
                raise Blocked(
                    "NoCredentials",
                    no_credentials_message(namespace, self.namespaces.selector),
                    on=namespace_key(namespace),
                )
        return default

    async def credentials(self, namespace: str, ref: SecretReference | None) -> AnyCredentials:
        if ref is None:
            return await self.default_credentials(namespace)
        return await self._secret_credentials.get(
            (namespace, ref.name), lambda: self._read_secret_credentials(namespace, ref.name)
        )

    async def _read_secret_credentials(self, namespace: str, name: str) -> AnyCredentials:
        ref = SecretReference(name=name)
        data = await self.secret_data(namespace, ref.name, "spec.credentialsSecretRef")
        if data is None:
            raise Blocked("CredentialsNotFound", f"spec.credentialsSecretRef: Secret {ref.name!r} not found")
        try:
            return credentials_from_secret_data(data)
        except CredentialsError as error:
            raise Blocked("InvalidCredentials", f"spec.credentialsSecretRef: Secret {ref.name!r}: {error}") from error

    async def connect(self, namespace: str, ref: SecretReference | None, region: str | None = None) -> Session:
        """The account an object acts as, read once per pass."""
        return Session(await self.credentials(namespace, ref), self.pool, region)

    async def read(self, plural: str, key: ObjectKey) -> Mapping[str, Any] | None:
        """Another object of ours, as the watch last showed it; read from the API server only when this
        process does not watch it (another shard's, or not seen yet)."""
        cached = self.bodies.get(key)
        if cached is not None:
            return cached
        return await self.kube.get(plural, key.namespace, key.name)

    def aligned(self, delay: float, now: float) -> float:
        return aligned_delay(delay, now, (self.config.poll_interval, self.config.progress_interval))

    def observe_time_to_ready(self, kind: str, uid: str, created: str | None) -> None:
        if uid in self._ready_seen or not created:
            return
        self._ready_seen.add(uid)
        started = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        metrics.time_to_ready_seconds.labels(kind).observe(max(seconds, 0.0))
