"""The operator's own Kubernetes calls (Kopf does the watching): status, annotations, secrets, children.

The official client is synchronous; calls run in worker threads so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import kubernetes

from cvm_operator.api import GROUP, VERSION


class Forbidden(Exception):
    """RBAC refuses the operator this request (HTTP 403); the message names the request."""


class Conflict(Exception):
    """The object changed since it was read (HTTP 409)."""


class KubeClient:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api_client = api_client
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)

    @classmethod
    def from_environment(cls) -> KubeClient:
        """In-cluster service account when running in a pod, else $KUBECONFIG or ~/.kube/config."""
        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(config))

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result = await asyncio.to_thread(
                self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], result)

    async def list(self, plural: str, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        result = await asyncio.to_thread(
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            label_selector=label_selector,
        )
        return cast(list[dict[str, Any]], cast(dict[str, Any], result)["items"])

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result = await asyncio.to_thread(
            self._custom.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, dict(body)
        )
        return cast(dict[str, Any], result)

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(
                self._custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource (lists such as conditions are replaced whole)."""
        try:
            await asyncio.to_thread(
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

    async def patch_annotations(
        self, plural: str, namespace: str, name: str, annotations: Mapping[str, str | None], resource_version: str
    ) -> dict[str, Any]:
        """Set annotations only if the object is still at ``resource_version`` (raises Conflict otherwise)."""
        patch = {"metadata": {"annotations": dict(annotations), "resourceVersion": resource_version}}
        try:
            result = await asyncio.to_thread(
                self._custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, patch
            )
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                raise Conflict(f"{plural}/{name} changed since it was read") from error
            raise
        return cast(dict[str, Any], result)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data (base64 values); None when it does not exist; Forbidden when RBAC refuses."""
        try:
            secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise Forbidden(f"get secrets {namespace}/{name}") from None  # the body may quote the request
            raise
        return {key: str(value) for key, value in (secret.data or {}).items()}

    async def namespace_labels(self, name: str) -> dict[str, str] | None:
        """A namespace's labels; None when it does not exist. Listed by name, so that the ClusterRole's
        list on namespaces suffices (no get)."""
        try:
            listed = await asyncio.to_thread(self._core.list_namespace, field_selector=f"metadata.name={name}", limit=1)
        except kubernetes.client.ApiException as error:
            if error.status == 403:
                raise Forbidden(f"list namespaces {name}") from None
            raise
        items = listed.items or []
        if not items:
            return None
        metadata = items[0].metadata
        return dict((metadata.labels if metadata is not None else None) or {})
