"""Active/standby between operator replicas through Kopf's peering: the live replica with the highest priority works.

Kopf keeps every replica's keep-alive (priority, lifetime, last seen) in the status of a peering
object, and pauses its own watches while a live peer outranks it. The workers run from a queue Kopf
does not see, so they read the same object and follow the same rule: while another live replica has
an equal or higher priority, no key is processed; a replica killed without a goodbye stops counting
once its lifetime has passed since it was last seen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cvm_operator.kube import KubeClient

logger = logging.getLogger(__name__)

LIFETIME = 15
"""Seconds a replica counts as alive after its last keep-alive: how long a standby waits for a dead active one."""


def outranked(status: Mapping[str, Any] | None, identity: str, priority: int, now: dt.datetime) -> list[str]:
    """The live peers (other than ``identity``) whose priority is as high as ours or higher."""
    blocking = []
    for peer, info in (status or {}).items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        try:
            lastseen = dt.datetime.fromisoformat(str(info["lastseen"]))
            lifetime = dt.timedelta(seconds=int(info.get("lifetime", 60)))
            peer_priority = int(info.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if lastseen.tzinfo is None:
            lastseen = lastseen.replace(tzinfo=dt.UTC)
        if lastseen + lifetime > now and peer_priority >= priority:
            blocking.append(peer)
    return sorted(blocking)


class Peering:
    """Sets ``active`` while this replica may work, by reading the peering objects Kopf keeps."""

    def __init__(
        self,
        kube: KubeClient,
        name: str,
        identity: str,
        priority: int,
        namespaces: Sequence[str] | None,
        interval: float = 2.0,
    ) -> None:
        self.kube, self.name, self.identity, self.priority = kube, name, identity, priority
        self.namespaces = namespaces
        """Namespaces of the KopfPeering objects; None for the cluster-wide ClusterKopfPeering."""
        self.interval = interval
        self.active = asyncio.Event()
        self._announced_at: dt.datetime | None = None
        self._waiting: str | None = ""

    async def ensure(self) -> None:
        """Make the peering objects when missing, before Kopf starts keeping its keep-alive in them."""
        for namespace in [None] if self.namespaces is None else self.namespaces:
            await self.kube.ensure_peering(self.name, namespace)

    async def run(self) -> None:
        while True:
            try:
                waiting_for = await self._waiting_for()
            except Exception as error:  # the API server is away: keep the last verdict
                logger.warning("peering %s: cannot read the peering object: %s", self.name, error)
            else:
                self._set(waiting_for)
            await asyncio.sleep(self.interval)

    async def _waiting_for(self) -> str | None:
        """Why this replica must not work now, or None when it may."""
        now = dt.datetime.now(dt.UTC)
        scopes: Sequence[str | None] = [None] if self.namespaces is None else self.namespaces
        blocking: list[str] = []
        announced = True
        for namespace in scopes:
            body = await self.kube.get_peering(self.name, namespace)
            status = (body or {}).get("status") or {}
            announced = announced and self.identity in status
            blocking += outranked(status, self.identity, self.priority, now)
        if blocking:
            return f"standing by for {', '.join(sorted(set(blocking)))}"
        # Work starts only after our own keep-alive has been visible for a while, so that a replica we
        # outrank has seen it and stood by: the two never work at once.
        if not announced:
            self._announced_at = None
            return "announcing itself"
        if self._announced_at is None:
            self._announced_at = now
        if now - self._announced_at < dt.timedelta(seconds=2 * self.interval):
            return "announcing itself"
        return None

    def _set(self, waiting_for: str | None) -> None:
        if waiting_for == self._waiting:
            return
        self._waiting = waiting_for
        if waiting_for is None:
            logger.info("peering %s: active (priority %d)", self.name, self.priority)
            self.active.set()
        else:
            logger.info("peering %s: %s (priority %d)", self.name, waiting_for, self.priority)
            self.active.clear()
