"""STS (``sts`` 2018-08-13): who the credentials belong to. The Tag API names a resource by its owner's
account id, which instances (unlike images) do not report; GetCallerIdentity gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cvm_operator.cloud.api import sdk_call
from cvm_operator.cloud.errors import INVALID_RESPONSE, CloudError
from cvm_operator.cloud.ratelimit import RateLimiter
from cvm_operator.cloud.tags import GLOBAL_SCOPE


@dataclass(frozen=True)
class CallerIdentity:
    """The identity behind a pair of keys."""

    account_id: str
    """The (root) account the caller belongs to: the owner segment of resource names."""
    user_id: str
    principal_id: str
    type: str
    arn: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CallerIdentity:
        account_id = str(data.get("AccountId") or "")
        if not account_id.isdigit():
            raise CloudError(
                INVALID_RESPONSE,
                f"GetCallerIdentity gave no numeric AccountId ({account_id!r})",
                data.get("RequestId"),
                "GetCallerIdentity",
            )
        return cls(
            account_id=account_id,
            user_id=str(data.get("UserId") or ""),
            principal_id=str(data.get("PrincipalId") or ""),
            type=str(data.get("Type") or ""),
            arn=str(data.get("Arn") or ""),
        )


class StsApi:
    """STS calls for one account, paced by the shared rate limiter (STS is global, like the Tag API).

    Every method raises :class:`~cvm_operator.cloud.errors.CloudError` on failure.
    """

    def __init__(self, client: Any, *, account: str, rate_limiter: RateLimiter) -> None:
        self._client = client
        self._account = account
        self._rate_limiter = rate_limiter

    async def close(self) -> None:
        await self._client.close()

    async def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call an STS ``action``: rate-limited, counted in metrics, errors wrapped."""
        await self._rate_limiter.acquire_counted(self._account, GLOBAL_SCOPE, action)
        return await sdk_call(self._client, action, params, where="sts")

    async def caller_identity(self) -> CallerIdentity:
        return CallerIdentity.from_api(await self.call("GetCallerIdentity", {}))
