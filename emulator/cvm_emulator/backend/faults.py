"""Failures on demand: refusals with a cloud error code, and operations that end in a failed state.

Three sources: ``--fail-rate`` (InternalError for any call), faults queued through
``POST /_emulator/faults`` (the next ``count`` matching calls or operations fail; deterministic, for
tests) and ``faultRates`` in the config (each call or operation of an action fails with a
probability). A refusal answers the call with its code; a state fault lets the call succeed and the
operation end in the action's failed state.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError

# The state an operation of each action ends in when it fails.
FAILED_STATES: dict[str, str] = {
    "RunInstances": "LAUNCH_FAILED",
    "CreateImage": "CREATEFAILED",
    "SyncImages": "CREATEFAILED",
    "ImportImage": "IMPORTFAILED",
}
# Messages the cloud gives for the refusals a test most often asks for.
MESSAGES: dict[str, str] = {
    "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance": "The zone has sold out of the requested instance type.",
    "ResourceInsufficient.AvailabilityZoneSoldOut": "The availability zone has sold out.",
    "ResourceInsufficient.SpecifiedInstanceType": "The requested instance type is out of stock.",
    "ResourcesSoldOut.SpecifiedInstanceType": "The requested instance type has sold out.",
    "InvalidAccount.InsufficientBalance": "The account balance is insufficient.",
}


@dataclass
class Fault:
    action: str
    remaining: int
    code: str | None = None
    state: str | None = None
    zone: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"action": self.action, "count": self.remaining}
        for key, value in (("code", self.code), ("state", self.state), ("zone", self.zone)):
            if value is not None:
                body[key] = value
        return body


@dataclass(frozen=True)
class FaultRate:
    action: str
    rate: float
    code: str | None = None
    state: str | None = None


def parse_fault(body: Any) -> Fault:
    """A queued fault from the admin endpoint's JSON; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {"action", "count", "code", "state", "zone", "message"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise ValueError("`action` must name an API action")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("`count` must be a positive integer")
    code, state, zone = body.get("code"), body.get("state"), body.get("zone")
    if (code is None) == (state is None):
        raise ValueError("give exactly one of `code` (a refusal) or `state` (a failed operation)")
    if state is not None and FAILED_STATES.get(action) != state:
        known = ", ".join(f"{a} -> {s}" for a, s in FAILED_STATES.items())
        raise ValueError(f"`state` {state!r} is not how {action} fails; known: {known}")
    if zone is not None and action != "RunInstances":
        raise ValueError("`zone` applies to RunInstances only")
    for name, value in (("code", code), ("zone", zone), ("message", body.get("message"))):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"`{name}` must be a string")
    message = str(body.get("message") or (MESSAGES.get(code, f"Injected fault {code}.") if code else ""))
    return Fault(action, count, code, state, zone, message)


def parse_rates(entries: Any) -> tuple[FaultRate, ...]:
    """``faultRates`` of the config: ``{Action: {rate, code | state}}``."""
    if not entries:
        return ()
    if not isinstance(entries, dict):
        raise ValueError("faultRates must map actions to {rate, code} or {rate, state}")
    rates = []
    for action, entry in entries.items():
        if not isinstance(entry, dict) or "rate" not in entry:
            raise ValueError(f"faultRates.{action} needs `rate` and one of `code` or `state`")
        rate = float(entry["rate"])
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"faultRates.{action}.rate must be within 0-1")
        body = {"action": action, **{k: entry[k] for k in ("code", "state") if entry.get(k) is not None}}
        try:
            fault = parse_fault(body)
        except ValueError as exc:
            raise ValueError(f"faultRates.{action}: {exc}") from exc
        rates.append(FaultRate(str(action), rate, fault.code, fault.state))
    return tuple(rates)


class FaultInjector:
    def __init__(
        self, rates: tuple[FaultRate, ...] = (), fail_rate: float = 0.0, rng: random.Random | None = None
    ) -> None:
        self.rates = rates
        self.fail_rate = fail_rate
        self.rng = rng or random.Random()
        self.queued: list[Fault] = []
        self.lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self.lock:
            self.queued.append(fault)

    def clear(self) -> None:
        with self.lock:
            self.queued.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_json() for f in self.queued]

    def _take(self, action: str, kind: str, zone: str | None) -> Fault | None:
        with self.lock:
            for fault in self.queued:
                if fault.action != action or getattr(fault, kind) is None or fault.zone != zone:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.queued.remove(fault)
                return fault
        return None

    def check_internal_error(self) -> None:
        """``--fail-rate``: any call, before its parameters are read, answered InternalError."""
        if self.fail_rate > 0 and self.rng.random() < self.fail_rate:
            raise ApiError("InternalError", "An internal error occurred (injected fault).")

    def check_call(self, action: str, zone: str | None = None) -> None:
        """Raise the refusal queued for this call. Zone-bound refusals match only launches in their zone
        (the backend passes the zone); the others are checked for every call before its handler."""
        fault = self._take(action, "code", zone)
        if fault is not None and fault.code is not None:
            raise ApiError(fault.code, fault.message)
        if zone is None:
            for rate in self.rates:
                if rate.action == action and rate.code is not None and self.rng.random() < rate.rate:
                    raise ApiError(rate.code, MESSAGES.get(rate.code, f"Injected fault {rate.code}."))

    def failed_operations(self, action: str, count: int = 1) -> int:
        """How many of the ``count`` operations a call starts end in the action's failed state."""
        failed = 0
        for _ in range(count):
            if self._take(action, "state", None) is not None:
                failed += 1
                continue
            for rate in self.rates:
                if rate.action == action and rate.state is not None and self.rng.random() < rate.rate:
                    failed += 1
                    break
        return failed
