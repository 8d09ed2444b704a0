"""The operator's own Kubernetes calls (Kopf does the watching): status, annotations, secrets, children.

The official client is synchronous; calls run in worker threads so the event loop never blocks. Requests go
through its ``ApiClient`` (configuration, authentication, TLS, connection pool) with plain JSON bodies and
answers: its generated API classes validate every argument with pydantic and cost memory to match
(``CoreV1Api`` alone holds ~19 MiB of field descriptions), for requests this module spells out in a line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import quote

import kubernetes

from cvm_operator.api import GROUP, VERSION

logger = logging.getLogger(__name__)

EVENT_SOURCE = "cvm-operator"
DEFAULT_CONCURRENCY = 32
"""Kubernetes calls in flight at once (threads and pooled connections)."""

Query = Sequence[tuple[str, str | int]]
MERGE_PATCH = "application/merge-patch+json"


class Forbidden(Exception):
    """RBAC refuses the operator this request (HTTP 403); the message names the request."""


class Conflict(Exception):
    """The object changed since it was read (HTTP 409)."""


class NotFound(Exception):
    """The object is gone (HTTP 404)."""


class AlreadyExists(Exception):
    """An object of that name exists already (HTTP 409 on create)."""


class KubeClient:
    def __init__(self, api_client: kubernetes.client.ApiClient, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._api_client = api_client
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kube")

    @classmethod
    def from_environment(cls, concurrency: int = DEFAULT_CONCURRENCY) -> KubeClient:
        """In-cluster service account when running in a pod, else $KUBECONFIG or ~/.kube/config."""
        config = kubernetes.client.Configuration()
        config.connection_pool_maxsize = concurrency
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(config), concurrency)

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _request(
        self,
        method: str,
        path: str,
        query: Query = (),
        body: Any = None,
        content_type: str | None = None,
        *,
        decode: bool = True,
    ) -> Any:
        """One request: the decoded JSON answer (None unless ``decode``); raises ``ApiException`` on any
        status but 2xx. The official client is synchronous: each request runs in this client's own threads,
        as many as its connection pool holds, so that many workers write at once (the loop's default pool
        has only a few threads on a small node)."""
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        client: Any = self._api_client  # untyped

        def send() -> Any:
            request = client.param_serialize(
                method=method, resource_path=path, query_params=list(query), header_params=headers, body=body,
                auth_settings=["BearerToken"],
            )  # fmt: skip
            response = client.call_api(*request)
            response.read()
            return client.response_deserialize(response, {"2XX": "object" if decode else None}).data

        return await asyncio.get_running_loop().run_in_executor(self._executor, send)

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], await self._request("GET", _path(OWN, "namespaces", namespace, plural, name)))
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list(self, plural: str, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        listed = await self._request("GET", _path(OWN, "namespaces", namespace, plural), query)
        return cast(list[dict[str, Any]], listed["items"])

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            result = await self._request("POST", _path(OWN, "namespaces", namespace, plural), body=dict(body))
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                raise AlreadyExists(f"{plural}/{body['metadata']['name']} exists already") from error
            if error.status == 403:
                # RBAC, or a namespace being deleted (which takes no new objects).
                raise Forbidden(f"create {plural} {namespace}/{body['metadata']['name']}: {_reason(error)}") from None
            raise
        return cast(dict[str, Any], result)

    async def _merge_patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *sub: str) -> Any:
        path = _path(OWN, "namespaces", namespace, plural, name, *sub)
        return await self._request("PATCH", path, body=dict(patch), content_type=MERGE_PATCH)

    async def patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch an object (spec, labels, annotations); None when it is gone."""
        try:
            return cast(dict[str, Any], await self._merge_patch(plural, namespace, name, patch))
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        try:
            await self._request("DELETE", _path(OWN, "namespaces", namespace, plural, name), decode=False)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource (lists such as conditions are replaced whole); the new body."""
        try:
            return cast(
                dict[str, Any], await self._merge_patch(plural, namespace, name, {"status": dict(status)}, "status")
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to report on
                raise
            return None

    async def patch_metadata(
        self,
        plural: str,
        namespace: str,
        name: str,
        resource_version: str,
        *,
        annotations: Mapping[str, str | None] | None = None,
        finalizers: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Set annotations and/or the finalizer list in one write, only if the object is still at
        ``resource_version`` (raises Conflict otherwise, NotFound when it is gone); the new body."""
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if annotations is not None:
            metadata["annotations"] = dict(annotations)
        if finalizers is not None:
            metadata["finalizers"] = list(finalizers) or None
        try:
            return cast(dict[str, Any], await self._merge_patch(plural, namespace, name, {"metadata": metadata}))
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                raise Conflict(f"{plural}/{name} changed since it was read") from error
            if error.status == 404:
                raise NotFound(f"{plural}/{name} is gone") from error
            raise

    async def orphan(self, plural: str, namespace: str, name: str, owner_uid: str) -> None:
        """Drop the owner reference to ``owner_uid`` so that garbage collection leaves the object alone."""
        for _ in range(5):
            body = await self.get(plural, namespace, name)
            if body is None:
                return
            meta = body["metadata"]
            references = meta.get("ownerReferences") or []
            kept = [reference for reference in references if reference.get("uid") != owner_uid]
            if len(kept) == len(references):
                return
            # A merge patch replaces the list whole; the resourceVersion guards against a concurrent edit.
            patch = {"metadata": {"ownerReferences": kept or None, "resourceVersion": meta["resourceVersion"]}}
            try:
                await self._merge_patch(plural, namespace, name, patch)
            except kubernetes.client.ApiException as error:
                if error.status == 404:
                    return
                if error.status != 409:
                    raise
            else:
                return
        raise Conflict(f"{plural}/{name} kept changing while its owner reference was dropped")

    async def ensure_peering(self, name: str, namespace: str | None) -> None:
        """Make Kopf's peering object when it is missing: without it, no replica would see the others."""
        if await self.get_peering(name, namespace) is not None:
            return
        kind = "ClusterKopfPeering" if namespace is None else "KopfPeering"
        body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
        try:
            await self._request("POST", _peering_path(namespace), body=body, decode=False)
        except kubernetes.client.ApiException as error:
            if error.status != 409:  # another replica made it first
                raise

    async def create_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about ``body``; a failure is logged, never raised (Events are best effort)."""
        meta = body["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
            },
            "type": type_, "reason": reason, "message": message, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": EVENT_SOURCE}, "reportingComponent": EVENT_SOURCE,
        }  # fmt: skip
        try:
            # The answer is left undecoded: nothing reads it.
            await self._request(
                "POST", _path(CORE, "namespaces", meta["namespace"], "events"), body=event, decode=False
            )
        except (kubernetes.client.ApiException, OSError) as error:
            logger.warning("Event %s for %s/%s not posted: %s", reason, meta["namespace"], meta["name"], error)

    async def get_peering(self, name: str, namespace: str | None) -> dict[str, Any] | None:
        """Kopf's peering object: ClusterKopfPeering when ``namespace`` is None, else KopfPeering."""
        try:
            return cast(dict[str, Any], await self._request("GET", _peering_path(namespace, name)))
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    async def _read_core(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A namespaced core/v1 object; None when it does not exist; Forbidden when RBAC refuses."""
        try:
            return cast(
                dict[str, Any], await self._request("GET", _path(CORE, "namespaces", namespace, resource, name))
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise Forbidden(f"get {resource} {namespace}/{name}") from None  # the body may quote the request
            raise

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data (base64 values); None when it does not exist; Forbidden when RBAC refuses."""
        secret = await self._read_core("secrets", namespace, name)
        if secret is None:
            return None
        return {str(key): str(value) for key, value in (secret.get("data") or {}).items()}

    async def config_map_data(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """A ConfigMap's data (text) and binaryData (base64); None when it does not exist; Forbidden when RBAC
        refuses."""
        config_map = await self._read_core("configmaps", namespace, name)
        if config_map is None:
            return None
        text = {str(key): str(value) for key, value in (config_map.get("data") or {}).items()}
        binary = {str(key): str(value) for key, value in (config_map.get("binaryData") or {}).items()}
        return text, binary

    async def namespace_labels(self, name: str) -> dict[str, str] | None:
        """A namespace's labels; None when it does not exist. Listed by name, so that the ClusterRole's
        list on namespaces suffices (no get)."""
        query: Query = [("fieldSelector", f"metadata.name={name}"), ("limit", 1)]
        try:
            listed = await self._request("GET", _path(CORE, "namespaces"), query)
        except kubernetes.client.ApiException as error:
            if error.status == 403:
                raise Forbidden(f"list namespaces {name}") from None
            raise
        items = listed.get("items") or []
        if not items:
            return None
        return {str(key): str(value) for key, value in (items[0].get("metadata", {}).get("labels") or {}).items()}


OWN, KOPF, CORE = f"/apis/{GROUP}/{VERSION}", "/apis/kopf.dev/v1", "/api/v1"


def _path(root: str, *segments: str) -> str:
    """``root`` (a group's version) followed by URL-quoted segments."""
    return root + "".join("/" + quote(segment, safe="") for segment in segments)


def _peering_path(namespace: str | None, *name: str) -> str:
    if namespace is None:
        return _path(KOPF, "clusterkopfpeerings", *name)
    return _path(KOPF, "namespaces", namespace, "kopfpeerings", *name)


def _reason(error: kubernetes.client.ApiException) -> str:
    """The API server's own message of a refusal (it names the request, never a Secret's content)."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)
