"""InstanceSet decisions as pure functions: zone spread, scaling, rollout steps, batches. No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from cvm_operator.api.instanceset import resolve_int_or_percent
from cvm_operator.reconcilers import fleet
from cvm_operator.reconcilers.fleet import Replica
from cvm_operator.reconcilers.instanceset import (
    batch_index,
    client_token,
    replica_from_body,
    spec_drift,
)

OLD, NEW = "img-00000old", "img-00000new"
Z3, Z4, Z5 = "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-5"


def fleet_of(count: int, zones: Sequence[str], *, image: str = OLD, ready: bool = True) -> list[Replica]:
    return [
        Replica(
            name=f"r{index:03d}",
            zone=zones[index % len(zones)],
            created=f"2026-01-01T00:{index // 60:02d}:{index % 60:02d}Z",
            image_wanted=image,
            image_running=image,
            ready=ready,
        )
        for index in range(count)
    ]


def test_zone_targets_split_evenly_and_the_first_zones_take_the_rest() -> None:
    assert fleet.zone_targets(20, [Z3, Z4]) == {Z3: 10, Z4: 10}
    assert fleet.zone_targets(25, [Z3, Z4]) == {Z3: 13, Z4: 12}
    assert fleet.zone_targets(2, [Z3, Z4, Z5]) == {Z3: 1, Z4: 1, Z5: 0}
    assert fleet.zone_targets(0, [Z3]) == {Z3: 0}


def test_scale_up_steers_clear_of_zones_short_of_capacity_while_another_can_take_the_replicas() -> None:
    assert fleet.scale_up([], 6, [Z3, Z4, Z5], short={Z3}) == {Z4: 3, Z5: 3}
    assert fleet.scale_up(fleet_of(2, [Z4]), 4, [Z3, Z4], short={Z3}) == {Z4: 2}
    assert fleet.scale_up([], 4, [Z3], short={Z3}) == {Z3: 4}  # no other zone: the same one again
    assert fleet.scale_up([], 4, [Z3, Z4], short={Z3, Z4}) == {Z3: 2, Z4: 2}


def test_a_short_zone_is_held_for_a_while_per_set() -> None:
    short = fleet.ShortZones(hold=300.0)
    short.mark("set-a", Z3, now=1000.0)
    assert short.of("set-a", 1100.0) == {Z3}
    assert short.of("set-b", 1100.0) == set()
    assert short.of("set-a", 1300.0) == set()  # capacity comes back: the zone takes replicas again


def test_scale_up_fills_the_zones_furthest_below_target() -> None:
    assert fleet.scale_up([], 20, [Z3, Z4]) == {Z3: 10, Z4: 10}
    lopsided = fleet_of(6, [Z3])
    assert fleet.scale_up(lopsided, 10, [Z3, Z4]) == {Z4: 4}
    assert fleet.scale_up(fleet_of(10, [Z3, Z4]), 10, [Z3, Z4]) == {}
    # A zone added to spec.zones receives the new replicas.
    assert fleet.scale_up(fleet_of(4, [Z3, Z4]), 6, [Z3, Z4, Z5]) == {Z5: 2}


def test_scale_down_removes_not_ready_first_then_the_newest_keeping_zones_even() -> None:
    live = fleet_of(10, [Z3, Z4])
    unready = Replica(name="r900", zone=Z3, created="2025-01-01T00:00:00Z", ready=False)
    chosen = fleet.scale_down([*live, unready], 8, [Z3, Z4])
    assert chosen[0] == "r900"
    assert len(chosen) == 3
    left = [replica for replica in live if replica.name not in chosen]
    assert Counter(replica.zone for replica in left) == {Z3: 4, Z4: 4}
    # Among ready ones, the newest go.
    assert set(chosen[1:]) == {"r008", "r009"}
    # A zone no longer in spec.zones is emptied first.
    assert set(fleet.scale_down(fleet_of(6, [Z3, Z4, Z5]), 4, [Z3, Z4])) == {"r002", "r005"}
    assert fleet.scale_down(live, 10, [Z3, Z4]) == []


def test_reimage_step_never_exceeds_max_unavailable() -> None:
    live = fleet_of(6, [Z3, Z4])
    assert fleet.reimage_step(live, NEW, 6, 2) == ["r000", "r001"]
    # Two are being reimaged (told, not ready yet): no budget left.
    moving = [
        Replica(name=r.name, zone=r.zone, created=r.created, image_wanted=NEW, image_running=OLD, ready=False)
        if r.name in ("r000", "r001")
        else r
        for r in live
    ]
    assert fleet.reimage_step(moving, NEW, 6, 2) == []
    # One came back on the new image: one more may go.
    moving[0] = Replica(name="r000", zone=Z3, image_wanted=NEW, image_running=NEW, ready=True)
    assert fleet.reimage_step(moving, NEW, 6, 2) == ["r002"]
    # Replicas that are not ready anyway cost nothing; missing replicas use up the budget.
    stale_unready = fleet_of(3, [Z3], ready=False)
    assert fleet.reimage_step(stale_unready, NEW, 3, 1) == ["r000", "r001", "r002"]
    assert fleet.reimage_step(fleet_of(4, [Z3]), NEW, 6, 2) == []


@pytest.mark.parametrize(("max_unavailable", "max_surge"), [(0, 1), (1, 0), (2, 0), (1, 2), (2, 1)])
def test_replace_step_keeps_availability_and_the_surge_bound_until_done(max_unavailable: int, max_surge: int) -> None:
    """Simulate: each step's new replicas become ready before the next step; removed ones vanish."""
    replicas, zones = 6, [Z3, Z4]
    live = fleet_of(replicas, zones)
    serial = 100
    for _ in range(50):
        step = fleet.replace_step(live, NEW, replicas, zones, max_unavailable, max_surge)
        if not step.create and not step.delete:
            break
        live = [replica for replica in live if replica.name not in step.delete]
        assert sum(r.ready for r in live) >= replicas - max_unavailable
        for zone, count in step.create.items():
            for _ in range(count):
                serial += 1
                live.append(Replica(name=f"r{serial}", zone=zone, image_wanted=NEW, image_running=NEW, ready=False))
        assert len(live) <= replicas + max_surge
        live = [
            Replica(name=r.name, zone=r.zone, image_wanted=r.image_wanted, image_running=r.image_running, ready=True)
            for r in live
        ]
    assert len(live) == replicas and all(r.image_wanted == NEW for r in live)
    assert Counter(r.zone for r in live) == {Z3: 3, Z4: 3}


def test_replicas_of_a_removed_zone_move_a_few_at_a_time() -> None:
    live = fleet_of(6, [Z3, Z4, Z5])
    assert fleet.misplaced(live, [Z3, Z4], 6, 1) == ["r002"]
    gone = [r for r in live if r.name != "r002"]
    # One replica missing: the budget is spent until its replacement is ready.
    assert fleet.misplaced(gone, [Z3, Z4], 6, 1) == []
    unready = Replica(name="r900", zone=Z5, ready=False)
    assert fleet.misplaced([*live, unready], [Z3, Z4], 7, 1) == ["r900"]  # not ready: costs nothing
    assert fleet.misplaced(live, [Z3, Z4, Z5], 6, 1) == []


def test_rollout_failure_names_the_replica_whose_reinstall_failed() -> None:
    live = fleet_of(3, [Z3])
    broken = Replica(name="r001", zone=Z3, image_wanted=NEW, image_running=OLD, failed_reason="ResetFailed")
    assert fleet.rollout_failure([live[0], broken, live[2]], NEW) == broken
    assert fleet.rollout_failure(live, NEW) is None
    refused = Replica(name="r002", zone=Z3, image_wanted=NEW, image_running=OLD, failed_reason="InvalidParameterValue")
    assert fleet.rollout_failure([live[0], refused], NEW) == refused
    lost = Replica(name="r002", zone=Z3, image_wanted=NEW, image_running=OLD, failed_reason="NotFound")
    assert fleet.rollout_failure([live[0], lost], NEW) is None


def test_lost_replicas_are_replaced_after_their_backoff() -> None:
    lost = Replica(name="r1", zone=Z3, failed_reason="LaunchFailed", failed_since=100.0)
    other = Replica(name="r2", zone=Z3, failed_reason="ResetFailed", failed_since=0.0)
    assert fleet.replace_failed([lost, other], now=104.0, wait=5.0) == []
    assert fleet.replace_failed([lost, other], now=106.0, wait=5.0) == ["r1"]


def test_batches_cost_one_call_per_500() -> None:
    assert fleet.batches(10) == [10]
    assert fleet.batches(500) == [500]
    assert fleet.batches(1201) == [500, 500, 201]
    assert [fleet.batch_calls(k) for k in (0, 1, 500, 501, 1000)] == [0, 1, 1, 2, 2]


def test_current_image_is_what_the_replicas_not_yet_updated_run() -> None:
    live = fleet_of(3, [Z3])
    assert fleet.current_image(live, NEW) == OLD
    assert fleet.current_image(fleet_of(3, [Z3], image=NEW), NEW) == NEW


def test_merge_patch_and_template_drift() -> None:
    assert fleet.merge_patch({"a": 1, "b": {"x": 1, "y": 2}}, {"a": 1, "b": {"x": 1}, "c": 3}) == {
        "b": {"y": None},
        "c": 3,
    }
    current = {"imageId": OLD, "tags": {"team": "web", "old": "1"}, "runState": "Running", "zone": Z3}
    wanted = {"imageId": NEW, "tags": {"team": "web"}, "runState": "Stopped", "zone": Z3}
    # The image moves through the rollout, not as drift.
    assert spec_drift(current, wanted) == {"tags": {"old": None}, "runState": "Stopped"}


def test_percentages_round_down_for_unavailable_and_up_for_surge() -> None:
    assert resolve_int_or_percent("25%", 10, round_up=False) == 2
    assert resolve_int_or_percent("25%", 10, round_up=True) == 3
    assert resolve_int_or_percent(3, 10, round_up=True) == 3


def test_replica_view_of_an_instance_body() -> None:
    body = {
        "metadata": {
            "name": "web-abcde-7",
            "generation": 2,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {fleet.LAUNCH_BATCH: "abcde"},
        },
        "spec": {"zone": Z3, "imageId": NEW},
        "status": {
            "imageId": OLD,
            "conditions": [
                {"type": "Ready", "status": "True", "observedGeneration": 1, "reason": "Available"},
                {"type": "Stalled", "status": "False", "reason": "Ok"},
            ],
        },
    }
    replica = replica_from_body(body)
    # Ready for an older generation (the image was just changed) is not ready.
    assert not replica.ready
    assert replica.image_wanted == NEW and replica.image_running == OLD and replica.failed_reason is None
    assert batch_index("web-abcde-7") == 7
    assert len(client_token("0" * 36, "abcde")) <= 64
