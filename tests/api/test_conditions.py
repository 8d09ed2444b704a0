"""kstatus condition helpers."""

from __future__ import annotations

import datetime as dt

from cvm_operator.api import (
    READY,
    RECONCILING,
    STALLED,
    Condition,
    get_condition,
    is_true,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    set_condition,
)
from tests.support.kstatus import CURRENT, FAILED, IN_PROGRESS, kstatus

T0 = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 1, 1, 0, 5, 0, 123456, tzinfo=dt.UTC)


def test_set_condition_appends_a_new_type() -> None:
    conditions = set_condition([], READY, "False", "Creating", "creating", observed_generation=1, now=T0)
    assert conditions == [
        Condition(
            type=READY,
            status="False",
            reason="Creating",
            message="creating",
            observed_generation=1,
            last_transition_time=T0,
        )
    ]


def test_transition_time_moves_only_when_status_changes() -> None:
    first = set_condition([], READY, "False", "Creating", now=T0)
    same_status = set_condition(first, READY, "False", "Importing", "50%", observed_generation=2, now=T1)
    ready = get_condition(same_status, READY)
    assert ready is not None
    assert ready.last_transition_time == T0
    assert (ready.reason, ready.message, ready.observed_generation) == ("Importing", "50%", 2)

    flipped = set_condition(same_status, READY, "True", "Available", now=T1)
    flipped_ready = get_condition(flipped, READY)
    assert flipped_ready is not None
    assert flipped_ready.last_transition_time == T1.replace(microsecond=0)


def test_set_condition_keeps_other_conditions_and_order() -> None:
    conditions = set_condition([], READY, "False", "A", now=T0)
    conditions = set_condition(conditions, RECONCILING, "True", "A", now=T0)
    conditions = set_condition(conditions, READY, "True", "B", now=T1)
    assert [c.type for c in conditions] == [READY, RECONCILING]


def test_input_list_is_not_modified() -> None:
    original = set_condition([], READY, "False", "A", now=T0)
    set_condition(original, READY, "True", "B", now=T1)
    assert original[0].status == "False"


def test_kstatus_states() -> None:
    reconciling = mark_reconciling([], "Creating", "CreateImage sent", observed_generation=1, now=T0)
    assert is_true(reconciling, RECONCILING) and not is_true(reconciling, READY)
    assert get_condition(reconciling, STALLED) is None
    ready_condition = get_condition(reconciling, READY)
    assert ready_condition is not None and ready_condition.reason == "Creating"

    stalled = mark_stalled(reconciling, "InvalidImageName", "duplicate name", observed_generation=1, now=T1)
    assert is_true(stalled, STALLED) and get_condition(stalled, RECONCILING) is None
    stalled_ready = get_condition(stalled, READY)
    assert stalled_ready is not None and stalled_ready.status == "False"
    assert stalled_ready.last_transition_time == T0  # Ready stayed False

    ready = mark_ready(stalled, "Available", observed_generation=2, now=T1)
    assert [c.type for c in ready] == [READY]
    assert is_true(ready, READY)
    assert ready[0].observed_generation == 2


def test_wire_form_of_conditions() -> None:
    conditions = mark_ready([], "Available", "ok", observed_generation=4, now=T1)
    wire = conditions[0].to_wire()
    assert wire == {
        "type": "Ready",
        "status": "True",
        "reason": "Available",
        "message": "ok",
        "observedGeneration": 4,
        "lastTransitionTime": "2026-01-01T00:05:00Z",
    }


def _judged(conditions: list[Condition], generation: int = 1, observed: int = 1) -> str:
    """cli-utils' kstatus of an object carrying ``conditions``."""
    body = {
        "apiVersion": "cvm.operator.dev/v1alpha1",
        "kind": "Image",
        "metadata": {"name": "web", "namespace": "default", "generation": generation},
        "status": {"observedGeneration": observed, "conditions": [c.to_wire() for c in conditions]},
    }
    return kstatus(body)


def test_each_helper_is_judged_by_cli_utils_as_meant() -> None:
    working = mark_reconciling([], "Creating", "CreateImage sent", observed_generation=1, now=T0)
    assert _judged(working) == IN_PROGRESS
    stalled = mark_stalled(working, "InvalidImageName", "duplicate name", observed_generation=1, now=T1)
    assert _judged(stalled) == FAILED
    ready = mark_ready(stalled, "Available", observed_generation=1, now=T1)
    assert _judged(ready) == CURRENT
    assert _judged(mark_reconciling(ready, "Updating", observed_generation=1, now=T1)) == IN_PROGRESS
    # A Ready written for an earlier generation is not health for the current spec.
    assert _judged(ready, generation=2, observed=1) == IN_PROGRESS
    # Conditions beyond the three (e.g. ImageUpToDate=False under reimagePolicy Never) do not count.
    assert _judged(set_condition(ready, "ImageUpToDate", "False", "ImageDiffers", now=T1)) == CURRENT
