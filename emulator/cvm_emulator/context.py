"""Shared state of a running emulator and the per-request call context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .backend.objects import ObjectStore
from .backend.vpc import VpcBackend
from .catalogue import Account, Catalogue, EmulatorConfig
from .clock import Clock
from .store import Store

if TYPE_CHECKING:
    from .backend.faults import FaultInjector
    from .backend.images import ImageBackend
    from .backend.instances import InstanceBackend


@dataclass
class Emulator:
    store: Store
    catalogue: Catalogue
    config: EmulatorConfig
    clock: Clock
    accounts_by_id: dict[str, Account] = field(default_factory=dict)
    # Called after a transaction that queued an import commits (the server starts the fetch).
    start_import: Callable[[str, str], None] = field(default=lambda image_id, region: None)
    vpc: VpcBackend = field(init=False)
    images: ImageBackend = field(init=False)
    instances: InstanceBackend = field(init=False)
    faults: FaultInjector = field(init=False)
    objects: ObjectStore = field(init=False)

    def __post_init__(self) -> None:
        # The instance and image backends take the emulator itself: imported here, after this module.
        from .backend.faults import FaultInjector
        from .backend.images import ImageBackend
        from .backend.instances import InstanceBackend

        self.accounts_by_id = {a.account_id: a for a in self.config.accounts}
        self.vpc = VpcBackend(
            self.store, self.catalogue, self.config.accounts, self.config.vpcs, self.config.security_groups
        )
        self.images = ImageBackend(self)
        self.instances = InstanceBackend(self)
        self.faults = FaultInjector(self.config.fault_rates, self.config.fail_rate)
        # Objects live beside the database, so they outlive a restart as the images do.
        self.objects = ObjectStore(
            self.store.path.with_name(self.store.path.name + ".objects"), self.config.allow_any_import_url
        )


@dataclass
class Call:
    account: Account
    region: str
    request_id: str
    now: float
    language: str = "zh-CN"
    after_commit: list[Callable[[], None]] = field(default_factory=list)


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
