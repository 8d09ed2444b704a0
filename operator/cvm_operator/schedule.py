"""ImageSchedule decisions without I/O: when runs are due, and what retention does with the images.

Cron expressions are evaluated by cronsim in the schedule's time zone (Debian cron's daylight saving
rules for jobs at fixed times: a skipped local time runs at the first minute after the gap, a repeated
one runs once). ``@every`` runs fall on multiples of the duration since the Unix epoch, so they do not
depend on when the schedule was created or the operator restarted. Every function takes ``now``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from cvm_operator.api.imageschedule import ScheduledImageState

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MIN_EVERY = dt.timedelta(seconds=10)
MISSED_COUNT_CAP = 100
"""Missed runs are counted up to this many (for the message only)."""

_DURATION = re.compile(r"^(?:[0-9]+[hms])+$")
_DURATION_PART = re.compile(r"([0-9]+)([hms])")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

RunState = Literal["Creating", "Available", "Failed", "Deleting"]


class ScheduleError(ValueError):
    """The schedule or time zone cannot be used; ``reason`` is the Stalled reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_duration(text: str) -> dt.timedelta:
    """A Go-style duration of hours, minutes and seconds: 168h, 90m, 1h30m, 20s."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration such as 168h, 90m or 20s")
    return dt.timedelta(seconds=sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text)))


@dataclass(frozen=True)
class Schedule:
    """When runs are due: a 5-field cron expression in a time zone, or a fixed interval."""

    cron: str | None
    zone: ZoneInfo
    every: dt.timedelta | None = None

    @classmethod
    def parse(cls, schedule: str, time_zone: str = "UTC") -> Schedule:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ScheduleError("UnknownTimeZone", f"spec.timeZone: {time_zone!r} is not an IANA time zone") from error
        text = " ".join(schedule.split())
        if text.startswith("@every "):
            try:
                every = parse_duration(text.removeprefix("@every "))
            except ValueError as error:
                raise ScheduleError("InvalidSchedule", f"spec.schedule: {error}") from error
            if every < MIN_EVERY:
                raise ScheduleError(
                    "InvalidSchedule", f"spec.schedule: @every needs at least {int(MIN_EVERY.total_seconds())}s"
                )
            return cls(None, zone, every)
        cron = MACROS.get(text, text)
        if cron.startswith("@"):
            raise ScheduleError("InvalidSchedule", f"spec.schedule: unknown macro {text!r}")
        if len(cron.split()) != 5:
            raise ScheduleError("InvalidSchedule", f"spec.schedule: {text!r} does not have five cron fields")
        parsed = cls(cron, zone)
        try:
            parsed.next_after(_EPOCH)
        except CronSimError as error:
            raise ScheduleError("InvalidSchedule", f"spec.schedule: {text!r}: {error}") from error
        except StopIteration as error:
            raise ScheduleError("InvalidSchedule", f"spec.schedule: {text!r} never comes due") from error
        return parsed

    @property
    def sub_minute(self) -> bool:
        """Whether runs can fall on a second other than :00 (then image names carry the seconds)."""
        return self.every is not None and self.every.total_seconds() % 60 != 0

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first run time strictly after ``moment``, in UTC."""
        if self.every is not None:
            steps = (moment - _EPOCH) // self.every + 1
            return _EPOCH + steps * self.every
        assert self.cron is not None
        found = next(CronSim(self.cron, moment.astimezone(self.zone)))
        return found.astimezone(dt.UTC)

    def latest_at_or_before(self, moment: dt.datetime) -> dt.datetime:
        """The last run time at or before ``moment``, in UTC."""
        if self.every is not None:
            return _EPOCH + ((moment - _EPOCH) // self.every) * self.every
        assert self.cron is not None
        start = moment.astimezone(self.zone).replace(microsecond=0) + dt.timedelta(seconds=1)
        found = next(CronSim(self.cron, start, reverse=True))
        return found.astimezone(dt.UTC)

    def count_between(self, after: dt.datetime, until: dt.datetime, cap: int = MISSED_COUNT_CAP) -> int:
        """How many run times fall in (after, until], counted up to ``cap``."""
        if until <= after:
            return 0
        if self.every is not None:
            return min(cap, (until - _EPOCH) // self.every - (after - _EPOCH) // self.every)
        count, moment = 0, after
        while count < cap:
            moment = self.next_after(moment)
            if moment > until:
                break
            count += 1
        return count


def run_suffix(moment: dt.datetime, *, with_seconds: bool = False) -> str:
    """yyyymmdd-hhmm of the UTC time, plus ss when asked or when the seconds are not zero."""
    utc = moment.astimezone(dt.UTC)
    suffix = utc.strftime("%Y%m%d-%H%M")
    return suffix + utc.strftime("%S") if with_seconds or utc.second else suffix


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One Image of the schedule, as the schedule sees it."""

    name: str
    scheduled: dt.datetime
    state: RunState
    deprecated: bool = False
    retired_at: dt.datetime | None = None
    requested_at: str | None = None
    image_id: str | None = None
    created_time: str | None = None
    message: str = ""


@dataclass(frozen=True)
class RunDecision:
    """What the schedule does about runs in this pass."""

    start: dt.datetime | None = None
    """Scheduled time of a run to start now."""
    requested: str | None = None
    """The requestedAt value the run answers, if it was requested."""
    replace: tuple[str, ...] = ()
    """Images in progress to delete first (concurrencyPolicy Replace)."""
    skipped: dt.datetime | None = None
    """A run skipped because it could not start within startingDeadlineSeconds."""
    missed: int = 0
    """Earlier run times passed over by the run started or skipped."""
    waiting: str = ""
    """Why a due run waits (concurrencyPolicy Forbid)."""
    next_time: dt.datetime | None = None


def decide_run(
    schedule: Schedule,
    *,
    since: dt.datetime,
    now: dt.datetime,
    runs: Sequence[Run],
    suspended: bool = False,
    replace: bool = False,
    deadline: dt.timedelta | None = None,
    requested: str | None = None,
    handled_request: str | None = None,
) -> RunDecision:
    """Start, skip or hold the run that is due. ``since`` is the latest time already dealt with (the
    schedule's creation, its last run, its last skipped run); ``requested`` is the requestedAt value."""
    now = now.replace(microsecond=0)
    in_progress = tuple(run.name for run in runs if run.state == "Creating")
    next_time = None if suspended else schedule.next_after(max(now, since))
    request = requested if requested and requested != handled_request else None
    if request is not None and any(run.requested_at == request for run in runs):
        request = None  # answered already (the status write of that pass was lost)

    due, missed, skipped = None, 0, None
    if not suspended:
        latest = schedule.latest_at_or_before(now)
        if latest > since:
            missed = schedule.count_between(since, latest) - 1
            if deadline is not None and now - latest > deadline:
                skipped = latest
            else:
                due = latest
    if request is not None:
        # A requested run covers a scheduled one that is due as well; it is never at the time of an
        # earlier run, whose Image object has that time in its name.
        due = max(now, since.replace(microsecond=0) + dt.timedelta(seconds=1))
    if due is None:
        return RunDecision(skipped=skipped, missed=missed, next_time=next_time)
    if in_progress and not replace:
        what = f"requested run ({request})" if request is not None else f"run scheduled for {_iso(due)}"
        waiting = f"the {what} waits for {', '.join(in_progress)} to finish (concurrencyPolicy Forbid)"
        return RunDecision(waiting=waiting, missed=missed, next_time=next_time)
    return RunDecision(
        start=due,
        requested=request,
        replace=in_progress if replace else (),
        missed=missed,
        next_time=next_time,
    )


# ---------------------------------------------------------------- retention


@dataclass(frozen=True)
class RetentionRules:
    keep: int | None = None
    """None keeps every usable image."""
    deprecate_older: bool = True
    delete_after: dt.timedelta | None = None


@dataclass
class RetentionPlan:
    """What retention changes on the Image objects, and the state each image is reported in."""

    states: dict[str, ScheduledImageState] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    """Usable images kept, newest first."""
    deprecate: list[str] = field(default_factory=list)
    undeprecate: list[str] = field(default_factory=list)
    retire: list[str] = field(default_factory=list)
    """Images that left the kept set (or failed) in this pass: their retirement time is recorded."""
    unretire: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    next_deletion: dt.datetime | None = None

    @property
    def changes(self) -> bool:
        return bool(self.deprecate or self.undeprecate or self.retire or self.unretire or self.delete)


def newest_first(runs: Iterable[Run]) -> list[Run]:
    return sorted(runs, key=lambda run: (run.scheduled, run.name), reverse=True)


def plan_retention(runs: Sequence[Run], rules: RetentionRules, now: dt.datetime) -> RetentionPlan:
    """Keep the newest ``keep`` usable images; retire (deprecate) the older ones and failed runs at once;
    delete what has been retired for ``delete_after``. Runs in progress or being deleted are left alone."""
    plan = RetentionPlan()
    usable = newest_first(run for run in runs if run.state == "Available")
    keep = len(usable) if rules.keep is None else rules.keep
    retired: list[Run] = []
    for index, run in enumerate(usable):
        if index < keep:
            plan.states[run.name] = "Kept"
            plan.kept.append(run.name)
            if run.deprecated:
                plan.undeprecate.append(run.name)
            if run.retired_at is not None:
                plan.unretire.append(run.name)
            continue
        retired.append(run)
        if rules.deprecate_older:
            plan.states[run.name] = "Deprecated"
            if not run.deprecated:
                plan.deprecate.append(run.name)
        else:
            plan.states[run.name] = "Deprecated" if run.deprecated else "Retired"
    for run in runs:
        if run.state == "Failed":
            plan.states[run.name] = "Failed"
            retired.append(run)
        elif run.state in ("Creating", "Deleting"):
            plan.states[run.name] = run.state
    for run in retired:
        since = run.retired_at
        if since is None:
            plan.retire.append(run.name)
            since = now
        if rules.delete_after is None:
            continue
        due = since + rules.delete_after
        if due <= now:
            plan.delete.append(run.name)
            plan.states[run.name] = "Deleting"
        elif plan.next_deletion is None or due < plan.next_deletion:
            plan.next_deletion = due
    return plan


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
