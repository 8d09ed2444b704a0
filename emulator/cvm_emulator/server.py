"""HTTP front: routing on X-TC-Version and X-TC-Action, the Response envelope, signatures, faults, rate
limits, metrics. The CVM API (2017-03-12), a read-only VPC subset (2017-03-12: DescribeVpcs,
DescribeSubnets, DescribeSecurityGroups), a Tag API subset (2018-08-13) and an STS subset (2018-08-13:
GetCallerIdentity, AssumeRole, AssumeRoleWithWebIdentity) share one endpoint; where two share a version,
the service named in the signature's credential scope tells them apart. Temporary keys issued
by STS sign like permanent ones and carry their token in ``X-TC-Token``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import identity, images, instances, regions, sts, tags, vpc
from .auth import SignedRequest, authenticate, scope_service
from .backend.emulator import Emulator
from .backend.faults import parse_fault
from .backend.objects import ObjectRef, bucket_of_host, split_path
from .catalogue import Account, Catalogue, EmulatorConfig
from .clock import Clock
from .context import Call
from .errors import ApiError
from .importer import FetchError, detect_format, fetch_probe, size_in_gib
from .params import CVM_VALIDATOR, STS_VALIDATOR, TAG_VALIDATOR, VPC_VALIDATOR, RequestValidator
from .store import Store

log = logging.getLogger("cvm_emulator")

API_VERSION = "2017-03-12"
MAX_BODY_BYTES = 10 * 1024 * 1024
TICK_SECONDS = 0.2

Handler = Callable[[Emulator, Call, dict[str, Any]], dict[str, Any]]
ACTIONS: dict[str, Handler] = {**images.ACTIONS, **instances.ACTIONS, **regions.ACTIONS}
READ_ONLY = frozenset(a for a in ACTIONS if a.startswith("Describe"))
REGIONLESS = frozenset({"DescribeRegions"})


@dataclass(frozen=True)
class Service:
    """One API served here: its name in the credential scope, its version, actions and checks."""

    name: str
    version: str
    actions: dict[str, Handler]
    read_only: frozenset[str]
    regionless: frozenset[str]
    validator: RequestValidator
    unsigned: frozenset[str] = frozenset()
    """Actions that may come unsigned (``Authorization: SKIP``)."""


CVM = Service("cvm", API_VERSION, ACTIONS, READ_ONLY, REGIONLESS, CVM_VALIDATOR)
# The Tag API is global: Region is optional, resources name their own region.
TAG = Service(
    tags.SERVICE, tags.API_VERSION, dict(tags.ACTIONS), tags.READ_ONLY, frozenset(tags.ACTIONS), TAG_VALIDATOR
)
# STS is global too.
STS = Service(
    sts.SERVICE, sts.API_VERSION, dict(sts.ACTIONS), sts.READ_ONLY, frozenset(sts.ACTIONS), STS_VALIDATOR, sts.UNSIGNED
)
# The VPC API shares the CVM version: the signature's service tells them apart.
VPC = Service(vpc.SERVICE, vpc.API_VERSION, dict(vpc.ACTIONS), vpc.READ_ONLY, frozenset(), VPC_VALIDATOR)
# Who calls an unsigned action: no account (rate limits share one bucket for them).
ANONYMOUS = Account("", "", "")
SERVICES = (CVM, TAG, STS, VPC)
ALL_ACTIONS = frozenset(action for service in SERVICES for action in service.actions)


def services_for_version(version: str) -> list[Service]:
    return [service for service in SERVICES if service.version == version]


def pick_service(version: str, scope: str | None, action: str) -> Service | None:
    """The service a request is for: among those of its version, the one its credential scope names;
    failing that (no or unknown scope) the one with the action, else the first. None: unknown version."""
    candidates = services_for_version(version)
    if not candidates:
        return None
    by_scope = next((service for service in candidates if service.name == scope), None)
    if by_scope is not None:
        return by_scope
    return next((service for service in candidates if action in service.actions), candidates[0])


# Documented per-action limits (requests per second per account); others default to 20/s.
DEFAULT_RATE_LIMIT = 20
RATE_LIMITS: dict[str, int] = {
    "DescribeImages": 40,
    "DescribeInstances": 40,
    "DescribeInstancesStatus": 40,
    "DescribeImageSharePermission": 20,
    "DescribeImageQuota": 20,
    "DescribeImportImageOs": 20,
    "DescribeImageFromFamily": 20,
    "DescribeRegions": 20,
    "DescribeZones": 20,
    "CreateImage": 10,
    "DeleteImages": 10,
    "SyncImages": 10,
    "ImportImage": 10,
    "ModifyImageAttribute": 10,
    "ModifyImageSharePermission": 10,
    "RunInstances": 10,
    "StartInstances": 10,
    "StopInstances": 10,
    "RebootInstances": 10,
    "TerminateInstances": 10,
    "ResetInstance": 10,
    "ModifyInstancesAttribute": 10,
    # Tag API: 20/s per action is documented for ModifyResourceTags and the other tag writes.
    "ModifyResourceTags": 20,
    "TagResources": 20,
    "UnTagResources": 20,
    "GetResources": 20,
    # STS: 600/s is documented for AssumeRole.
    "AssumeRole": 600,
}

JSON_HEADERS = {"Content-Type": "application/json"}


class TokenBuckets:
    """One bucket per (account, region, action), as the cloud meters them: ``limit`` requests per second,
    bursts up to ``limit``. Regionless actions (the tag API) share the region ``""``."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self.buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def limit_for(self, action: str) -> int:
        return self.limits.get(action, DEFAULT_RATE_LIMIT)

    def take(self, account_id: str, region: str, action: str, now: float) -> bool:
        limit = self.limit_for(action)
        key = (account_id, region, action)
        tokens, last = self.buckets.get(key, (float(limit), now))
        tokens = min(float(limit), tokens + (now - last) * limit)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1.0, now)
        return True


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry,
            Counter(
                "cvm_emulator_requests",
                "API requests by action and result code (OK on success).",
                ["action", "code"],
                registry=registry,
            ),
            Histogram(
                "cvm_emulator_request_duration_seconds",
                "API request handling time by action.",
                ["action"],
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            ),
        )


def cos_error(status: int, code: str, message: str) -> web.Response:
    body = f"<?xml version='1.0' encoding='utf-8' ?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


def envelope(payload: dict[str, Any]) -> web.Response:
    # Exactly `application/json`: the SDK ignores Response.Error under any other content type.
    return web.Response(body=json.dumps({"Response": payload}).encode("ascii"), headers=JSON_HEADERS)


class EmulatorServer:
    def __init__(
        self, store: Store, catalogue: Catalogue, config: EmulatorConfig, clock: Clock, rng: random.Random | None = None
    ) -> None:
        self.emu = Emulator(store, catalogue, config, clock)
        self.emu.start_import = self.start_import
        self.accounts_by_secret = {a.secret_id: a for a in config.accounts}
        self.buckets = TokenBuckets({**RATE_LIMITS, **config.rate_limits})
        self.metrics = Metrics.create()
        if rng is not None:
            self.emu.faults.rng = rng
        self.import_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    # ------------------------------------------------------------ app wiring

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/", self.handle_api)
        app.router.add_get("/", self.handle_api)
        app.router.add_get("/_emulator/metrics", self.handle_metrics)
        app.router.add_get("/_emulator/healthz", self.handle_healthz)
        app.router.add_post("/_emulator/faults", self.handle_add_fault)
        app.router.add_get("/_emulator/faults", self.handle_list_faults)
        app.router.add_delete("/_emulator/faults", self.handle_clear_faults)
        # Everything else is the COS-style object store (path-style or host-style requests).
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            app.router.add_route(method, "/{tail:.+}", self.handle_object)
        app.cleanup_ctx.append(self._background)
        return app

    async def _background(self, app: web.Application) -> AsyncIterator[None]:
        store = self.emu.store
        store.seed_catalogue(self.emu.catalogue, created_at=1704067200.0)  # 2024-01-01T00:00:00Z
        store.refresh_next_due()
        for image_id, region, _url, _force in self.emu.images.pending_imports():
            log.info("resuming the import of %s in %s", image_id, region)
            self.start_import(image_id, region)
        ticker = asyncio.create_task(self._tick())
        yield
        ticker.cancel()
        for task in list(self.import_tasks.values()):
            task.cancel()
        await asyncio.gather(ticker, *self.import_tasks.values(), return_exceptions=True)
        store.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.emu.store.advance(self.emu.clock.now())
            except Exception:  # keep ticking; the next request advances states too
                log.exception("advancing states failed")

    # ------------------------------------------------------------ imports

    def start_import(self, image_id: str, region: str) -> None:
        key = (image_id, region)
        if key not in self.import_tasks:
            task = asyncio.get_running_loop().create_task(self._run_import(image_id, region))
            self.import_tasks[key] = task
            task.add_done_callback(lambda _t: self.import_tasks.pop(key, None))

    async def _run_import(self, image_id: str, region: str) -> None:
        """Fetch and probe the disk file (I/O, here); the image backend records the outcome."""
        source = self.emu.images.import_source(image_id, region)
        if source is None:
            return
        url, force = source
        local = self.emu.objects.local_file(url)
        try:
            probe = await fetch_probe(local.as_uri() if local is not None else url)
            detection = detect_format(probe, force)
        except FetchError as exc:
            disk_format, size, detail = None, 0, str(exc)
        else:
            disk_format, detail = detection.disk_format, detection.disk_format or detection.reason
            size = size_in_gib(detection.virtual_size) if disk_format else 0
        log.info("import of %s in %s: %s (%s)", image_id, region, "NORMAL" if disk_format else "IMPORTFAILED", detail)
        self.emu.images.finish_import(image_id, region, disk_format, size, detail)

    def _temporary_keys(self, now: float) -> Callable[[str, str], Account | None]:
        def lookup(secret_id: str, token: str) -> Account | None:
            session = identity.load_session(self.emu.store.conn, secret_id)
            if session is None:
                return None
            identity.check_session_token(session, token, now)
            return Account(session.account_id, session.secret_id, session.secret_key)

        return lookup

    # ------------------------------------------------------------ endpoints

    async def handle_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def handle_healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # ------------------------------------------------------------ faults on demand

    async def handle_add_fault(self, request: web.Request) -> web.Response:
        try:
            fault = parse_fault(json.loads(await request.read() or b"null"))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if fault.action not in ALL_ACTIONS:
            return web.json_response({"error": f"unknown action {fault.action!r}"}, status=400)
        self.emu.faults.add(fault)
        log.info("fault queued: %s", fault.to_json())
        return web.json_response({"faults": self.emu.faults.pending()})

    async def handle_list_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.emu.faults.pending()})

    async def handle_clear_faults(self, request: web.Request) -> web.Response:
        self.emu.faults.clear()
        return web.json_response({"faults": []})

    # ------------------------------------------------------------ objects

    def _object_ref(self, request: web.Request) -> ObjectRef | None:
        bucket = bucket_of_host(request.host)
        if bucket is not None:
            key = request.match_info["tail"]
            return ObjectRef(bucket, key) if key else None
        return split_path(request.path)

    async def handle_object(self, request: web.Request) -> web.StreamResponse:
        ref = self._object_ref(request)
        if ref is None:
            return cos_error(404, "NoSuchBucket", "Give /<bucket>/<key> or a <bucket>.cos.<region>.myqcloud.com host.")
        try:
            path = self.emu.objects.path(ref)
        except ValueError as exc:
            return cos_error(400, "InvalidURI", str(exc))
        if request.method == "PUT":
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            digest = hashlib.md5(usedforsecurity=False)
            with partial.open("wb") as out:
                async for chunk in request.content.iter_chunked(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
            partial.replace(path)
            return web.Response(headers={"ETag": f'"{digest.hexdigest()}"'})
        if not path.is_file():
            return cos_error(404, "NoSuchKey", f"The object {ref.key} does not exist in {ref.bucket}.")
        if request.method == "DELETE":
            path.unlink()
            return web.Response(status=204)
        return web.FileResponse(path)

    # ------------------------------------------------------------ the API

    async def handle_api(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        action = request.headers.get("X-TC-Action", "")
        label = action if action in ALL_ACTIONS else "unknown"
        try:
            if self.emu.config.latency_ms > 0:
                await asyncio.sleep(self.emu.config.latency_ms / 1000.0)
            payload = await self._dispatch(request, action, request_id)
            code = "OK"
        except ApiError as exc:
            payload = {"Error": {"Code": exc.code, "Message": exc.message}}
            code = exc.code
        except web.HTTPRequestEntityTooLarge:
            payload = {
                "Error": {
                    "Code": "RequestSizeLimitExceeded",
                    "Message": f"The request body exceeds {MAX_BODY_BYTES} bytes.",
                }
            }
            code = "RequestSizeLimitExceeded"
        except Exception as exc:
            log.error("internal error in %s: %s", action, traceback.format_exc())
            payload = {"Error": {"Code": "InternalError", "Message": f"Internal error: {exc}"}}
            code = "InternalError"
        payload["RequestId"] = request_id
        self.metrics.requests.labels(label, code).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - started)
        return envelope(payload)

    async def _dispatch(self, request: web.Request, action: str, request_id: str) -> dict[str, Any]:
        if request.method != "POST":
            raise ApiError("UnsupportedProtocol", "This endpoint accepts POST requests with a JSON body only.")
        body = await request.read()
        if not action:
            raise ApiError("MissingParameter", "The request is missing the `X-TC-Action` header.")
        version = request.headers.get("X-TC-Version")
        if not version:
            raise ApiError("MissingParameter", "The request is missing the `X-TC-Version` header.")
        service = pick_service(version, scope_service(request.headers.get("Authorization", "")), action)
        if service is None:
            known = next((s for s in SERVICES if action in s.actions), None)
            if known is None:
                raise ApiError("InvalidAction", f"The action `{action}` is not supported by cvm {API_VERSION}.")
            raise ApiError("NoSuchVersion", f"The API version `{version}` does not exist; use {known.version}.")
        if action not in service.actions:
            raise ApiError(
                "InvalidAction", f"The action `{action}` is not supported by {service.name} {service.version}."
            )
        now = self.emu.clock.now()
        signed = SignedRequest(
            request.method, request.path, request.query_string, {k.lower(): v for k, v in request.headers.items()}, body
        )
        if action in service.unsigned and request.headers.get("Authorization", "").strip() == "SKIP":
            account = ANONYMOUS
        else:
            account = authenticate(signed, self.accounts_by_secret, now, service.name, self._temporary_keys(now))
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError("InvalidParameter", "The request body must be JSON (Content-Type: application/json).")
        region = request.headers.get("X-TC-Region", "")
        if action not in service.regionless:
            if not region:
                raise ApiError("MissingParameter", "The request is missing the `X-TC-Region` header.")
            if region not in self.emu.catalogue.regions:
                raise ApiError("InvalidRegion.NotFound", f"The region `{region}` does not exist.")
        config = self.emu.config
        metered_region = "" if action in service.regionless else region
        if config.enforce_rate_limits and not self.buckets.take(
            account.account_id, metered_region, action, time.monotonic()
        ):
            limit = self.buckets.limit_for(action)
            raise ApiError(
                "RequestLimitExceeded",
                f"Your requests to {action} exceed the limit of {limit} per second. "
                "Please reduce the frequency of calls.",
            )
        self.emu.faults.check_internal_error()
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise ApiError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "The request body must be a JSON object.")
        service.validator.validate_request(action, params)
        self.emu.faults.check_call(action)
        call = Call(account, region, request_id, now, request.headers.get("X-TC-Language", "zh-CN"))
        store = self.emu.store
        store.advance(now)
        handler = service.actions[action]
        if action in service.read_only:
            result = handler(self.emu, call, params)
        else:
            with store.transaction():
                result = handler(self.emu, call, params)
            for callback in call.after_commit:
                callback()
        return result
