"""How a pass ends when the object cannot be judged ready yet: it waits, or only its user can unblock it.

Free of everything else in the operator, so that the runtime (credentials) and every reconciler can
raise them without importing each other.
"""

from __future__ import annotations

from typing import NamedTuple

from cvm_operator.api import Phase


class ObjectKey(NamedTuple):
    kind: str
    namespace: str
    name: str


class Outcome(Exception):
    """A pass that ends short of Ready: the condition's reason and message, and the object's phase."""

    def __init__(self, reason: str, message: str, *, phase: Phase, on: ObjectKey | None) -> None:
        super().__init__(message)
        self.reason, self.message, self.phase = reason, message, phase
        self.on = on
        """What ends it (another object, the namespace to label): a change to it runs the object again at once."""


class Waiting(Outcome):
    """Not an error: the object waits for something (another object, a cloud state). Reconciling=True."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        on: ObjectKey | None = None,
        phase: Phase = "Pending",
        delay: float | None = None,
    ) -> None:
        super().__init__(reason, message, phase=phase, on=on)
        self.delay = delay
        """Seconds until the next look; None is the progress interval."""


class Blocked(Outcome):
    """A rule the schema cannot see is broken; only the user can fix it. Stalled=True."""

    def __init__(self, reason: str, message: str, *, phase: Phase = "Failed", on: ObjectKey | None = None) -> None:
        super().__init__(reason, message, phase=phase, on=on)
