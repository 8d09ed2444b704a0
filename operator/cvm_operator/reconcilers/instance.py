"""Instance reconciler (being written)."""

from __future__ import annotations

from typing import Any

from cvm_operator.api import Instance
from cvm_operator.reconcilers.base import Context, ManagedReconciler, Observation, Waiting


class InstanceReconciler(ManagedReconciler[Instance]):
    kind = "Instance"
    plural = "instances"
    model = Instance

    async def observe(self, ctx: Context[Instance]) -> Observation:
        return Observation(exists=False)

    async def create(self, ctx: Context[Instance]) -> dict[str, Any]:
        return {}

    async def delete(self, ctx: Context[Instance], observation: Observation) -> Waiting | None:
        return None
