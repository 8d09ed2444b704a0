"""Image reconciler (being written)."""

from __future__ import annotations

from typing import Any

from cvm_operator.api import Image
from cvm_operator.reconcilers.base import Context, ManagedReconciler, Observation, Waiting


class ImageReconciler(ManagedReconciler[Image]):
    kind = "Image"
    plural = "images"
    model = Image

    async def observe(self, ctx: Context[Image]) -> Observation:
        return Observation(exists=False)

    async def create(self, ctx: Context[Image]) -> dict[str, Any]:
        return {}

    async def delete(self, ctx: Context[Image], observation: Observation) -> Waiting | None:
        return None
