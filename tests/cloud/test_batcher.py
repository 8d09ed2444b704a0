"""Coalescing of concurrent lookups into batches (pure asyncio, fake fetch)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from cvm_operator.cloud.batcher import Batcher


class Recorder:
    """A fetch function that records its batches and knows the keys in ``known``."""

    def __init__(self, known: set[str] | None = None, fail: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.known = known
        self.fail = fail
        self.per_key_errors: dict[str, Exception] = {}

    async def __call__(self, keys: Sequence[str]) -> Mapping[str, str | Exception]:
        self.batches.append(list(keys))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        result: dict[str, str | Exception] = {}
        for key in keys:
            if key in self.per_key_errors:
                result[key] = self.per_key_errors[key]
            elif self.known is None or key in self.known:
                result[key] = f"value-{key}"
        return result


async def test_concurrent_gets_coalesce_into_one_batch() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.01)
    keys = [f"k{i}" for i in range(30)]
    values = await asyncio.gather(*(batcher.get(key) for key in keys))
    assert values == [f"value-{key}" for key in keys]
    assert len(fetch.batches) == 1
    assert sorted(fetch.batches[0]) == sorted(keys)


async def trickle(batcher: Batcher[str, str], count: int, gap: float) -> list[str | None]:
    """``count`` lookups, one every ``gap`` seconds, as passes that each take CPU before their lookup."""

    async def one(n: int) -> str | None:
        await asyncio.sleep(n * gap)
        return await batcher.get(f"k{n}")

    return await asyncio.gather(*(one(n) for n in range(count)))


async def test_lookups_that_trickle_in_keep_filling_one_batch() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.05, linger=5.0)
    values = await trickle(batcher, 20, 0.005)
    assert values == [f"value-k{n}" for n in range(20)]
    assert [len(batch) for batch in fetch.batches] == [20]


async def test_a_batch_waits_no_longer_than_its_linger() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.05, linger=0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await trickle(batcher, 30, 0.01)  # never quiet for 50 ms, for 300 ms
    assert len(fetch.batches) >= 2  # a steady stream is still sent, batch by batch
    assert loop.time() - started < 1.0


async def test_batches_split_at_max_batch() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.01, max_batch=100)
    keys = [f"k{i}" for i in range(250)]
    values = await asyncio.gather(*(batcher.get(key) for key in keys))
    assert values == [f"value-{key}" for key in keys]
    assert sorted(len(batch) for batch in fetch.batches) == [50, 100, 100]
    assert sorted(key for batch in fetch.batches for key in batch) == sorted(keys)


async def test_get_many_splits_and_returns_every_key() -> None:
    fetch = Recorder(known={"a", "c"})
    batcher: Batcher[str, str] = Batcher(fetch, window=0.0, max_batch=2)
    result = await batcher.get_many(["a", "b", "c", "a"])
    assert result == {"a": "value-a", "b": None, "c": "value-c"}
    assert all(len(batch) <= 2 for batch in fetch.batches)
    assert sum(len(batch) for batch in fetch.batches) == 3


async def test_missing_keys_are_none() -> None:
    batcher: Batcher[str, str] = Batcher(Recorder(known={"here"}), window=0.0)
    here, gone = await asyncio.gather(batcher.get("here"), batcher.get("gone"))
    assert (here, gone) == ("value-here", None)


async def test_equal_keys_share_a_slot_and_each_caller_gets_the_value() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.01)
    values = await asyncio.gather(*(batcher.get("same") for _ in range(5)))
    assert values == ["value-same"] * 5
    assert fetch.batches == [["same"]]


async def test_fetch_error_reaches_every_caller_of_the_batch() -> None:
    batcher: Batcher[str, str] = Batcher(Recorder(fail=RuntimeError("boom")), window=0.01)
    results = await asyncio.gather(batcher.get("a"), batcher.get("b"), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)


async def test_per_key_error_fails_only_that_key() -> None:
    fetch = Recorder()
    fetch.per_key_errors["bad"] = ValueError("malformed")
    batcher: Batcher[str, str] = Batcher(fetch, window=0.01)
    good, bad = await asyncio.gather(batcher.get("good"), batcher.get("bad"), return_exceptions=True)
    assert good == "value-good"
    assert isinstance(bad, ValueError)


async def test_sequential_gets_make_separate_batches() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.0)
    assert await batcher.get("a") == "value-a"
    assert await batcher.get("b") == "value-b"
    assert fetch.batches == [["a"], ["b"]]


async def test_cancelled_caller_does_not_disturb_the_others() -> None:
    release = asyncio.Event()

    async def slow_fetch(keys: Sequence[str]) -> Mapping[str, str | Exception]:
        await release.wait()
        return {key: key.upper() for key in keys}

    batcher: Batcher[str, str] = Batcher(slow_fetch, window=0.0)
    doomed = asyncio.create_task(batcher.get("x"))
    survivor = asyncio.create_task(batcher.get("y"))
    await asyncio.sleep(0.01)
    doomed.cancel()
    release.set()
    assert await survivor == "Y"
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_close_cancels_waiters_and_refuses_new_work() -> None:
    never = asyncio.Event()

    async def stuck_fetch(keys: Sequence[str]) -> Mapping[str, str | Exception]:
        await never.wait()
        return {}

    batcher: Batcher[str, str] = Batcher(stuck_fetch, window=0.0)
    waiter = asyncio.create_task(batcher.get("x"))
    await asyncio.sleep(0.01)
    await batcher.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(RuntimeError):
        await batcher.get("y")


async def test_close_before_a_fetch_starts_still_cancels_its_waiters() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.0, max_batch=1)
    waiter = asyncio.create_task(batcher.get_many(["a", "b"]))  # full batches: fetches start at once
    await asyncio.sleep(0)  # the waiter has queued its fetches, which have not run yet
    await batcher.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 1.0)
    assert fetch.batches == []


def test_max_batch_must_be_positive() -> None:
    async def fetch(keys: Sequence[str]) -> Mapping[str, str | Exception]:
        return {}

    with pytest.raises(ValueError):
        Batcher(fetch, max_batch=0)


async def ask_each(batcher: Batcher[str, str], keys: Sequence[str]) -> None:
    for key in keys:
        await batcher.get(key)


async def test_a_regular_poll_reads_ahead_one_batch_for_many_lone_lookups() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.0, max_batch=10, fresh_for=0.05)
    keys = [f"k{n}" for n in range(10)]
    await ask_each(batcher, keys)  # first sight: one call each
    assert len(fetch.batches) == 10
    await asyncio.sleep(0.06)  # the next poll
    fetch.batches.clear()
    values = [await batcher.get(key) for key in keys]
    assert values == [f"value-{key}" for key in keys]
    assert len(fetch.batches) == 1 and sorted(fetch.batches[0]) == sorted(keys)  # the rest read ahead
    assert batcher.read_ahead_hits == 9


async def test_values_read_ahead_go_stale_and_are_fetched_again() -> None:
    fetch = Recorder()
    batcher: Batcher[str, str] = Batcher(fetch, window=0.0, max_batch=10, fresh_for=0.05)
    await ask_each(batcher, ["a", "b"])
    await asyncio.sleep(0.06)
    await batcher.get("a")  # reads b ahead
    await asyncio.sleep(0.06)  # b's value is older than fresh_for now
    fetch.batches.clear()
    await batcher.get("b")
    assert fetch.batches and "b" in fetch.batches[0]
    assert batcher.read_ahead_hits == 0


async def test_a_write_drops_values_read_ahead_even_from_a_fetch_under_way() -> None:
    release = asyncio.Event()
    fetch = Recorder()

    async def slow(keys: Sequence[str]) -> Mapping[str, str | Exception]:
        await release.wait()
        return await fetch(keys)

    batcher: Batcher[str, str] = Batcher(slow, window=0.0, max_batch=10, fresh_for=5.0)
    release.set()
    await ask_each(batcher, ["a", "b"])
    batcher._asked["b"] -= 10.0  # asked for long ago: due for read-ahead
    release.clear()
    lookup = asyncio.create_task(batcher.get("a"))
    await asyncio.sleep(0.01)
    batcher.invalidate()  # a write lands while the fetch (a, and b read ahead) is under way
    release.set()
    await lookup
    fetch.batches.clear()
    await batcher.get("b")
    assert fetch.batches == [["b"]]  # asked again: the value from before the write was not kept


async def test_keys_not_asked_for_within_recall_and_missing_keys_are_not_read_ahead() -> None:
    fetch = Recorder(known={"a", "b"})
    batcher: Batcher[str, str] = Batcher(fetch, window=0.0, max_batch=10, fresh_for=0.01, recall=0.05)
    await ask_each(batcher, ["a", "gone", "old"])
    await asyncio.sleep(0.02)
    await batcher.get("b")  # reads a, gone and old ahead; gone and old come back missing
    await asyncio.sleep(0.06)
    fetch.batches.clear()
    await batcher.get("b")
    assert fetch.batches == [["b"]]  # a was last asked for longer ago than recall; the missing ones dropped


async def test_a_poll_whose_lookups_arrive_while_the_read_ahead_is_under_way_makes_no_extra_calls() -> None:
    fetch = Recorder()

    async def slow(keys: Sequence[str]) -> Mapping[str, str | Exception]:
        await asyncio.sleep(0.03)  # a busy moment: lookups keep arriving while a batch is out
        return await fetch(keys)

    batcher: Batcher[str, str] = Batcher(slow, window=0.0, max_batch=10, fresh_for=0.05)
    keys = [f"k{n}" for n in range(30)]
    await asyncio.gather(*(batcher.get(key) for key in keys))
    await asyncio.sleep(0.06)  # the next poll, its lookups one every 2 ms
    fetch.batches.clear()
    values = await trickle(batcher, 30, 0.002)
    assert values == [f"value-{key}" for key in keys]
    fetched = [key for batch in fetch.batches for key in batch]
    assert sorted(fetched) == sorted(keys)  # each key fetched once: later lookups join the fetch under way
    assert len(fetch.batches) == 3


async def test_a_lookup_after_a_write_does_not_join_a_fetch_begun_before_it() -> None:
    release = asyncio.Event()
    fetch = Recorder()

    async def slow(keys: Sequence[str]) -> Mapping[str, str | Exception]:
        fetch.batches.append(list(keys))
        call = len(fetch.batches)
        await release.wait()
        return {key: f"value-{key}-{call}" for key in keys}

    batcher: Batcher[str, str] = Batcher(slow, window=0.0)
    before = asyncio.create_task(batcher.get("a"))
    await asyncio.sleep(0.01)
    joined = asyncio.create_task(batcher.get("a"))
    await asyncio.sleep(0.01)
    assert fetch.batches == [["a"]]  # the second lookup joined the fetch under way
    batcher.invalidate()
    after = asyncio.create_task(batcher.get("a"))
    await asyncio.sleep(0.01)
    release.set()
    assert fetch.batches == [["a"], ["a"]]
    assert await after == "value-a-2"
    assert await before == await joined != await after
