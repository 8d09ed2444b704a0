"""The operator's own Kubernetes calls (Kopf does the watching): status, annotations, secrets, children.

The official client is synchronous; calls run in worker threads so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import kubernetes

from cvm_operator.api import GROUP, VERSION

logger = logging.getLogger(__name__)

EVENT_SOURCE = "cvm-operator"
DEFAULT_CONCURRENCY = 32
"""Kubernetes calls in flight at once (threads and pooled connections)."""

T = TypeVar("T")


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
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)

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

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The official client is synchronous: each call runs in this client's own threads, as many as
        its connection pool holds, so that many workers write at once (the loop's default pool has
        only a few threads on a small node)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result = await self._call(
                self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], result)

    async def list(self, plural: str, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        result = await self._call(
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            label_selector=label_selector,
        )
        return cast(list[dict[str, Any]], cast(dict[str, Any], result)["items"])

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            result = await self._call(
                self._custom.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, dict(body)
            )
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                raise AlreadyExists(f"{plural}/{body['metadata']['name']} exists already") from error
            if error.status == 403:
                # RBAC, or a namespace being deleted (which takes no new objects).
                raise Forbidden(f"create {plural} {namespace}/{body['metadata']['name']}: {_reason(error)}") from None
            raise
        return cast(dict[str, Any], result)

    async def patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch an object (spec, labels, annotations); None when it is gone."""
        try:
            result = await self._call(
                self._custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, dict(patch)
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], result)

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        try:
            await self._call(self._custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource (lists such as conditions are replaced whole); the new body."""
        try:
            result = await self._call(
                self._custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": dict(status)},
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to report on
                raise
            return None
        return cast(dict[str, Any], result)

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
            result = await self._call(
                self._custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name,
                {"metadata": metadata},
            )  # fmt: skip
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                raise Conflict(f"{plural}/{name} changed since it was read") from error
            if error.status == 404:
                raise NotFound(f"{plural}/{name} is gone") from error
            raise
        return cast(dict[str, Any], result)

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
                await self._call(
                    self._custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, patch
                )
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
            if namespace is None:
                await self._call(
                    self._custom.create_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings", body
                )
            else:
                await self._call(
                    self._custom.create_namespaced_custom_object, "kopf.dev", "v1", namespace, "kopfpeerings", body
                )
        except kubernetes.client.ApiException as error:
            if error.status != 409:  # another replica made it first
                raise

    async def create_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about ``body``; a failure is logged, never raised (Events are best effort)."""
        meta = body["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # A plain body, and the answer left unread into models: the client's model classes cost more CPU
        # than the rest of posting an Event.
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

        def post() -> None:
            core: Any = self._core  # typed for model bodies and answers; this passes and reads neither
            answer = core.create_namespaced_event(str(meta["namespace"]), event, _preload_content=False)
            answer.read()
            answer.release_conn()

        try:
            await self._call(post)
        except (kubernetes.client.ApiException, OSError) as error:
            logger.warning("Event %s for %s/%s not posted: %s", reason, meta["namespace"], meta["name"], error)

    async def get_peering(self, name: str, namespace: str | None) -> dict[str, Any] | None:
        """Kopf's peering object: ClusterKopfPeering when ``namespace`` is None, else KopfPeering."""
        try:
            if namespace is None:
                result = await self._call(
                    self._custom.get_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings", name
                )
            else:
                result = await self._call(
                    self._custom.get_namespaced_custom_object, "kopf.dev", "v1", namespace, "kopfpeerings", name
                )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], result)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data (base64 values); None when it does not exist; Forbidden when RBAC refuses."""
        try:
            secret = await self._call(self._core.read_namespaced_secret, name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise Forbidden(f"get secrets {namespace}/{name}") from None  # the body may quote the request
            raise
        return {key: str(value) for key, value in (secret.data or {}).items()}

    async def config_map_data(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """A ConfigMap's data (text) and binaryData (base64); None when it does not exist; Forbidden when RBAC
        refuses."""
        try:
            config_map = await self._call(self._core.read_namespaced_config_map, name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise Forbidden(f"get configmaps {namespace}/{name}") from None
            raise
        text = {str(key): str(value) for key, value in (config_map.data or {}).items()}
        binary = {str(key): str(value) for key, value in (config_map.binary_data or {}).items()}
        return text, binary

    async def namespace_labels(self, name: str) -> dict[str, str] | None:
        """A namespace's labels; None when it does not exist. Listed by name, so that the ClusterRole's
        list on namespaces suffices (no get)."""
        try:
            listed = await self._call(self._core.list_namespace, field_selector=f"metadata.name={name}", limit=1)
        except kubernetes.client.ApiException as error:
            if error.status == 403:
                raise Forbidden(f"list namespaces {name}") from None
            raise
        items = listed.items or []
        if not items:
            return None
        metadata = items[0].metadata
        return dict((metadata.labels if metadata is not None else None) or {})


def _reason(error: kubernetes.client.ApiException) -> str:
    """The API server's own message of a refusal (it names the request, never a Secret's content)."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)
