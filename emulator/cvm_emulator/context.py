"""Shared state of a running emulator and the per-request call context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .catalogue import Account, Catalogue, EmulatorConfig
from .clock import Clock
from .store import Store


@dataclass
class Emulator:
    store: Store
    catalogue: Catalogue
    config: EmulatorConfig
    clock: Clock
    accounts_by_id: dict[str, Account] = field(default_factory=dict)
    # Called after a transaction that queued an import commits (the server starts the fetch).
    start_import: Callable[[str, str], None] = field(default=lambda image_id, region: None)

    def __post_init__(self) -> None:
        self.accounts_by_id = {a.account_id: a for a in self.config.accounts}


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
