"""One reconciler per kind, in the observe/create/update/delete shape (see base.py)."""

from __future__ import annotations

from typing import Any

from cvm_operator.api import IMAGE_COPIES, IMAGE_SCHEDULES, IMAGE_SHARES, IMAGES, INSTANCE_SETS, INSTANCES
from cvm_operator.reconcilers.base import ManagedReconciler
from cvm_operator.reconcilers.image import ImageReconciler
from cvm_operator.reconcilers.imagecopy import ImageCopyReconciler
from cvm_operator.reconcilers.imageschedule import ImageScheduleReconciler
from cvm_operator.reconcilers.imageshare import ImageShareReconciler
from cvm_operator.reconcilers.instance import InstanceReconciler
from cvm_operator.reconcilers.instanceset import InstanceSetReconciler

RECONCILERS: dict[str, type[ManagedReconciler[Any, Any]]] = {
    IMAGES: ImageReconciler,
    INSTANCES: InstanceReconciler,
    IMAGE_SHARES: ImageShareReconciler,
    IMAGE_COPIES: ImageCopyReconciler,
    IMAGE_SCHEDULES: ImageScheduleReconciler,
    INSTANCE_SETS: InstanceSetReconciler,
}
