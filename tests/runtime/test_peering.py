"""Which replica works: Kopf's peering rule over the keep-alives in the peering object's status."""

from __future__ import annotations

import datetime as dt

from cvm_operator.peering import outranked

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def keepalive(priority: int, seconds_ago: float, lifetime: int = 15) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - dt.timedelta(seconds=seconds_ago)).isoformat(),
    }


def test_a_live_peer_with_a_higher_or_equal_priority_blocks() -> None:
    status = {"me": keepalive(50, 1), "higher": keepalive(90, 3), "equal": keepalive(50, 2), "lower": keepalive(10, 1)}
    assert outranked(status, "me", 50, NOW) == ["equal", "higher"]


def test_a_peer_past_its_lifetime_is_dead() -> None:
    # Killed without a goodbye: its keep-alive stays in the status, but it no longer counts.
    assert outranked({"killed": keepalive(90, 16)}, "me", 50, NOW) == []
    assert outranked({"alive": keepalive(90, 14)}, "me", 50, NOW) == ["alive"]


def test_unreadable_entries_and_an_empty_status_block_nothing() -> None:
    assert outranked(None, "me", 1, NOW) == []
    assert outranked({"odd": "not a mapping", "partial": {"priority": 99}}, "me", 1, NOW) == []
