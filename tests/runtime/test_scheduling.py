"""Scheduling of passes: the work queue (dedupe, one run per key at a time, delays), wake-ups, the poll grid, backoff.

The queue takes its time from an injected clock, so these tests never sleep.
"""

from __future__ import annotations

import asyncio

import pytest

from cvm_operator.config import OperatorConfig
from cvm_operator.controller import _runs_again, _trigger
from cvm_operator.reconcilers.outcomes import ObjectKey
from cvm_operator.reconcilers.runtime import Bodies, Recent, Wakeups, aligned_delay
from cvm_operator.workqueue import QueueShutDown, WorkQueue

IMAGE = ObjectKey("Image", "ns", "golden")
INSTANCE = ObjectKey("Instance", "ns", "web-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_queued_once_and_the_earliest_due_time_wins() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("a", 10.0)
    queue.add("a", 5.0)
    queue.add("a", 30.0)
    assert len(queue) == 1
    assert queue.next_due() == 5.0
    clock.now += 4.9
    assert queue.pop_ready() is None
    clock.now += 0.1
    assert queue.pop_ready() == "a"
    assert queue.pop_ready() is None and len(queue) == 0


def test_keys_come_out_in_due_order() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    for key, delay in (("late", 3.0), ("now", 0.0), ("soon", 1.0)):
        queue.add(key, delay)
    clock.now += 3.0
    assert [queue.pop_ready() for _ in range(4)] == ["now", "soon", "late", None]


def test_a_key_being_processed_is_not_handed_out_again_until_done() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("a")
    assert queue.pop_ready() == "a"
    queue.add("a")  # e.g. a watch event during the pass
    queue.add("a", 7.0)
    assert queue.processing("a")
    assert queue.pop_ready() is None  # a second worker does not get it
    queue.done("a")
    assert queue.pop_ready() == "a"  # the earliest of the adds made meanwhile


def test_a_requeue_after_done_keeps_the_earlier_pending_add() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("a")
    assert queue.pop_ready() == "a"
    queue.add("a", 2.0)
    queue.done("a")
    queue.add("a", 60.0)  # the pass asked for the regular poll; the change during it comes first
    assert queue.next_due() == 2.0


def test_forget_drops_queued_and_pending_adds() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("gone")
    queue.add("kept", 1.0)
    queue.forget("gone")
    clock.now += 1.0
    assert queue.pop_ready() == "kept"
    assert queue.pop_ready() is None


async def test_get_waits_for_the_due_time_or_an_add() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("later", 30.0)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    queue.add("now")
    assert await asyncio.wait_for(getter, timeout=1.0) == "now"
    queue.shut_down()
    with pytest.raises(QueueShutDown):
        await queue.get()


def test_dependency_change_wakes_its_waiters_once() -> None:
    wakeups = Wakeups()
    wakeups.wait_for(IMAGE, INSTANCE)
    assert wakeups.changed(IMAGE) == {INSTANCE}
    assert wakeups.changed(IMAGE) == set()  # consumed: the waiter says again if it still waits


def _body(generation: int, resource_version: str, **meta: object) -> dict[str, object]:
    return {
        "kind": "Image",
        "metadata": {"name": "golden", "namespace": "ns", "uid": "u1", "generation": generation,
                     "resourceVersion": resource_version, **meta},
    }  # fmt: skip


def test_only_spec_deletion_and_user_annotations_trigger_a_pass() -> None:
    base = _trigger(_body(1, "10"))
    assert _trigger(_body(1, "11")) == base  # a status write
    assert _trigger(_body(1, "12", annotations={"cvm.operator.dev/create-pending": "t"})) == base
    assert _trigger(_body(2, "13")) != base
    assert _trigger(_body(1, "14", deletionTimestamp="2026-01-01T00:00:00Z")) != base
    assert _trigger(_body(1, "15", annotations={"cvm.operator.dev/requestedAt": "now"})) != base


def test_the_finalizer_runs_a_pass_when_removed_not_when_the_operator_adds_it() -> None:
    held = _body(1, "21", finalizers=["cvm.operator.dev/finalizer"])
    assert _runs_again(None, _body(1, "20"))  # a new object
    assert not _runs_again(_body(1, "20"), held)  # our own add, by watch
    assert _runs_again(held, _body(1, "22", finalizers=[]))  # someone took it away
    assert not _runs_again(held, _body(1, "23", finalizers=["cvm.operator.dev/finalizer", "other"]))
    assert _runs_again(held, _body(2, "24", finalizers=["cvm.operator.dev/finalizer"]))


def test_the_cache_keeps_the_newest_body() -> None:
    bodies = Bodies()
    bodies.remember(_body(1, "20"))
    late = _body(1, "19")  # a late watch event after our own write's answer
    assert bodies.stale(late) and not bodies.stale(_body(1, "21"))
    bodies.remember(late)
    assert bodies.get(IMAGE)["metadata"]["resourceVersion"] == "20"  # type: ignore[index]
    recreated = _body(1, "5", uid="u2")
    bodies.remember(recreated)
    assert bodies.get(IMAGE) is recreated


def test_the_cache_drops_managed_fields() -> None:
    bodies = Bodies()
    bodies.remember(_body(1, "30", managedFields=[{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]))
    cached = bodies.get(IMAGE)
    assert cached is not None and "managedFields" not in cached["metadata"]
    assert cached["metadata"]["resourceVersion"] == "30"


def test_progress_is_watched_at_least_as_often_as_polling() -> None:
    fast = OperatorConfig.with_poll_interval(None, None, 1.0)
    slow = OperatorConfig.with_poll_interval(None, None, 300.0)
    assert fast.progress_interval == 1.0
    assert slow.progress_interval == 5.0
    assert fast.stalled_interval >= 30.0 and slow.stalled_interval == 1800.0


def test_a_chosen_stalled_interval_is_kept_up_to_the_cap() -> None:
    assert OperatorConfig.with_poll_interval(None, None, 1.0, stalled_interval=120.0).stalled_interval == 120.0
    assert OperatorConfig.with_poll_interval(None, None, 1.0, stalled_interval=7200.0).stalled_interval == 1800.0


def test_regular_polls_wake_together_on_a_grid() -> None:
    regular = (10.0, 5.0)
    wake_times = {round(now + aligned_delay(10.0, now, regular), 6) for now in (1000.2, 1003.9, 1004.99)}
    assert wake_times == {1010.0}
    # Each sleep stays within half an interval of the nominal one, so the average rate is unchanged.
    for now in (1000.0, 1004.99, 1005.01, 1009.99):
        assert 5.0 <= aligned_delay(10.0, now, regular) <= 15.0


def test_backoff_delays_are_not_aligned() -> None:
    assert aligned_delay(7.3, 1000.2, (10.0, 5.0)) == 7.3


async def test_an_add_wakes_one_idle_worker_and_a_taken_key_wakes_the_next_while_more_are_due() -> None:
    queue: WorkQueue[str] = WorkQueue()
    woken: list[str] = []

    async def worker(name: str) -> None:
        key = await queue.get()
        woken.append(f"{name}:{key}")

    workers = [asyncio.create_task(worker(f"w{n}")) for n in range(5)]
    await asyncio.sleep(0)
    queue.add("a")
    for _ in range(3):
        await asyncio.sleep(0)
    assert woken == ["w0:a"]  # one key, one worker; the other four still wait
    for key in ("b", "c"):
        queue.add(key)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(woken) == ["w0:a", "w1:b", "w2:c"]
    queue.shut_down()
    await asyncio.gather(*workers, return_exceptions=True)


async def test_a_key_due_later_wakes_a_worker_at_its_time() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.add("later", 0.05)
    queue.add("sooner", 0.02)
    done, pending = await asyncio.wait(getters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
    assert [task.result() for task in done] == ["sooner"]
    done, pending = await asyncio.wait(pending, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
    assert [task.result() for task in done] == ["later"]
    queue.shut_down()
    with pytest.raises(QueueShutDown):
        await asyncio.gather(*pending)


async def test_a_cancelled_waiter_passes_its_wake_up_on() -> None:
    queue: WorkQueue[str] = WorkQueue()
    first, second = asyncio.create_task(queue.get()), asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("a")  # wakes the first waiter ...
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, timeout=1.0) == "a"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_recent_values_are_fetched_once_per_ttl_and_concurrent_gets_share_a_fetch() -> None:
    clock = Clock()
    recent: Recent[str, int] = Recent(10.0, clock)
    fetches = 0

    async def fetch() -> int:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.01)
        return fetches

    assert await asyncio.gather(*(recent.get("secret", fetch) for _ in range(50))) == [1] * 50
    clock.now += 9.9
    assert await recent.get("secret", fetch) == 1
    clock.now += 0.1  # a rotated Secret is read again
    assert await recent.get("secret", fetch) == 2 and fetches == 2


async def test_a_failed_fetch_is_not_kept() -> None:
    recent: Recent[str, int] = Recent(10.0, Clock())
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise LookupError("not found yet")
        return 7

    with pytest.raises(LookupError):
        await recent.get("secret", flaky)
    assert await recent.get("secret", flaky) == 7
