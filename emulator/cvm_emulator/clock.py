"""Durations of asynchronous operations on a configurable clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Seconds each asynchronous operation takes on the realistic clock (close to the real service).
REALISTIC_DURATIONS: dict[str, float] = {
    "instance.launch": 40.0,
    "instance.start": 15.0,
    "instance.stop": 15.0,
    "instance.reboot": 20.0,
    "instance.terminate": 10.0,
    "instance.reset": 60.0,
    "image.create": 120.0,
    "image.import": 300.0,
    "image.sync": 180.0,
}

# The fast clock keeps every state visible for a moment but lets tests finish in seconds.
FAST_DURATIONS: dict[str, float] = {
    "instance.launch": 0.5,
    "instance.start": 0.3,
    "instance.stop": 0.3,
    "instance.reboot": 0.3,
    "instance.terminate": 0.3,
    "instance.reset": 0.5,
    "image.create": 0.6,
    "image.import": 0.6,
    "image.sync": 1.0,
}


@dataclass
class Clock:
    """Wall time plus the duration table; state is stored as absolute due times so it survives restarts."""

    durations: dict[str, float]
    now: Callable[[], float] = field(default=time.time)
    name: str = "fast"

    def duration(self, operation: str) -> float:
        return self.durations[operation]

    @classmethod
    def parse(cls, spec: str) -> Clock:
        """``fast``, ``realistic`` or a factor applied to the realistic durations (``0.05`` = 20x faster)."""
        if spec == "fast":
            return cls(dict(FAST_DURATIONS), name="fast")
        if spec == "realistic":
            return cls(dict(REALISTIC_DURATIONS), name="realistic")
        try:
            factor = float(spec)
        except ValueError:
            raise ValueError(f"clock must be fast, realistic or a positive number, not {spec!r}") from None
        if factor <= 0:
            raise ValueError(f"clock factor must be positive, not {spec!r}")
        return cls({k: v * factor for k, v in REALISTIC_DURATIONS.items()}, name=f"x{factor:g}")


def progress_percent(started_at: float | None, due_at: float | None, now: float) -> int:
    """Percent of an operation done; 0..99 while running (100 only once the state has moved on)."""
    if started_at is None or due_at is None:
        return 0
    span = due_at - started_at
    if span <= 0:
        return 99
    return max(0, min(99, int(100 * (now - started_at) / span)))
