"""The audit of cloud writes: one log line per write with the object and RequestId, and the RequestIds
in the Events of the same pass, each named once."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from cvm_operator.cloud import audit
from cvm_operator.runner import JsonFormatter

REF = audit.ObjectRef("Image", "team-a", "web", "uid-1")


def test_writes_and_reads() -> None:
    for action in ("CreateImage", "RunInstances", "ModifyResourceTags", "DeleteImages", "AssumeRole"):
        assert audit.is_write(action)
    for action in ("DescribeImages", "GetResources", "GetCallerIdentity", "InquiryPriceRunInstances"):
        assert not audit.is_write(action)


def test_a_write_is_logged_with_its_object_and_request_id(caplog: pytest.LogCaptureFixture) -> None:
    async def one_pass() -> None:
        audit.begin(REF)
        audit.record("CreateImage", "ap-guangzhou", "req-1", "OK")

    with caplog.at_level(logging.INFO, logger="cvm_operator.audit"):
        asyncio.run(one_pass())
    (record,) = caplog.records
    assert record.getMessage() == "cloud write CreateImage in ap-guangzhou for Image team-a/web: OK RequestId=req-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["object"] == {"kind": "Image", "namespace": "team-a", "name": "web"}
    assert entry["audit"] == {"action": "CreateImage", "where": "ap-guangzhou", "requestId": "req-1",
                              "result": "OK", "uid": "uid-1"}  # fmt: skip


def test_events_of_the_pass_carry_the_request_ids_once() -> None:
    async def one_pass() -> list[str]:
        audit.begin(REF)
        messages = [audit.annotate("uid-1", "nothing written yet")]
        audit.record("CreateImage", "ap-guangzhou", "req-1", "OK")
        audit.record("ModifyImageAttribute", "ap-guangzhou", "req-2", "InvalidImageId.IncorrectState")
        messages.append(audit.annotate("uid-other", "about another object"))
        messages.append(audit.annotate("uid-1", "Creating"))
        messages.append(audit.annotate("uid-1", "again"))
        messages.append(audit.annotate("uid-1", "x" * 2000))
        return messages

    assert asyncio.run(one_pass()) == [
        "nothing written yet",
        "about another object",
        "Creating [cloud: CreateImage RequestId=req-1; ModifyImageAttribute InvalidImageId.IncorrectState "
        "RequestId=req-2]",
        "again",
        "x" * 2000,
    ]


async def test_concurrent_passes_keep_their_writes_apart() -> None:
    async def one_pass(uid: str, request_id: str) -> str:
        audit.begin(audit.ObjectRef("Image", "ns", uid, uid))
        await asyncio.sleep(0)
        audit.record("CreateImage", "ap-guangzhou", request_id, "OK")
        await asyncio.sleep(0)
        return audit.annotate(uid, "done")

    first, second = await asyncio.gather(
        asyncio.create_task(one_pass("a", "req-a")), asyncio.create_task(one_pass("b", "req-b"))
    )
    assert first == "done [cloud: CreateImage RequestId=req-a]"
    assert second == "done [cloud: CreateImage RequestId=req-b]"


def test_long_messages_keep_their_request_ids() -> None:
    async def one_pass() -> str:
        audit.begin(REF)
        audit.record("CreateImage", "ap-guangzhou", "req-1", "OK")
        return audit.annotate("uid-1", "y" * 2000, limit=100)

    message = asyncio.run(one_pass())
    assert len(message) == 100 and message.endswith("[cloud: CreateImage RequestId=req-1]")


def test_writes_no_event_named_reach_the_next_pass_of_the_same_object_only() -> None:
    unannounced = audit.Unannounced()

    async def launch_pass() -> None:
        scope = unannounced.begin(REF)
        audit.record("RunInstances", "ap-guangzhou", "req-launch", "OK")
        unannounced.end(scope)  # no Event this pass (Launching is only a condition)

    async def other_object_pass() -> str:
        scope = unannounced.begin(audit.ObjectRef("Image", "team-a", "other", "uid-2"))
        try:
            return audit.annotate("uid-2", "Ready")
        finally:
            unannounced.end(scope)

    async def ready_pass() -> str:
        scope = unannounced.begin(REF)
        try:
            return audit.annotate("uid-1", "Ready")
        finally:
            unannounced.end(scope)

    asyncio.run(launch_pass())
    assert asyncio.run(other_object_pass()) == "Ready"
    assert asyncio.run(ready_pass()) == "Ready [cloud: RunInstances RequestId=req-launch]"
    assert len(unannounced) == 0  # named once, then dropped
    asyncio.run(launch_pass())
    unannounced.forget("uid-1")
    assert asyncio.run(ready_pass()) == "Ready"


def test_an_object_that_writes_every_pass_without_an_event_keeps_only_the_newest_writes() -> None:
    unannounced = audit.Unannounced()

    async def tag_pass(n: int) -> None:
        scope = unannounced.begin(REF)
        audit.record("ModifyResourceTags", "ap-guangzhou", f"req-{n}", "OK")
        unannounced.end(scope)

    for n in range(audit.Unannounced.LIMIT + 5):
        asyncio.run(tag_pass(n))

    async def event_pass() -> str:
        unannounced.begin(REF)
        return audit.annotate("uid-1", "Drift")

    message = asyncio.run(event_pass())
    assert message.count("RequestId=") == audit.Unannounced.LIMIT
    assert "req-4 " not in message + " " and f"req-{audit.Unannounced.LIMIT + 4}]" in message
