"""kstatus conditions: Ready (normal-true), Reconciling and Stalled (abnormal-true, present only while True).

Pure functions over lists of `Condition`; they return new lists and never touch I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from .common import Condition, ConditionStatus

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


def utc_now() -> dt.datetime:
    """Now, in UTC, to the second (the precision of metav1.Time)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def parse_time(value: object) -> dt.datetime | None:
    """A timestamp from status or an annotation (RFC 3339), in UTC; None when absent or unreadable."""
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def get_condition(conditions: Iterable[Condition], condition_type: str) -> Condition | None:
    for condition in conditions:
        if condition.type == condition_type:
            return condition
    return None


def is_true(conditions: Iterable[Condition], condition_type: str) -> bool:
    condition = get_condition(conditions, condition_type)
    return condition is not None and condition.status == "True"


def set_condition(
    conditions: Sequence[Condition],
    condition_type: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: dt.datetime | None = None,
) -> list[Condition]:
    """Return `conditions` with `condition_type` set; lastTransitionTime moves only when the status changes."""
    previous = get_condition(conditions, condition_type)
    if previous is not None and previous.status == status:
        transition_time = previous.last_transition_time
    else:
        transition_time = (now or utc_now()).replace(microsecond=0)
    updated = Condition(
        type=condition_type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=transition_time,
    )
    result: list[Condition] = []
    replaced = False
    for condition in conditions:
        if condition.type == condition_type:
            result.append(updated)
            replaced = True
        else:
            result.append(condition)
    if not replaced:
        result.append(updated)
    return result


def remove_condition(conditions: Sequence[Condition], condition_type: str) -> list[Condition]:
    return [condition for condition in conditions if condition.type != condition_type]


def mark_ready(
    conditions: Sequence[Condition],
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: dt.datetime | None = None,
) -> list[Condition]:
    """Ready=True; Reconciling and Stalled removed."""
    result = set_condition(conditions, READY, "True", reason, message, observed_generation=observed_generation, now=now)
    return remove_condition(remove_condition(result, RECONCILING), STALLED)


def mark_reconciling(
    conditions: Sequence[Condition],
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: dt.datetime | None = None,
) -> list[Condition]:
    """Work in progress: Reconciling=True, Ready=False with the same reason; Stalled removed."""
    return _mark_not_ready(conditions, RECONCILING, STALLED, reason, message, observed_generation, now)


def mark_stalled(
    conditions: Sequence[Condition],
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: dt.datetime | None = None,
) -> list[Condition]:
    """Needs the user: Stalled=True, Ready=False with the same reason; Reconciling removed."""
    return _mark_not_ready(conditions, STALLED, RECONCILING, reason, message, observed_generation, now)


def _mark_not_ready(
    conditions: Sequence[Condition],
    abnormal: str,
    other: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: dt.datetime | None,
) -> list[Condition]:
    """``abnormal``=True and Ready=False, both with ``reason``; the other abnormal-true condition removed."""
    result = set_condition(
        conditions, abnormal, "True", reason, message, observed_generation=observed_generation, now=now
    )
    result = set_condition(result, READY, "False", reason, message, observed_generation=observed_generation, now=now)
    return remove_condition(result, other)
