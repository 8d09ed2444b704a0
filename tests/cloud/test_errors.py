"""Classification, reasons and backoff of cloud errors (pure)."""

from __future__ import annotations

import random
import re

import pytest

from cvm_operator.cloud.errors import CloudError, ErrorClass, backoff, classify, reason_for

TRANSIENT_CODES = [
    "ClientNetworkError",
    "ServerNetworkError",
    "InvalidResponse",
    "RequestLimitExceeded",
    "RequestLimitExceeded.UinLimitExceeded",
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
    "InternalError",
    "InternalError.TradeUnknownError",
    "InternalServerError",
    "MutexOperation.TaskRunning",
    "OperationDenied.InstanceOperationInProgress",
    "ResourceInUse",
    "ResourceInUse.DiskRollbacking",
    "ResourceUnavailable",
    "ResourceUnavailable.SnapshotCreating",
    "InvalidImageId.IncorrectState",
    "UnsupportedOperation.InstanceStatePending",
    "UnsupportedOperation.InstanceStateStarting",
    "UnsupportedOperation.InstanceStateStopping",
    "UnsupportedOperation.InstanceStateRebooting",
    "UnsupportedOperation.InstanceStateTerminating",
    "UnsupportedOperation.InstanceStateEnterRescueMode",
    "UnsupportedOperation.InstanceStateExitServiceLiveMigrate",
    # Sold out: the stock comes back, so a launch is retried with backoff rather than Stalled.
    "ResourceInsufficient.SpecifiedInstanceType",
    "ResourceInsufficient.AvailabilityZoneSoldOut",
    "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance",
    "ResourcesSoldOut.SpecifiedInstanceType",
    "ResourcesSoldOut.EipInsufficient",
]

NOT_FOUND_CODES = [
    "InvalidImageId.NotFound",
    "InvalidInstanceId.NotFound",
    "InvalidSecurityGroupId.NotFound",
    "ResourceNotFound",
    "ResourceNotFound.KeyPairNotFound",
]

USER_CODES = [
    "InvalidParameter",
    "InvalidParameter.ValueTooLarge",
    "InvalidParameterValue",
    "InvalidParameterValue.ZoneNotSupported",
    "InvalidParameterValue.InvalidImageState",
    "InvalidParameterValue.LimitExceeded",
    "InvalidParameterValue.KeyPairNotFound",
    "InvalidImageName.Duplicate",
    "ImageQuotaLimitExceeded",
    "UnauthorizedOperation",
    "UnauthorizedOperation.ImageNotBelongToAccount",
    "AuthFailure.SignatureFailure",
    "AuthFailure.SecretIdNotFound",
    "InvalidAccountId.NotFound",
    "InvalidRegion.NotFound",
    "OverQuota",
    "FailedOperation.AccountIsYourSelf",
    "FailedOperation.AccountAlreadyExists",
    "FailedOperation.InvalidImageState",
    "InvalidImageId.Malformed",
    "InvalidImageId.InShared",
    "InvalidZone.MismatchRegion",
    "MissingParameter",
    "UnknownParameter",
    "InvalidAction",
    "LimitExceeded.InstanceQuota",
    "InvalidAccount.InsufficientBalance",
    "InvalidAccount.UnpaidOrder",
    # Capacity of the user's own subnet or placement group: only the user can change it.
    "ResourceInsufficient.CidrBlock",
    "ResourceInsufficient.DisasterRecoverGroupCvmQuota",
    "UnsupportedOperation",
    "UnsupportedOperation.InstanceStateRunning",
    "UnsupportedOperation.InstanceStateStopped",
    "UnsupportedOperation.InstanceStateTerminated",
    "UnsupportedOperation.SharedImageModifyUnsupported",
    "ClientError",
]


@pytest.mark.parametrize("code", TRANSIENT_CODES)
def test_transient_codes(code: str) -> None:
    assert classify(code) is ErrorClass.TRANSIENT


@pytest.mark.parametrize("code", NOT_FOUND_CODES)
def test_not_found_codes(code: str) -> None:
    assert classify(code) is ErrorClass.NOT_FOUND


@pytest.mark.parametrize("code", USER_CODES)
def test_user_codes(code: str) -> None:
    assert classify(code) is ErrorClass.USER


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("ImageQuotaLimitExceeded", "QuotaExceeded"),
        ("OverQuota", "QuotaExceeded"),
        ("LimitExceeded.InstanceQuota", "QuotaExceeded"),
        ("InvalidParameterValue.TagQuotaLimitExceeded", "QuotaExceeded"),
        ("InvalidImageName.Duplicate", "DuplicateName"),
        ("AuthFailure.SignatureFailure", "AuthFailure"),
        ("AuthFailure.SecretIdNotFound", "AuthFailure"),
        ("UnauthorizedOperation.ImageNotBelongToAccount", "PermissionDenied"),
        ("InvalidParameter.ValueTooLarge", "InvalidParameter"),
        ("InvalidParameterValue.LimitExceeded", "InvalidParameter"),
        ("InvalidFilterValue.LimitExceeded", "InvalidParameter"),
        ("InvalidImageId.Malformed", "InvalidParameter"),
        ("InvalidClientToken.TooLong", "InvalidParameter"),
        ("InvalidImageOsType.Unsupported", "InvalidParameter"),
        ("MissingParameter", "InvalidParameter"),
        ("InvalidPassword", "InvalidParameter"),
        ("InvalidImageId.NotFound", "NotFound"),
        ("ResourceNotFound.KeyPairNotFound", "NotFound"),
        ("InvalidAccountId.NotFound", "InvalidAccount"),
        ("FailedOperation.AccountIsYourSelf", "InvalidAccount"),
        ("InvalidAccountIs.YourSelf", "InvalidAccount"),
        ("FailedOperation.AccountAlreadyExists", "AlreadyShared"),
        ("InvalidImageId.InShared", "ImageShared"),
        ("InvalidZone.MismatchRegion", "InvalidZone"),
        ("InvalidParameterValue.ZoneNotSupported", "InvalidZone"),
        ("InvalidRegion.Unavailable", "InvalidRegion"),
        ("RequestLimitExceeded", "Throttled"),
        ("ClientNetworkError", "NetworkError"),
        ("InternalError.TradeUnknownError", "CloudInternalError"),
        ("MutexOperation.TaskRunning", "OperationInProgress"),
        ("OperationDenied.InstanceOperationInProgress", "OperationInProgress"),
        ("InvalidImageId.IncorrectState", "OperationInProgress"),
        ("InvalidParameterValue.InvalidImageState", "InvalidImageState"),
        ("UnsupportedOperation.InstanceStatePending", "InvalidInstanceState"),
        ("ResourceInsufficient.AvailabilityZoneSoldOut", "InsufficientCapacity"),
        ("ResourcesSoldOut.SpecifiedInstanceType", "InsufficientCapacity"),
        ("ResourceInsufficient.CidrBlock", "SubnetFull"),
        ("InvalidAccount.InsufficientBalance", "InsufficientBalance"),
        ("UnsupportedOperation.SharedImageModifyUnsupported", "UnsupportedOperation"),
        ("FailedOperation.BYOLImageShareFailed", "FailedOperation"),
        ("DryRunOperation", "DryRunOperation"),
    ],
)
def test_reason(code: str, reason: str) -> None:
    assert reason_for(code) == reason


# kstatus / metav1.Condition reason syntax.
REASON_SYNTAX = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def _all_sdk_codes() -> list[str]:
    from tencentcloud.cvm.v20170312 import errorcodes

    return sorted(value for name, value in vars(errorcodes).items() if name.isupper() and isinstance(value, str))


def test_every_sdk_code_has_a_class_and_a_well_formed_reason() -> None:
    codes = _all_sdk_codes()
    assert len(codes) > 300
    for code in codes:
        assert isinstance(classify(code), ErrorClass)
        assert REASON_SYNTAX.match(reason_for(code)), code


def test_sdk_codes_classify_by_family() -> None:
    for code in _all_sdk_codes():
        cls = classify(code)
        if code.endswith(".NotFound") and code not in ("InvalidAccountId.NotFound", "InvalidRegion.NotFound"):
            assert cls is ErrorClass.NOT_FOUND, code
        if code.startswith(("InvalidParameter", "AuthFailure", "UnauthorizedOperation", "MissingParameter")):
            assert cls is ErrorClass.USER, code
        if code.startswith(("RequestLimitExceeded", "InternalError", "MutexOperation")):
            assert cls is ErrorClass.TRANSIENT, code


def test_cloud_error_carries_classification_and_reads_well() -> None:
    error = CloudError("InvalidImageName.Duplicate", "name taken", "req-1", "CreateImage")
    assert error.error_class is ErrorClass.USER
    assert not error.transient and not error.not_found
    assert error.reason == "DuplicateName"
    assert str(error) == "CreateImage: InvalidImageName.Duplicate: name taken (RequestId req-1)"
    assert CloudError("InvalidImageId.NotFound", "gone").not_found
    assert CloudError("RequestLimitExceeded", "slow down").transient


def test_backoff_grows_exponentially_within_jitter_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(300.0, 2.0**attempt)
        for _ in range(50):
            delay = backoff(attempt, rng=rng)
            assert ceiling / 2 <= delay <= ceiling


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff(40, base=1.0, cap=60.0, rng=rng) for _ in range(100)]
    assert all(30.0 <= delay <= 60.0 for delay in delays)
    assert len(set(delays)) > 90
    assert backoff(10_000, cap=5.0, rng=rng) <= 5.0
    assert 0.05 <= backoff(-3, base=0.1, rng=rng) <= 0.1
