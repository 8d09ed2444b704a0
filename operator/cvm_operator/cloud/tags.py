"""Typed facade over the official async SDK client of the Tag API (``tag`` 2018-08-13): the CVM API cannot change
the tags of an existing image or instance, the Tag API can."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cvm_operator.cloud import audit
from cvm_operator.cloud.api import sdk_call
from cvm_operator.cloud.ratelimit import RateLimiter

#: Most tags ReplaceTags or DeleteTags take in one ModifyResourceTags call (documented limit).
MAX_TAGS_PER_CALL = 10
#: The Tag API is one global service: its calls are paced per account and action, whatever the region.
GLOBAL_SCOPE = "global"
RESOURCE_KINDS = frozenset({"image", "instance"})


def resource_name(region: str, account_id: str, kind: str, resource_id: str) -> str:
    """The six-segment name of a CVM resource, ``qcs::cvm:<region>:uin/<account id>:<kind>/<id>``.

    ``account_id`` is the owner's (an image's ImageCreator), ``kind`` is ``image`` or ``instance``.
    """
    if kind not in RESOURCE_KINDS:
        raise ValueError(f"kind must be one of {sorted(RESOURCE_KINDS)}, not {kind!r}")
    for label, value in (("region", region), ("account_id", account_id), ("resource_id", resource_id)):
        if not value or ":" in value or "/" in value:
            raise ValueError(f"{label} {value!r} cannot be part of a resource name")
    if not account_id.isdigit():
        raise ValueError(f"account_id {account_id!r} must be a numeric account id")
    return f"qcs::cvm:{region}:uin/{account_id}:{kind}/{resource_id}"


@dataclass(frozen=True)
class TagChange:
    """One ModifyResourceTags call: tags to set and tag keys to remove (at most 10 of each)."""

    replace: tuple[tuple[str, str], ...]
    delete: tuple[str, ...]

    def to_api(self, resource: str) -> dict[str, Any]:
        params: dict[str, Any] = {"Resource": resource}
        if self.replace:
            params["ReplaceTags"] = [{"TagKey": key, "TagValue": value} for key, value in self.replace]
        if self.delete:
            params["DeleteTags"] = [{"TagKey": key} for key in self.delete]
        return params


def plan_tag_changes(
    replace: Mapping[str, str], delete: Sequence[str], per_call: int = MAX_TAGS_PER_CALL
) -> list[TagChange]:
    """Split a change into as few calls as the per-call limit allows (one for up to 10 of each);
    nothing to do gives no call. A key both set and deleted is refused, as the API refuses it."""
    both = sorted(set(replace) & set(delete))
    if both:
        raise ValueError(f"tag keys both replaced and deleted: {both}")
    pairs = sorted(replace.items())
    keys = sorted(dict.fromkeys(delete))
    calls = max(-(-len(pairs) // per_call), -(-len(keys) // per_call))
    return [
        TagChange(tuple(pairs[i * per_call : (i + 1) * per_call]), tuple(keys[i * per_call : (i + 1) * per_call]))
        for i in range(calls)
    ]


def mapping_tags(data: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``GetResources`` output as resource name → tags."""
    return {
        str(item["Resource"]): {str(t["TagKey"]): str(t.get("TagValue") or "") for t in item.get("Tags") or ()}
        for item in data.get("ResourceTagMappingList") or ()
    }


class TagApi:
    """Tag API calls for one account, paced by the shared rate limiter.

    Every method raises :class:`~cvm_operator.cloud.errors.CloudError` on failure.
    Obtain instances from :meth:`cvm_operator.cloud.pool.CloudPool.tags`.
    """

    def __init__(
        self,
        client: Any,
        *,
        account: str,
        region: str,
        rate_limiter: RateLimiter,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._account = account
        self.region = region
        self._rate_limiter = rate_limiter
        self._on_write = on_write
        """Called after each write (the CVM client's lookups read tags too)."""

    async def close(self) -> None:
        await self._client.close()

    async def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call a Tag API ``action``: rate-limited, counted in metrics, errors wrapped."""
        await self._rate_limiter.acquire_counted(self._account, GLOBAL_SCOPE, action)
        try:
            return await sdk_call(self._client, action, params, where="tag")
        finally:
            if self._on_write is not None and audit.is_write(action):
                self._on_write()

    async def modify_resource_tags(self, resource: str, replace: Mapping[str, str], delete: Sequence[str]) -> None:
        """Set ``replace`` and remove the keys in ``delete`` on ``resource`` (a :func:`resource_name`).

        One ModifyResourceTags call for up to 10 tags of each; none when there is nothing to change.
        """
        for change in plan_tag_changes(replace, delete):
            await self.call("ModifyResourceTags", change.to_api(resource))

    async def resource_tags(self, resources: Sequence[str]) -> dict[str, dict[str, str]]:
        """The tags of each named resource the account owns (others are absent), up to 10 names."""
        data = await self.call("GetResources", {"ResourceList": list(resources)})
        return mapping_tags(data)
