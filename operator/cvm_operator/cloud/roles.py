"""The operator's default account without long-lived keys in the pod: temporary keys of a CAM role from
the SDK's own credential classes.

- ``STSAssumeRoleCredential``: the keys in ``TENCENTCLOUD_SECRET_ID``/``TENCENTCLOUD_SECRET_KEY``
  assume the role named by ``--assume-role-arn`` (or ``TENCENTCLOUD_ASSUME_ROLE_ARN``);
- ``OIDCRoleArnCredential``: a web identity token (TKE workload identity sets ``TKE_REGION``,
  ``TKE_PROVIDER_ID``, ``TKE_WEB_IDENTITY_TOKEN_FILE`` and ``TKE_ROLE_ARN``), read again at each
  renewal because the kubelet rotates the file.

The SDK classes renew before expiry (AssumeRole after a tenth of the lifetime, web identity with a
tenth left) but do so with a blocking HTTP call inside ``get_credential_info``. :class:`RoleCredentials`
therefore hands the SDK clients the last keys it holds and renews them in a worker thread, before a call,
once the SDK class's renewal time has come: signing never waits for the network on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tencentcloud.common import credential as sdk_credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from cvm_operator import metrics
from cvm_operator.cloud.credentials import Credentials, CredentialsError, default_credentials
from cvm_operator.cloud.errors import CloudError, ErrorClass, classify

logger = logging.getLogger(__name__)

ENV_ROLE_ARN = "TENCENTCLOUD_ASSUME_ROLE_ARN"
ENV_SESSION_NAME = "TENCENTCLOUD_ASSUME_ROLE_SESSION_NAME"
ENV_SESSION_DURATION = "TENCENTCLOUD_ASSUME_ROLE_SESSION_DURATION"
TKE_REGION, TKE_PROVIDER_ID, TKE_TOKEN_FILE, TKE_ROLE_ARN = (
    "TKE_REGION",
    "TKE_PROVIDER_ID",
    "TKE_WEB_IDENTITY_TOKEN_FILE",
    "TKE_ROLE_ARN",
)
TKE_ENV = (TKE_REGION, TKE_PROVIDER_ID, TKE_TOKEN_FILE, TKE_ROLE_ARN)
DEFAULT_SESSION_NAME = "cvm-operator"
DEFAULT_SESSION_DURATION = 7200
MAX_SESSION_DURATION = 43200
#: The operator's own code for credentials that cannot be had (the STS error is in the message). Not a
#: cloud code, so that no reconciler mistakes a refused role for a missing resource (``*.NotFound``).
CREDENTIALS_UNAVAILABLE = "CredentialsUnavailable"


@dataclass(frozen=True)
class RoleSettings:
    """``--assume-role-arn``, ``--role-session-name``, ``--role-session-duration``."""

    role_arn: str | None = None
    session_name: str = DEFAULT_SESSION_NAME
    duration: int = DEFAULT_SESSION_DURATION

    @classmethod
    def from_options(
        cls,
        role_arn: str | None,
        session_name: str | None,
        duration: int | None,
        environ: Mapping[str, str] | None = None,
    ) -> RoleSettings:
        env = os.environ if environ is None else environ
        raw_duration = duration if duration is not None else env.get(ENV_SESSION_DURATION) or DEFAULT_SESSION_DURATION
        try:
            seconds = int(raw_duration)
        except ValueError as exc:
            raise CredentialsError(f"{ENV_SESSION_DURATION} must be a number of seconds") from exc
        if not 1 <= seconds <= MAX_SESSION_DURATION:
            raise CredentialsError(f"the role session duration must be 1..{MAX_SESSION_DURATION} seconds")
        return cls(
            role_arn=(role_arn or env.get(ENV_ROLE_ARN) or "").strip() or None,
            session_name=(session_name or env.get(ENV_SESSION_NAME) or DEFAULT_SESSION_NAME).strip(),
            duration=seconds,
        )


@dataclass(frozen=True)
class AssumeRolePlan:
    keys: Credentials
    role_arn: str
    session_name: str
    duration: int


@dataclass(frozen=True)
class WebIdentityPlan:
    role_arn: str
    session_name: str
    duration: int


DefaultPlan = Credentials | AssumeRolePlan | WebIdentityPlan


def plan_default_credentials(settings: RoleSettings, environ: Mapping[str, str] | None = None) -> DefaultPlan | None:
    """Which default credentials the environment and flags ask for, in the SDK's order: keys from the
    environment (assuming a role with them when one is named), else a TKE web identity; None: none."""
    env = os.environ if environ is None else environ
    keys = default_credentials(env)
    if settings.role_arn:
        if keys is None:
            raise CredentialsError(
                f"assuming role {settings.role_arn} needs TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"
            )
        return AssumeRolePlan(keys, settings.role_arn, settings.session_name, settings.duration)
    if keys is not None:
        return keys
    present = [name for name in TKE_ENV if env.get(name)]
    if not present:
        return None
    missing = [name for name in TKE_ENV if not env.get(name)]
    if missing:
        raise CredentialsError(f"web identity: {', '.join(present)} set but {', '.join(missing)} not")
    return WebIdentityPlan(env[TKE_ROLE_ARN], settings.session_name, settings.duration)


class _TkeWebIdentity(sdk_credential.OIDCRoleArnCredential):  # type: ignore[misc]
    """The SDK's TKE web identity credential (as ``DefaultTkeOIDCRoleArnProvider`` builds it: it reads
    the TKE_* variables and the token file again at each renewal), with the operator's session name and
    duration instead of the SDK's fixed ones."""

    def __init__(self, session_name: str, duration: int, endpoint: str | None) -> None:
        super().__init__("", "", "", "", session_name, duration, endpoint)
        self._operator_session_name = session_name
        self._is_tke = True
        self._init_from_tke()

    def _init_from_tke(self) -> None:
        super()._init_from_tke()
        self._role_session_name = self._operator_session_name


class RoleCredentials:
    """Temporary keys of a role, renewed before they expire; what the SDK clients sign with.

    One object per process (it keys the client cache), so every client shares one renewal.
    """

    def __init__(self, source: Any, *, action: str, role_arn: str) -> None:
        self._source = source
        self.action = action
        """The STS action that issues the keys (for metrics and messages)."""
        self.role_arn = role_arn
        self.renewals = 0
        self._info: tuple[str, str, str] | None = None
        self._lock = asyncio.Lock()

    @property
    def label(self) -> str:
        """Names the account in logs and rate limits (never a key)."""
        return f"role {self.role_arn}"

    def __repr__(self) -> str:
        return f"RoleCredentials({self.role_arn!r}, {self.action})"

    def get_credential_info(self) -> tuple[str, str, str]:
        """The SDK clients' signing hook: the current keys, without I/O (:meth:`refresh_if_due` comes first)."""
        if self._info is None:
            raise CloudError(CREDENTIALS_UNAVAILABLE, f"{self.label}: no temporary credentials yet", None, self.action)
        return self._info

    def due(self, now: float | None = None) -> bool:
        # The SDK class's own renewal time, compared as it does (whole seconds); reading it spares a
        # thread hop per call.
        renew_at = float(getattr(self._source, "_expired_time", 0) or 0)
        return self._info is None or renew_at < int(time.time() if now is None else now)

    async def refresh_if_due(self) -> None:
        """Renew the keys in a worker thread when the SDK class would; concurrent callers share one renewal."""
        if not self.due():
            return
        async with self._lock:
            if not self.due():
                return
            started = time.monotonic()
            try:
                info = await asyncio.to_thread(self._source.get_credential_info)
            except TencentCloudSDKException as exc:
                code = str(exc.get_code() or "ClientError")
                metrics.cloud_api_calls_total.labels(self.action, code).inc()
                raise self._error(code, str(exc.get_message() or ""), exc.get_request_id()) from exc
            except (OSError, KeyError, TypeError, ValueError) as exc:
                # The token file or TKE_* variables went missing, or STS answered something unreadable.
                metrics.cloud_api_calls_total.labels(self.action, CREDENTIALS_UNAVAILABLE).inc()
                raise CloudError(
                    CREDENTIALS_UNAVAILABLE, f"{self.label}: {type(exc).__name__}: {exc}", None, self.action
                ) from exc
            fresh = (str(info[0]), str(info[1]), str(info[2]))
            if fresh == self._info:
                return  # the SDK class did not think it due after all
            metrics.cloud_api_calls_total.labels(self.action, "OK").inc()
            metrics.cloud_api_call_duration_seconds.labels(self.action).observe(time.monotonic() - started)
            self._info = fresh
            self.renewals += 1
            renew_at = float(getattr(self._source, "_expired_time", 0) or 0)
            logger.info(
                "temporary credentials of %s renewed with %s (next renewal at %s)",
                self.role_arn,
                self.action,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(renew_at)) if renew_at else "-",
            )

    def _error(self, code: str, message: str, request_id: str | None) -> CloudError:
        if classify(code) is ErrorClass.TRANSIENT:
            return CloudError(code, f"{self.label}: {message}", request_id, self.action)
        return CloudError(CREDENTIALS_UNAVAILABLE, f"{self.label}: {code}: {message}", request_id, self.action)


AnyCredentials = Credentials | RoleCredentials


def build_default_credentials(plan: DefaultPlan | None, sts_endpoint: str | None) -> AnyCredentials | None:
    """The credentials a plan names. ``sts_endpoint`` is a URL for a custom endpoint (the emulator; the
    SDK classes take a scheme in front of the host) or None for the SDK's own STS endpoint."""
    if plan is None or isinstance(plan, Credentials):
        return plan
    if isinstance(plan, AssumeRolePlan):
        source = sdk_credential.STSAssumeRoleCredential(
            plan.keys.secret_id, plan.keys.secret_key, plan.role_arn, plan.session_name, plan.duration,
            endpoint=sts_endpoint,
        )  # fmt: skip
        return RoleCredentials(source, action="AssumeRole", role_arn=plan.role_arn)
    try:
        web = _TkeWebIdentity(plan.session_name, plan.duration, sts_endpoint)
    except OSError as exc:
        raise CredentialsError(f"web identity: {exc}") from exc
    return RoleCredentials(web, action="AssumeRoleWithWebIdentity", role_arn=plan.role_arn)


def credentials_label(credentials: AnyCredentials) -> str:
    """How logs and rate limits name an account: the SecretId of keys, the role of temporary keys."""
    return credentials.label if isinstance(credentials, RoleCredentials) else credentials.secret_id
