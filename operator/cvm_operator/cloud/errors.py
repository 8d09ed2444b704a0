"""Cloud API errors: one exception type, a classification that drives retries, and backoff.

The classification answers the reconciler's one question: wait and retry (``TRANSIENT``, surfaced as
``Reconciling``), or report and retry slowly because something outside the operator must change
(``USER`` and ``NOT_FOUND``, surfaced as ``Stalled`` with :attr:`CloudError.reason`).
"""

from __future__ import annotations

import enum
import random
import re

#: Codes the operator's layer itself uses when the SDK raised no API error.
CLIENT_NETWORK_ERROR = "ClientNetworkError"
SERVER_NETWORK_ERROR = "ServerNetworkError"
INVALID_RESPONSE = "InvalidResponse"


class ErrorClass(enum.Enum):
    TRANSIENT = "Transient"
    """Retry with backoff: network, throttling, server faults, the resource is busy."""
    NOT_FOUND = "NotFound"
    """The addressed cloud resource does not exist (any more)."""
    USER = "User"
    """Only a change of input, quota or permissions helps."""


_TRANSIENT_EXACT = frozenset(
    {
        CLIENT_NETWORK_ERROR,
        SERVER_NETWORK_ERROR,
        INVALID_RESPONSE,
        "RequestLimitExceeded",
        "InternalError",
        "InternalServerError",
        "ResourceInUse",
        "ResourceUnavailable",
        # DeleteImages/ModifyImageAttribute on an image that is still CREATING/SYNCING/IMPORTING.
        "InvalidImageId.IncorrectState",
        # Tag API: the resource's tags are being changed by another request.
        "FailedOperation.ResourceTagProcessing",
    }
)
# Codes under a transient-looking prefix that only a change of input fixes: Tag API codes, and
# capacity codes that name the user's own subnet or placement group, not the cloud's stock.
_USER_EXACT = frozenset(
    {
        "ResourceInUse.TagDuplicate",
        "ResourceInUse.TagKeyAttached",
        "ResourceInsufficient.CidrBlock",
        "ResourceInsufficient.DisasterRecoverGroupCvmQuota",
    }
)
_TRANSIENT_PREFIXES = (
    "RequestLimitExceeded.",
    "InternalError.",
    "InternalServerError.",
    "MutexOperation.",
    "ResourceInUse.",
    "ResourceUnavailable.",
    # Sold out (a zone, an instance type, disks, public addresses): stock comes back, so retry with backoff.
    "ResourceInsufficient.",
    "ResourcesSoldOut.",
)
# Instance states that end by themselves; an operation refused in one of them succeeds later.
_TRANSITIONAL_INSTANCE_STATES = frozenset(
    {
        "Pending",
        "Starting",
        "Stopping",
        "Rebooting",
        "Terminating",
        "Isolating",
        "EnterRescueMode",
        "ExitRescueMode",
        "EnterServiceLiveMigrate",
        "ExitServiceLiveMigrate",
        "ServiceLiveMigrate",
    }
)
_INSTANCE_STATE_PREFIX = "UnsupportedOperation.InstanceState"
# ".NotFound" codes that name something the user typed (an account, a region), not the addressed resource.
_USER_NOT_FOUND = frozenset({"InvalidAccountId.NotFound", "InvalidRegion.NotFound"})


def classify(code: str) -> ErrorClass:
    """Classify a CVM or Tag API error code (see reference/tencent-cvm-api.md §1.4-1.5, §3-4, and
    ``tencentcloud.tag.v20180813.errorcodes``)."""
    if code in _USER_EXACT:
        return ErrorClass.USER
    if code in _TRANSIENT_EXACT or code.startswith(_TRANSIENT_PREFIXES) or code.endswith("InProgress"):
        return ErrorClass.TRANSIENT
    if code.startswith(_INSTANCE_STATE_PREFIX):
        state = code.removeprefix(_INSTANCE_STATE_PREFIX)
        return ErrorClass.TRANSIENT if state in _TRANSITIONAL_INSTANCE_STATES else ErrorClass.USER
    if code in _USER_NOT_FOUND:
        return ErrorClass.USER
    if code.endswith(".NotFound") or code == "ResourceNotFound" or code.startswith("ResourceNotFound."):
        return ErrorClass.NOT_FOUND
    return ErrorClass.USER


# (predicate, reason) in priority order; the first match wins.
_REASON_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (r"^(ClientNetworkError|ServerNetworkError|InvalidResponse)$", "NetworkError"),
        (r"^RequestLimitExceeded", "Throttled"),
        (r"^Internal(Server)?Error", "CloudInternalError"),
        (r"^ResourceInUse\.Tag", "InvalidTag"),
        (r"^ResourceInsufficient\.CidrBlock$", "SubnetFull"),
        (r"InsufficientBalance$|UnpaidOrder$", "InsufficientBalance"),
        (r"InProgress$|^MutexOperation\.|^ResourceInUse|IncorrectState$", "OperationInProgress"),
        (r"InvalidImageState$", "InvalidImageState"),
        (r"^UnsupportedOperation\.InstanceState", "InvalidInstanceState"),
        (r"^ResourceUnavailable", "ResourceUnavailable"),
        (r"^FailedOperation\.ResourceTagProcessing$", "OperationInProgress"),
        (r"^AuthFailure\.UnauthorizedOperation$", "PermissionDenied"),
        (r"^AuthFailure", "AuthFailure"),
        (r"^UnauthorizedOperation", "PermissionDenied"),
        (r"^InvalidAccountId\.|^InvalidAccountIs\.|AccountIsYourSelf$|NotMasterAccount$", "InvalidAccount"),
        (r"^FailedOperation\.AccountAlreadyExists$", "AlreadyShared"),
        (r"^InvalidImageId\.InShared$", "ImageShared"),
        (r"QuotaLimitExceeded$|^LimitExceeded|Quota$|^OverQuota$", "QuotaExceeded"),
        (r"\.Duplicate$", "DuplicateName"),
        (r"\.NotFound$|^ResourceNotFound", "NotFound"),
        (r"^InvalidZone\.|ZoneNotSupported$", "InvalidZone"),
        (r"^InvalidRegion\.|InvalidRegion$", "InvalidRegion"),
        (r"^ResourceInsufficient|^ResourcesSoldOut", "InsufficientCapacity"),
        (
            r"^(InvalidParameter|MissingParameter|UnknownParameter|InvalidFilter)"
            r"|\.(Malformed|TooLong|TooLarge|Unsupported)$|^Invalid[A-Za-z]*$",
            "InvalidParameter",
        ),
        (r"^UnsupportedOperation", "UnsupportedOperation"),
    )
)


def reason_for(code: str) -> str:
    """A short CamelCase word for a condition reason, derived from the error code."""
    for pattern, reason in _REASON_RULES:
        if pattern.search(code):
            return reason
    head = re.sub(r"[^A-Za-z0-9]", "", code.split(".", 1)[0])
    return head if head[:1].isalpha() else "CloudError"


class CloudError(Exception):
    """A failed CVM API call (or a network failure reaching it)."""

    def __init__(self, code: str, message: str, request_id: str | None = None, action: str = "") -> None:
        super().__init__(code, message, request_id, action)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.action = action

    @property
    def error_class(self) -> ErrorClass:
        return classify(self.code)

    @property
    def transient(self) -> bool:
        return self.error_class is ErrorClass.TRANSIENT

    @property
    def not_found(self) -> bool:
        return self.error_class is ErrorClass.NOT_FOUND

    @property
    def reason(self) -> str:
        return reason_for(self.code)

    def __str__(self) -> str:
        where = f"{self.action}: " if self.action else ""
        rid = f" (RequestId {self.request_id})" if self.request_id else ""
        return f"{where}{self.code}: {self.message}{rid}"


def backoff(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 300.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): exponential, capped, with "equal
    jitter" (uniform in the upper half), so retries spread out but never collapse to zero."""
    exponent = min(max(attempt, 0), 62)
    ceiling = min(cap, base * (2.0**exponent))
    draw = (rng or random).random()
    return ceiling / 2 + draw * ceiling / 2
