"""`cvm-operator run`: settings, clients and metrics around Kopf's operator loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import Mapping
from typing import Any, cast

import kopf
import prometheus_client

from cvm_operator.cloud import (
    AnyCredentials,
    CloudPool,
    CredentialsError,
    EndpointError,
    RoleCredentials,
    RoleSettings,
    build_default_credentials,
    endpoint_from_options,
    parse_endpoint,
    plan_default_credentials,
)
from cvm_operator.config import OperatorConfig
from cvm_operator.controller import DEFAULT_WORKERS, Controller
from cvm_operator.kube import DEFAULT_CONCURRENCY, KubeClient
from cvm_operator.peering import Peering
from cvm_operator.reconcilers.runtime import EventPoster, Runtime
from cvm_operator.tenancy import DEFAULT_ACCOUNT_SELECTOR, LabelSelector, SelectorError, parse_selector

logger = logging.getLogger("cvm_operator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--endpoint",
        help="CVM API endpoint URL, e.g. http://127.0.0.1:9000 (default $CVM_ENDPOINT, else Tencent Cloud)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        help="seconds between cloud checks of settled objects (drift detection)",
    )
    parser.add_argument(
        "--stalled-interval",
        type=float,
        default=None,
        help="seconds before a Stalled object (an error the user must fix) is retried; doubles up to 30 min "
        "(default: 10 poll intervals, at least 30 s)",
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="objects reconciled at once (a fixed pool of workers)"
    )
    parser.add_argument(
        "--selector",
        help="reconcile only objects with these labels (a label selector), so several operators can split a cluster",
    )
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="no peering with other operator replicas")
    peering.add_argument(
        "--peering",
        metavar="NAME",
        help="active/standby with other replicas through Kopf's peering object NAME (its CRDs must be installed)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority: the live replica with the highest one works (default: random, so replicas never tie)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics port (0 disables)")
    parser.add_argument("--health-port", type=int, default=8081, help="liveness /healthz port (0 disables)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--bind-address", default="0.0.0.0", help="address of the metrics and health endpoints (127.0.0.1 locally)"
    )
    tenancy = parser.add_argument_group("accounts")
    tenancy.add_argument(
        "--default-credentials-namespaces",
        metavar="SELECTOR",
        type=_selector,
        help="only objects in namespaces whose labels match SELECTOR may use the default credentials; others "
        f"need credentialsSecretRef (the kustomize base uses {DEFAULT_ACCOUNT_SELECTOR}; default: every namespace)",
    )
    tenancy.add_argument(
        "--assume-role-arn",
        metavar="ARN",
        help="the default credentials assume this CAM role with TENCENTCLOUD_SECRET_ID/KEY "
        "(default $TENCENTCLOUD_ASSUME_ROLE_ARN); TKE_* web identity variables need no keys at all",
    )
    tenancy.add_argument("--role-session-name", help="session name of the assumed role (default cvm-operator)")
    tenancy.add_argument(
        "--role-session-duration",
        type=int,
        metavar="SECONDS",
        help="lifetime of the role's temporary keys, renewed before they expire (default 7200, at most 43200)",
    )


def _selector(text: str) -> LabelSelector:
    try:
        return parse_selector(text)
    except SelectorError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        k8s = getattr(record, "k8s_ref", None)  # Kopf's per-object loggers attach the object
        if isinstance(k8s, dict):
            entry["object"] = {key: k8s.get(key) for key in ("kind", "namespace", "name") if k8s.get(key)}
        audited = getattr(record, "audit", None)  # cloud writes (cloud/audit.py)
        if isinstance(audited, dict):
            entry["audit"] = audited
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(verbose: bool, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "kubernetes", "urllib3", "tencentcloud_sdk_common", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:
        # Kopf logs every handler run at INFO; the operator logs its own transitions (event_poster) instead.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def event_poster(kube: KubeClient) -> EventPoster:
    """Posts Kubernetes Events in the background, and writes the same line in the log (with the object,
    for JSON logs)."""
    pending: set[asyncio.Task[None]] = set()

    def post(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = body.get("metadata", {})
        ref = {"kind": body.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name")}
        level = logging.WARNING if type_ == "Warning" else logging.INFO
        logger.log(level, "%s %s/%s: %s: %s", ref["kind"], ref["namespace"], ref["name"], reason, message,
                   extra={"k8s_ref": ref})  # fmt: skip
        task = asyncio.get_running_loop().create_task(kube.create_event(body, type_, reason, message[:1000]))
        pending.add(task)  # held until done, so the task is not collected half-way
        task.add_done_callback(pending.discard)

    return post


def resolve_default_credentials(args: argparse.Namespace) -> AnyCredentials | None:
    """Keys from the environment, a role assumed with them, a web identity's role, or none."""
    settings = RoleSettings.from_options(args.assume_role_arn, args.role_session_name, args.role_session_duration)
    endpoint = parse_endpoint(endpoint_from_options(args.endpoint))
    # STS lives at the custom endpoint too (the emulator); the SDK's classes take it as a URL.
    return build_default_credentials(plan_default_credentials(settings), endpoint.url if endpoint else None)


def build_runtime(args: argparse.Namespace) -> Runtime:
    endpoint = endpoint_from_options(args.endpoint)
    credentials = args.default_credentials if "default_credentials" in args else resolve_default_credentials(args)
    config = OperatorConfig.with_poll_interval(
        endpoint, credentials, args.poll_interval, args.default_credentials_namespaces, args.stalled_interval
    )
    logger.info(
        "default credentials: %s; usable in namespaces: %s",
        "none" if credentials is None else repr(credentials) if isinstance(credentials, RoleCredentials) else "keys",
        args.default_credentials_namespaces or "all",
    )
    kube = KubeClient.from_environment(concurrency=min(args.workers, DEFAULT_CONCURRENCY))
    return Runtime(config, kube, CloudPool(endpoint), event_poster(kube))


async def operate(args: argparse.Namespace, stop_flag: asyncio.Event | None = None) -> None:
    # Importing registers the handlers with Kopf's default registry.
    from cvm_operator import handlers
    from cvm_operator.reconcilers import RECONCILERS

    runtime = build_runtime(args)
    if runtime.namespaces is not None:
        handlers.watch_namespaces()
    peering: Peering | None = None
    identity = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
    priority = args.priority if args.priority is not None else secrets.randbelow(2**31 - 1) + 1
    if args.peering:
        namespaces = None if args.all_namespaces else args.namespace
        peering = Peering(runtime.kube, args.peering, identity, priority, namespaces)
        await peering.ensure()
    reconcilers = {plural: cls(runtime) for plural, cls in RECONCILERS.items()}
    controller = Controller(runtime, reconcilers, args.workers, peering)
    memo = kopf.Memo(controller=controller, selector=args.selector)
    liveness = f"http://{args.bind_address}:{args.health_port}/healthz" if args.health_port else None
    logger.info(
        "cvm-operator starting: endpoint=%s poll-interval=%ss namespaces=%s selector=%s workers=%d",
        runtime.config.endpoint or "Tencent Cloud",
        args.poll_interval,
        "all" if args.all_namespaces else ",".join(args.namespace),
        args.selector or "-",
        args.workers,
    )
    try:
        await kopf.operator(
            standalone=not args.peering,
            peering_name=args.peering,
            priority=priority,
            identity=cast(Any, identity),  # Kopf's Identity is a NewType of str it does not export
            clusterwide=args.all_namespaces,
            namespaces=args.namespace,
            liveness_endpoint=liveness,
            memo=memo,
            stop_flag=stop_flag,
            registry=handlers.registry,
        )
    finally:
        await runtime.pool.close()
        runtime.kube.close()


def run(args: argparse.Namespace) -> int:
    if not args.all_namespaces and not args.namespace:
        print("cvm-operator run: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    try:
        args.default_credentials = resolve_default_credentials(args)
    except (CredentialsError, EndpointError) as error:
        print(f"cvm-operator run: {error}", file=sys.stderr)
        return 2
    configure_logging(args.verbose, args.log_format)
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.bind_address)
    asyncio.run(operate(args))
    return 0
