"""Pure decisions of an InstanceSet: zone spread, scale up and down, rollout steps, batches. No I/O.

A replica is one Instance object, seen as a :class:`Replica`; the reconciler turns bodies into replicas,
asks these functions what to do, and does it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cvm_operator.reconcilers.base import ANNOTATION_PREFIX

LAUNCH_BATCH = f"{ANNOTATION_PREFIX}/launch-batch"
"""Annotation of a replica: the batch (one RunInstances call) that launches its instance."""
ASSIGNED_INSTANCE = f"{ANNOTATION_PREFIX}/assigned-instance-id"
"""Annotation of a replica: the instance its batch launched for it, set when the set makes the object."""
BATCH_TAG = f"{ANNOTATION_PREFIX}/launch-batch"
"""Cloud tag of every instance of a batch (with the set UID in the ClientToken, it finds them again)."""
MAX_BATCH = 500
"""RunInstances launches at most this many instances per call (InstanceCount)."""
REPLACEABLE_FAILURES = frozenset({"LaunchFailed", "NotFound", "InstanceShutdown"})
"""Stalled reasons of a replica whose instance is lost: the replica is replaced, not waited for."""


@dataclass(frozen=True)
class Replica:
    """What the set needs to know of one of its Instance objects."""

    name: str
    zone: str
    created: str = ""
    """creationTimestamp (RFC 3339 sorts by time)."""
    image_wanted: str | None = None
    """spec.imageId: the image the set asked this replica to run."""
    image_running: str | None = None
    """status.imageId: the image the instance runs."""
    ready: bool = False
    """Ready=True for the replica's current generation."""
    deleting: bool = False
    failed_reason: str | None = None
    """The Stalled reason, when Stalled=True."""
    failed_message: str = ""
    failed_since: float | None = None
    """When Stalled became True (epoch seconds)."""

    def updated(self, image: str | None) -> bool:
        return image is not None and self.image_wanted == image and self.image_running == image and self.ready


def zone_targets(replicas: int, zones: Sequence[str]) -> dict[str, int]:
    """Replicas per zone: an even split, the first zones taking one more each for the remainder."""
    base, rest = divmod(replicas, len(zones))
    return {zone: base + (1 if index < rest else 0) for index, zone in enumerate(zones)}


def scale_up(
    live: Sequence[Replica], replicas: int, zones: Sequence[str], short: Collection[str] = ()
) -> dict[str, int]:
    """How many replicas to add in each zone, filling the zones furthest below their target first.
    Zones ``short`` of capacity (a launch there was refused or failed lately) get none while another
    zone can take them."""
    allowed = [zone for zone in zones if zone not in short] or list(zones)
    return _spread(replicas - len(live), live, replicas, zones, allowed)


def _spread(
    count: int, existing: Sequence[Replica], replicas: int, zones: Sequence[str], allowed: Sequence[str] | None = None
) -> dict[str, int]:
    """``count`` additions steered towards each zone's share of ``replicas``, given the ``existing`` ones."""
    if count <= 0:
        return {}
    targets = zone_targets(replicas, zones)
    counts = Counter(replica.zone for replica in existing if replica.zone in targets)
    added: Counter[str] = Counter()
    for _ in range(count):
        zone = min(allowed or zones, key=lambda z: (counts[z] + added[z] - targets[z], zones.index(z)))
        added[zone] += 1
    return dict(added)


class ShortZones:
    """Zones where a launch was refused for capacity or ended LAUNCH_FAILED, per set, for ``hold`` seconds:
    replicas still to launch go to the set's other zones meanwhile."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self._until: dict[str, dict[str, float]] = {}

    def mark(self, set_uid: str, zone: str, now: float) -> None:
        self._until.setdefault(set_uid, {})[zone] = now + self.hold

    def of(self, set_uid: str, now: float) -> set[str]:
        zones = self._until.get(set_uid, {})
        for zone in [zone for zone, until in zones.items() if until <= now]:
            del zones[zone]
        if not zones:
            self._until.pop(set_uid, None)
        return set(zones)


def _newest_first(replicas: Iterable[Replica]) -> list[Replica]:
    return sorted(replicas, key=lambda replica: (replica.created, replica.name), reverse=True)


def scale_down(live: Sequence[Replica], replicas: int, zones: Sequence[str]) -> list[str]:
    """Which replicas to remove: not ready ones first, then the newest, from the zones most over target."""
    surplus = len(live) - replicas
    if surplus <= 0:
        return []
    targets = zone_targets(replicas, zones)
    counts = Counter(replica.zone for replica in live)
    remaining = list(live)
    chosen: list[str] = []
    for _ in range(surplus):

        def rank(replica: Replica) -> tuple[bool, int]:
            # Zones no longer in spec.zones are emptied first (their target is 0).
            return (replica.ready, -(counts[replica.zone] - targets.get(replica.zone, 0)))

        best = min(rank(replica) for replica in remaining)
        pick = _newest_first(replica for replica in remaining if rank(replica) == best)[0]
        remaining.remove(pick)
        counts[pick.zone] -= 1
        chosen.append(pick.name)
    return chosen


def unavailable(live: Sequence[Replica], replicas: int) -> int:
    """Replicas short of ready: the measure maxUnavailable bounds (missing replicas count too)."""
    return max(0, replicas - sum(replica.ready for replica in live))


def reimage_step(live: Sequence[Replica], image: str, replicas: int, max_unavailable: int) -> list[str]:
    """Replicas to move to ``image`` now (RollingReimage) without exceeding ``max_unavailable``.

    Replicas that are not ready cost nothing (they are unavailable already); each ready one taken out
    spends one of the budget left by those already unavailable.
    """
    stale = sorted((r for r in live if r.image_wanted != image), key=lambda r: (r.created, r.name))
    budget = max_unavailable - unavailable(live, replicas)
    chosen = [replica.name for replica in stale if not replica.ready]
    for replica in stale:
        if replica.ready and budget > 0:
            chosen.append(replica.name)
            budget -= 1
    return chosen


def misplaced(live: Sequence[Replica], zones: Sequence[str], replicas: int, max_unavailable: int) -> list[str]:
    """Replicas in zones no longer in spec.zones, to remove (and so replace in the zones that are) a few at
    a time: those not ready first, then ready ones within ``max_unavailable``."""
    outside = sorted((r for r in live if r.zone not in zones), key=lambda r: (r.ready, r.created, r.name))
    budget = max_unavailable - unavailable(live, replicas)
    chosen: list[str] = []
    for replica in outside:
        if replica.ready:
            if budget <= 0:
                break
            budget -= 1
        chosen.append(replica.name)
    return chosen


@dataclass(frozen=True)
class ReplaceStep:
    create: dict[str, int] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)


def replace_step(
    live: Sequence[Replica], image: str, replicas: int, zones: Sequence[str], max_unavailable: int, max_surge: int
) -> ReplaceStep:
    """RollingReplace: launch replicas on ``image`` within ``replicas + max_surge`` and remove old ones
    while at least ``replicas - max_unavailable`` stay ready."""
    new = [replica for replica in live if replica.image_wanted == image]
    old = [replica for replica in live if replica.image_wanted != image]
    # Old replicas that are not ready go first: removing them costs no availability.
    delete = [replica.name for replica in old if not replica.ready]
    budget = sum(replica.ready for replica in live) - (replicas - max_unavailable)
    for replica in sorted((r for r in old if r.ready), key=lambda r: (r.created, r.name)):
        if budget <= 0:
            break
        delete.append(replica.name)
        budget -= 1
    # Scaled down meanwhile: old replicas, then the newest new ones, go beyond the surge.
    excess = len(live) - len(delete) - (replicas + max_surge)
    for replica in [*_newest_first(old), *_newest_first(new)]:
        if excess <= 0:
            break
        if replica.name not in delete:
            delete.append(replica.name)
            excess -= 1
    kept_new = [replica for replica in new if replica.name not in delete]
    room = replicas + max_surge - (len(live) - len(delete))
    missing = min(room, replicas - len(kept_new))
    return ReplaceStep(create=_spread(missing, kept_new, replicas, zones), delete=delete)


def rollout_failure(live: Sequence[Replica], image: str) -> Replica | None:
    """The first replica that failed to move to ``image`` (the cloud refused or failed its reinstall):
    the rollout stops there. Replicas whose instance is lost are replaced instead."""
    for replica in sorted(live, key=lambda r: r.name):
        told = replica.image_wanted == image and replica.image_running != image
        if told and replica.failed_reason and replica.failed_reason not in REPLACEABLE_FAILURES:
            return replica
    return None


def replace_failed(live: Sequence[Replica], now: float, wait: float) -> list[str]:
    """Replicas whose instance is lost (launch failed, terminated out of band) for at least ``wait`` seconds."""
    return [
        replica.name
        for replica in live
        if replica.failed_reason in REPLACEABLE_FAILURES
        and replica.failed_since is not None
        and now - replica.failed_since >= wait
    ]


def batches(count: int, size: int = MAX_BATCH) -> list[int]:
    """Sizes of the RunInstances calls that launch ``count`` instances: ⌈count/size⌉ calls."""
    return [min(size, count - start) for start in range(0, count, size)]


def batch_calls(count: int, size: int = MAX_BATCH) -> int:
    return math.ceil(count / size) if count > 0 else 0


def current_image(live: Sequence[Replica], image: str | None) -> str | None:
    """The image the replicas not yet updated run (the most common one), or ``image`` once all are updated."""
    others = Counter(r.image_running for r in live if r.image_running and not r.updated(image))
    if not others:
        return image
    return others.most_common(1)[0][0]


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``: changed keys, removed ones as null."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif before != value:
            patch[key] = value
    return patch
