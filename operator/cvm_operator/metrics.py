"""Prometheus metrics of the operator (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

cloud_api_calls_total = Counter(
    "cvm_operator_cloud_api_calls_total",
    "Calls to the cloud APIs (CVM, Tag), by action and result ('OK' or the error code).",
    ["action", "result"],
)

cloud_api_call_duration_seconds = Histogram(
    "cvm_operator_cloud_api_call_duration_seconds",
    "Duration of cloud API calls (excluding client-side rate-limit waits), by action.",
    ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

cloud_rate_limit_wait_seconds_total = Counter(
    "cvm_operator_cloud_rate_limit_wait_seconds_total",
    "Time spent waiting for the client-side per-action rate limit, by action.",
    ["action"],
)

reconciles_total = Counter(
    "cvm_operator_reconciles_total",
    "Reconcile passes, by kind and result.",
    ["kind", "result"],
)

reconcile_duration_seconds = Histogram(
    "cvm_operator_reconcile_duration_seconds",
    "Duration of one reconcile pass, by kind.",
    ["kind"],
)

time_to_ready_seconds = Histogram(
    "cvm_operator_time_to_ready_seconds",
    "Time from object creation until it first became Ready, by kind.",
    ["kind"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)

reconcile_overlaps_total = Counter(
    "cvm_operator_reconcile_overlaps_total",
    "Passes that started while another pass of the same object was running (always 0 when correct), by kind.",
    ["kind"],
)

work_queue_depth = Gauge(
    "cvm_operator_work_queue_depth",
    "Objects waiting in the work queue (due now or later).",
)
