"""Wake-ups of object loops: a spec change or a dependency's change ends the sleep early."""

from __future__ import annotations

import asyncio

from cvm_operator.config import OperatorConfig
from cvm_operator.reconcilers.runtime import ObjectKey, Wakeups, aligned_delay

IMAGE = ObjectKey("Image", "ns", "golden")


async def _sleeps_less_than(wakeups: Wakeups, uid: str, act: object, seconds: float = 5.0) -> bool:
    """True when the sleep ended before its full duration after ``act`` ran."""
    sleeper = asyncio.create_task(wakeups.sleep(uid, seconds))
    await asyncio.sleep(0)
    assert callable(act)
    act()
    try:
        await asyncio.wait_for(sleeper, timeout=1.0)
    except TimeoutError:
        sleeper.cancel()
        return False
    return True


async def test_spec_change_wakes_the_object() -> None:
    wakeups = Wakeups()
    wakeups.reconciled("uid-1", generation=1)
    assert await _sleeps_less_than(wakeups, "uid-1", lambda: wakeups.changed(IMAGE, "uid-1", 2))


async def test_status_only_change_does_not_wake_the_object() -> None:
    wakeups = Wakeups()
    wakeups.reconciled("uid-1", generation=3)
    assert not await _sleeps_less_than(wakeups, "uid-1", lambda: wakeups.changed(IMAGE, "uid-1", 3))


async def test_dependency_change_wakes_its_waiters_once() -> None:
    wakeups = Wakeups()
    wakeups.wait_for(IMAGE, "instance-uid")
    assert await _sleeps_less_than(wakeups, "instance-uid", lambda: wakeups.changed(IMAGE, "image-uid", 1))
    # The waiter was consumed: a later change of the image no longer wakes it.
    assert not await _sleeps_less_than(wakeups, "instance-uid", lambda: wakeups.changed(IMAGE, "image-uid", 1))


async def test_sleep_times_out_without_changes() -> None:
    wakeups = Wakeups()
    await asyncio.wait_for(wakeups.sleep("uid", 0.05), timeout=2)


def test_progress_is_watched_at_least_as_often_as_polling() -> None:
    fast = OperatorConfig.with_poll_interval(None, None, 1.0)
    slow = OperatorConfig.with_poll_interval(None, None, 300.0)
    assert fast.progress_interval == 1.0
    assert slow.progress_interval == 5.0
    assert fast.stalled_interval >= 30.0 and slow.stalled_interval == 1800.0


def test_regular_polls_wake_together_on_a_grid() -> None:
    regular = (10.0, 5.0)
    wake_times = {round(now + aligned_delay(10.0, now, regular), 6) for now in (1000.2, 1003.9, 1004.99)}
    assert wake_times == {1010.0}
    # Each sleep stays within half an interval of the nominal one, so the average rate is unchanged.
    for now in (1000.0, 1004.99, 1005.01, 1009.99):
        assert 5.0 <= aligned_delay(10.0, now, regular) <= 15.0


def test_backoff_delays_are_not_aligned() -> None:
    assert aligned_delay(7.3, 1000.2, (10.0, 5.0)) == 7.3
