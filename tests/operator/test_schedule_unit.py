"""ImageSchedule decisions (pure logic, injected clock): cron in time zones across DST, @every, due runs,
retention, and the objects a run makes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cvm_operator.api import ImageSchedule, parse_image_schedule, parse_object
from cvm_operator.reconcilers.imageschedule import (
    ANSWERS_REQUEST,
    SCHEDULE_LABEL,
    SCHEDULED_AT,
    child_body,
    image_body,
    run_of,
    run_state,
)
from cvm_operator.schedule import (
    RetentionRules,
    Run,
    Schedule,
    ScheduleError,
    decide_run,
    parse_duration,
    plan_retention,
    run_suffix,
)

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- parsing


def test_durations() -> None:
    assert parse_duration("168h") == dt.timedelta(days=7)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("20s") == dt.timedelta(seconds=20)
    for bad in ("", "7d", "1.5h", "h", "10"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("schedule", "time_zone", "reason"),
    [
        ("61 * * * *", "UTC", "InvalidSchedule"),
        ("0 3 * * 8", "UTC", "InvalidSchedule"),
        ("0 0 3 * * 0", "UTC", "InvalidSchedule"),  # six fields: seconds are not offered
        ("0 0 31 2 *", "UTC", "InvalidSchedule"),  # never comes due
        ("@every 5s", "UTC", "InvalidSchedule"),
        ("@every 1d", "UTC", "InvalidSchedule"),
        ("@fortnightly", "UTC", "InvalidSchedule"),
        ("0 3 * * 0", "Mars/Olympus_Mons", "UnknownTimeZone"),
    ],
)
def test_bad_schedules_name_a_reason(schedule: str, time_zone: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as error:
        Schedule.parse(schedule, time_zone)
    assert error.value.reason == reason
    assert str(error.value).startswith("spec.timeZone" if reason == "UnknownTimeZone" else "spec.schedule")


def test_macros_are_cron_expressions() -> None:
    daily = Schedule.parse("@daily")
    assert daily.next_after(at("2024-05-01T12:00:00Z")) == at("2024-05-02T00:00:00Z")
    weekly = Schedule.parse("@weekly", "Asia/Shanghai")
    # Sunday 00:00 in Shanghai is Saturday 16:00 UTC.
    assert weekly.next_after(at("2024-05-01T00:00:00Z")) == at("2024-05-04T16:00:00Z")


def test_cron_in_a_time_zone() -> None:
    sundays = Schedule.parse("0 3 * * 0", "Asia/Shanghai")
    assert sundays.next_after(at("2024-05-01T00:00:00Z")) == at("2024-05-04T19:00:00Z")
    assert sundays.latest_at_or_before(at("2024-05-04T19:00:00Z")) == at("2024-05-04T19:00:00Z")
    assert sundays.latest_at_or_before(at("2024-05-04T18:59:59Z")) == at("2024-04-27T19:00:00Z")
    assert sundays.count_between(at("2024-04-01T00:00:00Z"), at("2024-05-01T00:00:00Z")) == 4


def test_a_fixed_time_skipped_by_daylight_saving_runs_after_the_gap() -> None:
    # New York, 2024-03-10: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that night.
    nightly = Schedule.parse("30 2 * * *", "America/New_York")
    day_before = nightly.next_after(at("2024-03-09T05:00:00Z"))
    assert day_before == at("2024-03-09T07:30:00Z")  # 02:30 EST
    gap_day = nightly.next_after(day_before)
    assert gap_day == at("2024-03-10T07:00:00Z")  # 03:00 EDT, the first minute after the gap
    assert nightly.next_after(gap_day) == at("2024-03-11T06:30:00Z")  # 02:30 EDT
    assert nightly.latest_at_or_before(at("2024-03-10T08:00:00Z")) == gap_day  # both directions agree


def test_a_fixed_time_repeated_by_daylight_saving_runs_once() -> None:
    # New York, 2024-11-03: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice.
    nightly = Schedule.parse("30 1 * * *", "America/New_York")
    first = nightly.next_after(at("2024-11-03T04:00:00Z"))
    assert first == at("2024-11-03T05:30:00Z")  # 01:30 EDT
    assert nightly.next_after(first) == at("2024-11-04T06:30:00Z")  # not 01:30 EST the same night
    assert nightly.count_between(at("2024-11-03T00:00:00Z"), at("2024-11-04T00:00:00Z")) == 1


def test_hourly_runs_follow_real_hours_across_daylight_saving() -> None:
    hourly = Schedule.parse("0 * * * *", "Europe/Berlin")
    # 2024-10-27 in Berlin has 25 hours, 2024-03-31 has 23.
    assert hourly.count_between(at("2024-10-26T22:00:00Z"), at("2024-10-27T23:00:00Z")) == 25
    assert hourly.count_between(at("2024-03-30T23:00:00Z"), at("2024-03-31T22:00:00Z")) == 23


def test_every_falls_on_multiples_since_the_epoch() -> None:
    every = Schedule.parse("@every 20s", "Asia/Shanghai")  # the zone does not matter
    assert every.sub_minute and not Schedule.parse("@every 6h").sub_minute
    assert every.next_after(at("2024-05-01T12:00:05Z")) == at("2024-05-01T12:00:20Z")
    assert every.next_after(at("2024-05-01T12:00:20Z")) == at("2024-05-01T12:00:40Z")
    assert every.latest_at_or_before(at("2024-05-01T12:00:39.9Z")) == at("2024-05-01T12:00:20Z")
    assert every.count_between(at("2024-05-01T12:00:00Z"), at("2024-05-01T12:01:00Z")) == 3
    six_hours = Schedule.parse("@every 6h")
    assert six_hours.next_after(at("2024-05-01T07:00:00Z")) == at("2024-05-01T12:00:00Z")


def test_run_suffix() -> None:
    assert run_suffix(at("2024-05-05T03:00:00Z")) == "20240505-0300"
    assert run_suffix(at("2024-05-05T03:00:20Z")) == "20240505-030020"
    assert run_suffix(at("2024-05-05T03:00:00Z"), with_seconds=True) == "20240505-030000"
    shanghai = at("2024-05-05T11:00:00+08:00")
    assert run_suffix(shanghai) == "20240505-0300"  # always UTC


# ---------------------------------------------------------------- due runs

HOURLY = Schedule.parse("0 * * * *")
CREATED = at("2024-05-01T09:30:00Z")


def run(name: str, scheduled: str, state: str = "Available", **fields: object) -> Run:
    return Run(name=name, scheduled=at(scheduled), state=state, **fields)  # type: ignore[arg-type]


def test_nothing_is_due_before_the_first_time_after_creation() -> None:
    decision = decide_run(HOURLY, since=CREATED, now=at("2024-05-01T09:59:59Z"), runs=[])
    assert decision.start is None and decision.next_time == at("2024-05-01T10:00:00Z")


def test_the_newest_due_time_runs_and_earlier_ones_count_as_missed() -> None:
    decision = decide_run(HOURLY, since=CREATED, now=at("2024-05-01T12:10:00Z"), runs=[])
    assert decision.start == at("2024-05-01T12:00:00Z") and decision.missed == 2
    assert decision.next_time == at("2024-05-01T13:00:00Z")
    # Once it ran (since moves to it) nothing is due until 13:00.
    again = decide_run(HOURLY, since=decision.start, now=at("2024-05-01T12:59:00Z"), runs=[])
    assert again.start is None


def test_a_run_past_the_starting_deadline_is_skipped() -> None:
    late = decide_run(HOURLY, since=CREATED, now=at("2024-05-01T10:02:00Z"), runs=[], deadline=dt.timedelta(seconds=60))
    assert late.start is None and late.skipped == at("2024-05-01T10:00:00Z")
    in_time = decide_run(
        HOURLY, since=CREATED, now=at("2024-05-01T10:00:59Z"), runs=[], deadline=dt.timedelta(seconds=60)
    )
    assert in_time.start == at("2024-05-01T10:00:00Z") and in_time.skipped is None


def test_suspend_stops_scheduled_runs_but_not_requested_ones() -> None:
    now = at("2024-05-01T12:10:07Z")
    suspended = decide_run(HOURLY, since=CREATED, now=now, runs=[], suspended=True)
    assert suspended.start is None and suspended.next_time is None
    requested = decide_run(HOURLY, since=CREATED, now=now, runs=[], suspended=True, requested="1")
    assert requested.start == now and requested.requested == "1"
    # The newest run missed while suspended happens on resume, within the deadline only.
    resumed = decide_run(HOURLY, since=CREATED, now=now, runs=[], deadline=dt.timedelta(minutes=30))
    assert resumed.start == at("2024-05-01T12:00:00Z")


def test_requests_run_once() -> None:
    now = at("2024-05-01T09:45:00Z")
    assert decide_run(HOURLY, since=CREATED, now=now, runs=[], requested="a", handled_request="a").start is None
    answered = [run("s-1", "2024-05-01T09:40:00Z", requested_at="b")]
    assert decide_run(HOURLY, since=CREATED, now=now, runs=answered, requested="b").start is None
    assert decide_run(HOURLY, since=CREATED, now=now, runs=answered, requested="c").start == now
    # Two requests within the same second still make two runs, a second apart (their names differ).
    same_second = decide_run(HOURLY, since=now, now=now, runs=answered, requested="d")
    assert same_second.start == now + dt.timedelta(seconds=1)


def test_forbid_holds_a_due_run_while_one_is_in_progress_and_replace_does_not() -> None:
    now = at("2024-05-01T10:00:30Z")
    creating = [run("s-0930", "2024-05-01T09:30:00Z", state="Creating")]
    held = decide_run(HOURLY, since=CREATED, now=now, runs=creating)
    assert held.start is None and "s-0930" in held.waiting and "Forbid" in held.waiting
    # Still held past the deadline: then it is skipped.
    skipped = decide_run(
        HOURLY, since=CREATED, now=at("2024-05-01T10:05:00Z"), runs=creating, deadline=dt.timedelta(minutes=1)
    )
    assert skipped.skipped == at("2024-05-01T10:00:00Z") and skipped.start is None
    replaced = decide_run(HOURLY, since=CREATED, now=now, runs=creating, replace=True)
    assert replaced.start == at("2024-05-01T10:00:00Z") and replaced.replace == ("s-0930",)
    # Finished runs never hold anything.
    done = [run("s-0930", "2024-05-01T09:30:00Z"), run("s-0931", "2024-05-01T09:31:00Z", state="Failed")]
    assert decide_run(HOURLY, since=CREATED, now=now, runs=done).start == at("2024-05-01T10:00:00Z")


# ---------------------------------------------------------------- retention

NOW = at("2024-05-10T00:00:00Z")


def test_keep_the_newest_usable_images_and_deprecate_the_rest() -> None:
    runs = [
        run("r1", "2024-05-01T00:00:00Z"),
        run("r2", "2024-05-02T00:00:00Z"),
        run("r3", "2024-05-03T00:00:00Z"),
        run("r4", "2024-05-04T00:00:00Z", state="Creating"),
    ]
    plan = plan_retention(runs, RetentionRules(keep=2), NOW)
    assert plan.kept == ["r3", "r2"]
    assert plan.deprecate == ["r1"] and plan.retire == ["r1"] and not plan.delete
    assert plan.states == {"r3": "Kept", "r2": "Kept", "r1": "Deprecated", "r4": "Creating"}


def test_failed_runs_do_not_count_toward_keep() -> None:
    runs = [
        run("r1", "2024-05-01T00:00:00Z"),
        run("r2", "2024-05-02T00:00:00Z"),
        run("r3", "2024-05-03T00:00:00Z", state="Failed"),
    ]
    plan = plan_retention(runs, RetentionRules(keep=2), NOW)
    assert plan.kept == ["r2", "r1"] and not plan.deprecate
    assert plan.states["r3"] == "Failed" and plan.retire == ["r3"]


def test_retired_images_are_deleted_after_delete_after() -> None:
    rules = RetentionRules(keep=1, delete_after=dt.timedelta(hours=1))
    runs = [
        run("r1", "2024-05-01T00:00:00Z", deprecated=True, retired_at=NOW - dt.timedelta(minutes=61)),
        run("r2", "2024-05-02T00:00:00Z", deprecated=True, retired_at=NOW - dt.timedelta(minutes=10)),
        run("r3", "2024-05-03T00:00:00Z"),
        run("r0", "2024-04-30T00:00:00Z", state="Failed", retired_at=NOW - dt.timedelta(hours=2)),
    ]
    plan = plan_retention(runs, rules, NOW)
    assert sorted(plan.delete) == ["r0", "r1"]
    assert plan.states["r1"] == plan.states["r0"] == "Deleting" and plan.states["r2"] == "Deprecated"
    assert plan.next_deletion == NOW + dt.timedelta(minutes=50)
    assert not plan.deprecate and not plan.retire


def test_an_image_back_in_the_kept_set_is_restored() -> None:
    runs = [
        run("r1", "2024-05-01T00:00:00Z", deprecated=True, retired_at=NOW - dt.timedelta(minutes=5)),
        run("r2", "2024-05-02T00:00:00Z"),
    ]
    plan = plan_retention(runs, RetentionRules(keep=2, delete_after=dt.timedelta(hours=1)), NOW)
    assert plan.kept == ["r2", "r1"] and plan.undeprecate == ["r1"] and plan.unretire == ["r1"]


def test_without_deprecation_or_rules() -> None:
    runs = [run("r1", "2024-05-01T00:00:00Z"), run("r2", "2024-05-02T00:00:00Z")]
    plain = plan_retention(runs, RetentionRules(keep=1, deprecate_older=False), NOW)
    assert plain.states["r1"] == "Retired" and not plain.deprecate and plain.retire == ["r1"]
    everything = plan_retention(runs, RetentionRules(), NOW)
    assert everything.kept == ["r2", "r1"] and not everything.changes


# ---------------------------------------------------------------- Image objects of a schedule

SCHEDULE_UID = "uid-schedule"


def schedule_object(**spec: object) -> ImageSchedule:
    body = {
        "apiVersion": "cvm.operator.dev/v1alpha1",
        "kind": "ImageSchedule",
        "metadata": {"name": "web-weekly", "namespace": "ns", "uid": SCHEDULE_UID},
        "spec": {
            "region": "ap-guangzhou",
            "schedule": "0 3 * * 0",
            "template": {"spec": {"family": "web", "source": {"fromInstance": {"instanceRef": {"name": "builder"}}}}},
            **spec,
        },
    }
    return parse_image_schedule(body)


def image_object(status: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    body = image_body(schedule_object(), SCHEDULE_UID, at("2024-05-05T19:00:00Z"), "web-", None)
    body["metadata"] = {**body["metadata"], "uid": "uid-image", **metadata}
    body["status"] = status or {}
    return body


def test_a_runs_image_object_is_named_labelled_owned_and_annotated() -> None:
    body = image_body(schedule_object(), SCHEDULE_UID, at("2024-05-05T19:00:00Z"), "web-", "manual-1")
    meta = body["metadata"]
    assert meta["name"] == "web-weekly-20240505-190000"
    assert meta["labels"] == {SCHEDULE_LABEL: "web-weekly"}
    assert meta["annotations"] == {SCHEDULED_AT: "2024-05-05T19:00:00Z", ANSWERS_REQUEST: "manual-1"}
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ImageSchedule", SCHEDULE_UID, True)
    spec = body["spec"]
    assert spec["imageName"] == "web-20240505-1900" and spec["family"] == "web"
    assert spec["source"] == {"fromInstance": {"instanceRef": {"name": "builder"}, "forcePoweroff": False,
                                               "sysprep": False, "dataDiskIds": []}}  # fmt: skip
    assert spec["deletionPolicy"] == "Delete" and spec["region"] == "ap-guangzhou"
    parse_object(body)  # a valid Image


def test_children_are_owned_by_their_image() -> None:
    schedule = schedule_object(copyToRegions=["ap-shanghai"], shareWithAccounts=["200000000002"])
    copy = child_body(schedule, "ImageCopy", "web-weekly-20240505-190000", "uid-image")
    share = child_body(schedule, "ImageShare", "web-weekly-20240505-190000", "uid-image")
    assert copy["spec"] == {"sourceRef": {"name": "web-weekly-20240505-190000"},
                            "destinationRegions": ["ap-shanghai"], "deletionPolicy": "Delete"}  # fmt: skip
    assert share["spec"]["accountIds"] == ["200000000002"]
    for child in (copy, share):
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Image", "uid-image")
        parse_object(child)


def test_run_states_follow_the_image_object() -> None:
    assert run_state(image_object()) == "Creating"
    assert run_state(image_object({"cloudState": "CREATING", "imageId": "img-1"})) == "Creating"
    assert run_state(image_object({"cloudState": "NORMAL", "imageId": "img-1"})) == "Available"
    assert run_state(image_object({"cloudState": "IMPORTFAILED", "imageId": "img-1"})) == "Failed"
    stalled = {"conditions": [{"type": "Stalled", "status": "True", "reason": "RegionMismatch"}]}
    assert run_state(image_object(stalled)) == "Failed"
    assert run_state(image_object(deletionTimestamp="2024-05-06T00:00:00Z")) == "Deleting"
    run = run_of(image_object({"cloudState": "NORMAL", "imageId": "img-1"}), SCHEDULE_UID)
    assert run is not None and run.scheduled == at("2024-05-05T19:00:00Z") and run.image_id == "img-1"
    assert run_of(image_object(), "someone-else") is None  # not owned by this schedule
