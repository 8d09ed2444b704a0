"""Describe* filters: validation and translation to SQL (separate filters AND, values OR)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

MAX_FILTERS = 10
MAX_FILTER_VALUES = 5
MAX_IDS = 100
MAX_LIMIT = 100
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Filter:
    name: str
    values: tuple[str, ...]


def parse_filters(raw: Sequence[dict[str, Any]] | None, allowed: frozenset[str]) -> list[Filter]:
    """Check the documented limits (10 filters, 5 values each) and the filter names."""
    if not raw:
        return []
    if len(raw) > MAX_FILTERS:
        raise ApiError(
            "InvalidFilterValue.LimitExceeded",
            f"At most {MAX_FILTERS} filters are allowed per request, got {len(raw)}.",
        )
    result = []
    for item in raw:
        name = str(item["Name"])
        values = tuple(str(v) for v in item["Values"])
        if len(values) > MAX_FILTER_VALUES:
            raise ApiError(
                "InvalidFilterValue.LimitExceeded",
                f"At most {MAX_FILTER_VALUES} values are allowed per filter, `{name}` has {len(values)}.",
            )
        if not values:
            raise ApiError("InvalidFilter", f"The filter `{name}` needs at least one value.")
        if name not in allowed and not (name.startswith("tag:") and len(name) > 4 and "tag:" in allowed):
            raise ApiError(
                "InvalidFilter", f"The filter `{name}` is not supported; supported: {', '.join(sorted(allowed))}."
            )
        result.append(Filter(name, values))
    return result


def paging(params: dict[str, Any]) -> tuple[int, int]:
    """``Offset`` (default 0) and ``Limit`` (default 20, at most 100)."""
    offset = params.get("Offset")
    limit = params.get("Limit")
    offset = 0 if offset is None else int(offset)
    limit = DEFAULT_LIMIT if limit is None else int(limit)
    if offset < 0:
        raise ApiError("InvalidParameterValue", f"`Offset` must not be negative, got {offset}.")
    if limit < 1 or limit > MAX_LIMIT:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"`Limit` must be 1..{MAX_LIMIT}, got {limit}.")
    return offset, limit


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _in(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def _fuzzy(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    clause = " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in values)
    return f"({clause})", [f"%{like_escape(v)}%" for v in values]


ColumnRule = Callable[[Sequence[str]], tuple[str, list[Any]]]


def exact(column: str) -> ColumnRule:
    return lambda values: _in(column, values)


def fuzzy(column: str) -> ColumnRule:
    return lambda values: _fuzzy(column, values)


def build_where(
    filters: Sequence[Filter], rules: dict[str, ColumnRule], tag_table: str, tag_join: str
) -> tuple[list[str], list[Any]]:
    """SQL conditions for ``filters``; ``tag_join`` ties the tag table row to the resource row."""
    clauses: list[str] = []
    params: list[Any] = []
    for flt in filters:
        if flt.name == "tag-key":
            cond, args = _in("t.key", flt.values)
        elif flt.name == "tag-value":
            cond, args = _in("t.value", flt.values)
        elif flt.name.startswith("tag:"):
            cond, args = _in("t.value", flt.values)
            cond = f"t.key = ? AND {cond}"
            args = [flt.name[4:], *args]
        else:
            cond, args = rules[flt.name](flt.values)
            clauses.append(cond)
            params.extend(args)
            continue
        clauses.append(f"EXISTS (SELECT 1 FROM {tag_table} t WHERE {tag_join} AND {cond})")
        params.extend(args)
    return clauses, params
