"""The operator's cloud client layer: typed, rate-limited, batched access to the CVM API.

Typical use by a reconciler::

    pool = CloudPool(endpoint_from_options(args.endpoint))       # once per process
    api = pool.api(credentials, spec.region)                      # cached per (credentials, region)
    try:
        image = await api.describe_image(image_id)                # batched; None when gone
    except CloudError as exc:
        if exc.transient: ...                                     # backoff(attempt), Reconciling
        else: ...                                                 # Stalled, reason=exc.reason
    tags = pool.tags(credentials, spec.region)                     # Tag API: change tags of a resource
    await tags.modify_resource_tags(resource_name(region, owner, "image", image_id), {"team": "web"}, ["old"])
    owner = await pool.account_id(credentials)                   # STS GetCallerIdentity, once per credentials
    await pool.close()                                            # on shutdown

``credentials`` are keys (:class:`Credentials`, from the environment or a Secret) or a role's temporary
keys (:class:`RoleCredentials`, see :mod:`cvm_operator.cloud.roles`); every write is audited
(:mod:`cvm_operator.cloud.audit`).
"""

from cvm_operator.cloud.api import MAX_PAGE, CvmApi
from cvm_operator.cloud.batcher import Batcher
from cvm_operator.cloud.credentials import (
    Credentials,
    CredentialsError,
    credentials_from_secret_data,
    default_credentials,
)
from cvm_operator.cloud.endpoint import Endpoint, EndpointError, endpoint_from_options, parse_endpoint
from cvm_operator.cloud.errors import CloudError, ErrorClass, backoff, classify, reason_for
from cvm_operator.cloud.pool import CloudPool
from cvm_operator.cloud.ratelimit import ACTION_RATE_LIMITS, DEFAULT_RATE_LIMIT, RateLimiter, TokenBucket
from cvm_operator.cloud.resources import (
    CloudDisk,
    CloudImage,
    CloudInstance,
    DataDisk,
    LaunchOptions,
    LoginSettings,
    Region,
    SyncedImage,
    SystemDisk,
    Zone,
)
from cvm_operator.cloud.roles import (
    AnyCredentials,
    RoleCredentials,
    RoleSettings,
    build_default_credentials,
    plan_default_credentials,
)
from cvm_operator.cloud.sts import CallerIdentity, StsApi
from cvm_operator.cloud.tags import TagApi, resource_name

__all__ = [
    "ACTION_RATE_LIMITS",
    "DEFAULT_RATE_LIMIT",
    "MAX_PAGE",
    "AnyCredentials",
    "Batcher",
    "CallerIdentity",
    "CloudDisk",
    "CloudError",
    "CloudImage",
    "CloudInstance",
    "CloudPool",
    "Credentials",
    "CredentialsError",
    "CvmApi",
    "DataDisk",
    "Endpoint",
    "EndpointError",
    "ErrorClass",
    "LaunchOptions",
    "LoginSettings",
    "RateLimiter",
    "Region",
    "RoleCredentials",
    "RoleSettings",
    "StsApi",
    "SyncedImage",
    "SystemDisk",
    "TagApi",
    "TokenBucket",
    "Zone",
    "backoff",
    "build_default_credentials",
    "classify",
    "credentials_from_secret_data",
    "default_credentials",
    "endpoint_from_options",
    "parse_endpoint",
    "plan_default_credentials",
    "reason_for",
    "resource_name",
]
