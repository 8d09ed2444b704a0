"""State every backend model shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..catalogue import Account, Catalogue, EmulatorConfig
from ..clock import Clock
from ..store import Store
from .faults import FaultInjector
from .objects import ObjectStore
from .vpc import VpcBackend


@dataclass
class Services:
    """The store, configuration and clock, and the backends that need nothing else; the image and
    instance backends take this (see :class:`cvm_emulator.backend.emulator.Emulator`, which adds them)."""

    store: Store
    catalogue: Catalogue
    config: EmulatorConfig
    clock: Clock
    accounts_by_id: dict[str, Account] = field(default_factory=dict)
    # Called after a transaction that queued an import commits (the server starts the fetch).
    start_import: Callable[[str, str], None] = field(default=lambda image_id, region: None)
    vpc: VpcBackend = field(init=False)
    faults: FaultInjector = field(init=False)
    objects: ObjectStore = field(init=False)

    def __post_init__(self) -> None:
        self.accounts_by_id = {a.account_id: a for a in self.config.accounts}
        self.vpc = VpcBackend(
            self.store, self.catalogue, self.config.accounts, self.config.vpcs, self.config.security_groups
        )
        self.faults = FaultInjector(self.config.fault_rates, self.config.fail_rate)
        # Objects live beside the database, so they outlive a restart as the images do.
        self.objects = ObjectStore(
            self.store.path.with_name(self.store.path.name + ".objects"), self.config.allow_any_import_url
        )
