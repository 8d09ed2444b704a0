"""Opt-in memory profile of the operator process (off unless the environment asks for it).

``CVM_OPERATOR_TRACEMALLOC=PATH`` traces allocations from start-up; each SIGUSR1, and the exit, write
the largest holders by file and by line as JSON to PATH (``-``: stderr), and what grew since the
previous SIGUSR1. Tracing slows the process and adds its own memory: for profiles, not for
measurements of speed or size.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import sysconfig
import tracemalloc
from pathlib import Path
from typing import Any

ENV = "CVM_OPERATOR_TRACEMALLOC"
TOP = 30

_PREFIXES = sorted(
    {str(Path(p)) + os.sep for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"])},
    key=len,
    reverse=True,
)
_previous: list[tracemalloc.Snapshot] = []


def install_from_environment() -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    tracemalloc.start()
    signal.signal(signal.SIGUSR1, lambda *_: dump(target))
    atexit.register(dump, target)


def _short(filename: str) -> str:
    for prefix in _PREFIXES:
        if filename.startswith(prefix):
            return filename[len(prefix) :]
    return filename


def _row(stat: tracemalloc.Statistic | tracemalloc.StatisticDiff, key: str) -> dict[str, Any]:
    frame = stat.traceback[0]
    where = _short(frame.filename) + (f":{frame.lineno}" if key == "lineno" else "")
    if isinstance(stat, tracemalloc.StatisticDiff):
        return {"where": where, "bytes": stat.size_diff, "blocks": stat.count_diff}
    return {"where": where, "bytes": stat.size, "blocks": stat.count}


def report(snapshot: tracemalloc.Snapshot, previous: tracemalloc.Snapshot | None, limit: int = TOP) -> dict[str, Any]:
    """Traced bytes, the largest holders by file and by line, and the growth since ``previous``."""
    current, peak = tracemalloc.get_traced_memory()
    result: dict[str, Any] = {"traced_bytes": current, "traced_peak_bytes": peak}
    for key, name in (("filename", "file"), ("lineno", "line")):
        result[f"by_{name}"] = [_row(stat, key) for stat in snapshot.statistics(key)[:limit]]
        if previous is not None:
            diffs = snapshot.compare_to(previous, key)
            result[f"grown_by_{name}"] = [_row(stat, key) for stat in diffs[:limit]]
            result["grown_bytes"] = sum(stat.size_diff for stat in diffs)
    return result


def dump(target: str) -> None:
    if not tracemalloc.is_tracing():
        return
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    text = json.dumps(report(snapshot, _previous[-1] if _previous else None), indent=1)
    _previous[:] = [snapshot]
    if target == "-":
        print(text, file=sys.stderr, flush=True)
    else:
        partial = Path(target + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)  # readers never see half a report
