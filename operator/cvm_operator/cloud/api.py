"""Typed facade over the official async SDK client of the CVM API for one (credentials, region)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from cvm_operator import metrics
from cvm_operator.cloud import audit
from cvm_operator.cloud.batcher import Batcher
from cvm_operator.cloud.errors import (
    CLIENT_NETWORK_ERROR,
    INVALID_RESPONSE,
    CloudError,
)
from cvm_operator.cloud.ratelimit import RateLimiter
from cvm_operator.cloud.resources import (
    CloudImage,
    CloudInstance,
    LaunchOptions,
    LoginSettings,
    Region,
    SyncedImage,
    SystemDisk,
    Zone,
    tags_to_api,
)

logger = logging.getLogger(__name__)

#: Most ids (or results) one Describe*/instance action takes or returns per call.
MAX_PAGE = 100
READ_AHEAD_FRESH_FOR = 10.0
"""Seconds a value read ahead (see Batcher) answers a lookup: a poll of thousands of objects takes a few."""


def _chunks(items: Sequence[str], size: int = MAX_PAGE) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _bool_str(value: bool) -> str:
    # CreateImage takes ForcePoweroff and Sysprep as the strings "true"/"false".
    return "true" if value else "false"


def _filters(filters: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    return [{"Name": name, "Values": list(values)} for name, values in filters.items()]


def _tag_specification(resource_type: str, tags: Mapping[str, str] | None) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tags_to_api(tags)}] if tags else []


def _names_an_id(error: CloudError) -> bool:
    """Whether a Describe error is about one of the requested ids (e.g. a malformed one), as opposed
    to the whole call (auth, throttling), so that asking per id can isolate it."""
    return not error.transient and (
        "Malformed" in error.code
        or error.code.startswith(("InvalidImageId", "InvalidInstanceId", "InvalidParameterValue"))
    )


def _message_text(message: Any) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")[:500]
    return "" if message is None else str(message)


def without_nulls(value: Any) -> Any:
    """``value`` with null members left out at every depth, as the SDK's models serialize both
    requests and responses: absent and null mean the same to the API."""
    if isinstance(value, Mapping):
        return {key: without_nulls(member) for key, member in value.items() if member is not None}
    if isinstance(value, list):
        return [without_nulls(member) for member in value]
    return value


async def sdk_call(client: Any, action: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Call ``action`` on an official async SDK ``client`` (the SDK's ``CommonClient`` for one service);
    the response as a plain dict. Counted in metrics; every failure raised as :class:`CloudError`; writes
    audited with their RequestId. ``where`` (a region, or the service name) only labels log lines.

    Plain dicts, not the SDK's generated models: those cost ~5 MiB of memory for CVM alone, and the API
    (and the emulator) refuse parameters they do not know anyway."""
    # Temporary keys of a role are renewed first, off the event loop (see cloud/roles.py).
    refresh = getattr(getattr(client, "credential", None), "refresh_if_due", None)
    if refresh is not None:
        await refresh()
    started = time.monotonic()
    try:
        answer = await client.call_and_deserialize(action, without_nulls(params))
        result: dict[str, Any] = without_nulls(answer["Response"])
    except TencentCloudSDKException as exc:
        error = CloudError(
            str(exc.get_code() or "ClientError"), _message_text(exc.get_message()), exc.get_request_id(), action
        )
    except httpx.TransportError as exc:
        # The async SDK lets transport failures through; the sync one calls them ClientNetworkError.
        error = CloudError(CLIENT_NETWORK_ERROR, f"{type(exc).__name__}: {exc}", None, action)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        error = CloudError(INVALID_RESPONSE, f"unreadable response: {exc!r}", None, action)
    else:
        metrics.cloud_api_call_duration_seconds.labels(action).observe(time.monotonic() - started)
        metrics.cloud_api_calls_total.labels(action, "OK").inc()
        logger.debug("%s %s OK RequestId=%s", where, action, result.get("RequestId"))
        if audit.is_write(action):
            audit.record(action, where, result.get("RequestId"), "OK")
        return result
    metrics.cloud_api_call_duration_seconds.labels(action).observe(time.monotonic() - started)
    metrics.cloud_api_calls_total.labels(action, error.code).inc()
    logger.debug("%s %s failed: %s", where, action, error)
    if audit.is_write(action):
        audit.record(action, where, error.request_id, error.code)
    raise error


class CvmApi:
    """CVM API calls for one account and region, paced by the shared rate limiter.

    Every method raises :class:`~cvm_operator.cloud.errors.CloudError` on failure. Lookups by id
    (:meth:`describe_image`, :meth:`describe_instances`, ...) are coalesced with concurrent lookups
    into one call per up to 100 ids, and return None for ids the cloud does not know.
    Obtain instances from :meth:`cvm_operator.cloud.pool.CloudPool.api`.
    """

    def __init__(
        self,
        client: Any,
        *,
        account: str,
        region: str,
        rate_limiter: RateLimiter,
        batch_window: float = 0.02,
        max_batch: int = MAX_PAGE,
    ) -> None:
        self._client = client
        self._account = account
        self.region = region
        self._rate_limiter = rate_limiter
        self._image_batcher: Batcher[str, CloudImage] = Batcher(
            self._fetch_images, window=batch_window, max_batch=max_batch, fresh_for=READ_AHEAD_FRESH_FOR
        )
        self._instance_batcher: Batcher[str, CloudInstance] = Batcher(
            self._fetch_instances, window=batch_window, max_batch=max_batch, fresh_for=READ_AHEAD_FRESH_FOR
        )

    async def close(self) -> None:
        await self._image_batcher.close()
        await self._instance_batcher.close()
        await self._client.close()

    # ------------------------------------------------------------------ transport

    async def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``action`` with PascalCase ``params``; the response as a plain dict. Rate-limited, counted
        in metrics, errors wrapped."""
        await self._rate_limiter.acquire_counted(self._account, self.region, action)
        try:
            return await sdk_call(self._client, action, params, where=self.region)
        finally:
            if audit.is_write(action):
                self.invalidate_read_ahead()

    def invalidate_read_ahead(self) -> None:
        """After a write (here, or to tags through the Tag API): lookups ask the cloud again."""
        self._image_batcher.invalidate()
        self._instance_batcher.invalidate()

    def _require(self, action: str, data: Mapping[str, Any], key: str) -> Any:
        value = data.get(key)
        if value is None or value == []:
            raise CloudError(INVALID_RESPONSE, f"response has no {key}", data.get("RequestId"), action)
        return value

    # ------------------------------------------------------------------ images

    async def describe_image(self, image_id: str) -> CloudImage | None:
        """The image, or None if this account cannot see it (deleted, never existed, not shared)."""
        return await self._image_batcher.get(image_id)

    async def describe_images(self, image_ids: Iterable[str]) -> dict[str, CloudImage | None]:
        """Images by id (None for unknown ids); batched with concurrent lookups."""
        return await self._image_batcher.get_many(image_ids)

    async def _fetch_images(self, image_ids: Sequence[str]) -> dict[str, CloudImage | Exception]:
        try:
            data = await self.call("DescribeImages", {"ImageIds": list(image_ids), "Limit": MAX_PAGE})
        except CloudError as exc:
            if len(image_ids) == 1 or not _names_an_id(exc):
                raise
            return await self._fetch_one_by_one(image_ids, self._fetch_images)
        images = (CloudImage.from_api(item) for item in data.get("ImageSet") or ())
        return {image.image_id: image for image in images}

    @staticmethod
    async def _fetch_one_by_one(ids: Sequence[str], fetch: Any) -> dict[str, Any]:
        # One malformed id fails the whole call; asking for each id alone confines the error to its callers.
        outcomes = await asyncio.gather(*(fetch([one]) for one in ids), return_exceptions=True)
        results: dict[str, Any] = {}
        for one, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, Exception):
                results[one] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            elif one in outcome:
                results[one] = outcome[one]
        return results

    async def find_images(
        self, filters: Mapping[str, Sequence[str]], *, instance_type: str | None = None
    ) -> list[CloudImage]:
        """All images matching ``filters`` (DescribeImages filter names such as ``image-type``,
        ``image-name``, ``platform``, ``tag:<key>``), paging through 100 at a time."""
        params: dict[str, Any] = {"Filters": _filters(filters)} if filters else {}
        if instance_type:
            params["InstanceType"] = instance_type
        images: list[CloudImage] = []
        while True:
            data = await self.call("DescribeImages", {**params, "Offset": len(images), "Limit": MAX_PAGE})
            page = [CloudImage.from_api(item) for item in data.get("ImageSet") or ()]
            images.extend(page)
            if not page or len(images) >= int(data.get("TotalCount") or 0):
                return images

    async def image_from_family(self, family: str) -> CloudImage | None:
        """DescribeImageFromFamily: the newest usable image of ``family`` (the cloud skips deprecated
        images), or None when the family has none."""
        data = await self.call("DescribeImageFromFamily", {"ImageFamily": family})
        found = data.get("Image")
        return CloudImage.from_api(found) if found else None

    async def create_image(
        self,
        name: str,
        instance_id: str,
        *,
        description: str | None = None,
        force_poweroff: bool = False,
        sysprep: bool = False,
        data_disk_ids: Sequence[str] = (),
        family: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """CreateImage from an instance; returns the new image id (state CREATING)."""
        params: dict[str, Any] = {
            "ImageName": name,
            "InstanceId": instance_id,
            "ForcePoweroff": _bool_str(force_poweroff),
        }
        if description:
            params["ImageDescription"] = description
        if sysprep:
            params["Sysprep"] = _bool_str(sysprep)
        if data_disk_ids:
            params["DataDiskIds"] = list(data_disk_ids)
        if family:
            params["ImageFamily"] = family
        if tags:
            params["TagSpecification"] = _tag_specification("image", tags)
        data = await self.call("CreateImage", params)
        return str(self._require("CreateImage", data, "ImageId"))

    async def import_image(
        self,
        name: str,
        url: str,
        *,
        os_type: str,
        os_version: str,
        architecture: str,
        description: str | None = None,
        boot_mode: str | None = None,
        license_type: str | None = None,
        force: bool = False,
        family: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """ImportImage from a disk file URL; returns the new image id (state IMPORTING)."""
        params: dict[str, Any] = {
            "ImageName": name,
            "ImageUrl": url,
            "OsType": os_type,
            "OsVersion": os_version,
            "Architecture": architecture,
        }
        if description:
            params["ImageDescription"] = description
        if boot_mode:
            params["BootMode"] = boot_mode
        if license_type:
            params["LicenseType"] = license_type
        if force:
            params["Force"] = True
        if family:
            params["ImageFamily"] = family
        if tags:
            params["TagSpecification"] = _tag_specification("image", tags)
        data = await self.call("ImportImage", params)
        return str(self._require("ImportImage", data, "ImageId"))

    async def sync_images(
        self,
        image_id: str,
        regions: Sequence[str],
        *,
        name: str | None = None,
        encrypt: bool = False,
        kms_key_id: str | None = None,
    ) -> list[SyncedImage]:
        """SyncImages (copy) one image to ``regions``; returns the new image id per region."""
        params: dict[str, Any] = {
            "ImageIds": [image_id],
            "DestinationRegions": list(regions),
            "ImageSetRequired": True,
        }
        if name:
            params["ImageName"] = name
        if encrypt:
            params["Encrypt"] = True
            if kms_key_id:
                params["KmsKeyId"] = kms_key_id
        data = await self.call("SyncImages", params)
        return [SyncedImage(region=item["Region"], image_id=item["ImageId"]) for item in data.get("ImageSet") or ()]

    async def share_image(self, image_id: str, account_ids: Sequence[str]) -> None:
        """Share a custom image with other root accounts (same region)."""
        await self._modify_share(image_id, account_ids, "SHARE")

    async def unshare_image(self, image_id: str, account_ids: Sequence[str]) -> None:
        """Cancel sharing of an image with the given accounts."""
        await self._modify_share(image_id, account_ids, "CANCEL")

    async def _modify_share(self, image_id: str, account_ids: Sequence[str], permission: str) -> None:
        await self.call(
            "ModifyImageSharePermission",
            {"ImageId": image_id, "AccountIds": list(account_ids), "Permission": permission},
        )

    async def describe_share_permission(self, image_id: str) -> list[str]:
        """Account ids the image is shared with."""
        data = await self.call("DescribeImageSharePermission", {"ImageId": image_id})
        return [str(item["AccountId"]) for item in data.get("SharePermissionSet") or ()]

    async def delete_images(self, image_ids: Sequence[str], *, delete_snapshots: bool = False) -> None:
        params: dict[str, Any] = {"ImageIds": _unique(image_ids)}
        if delete_snapshots:
            params["DeleteBindedSnap"] = True
        await self.call("DeleteImages", params)

    async def modify_image_attribute(
        self,
        image_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        family: str | None = None,
        deprecated: bool | None = None,
    ) -> None:
        """Change the given attributes (None leaves one unchanged; no call when nothing is given)."""
        params: dict[str, Any] = {}
        if name is not None:
            params["ImageName"] = name
        if description is not None:
            params["ImageDescription"] = description
        if family is not None:
            params["ImageFamily"] = family
        if deprecated is not None:
            params["ImageDeprecated"] = deprecated
        if params:
            await self.call("ModifyImageAttribute", {"ImageId": image_id, **params})

    async def describe_image_quota(self) -> int:
        """How many custom images this account may hold in the region."""
        data = await self.call("DescribeImageQuota", {})
        return int(self._require("DescribeImageQuota", data, "ImageNumQuota"))

    # ------------------------------------------------------------------ instances

    async def run_instances(
        self,
        *,
        client_token: str,
        zone: str,
        image_id: str,
        instance_type: str,
        name: str | None = None,
        host_name: str | None = None,
        system_disk: SystemDisk | None = None,
        login: LoginSettings | None = None,
        tags: Mapping[str, str] | None = None,
        options: LaunchOptions | None = None,
    ) -> str:
        """RunInstances for one instance; returns its id (state PENDING). The same ``client_token``
        (at most 64 ASCII characters, e.g. the object UID) returns the same instance again."""
        ids = await self.launch_instances(
            count=1,
            client_token=client_token,
            zone=zone,
            image_id=image_id,
            instance_type=instance_type,
            name=name,
            host_name=host_name,
            system_disk=system_disk,
            login=login,
            tags=tags,
            options=options,
        )
        return ids[0]

    async def launch_instances(
        self,
        *,
        count: int,
        client_token: str,
        zone: str,
        image_id: str,
        instance_type: str,
        name: str | None = None,
        host_name: str | None = None,
        system_disk: SystemDisk | None = None,
        login: LoginSettings | None = None,
        tags: Mapping[str, str] | None = None,
        options: LaunchOptions | None = None,
    ) -> list[str]:
        """One RunInstances call for ``count`` (1-500) identical instances; their ids. A ``name`` with
        ``{R:x}`` numbers them x, x+1, ...; the same ``client_token`` returns the same instances again.
        ``options`` adds network, public access, data disks, user data, billing and the rest."""
        placement: dict[str, Any] = {"Zone": zone}
        if options is not None and options.project_id is not None:
            placement["ProjectId"] = options.project_id
        params: dict[str, Any] = {
            **(options.to_api() if options is not None else {}),
            "ClientToken": client_token,
            "Placement": placement,
            "ImageId": image_id,
            "InstanceType": instance_type,
            "InstanceCount": count,
        }
        if name:
            params["InstanceName"] = name
        if host_name:
            params["HostName"] = host_name
        if system_disk is not None and system_disk.to_api():
            params["SystemDisk"] = system_disk.to_api()
        if login is not None and login.to_api():
            params["LoginSettings"] = login.to_api()
        if tags:
            params["TagSpecification"] = _tag_specification("instance", tags)
        data = await self.call("RunInstances", params)
        return [str(instance_id) for instance_id in self._require("RunInstances", data, "InstanceIdSet")]

    async def describe_instance(self, instance_id: str) -> CloudInstance | None:
        """The instance, or None if it does not exist (any more)."""
        return await self._instance_batcher.get(instance_id)

    async def describe_instances(self, instance_ids: Iterable[str]) -> dict[str, CloudInstance | None]:
        """Instances by id (None for unknown ids); batched with concurrent lookups."""
        return await self._instance_batcher.get_many(instance_ids)

    async def _fetch_instances(self, instance_ids: Sequence[str]) -> dict[str, CloudInstance | Exception]:
        try:
            data = await self.call("DescribeInstances", {"InstanceIds": list(instance_ids), "Limit": MAX_PAGE})
        except CloudError as exc:
            if len(instance_ids) == 1 or not _names_an_id(exc):
                raise
            return await self._fetch_one_by_one(instance_ids, self._fetch_instances)
        instances = (CloudInstance.from_api(item) for item in data.get("InstanceSet") or ())
        return {instance.instance_id: instance for instance in instances}

    async def find_instances(self, filters: Mapping[str, Sequence[str]]) -> list[CloudInstance]:
        """All instances matching DescribeInstances ``filters`` (``instance-name``, ``tag:<key>``, ...)."""
        params: dict[str, Any] = {"Filters": _filters(filters)} if filters else {}
        instances: list[CloudInstance] = []
        while True:
            data = await self.call("DescribeInstances", {**params, "Offset": len(instances), "Limit": MAX_PAGE})
            page = [CloudInstance.from_api(item) for item in data.get("InstanceSet") or ()]
            instances.extend(page)
            if not page or len(instances) >= int(data.get("TotalCount") or 0):
                return instances

    async def modify_instances_attribute(
        self,
        instance_ids: Sequence[str],
        *,
        name: str | None = None,
        security_group_ids: Sequence[str] | None = None,
        disable_api_termination: bool | None = None,
    ) -> None:
        """ModifyInstancesAttribute, one call per given attribute (the cloud takes one attribute per request)."""
        changes: list[dict[str, Any]] = []
        if name is not None:
            changes.append({"InstanceName": name})
        if security_group_ids is not None:
            changes.append({"SecurityGroups": list(security_group_ids)})
        if disable_api_termination is not None:
            changes.append({"DisableApiTermination": disable_api_termination})
        for change in changes:
            await self._per_hundred("ModifyInstancesAttribute", instance_ids, change)

    async def start_instances(self, instance_ids: Sequence[str]) -> None:
        await self._per_hundred("StartInstances", instance_ids, {})

    async def stop_instances(
        self, instance_ids: Sequence[str], *, stop_type: str | None = None, stopped_mode: str | None = None
    ) -> None:
        """StopInstances; ``stop_type`` SOFT|HARD|SOFT_FIRST, ``stopped_mode`` KEEP_CHARGING|STOP_CHARGING."""
        extra: dict[str, Any] = {}
        if stop_type:
            extra["StopType"] = stop_type
        if stopped_mode:
            extra["StoppedMode"] = stopped_mode
        await self._per_hundred("StopInstances", instance_ids, extra)

    async def reboot_instances(self, instance_ids: Sequence[str], *, stop_type: str | None = None) -> None:
        await self._per_hundred("RebootInstances", instance_ids, {"StopType": stop_type} if stop_type else {})

    async def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        await self._per_hundred("TerminateInstances", instance_ids, {})

    async def _per_hundred(self, action: str, instance_ids: Sequence[str], extra: Mapping[str, Any]) -> None:
        for chunk in _chunks(_unique(instance_ids)):
            await self.call(action, {"InstanceIds": chunk, **extra})

    async def reset_instance(
        self,
        instance_id: str,
        *,
        image_id: str | None = None,
        login: LoginSettings | None = None,
        host_name: str | None = None,
        system_disk: SystemDisk | None = None,
        user_data: str | None = None,
    ) -> None:
        """ResetInstance (reinstall the OS, from ``image_id`` or the current image). Completion shows
        in :attr:`CloudInstance.latest_operation_state`. ``user_data`` is base64, run at the first boot."""
        params: dict[str, Any] = {"InstanceId": instance_id}
        if image_id:
            params["ImageId"] = image_id
        if login is not None and login.to_api():
            params["LoginSettings"] = login.to_api()
        if host_name:
            params["HostName"] = host_name
        if system_disk is not None and system_disk.to_api():
            params["SystemDisk"] = system_disk.to_api()
        if user_data is not None:
            params["UserData"] = user_data
        await self.call("ResetInstance", params)

    # ------------------------------------------------------------------ regions and zones

    async def describe_regions(self) -> list[Region]:
        data = await self.call("DescribeRegions", {})
        return [
            Region(region=item["Region"], name=item.get("RegionName") or "", state=item.get("RegionState") or "")
            for item in data.get("RegionSet") or ()
        ]

    async def describe_zones(self) -> list[Zone]:
        data = await self.call("DescribeZones", {})
        return [
            Zone(
                zone=item["Zone"],
                name=item.get("ZoneName") or "",
                zone_id=str(item.get("ZoneId") or ""),
                state=item.get("ZoneState") or "",
            )
            for item in data.get("ZoneSet") or ()
        ]
