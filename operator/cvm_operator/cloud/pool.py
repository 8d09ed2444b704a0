"""One official async SDK client per (credentials, region) and API (CVM, Tag; STS per credentials),
created on first use and reused. Credentials are keys (:class:`Credentials`) or a role's temporary keys
(:class:`~cvm_operator.cloud.roles.RoleCredentials`), which the clients sign with as they are renewed."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from tencentcloud.common import credential as sdk_credential
from tencentcloud.common.common_client_async import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cvm_operator.cloud.api import MAX_PAGE, CvmApi
from cvm_operator.cloud.endpoint import Endpoint, parse_endpoint
from cvm_operator.cloud.ratelimit import RateLimiter
from cvm_operator.cloud.roles import AnyCredentials, RoleCredentials, credentials_label
from cvm_operator.cloud.sts import StsApi
from cvm_operator.cloud.tags import TagApi

logger = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_BATCH_WINDOW = 0.02
#: The API versions spoken, by service (the SDK's CommonClient takes any).
API_VERSIONS = {"cvm": "2017-03-12", "tag": "2018-08-13", "sts": "2018-08-13"}


class CloudPool:
    """Owns the SDK clients of the operator. Create one per process; ``await close()`` on shutdown.

    ``endpoint`` is a URL such as ``http://127.0.0.1:9000`` (see
    :func:`~cvm_operator.cloud.endpoint.endpoint_from_options`) or None for Tencent Cloud itself.
    """

    def __init__(
        self,
        endpoint: str | Endpoint | None = None,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        batch_window: float = DEFAULT_BATCH_WINDOW,
        max_batch: int = MAX_PAGE,
        rate_limiter: RateLimiter | None = None,
        language: str = "en-US",
    ) -> None:
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) or endpoint is None else parse_endpoint(endpoint)
        self.request_timeout = request_timeout
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.rate_limiter = rate_limiter or RateLimiter()
        self.language = language
        self._apis: dict[tuple[AnyCredentials, str], CvmApi] = {}
        self._tag_apis: dict[tuple[AnyCredentials, str], TagApi] = {}
        self._sts_apis: dict[AnyCredentials, StsApi] = {}
        self._account_ids: dict[AnyCredentials, str] = {}
        self._account_id_locks: dict[AnyCredentials, asyncio.Lock] = {}
        self._closed = False

    def api(self, credentials: AnyCredentials, region: str) -> CvmApi:
        """The cached :class:`CvmApi` for this account and region."""
        key = self._key(credentials, region)
        api = self._apis.get(key)
        if api is None:
            api = CvmApi(
                self._client("cvm", credentials, region),
                account=credentials_label(credentials),
                region=region,
                rate_limiter=self.rate_limiter,
                batch_window=self.batch_window,
                max_batch=self.max_batch,
            )
            self._apis[key] = api
            where = self.endpoint.url if self.endpoint else "Tencent Cloud"
            logger.info("CVM client for region %s at %s created (%d clients)", region, where, len(self._apis))
        return api

    def tags(self, credentials: AnyCredentials, region: str) -> TagApi:
        """The cached :class:`TagApi` for this account and region (the Tag API is global and resource
        names carry their region; the region is only passed along). A custom endpoint (the emulator)
        serves the Tag API at the same URL as CVM; without one the SDK's Tag endpoint is used."""
        key = self._key(credentials, region)
        api = self._tag_apis.get(key)
        if api is None:
            api = TagApi(
                self._client("tag", credentials, region),
                account=credentials_label(credentials),
                region=region,
                rate_limiter=self.rate_limiter,
                on_write=self.api(credentials, region).invalidate_read_ahead,  # tags are part of what it reads
            )
            self._tag_apis[key] = api
            where = self.endpoint.url if self.endpoint else "Tencent Cloud"
            logger.info("Tag client for region %s at %s created (%d clients)", region, where, len(self._tag_apis))
        return api

    async def account_id(self, credentials: AnyCredentials) -> str:
        """The account id the credentials belong to (the owner segment of Tag API resource names).

        Asked once per credentials with STS GetCallerIdentity (concurrent callers share that call) and
        cached for the life of the pool; a failure is raised as CloudError and not cached.
        """
        known = self._account_ids.get(credentials)
        if known is not None:
            return known
        lock = self._account_id_locks.setdefault(credentials, asyncio.Lock())
        async with lock:
            known = self._account_ids.get(credentials)
            if known is None:
                identity = await self._sts(credentials).caller_identity()
                known = self._account_ids[credentials] = identity.account_id
                logger.info("credentials %s belong to account %s", credentials_label(credentials), known)
        return known

    def _sts(self, credentials: AnyCredentials) -> StsApi:
        if self._closed:
            raise RuntimeError("CloudPool is closed")
        api = self._sts_apis.get(credentials)
        if api is None:
            # STS is global: no region (a custom endpoint serves it at the same URL as CVM).
            api = StsApi(self._client("sts", credentials, ""), account=credentials_label(credentials),
                         rate_limiter=self.rate_limiter)  # fmt: skip
            self._sts_apis[credentials] = api
        return api

    def _key(self, credentials: AnyCredentials, region: str) -> tuple[AnyCredentials, str]:
        if self._closed:
            raise RuntimeError("CloudPool is closed")
        if not region:
            raise ValueError("region is required")
        return credentials, region

    def _profile(self) -> ClientProfile:
        http_profile = HttpProfile(reqTimeout=self.request_timeout, keepAlive=True)
        if self.endpoint is not None:
            http_profile = HttpProfile(
                protocol=self.endpoint.protocol,
                endpoint=self.endpoint.host,
                reqTimeout=self.request_timeout,
                keepAlive=True,
            )
        return ClientProfile(httpProfile=http_profile, language=self.language)

    def _client(self, service: str, credentials: AnyCredentials, region: str) -> CommonClient:
        return CommonClient(service, API_VERSIONS[service], _signer(credentials), region, self._profile())

    async def close(self) -> None:
        """Close every client (idempotent)."""
        self._closed = True
        apis: list[CvmApi | TagApi | StsApi] = [
            *self._apis.values(),
            *self._tag_apis.values(),
            *self._sts_apis.values(),
        ]
        self._apis, self._tag_apis, self._sts_apis = {}, {}, {}
        results = await asyncio.gather(*(api.close() for api in apis), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                logger.warning("closing a cloud API client failed: %s", result)

    async def __aenter__(self) -> CloudPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _signer(credentials: AnyCredentials) -> Any:
    """What an SDK client signs with: the SDK's Credential for keys; the renewing object for a role."""
    if isinstance(credentials, RoleCredentials):
        return credentials
    return sdk_credential.Credential(credentials.secret_id, credentials.secret_key, credentials.token)
