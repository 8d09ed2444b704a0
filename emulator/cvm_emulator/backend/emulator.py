"""A running emulator: the shared services and every backend model, composed."""

from __future__ import annotations

from dataclasses import dataclass, field

from .images import ImageBackend
from .instances import InstanceBackend
from .services import Services


@dataclass
class Emulator(Services):
    """A running emulator: the shared services and every backend model."""

    images: ImageBackend = field(init=False)
    instances: InstanceBackend = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.images = ImageBackend(self)
        self.instances = InstanceBackend(self, self.images)
