"""Audit of cloud writes: every write the operator makes is logged with the cloud's RequestId and the
object it was made for, and the Events of that reconcile pass name the RequestIds, so that a cloud-side
audit trail (CloudAudit) can be matched to the Kubernetes object and back.

A reconcile pass calls :func:`begin` with its object; the cloud layer calls :func:`record` after each
write; the Event poster calls :func:`annotate`. The scope lives in a context variable, so passes that
run concurrently (each in its own task) never see each other's writes. Writes no Event of their pass
named are carried to the object's next pass (:class:`Unannounced`): a launch posts no Event of its own,
and its RequestId reaches the Ready Event a few passes later.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field

logger = logging.getLogger("cvm_operator.audit")

#: Actions that only read; every other action changes something in the cloud.
_READ_PREFIXES = ("Describe", "Get", "Inquiry", "Inquire", "List")


def is_write(action: str) -> bool:
    return not action.startswith(_READ_PREFIXES)


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Write:
    action: str
    where: str
    request_id: str | None
    result: str
    """``OK`` or the error code."""

    def __str__(self) -> str:
        outcome = "" if self.result == "OK" else f" {self.result}"
        return f"{self.action}{outcome} RequestId={self.request_id or '-'}"


@dataclass
class Scope:
    ref: ObjectRef
    writes: list[Write] = field(default_factory=list)
    announced: int = 0
    """How many of ``writes`` an Event has named already."""


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("cvm_operator_audit_scope", default=None)


def begin(ref: ObjectRef, carried: list[Write] | None = None) -> Scope:
    """Start the audit scope of one reconcile pass (in the current task), with the writes earlier passes
    left unannounced."""
    scope = Scope(ref, list(carried or ()))
    _scope.set(scope)
    return scope


class Unannounced:
    """Per object, the writes no Event has named yet, until one does or the object goes."""

    LIMIT = 20
    """Writes kept per object: the newest, so an object that writes every pass without a transition
    (tags put back, say) holds a bounded list."""

    def __init__(self) -> None:
        self._writes: dict[str, list[Write]] = {}

    def begin(self, ref: ObjectRef) -> Scope:
        return begin(ref, self._writes.pop(ref.uid, None))

    def end(self, scope: Scope) -> None:
        left = scope.writes[scope.announced :]
        if left:
            self._writes[scope.ref.uid] = left[-self.LIMIT :]

    def forget(self, uid: str) -> None:
        self._writes.pop(uid, None)

    def __len__(self) -> int:
        return len(self._writes)


def current() -> Scope | None:
    return _scope.get()


def record(action: str, where: str, request_id: str | None, result: str) -> None:
    """Log one cloud write (called by the cloud layer for writes only); never logs parameters."""
    scope = _scope.get()
    write = Write(action, where, request_id, result)
    if scope is not None:
        scope.writes.append(write)
    ref = scope.ref if scope is not None else None
    target = f"{ref.kind} {ref.namespace}/{ref.name}" if ref is not None else "no object"
    extra: dict[str, object] = {
        "audit": {"action": action, "where": where, "requestId": request_id, "result": result},
    }
    if ref is not None:
        extra["k8s_ref"] = {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}
        extra["audit"]["uid"] = ref.uid  # type: ignore[index]
    logger.info("cloud write %s in %s for %s: %s RequestId=%s", action, where, target, result, request_id, extra=extra)


def annotate(uid: str | None, message: str, limit: int = 1000) -> str:
    """``message`` followed by the RequestIds of this pass's writes for object ``uid`` not yet named in an
    Event (each write is named once); the message is shortened, never the RequestIds, to fit ``limit``."""
    scope = _scope.get()
    if scope is None or uid is None or scope.ref.uid != uid or scope.announced >= len(scope.writes):
        return message
    fresh = scope.writes[scope.announced :]
    scope.announced = len(scope.writes)
    suffix = f" [cloud: {'; '.join(str(write) for write in fresh)}]"
    return message[: max(0, limit - len(suffix))] + suffix
