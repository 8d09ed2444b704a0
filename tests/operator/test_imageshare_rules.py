"""Every ImageShare and ImageCopy rule violation ends Stalled with its reason, without cloud calls in a loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import pytest

from tests.operator.test_imagecopy import copy_body
from tests.operator.test_imageshare import (
    ACCOUNT_B,
    OWNER,
    REGION,
    account_secret,
    cloud,
    golden_image,
    image_share_body,
)
from tests.support.emulator import EmulatorProcess
from tests.support.operator import Objects, OperatorProcess

PUBLIC_UBUNTU, MARKET_WORDPRESS = "img-487zeit5", "img-mkt0wp01"
MUTATING = ("ModifyImageSharePermission", "SyncImages")


@pytest.fixture
def operator(operator_factory: Callable[..., OperatorProcess], namespace: str) -> OperatorProcess:
    """Stalled objects are retried after half an hour, so any repeated call is a loop, even on a slow run."""
    return operator_factory([namespace], extra_args=["--stalled-interval", "1800"])


def by_id(image_id: str) -> dict[str, str]:
    return {"imageId": image_id, "region": REGION}


def assert_no_calls_in_a_loop(emulator: EmulatorProcess, operator: OperatorProcess) -> None:
    before = {action: emulator.request_count(action) for action in MUTATING}
    time.sleep(5 * operator.poll_interval)
    after = {action: emulator.request_count(action) for action in MUTATING}
    assert after == before


def test_share_rule_violations_stall_without_repeated_calls(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    image_id = golden_image(objects)
    # Someone shares the image with B outside the operator (as the owner, through the SDK).
    cloud(
        emulator, "ModifyImageSharePermission", {"ImageId": image_id, "AccountIds": [ACCOUNT_B], "Permission": "SHARE"}
    )
    account_secret(objects, emulator, 1, "account-b")
    cases = {
        "public": image_share_body("public", [ACCOUNT_B], imageRef=None, **by_id(PUBLIC_UBUNTU)),
        "market": image_share_body("market", [ACCOUNT_B], imageRef=None, **by_id(MARKET_WORDPRESS)),
        "reshare": image_share_body(
            "reshare", ["300000000003"], imageRef=None, credentialsSecretRef={"name": "account-b"}, **by_id(image_id)
        ),
        "self": image_share_body("self", [OWNER]),
        "unknown": image_share_body("unknown", ["999999999999"]),
        # 500 wanted plus B's share made by someone else would be 501.
        "too-many": image_share_body("too-many", [f"5{n:011d}" for n in range(500)]),
    }
    reasons = {
        "public": "NotShareable",
        "market": "NotShareable",
        "reshare": "NotShareable",
        "self": "ShareWithSelf",
        "unknown": "AccountNotFound",
        "too-many": "TooManyAccounts",
    }
    for body in cases.values():
        objects.create("imageshares", body)
    for name, reason in reasons.items():
        stalled = objects.wait_condition("imageshares", name, "Stalled", reason=reason, timeout=60)
        assert stalled["status"]["phase"] == "Failed"
        assert objects.condition("imageshares", name, "Ready")["status"] == "False"  # type: ignore[index]
    message = objects.condition("imageshares", "self", "Stalled")["message"]  # type: ignore[index]
    assert OWNER in message and "spec.accountIds" in message
    # Both are PUBLIC_IMAGE in the cloud; the vendor's ImageCreator tells the marketplace image apart.
    assert "a marketplace image" in objects.condition("imageshares", "market", "Stalled")["message"]  # type: ignore[index]
    assert "a public image" in objects.condition("imageshares", "public", "Stalled")["message"]  # type: ignore[index]
    assert "999999999999" in objects.condition("imageshares", "unknown", "Stalled")["message"]  # type: ignore[index]

    assert_no_calls_in_a_loop(emulator, operator)
    # The cloud was asked once, for the account only it can judge; every other rule was checked first.
    assert emulator.request_count("ModifyImageSharePermission", code="InvalidAccountId.NotFound") == 1
    assert emulator.request_count("ModifyImageSharePermission") == 2  # that one and the out-of-band SHARE


def test_copy_rule_violations_stall_without_repeated_calls(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    image_id = golden_image(objects)
    cloud(
        emulator, "ModifyImageSharePermission", {"ImageId": image_id, "AccountIds": [ACCOUNT_B], "Permission": "SHARE"}
    )
    account_secret(objects, emulator, 1, "account-b")

    def from_id(source: str) -> dict[str, str | None]:
        return {"sourceRef": None, "sourceImageId": source, "sourceRegion": REGION}

    cases = {
        "public": (copy_body("public", ["ap-shanghai"], **from_id(PUBLIC_UBUNTU)), "NotCopyable"),
        "market": (copy_body("market", ["ap-shanghai"], **from_id(MARKET_WORDPRESS)), "NotCopyable"),
        "same-region": (copy_body("same-region", ["ap-shanghai", REGION]), "SameRegionCopy"),
        "shared-away": (
            copy_body("shared-away", ["ap-shanghai"], credentialsSecretRef={"name": "account-b"}, **from_id(image_id)),
            "SharedImageRegion",
        ),
    }
    for body, _ in cases.values():
        objects.create("imagecopies", body)
    for name, (_, reason) in cases.items():
        stalled = objects.wait_condition("imagecopies", name, "Stalled", reason=reason, timeout=60)
        assert stalled["status"]["phase"] == "Failed"
    assert "spec.encrypt" in objects.condition("imagecopies", "same-region", "Stalled")["message"]  # type: ignore[index]
    assert "a marketplace image" in objects.condition("imagecopies", "market", "Stalled")["message"]  # type: ignore[index]
    assert "a public image" in objects.condition("imagecopies", "public", "Stalled")["message"]  # type: ignore[index]
    assert_no_calls_in_a_loop(emulator, operator)
    assert emulator.request_count("SyncImages") == 0
    listed = cast(
        dict[str, Any],
        objects.custom.list_namespaced_custom_object(
            "cvm.operator.dev", "v1alpha1", objects.namespace, "images", label_selector="cvm.operator.dev/image-copy"
        ),
    )
    assert listed["items"] == []
