"""The per-request call context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .catalogue import Account


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
