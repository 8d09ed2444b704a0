"""Decision helpers of the ImageShare and ImageCopy reconcilers (pure logic, no I/O)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from cvm_operator.api import ImageCopyEntry, parse_time
from cvm_operator.cloud import CloudError, CloudImage
from cvm_operator.reconcilers.imagecopy import (
    CLOCK_SKEW,
    adoptable,
    copies_summary,
    copy_object_name,
    copy_rule_violation,
    entry_for,
)
from cvm_operator.reconcilers.imageshare import blocked_by_share_error, plan_shares, share_rule_violation
from cvm_operator.reconcilers.references import is_ready

OWNER = "100000000001"
B, C, D = "200000000002", "300000000003", "400000000004"
MARK = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def cloud_image(**changes: Any) -> CloudImage:
    image = CloudImage(
        image_id="img-abcdefgh", name="web-golden", description="", type="PRIVATE_IMAGE", state="NORMAL",
        os_name="Ubuntu Server 22.04 LTS 64位", platform="Ubuntu", architecture="x86_64", size_gb=50,
        source="CREATE_IMAGE", creator=OWNER, created_time="2024-05-01T12:00:05Z", sync_percent=100,
        family="", deprecated=False, tags={},
    )  # fmt: skip
    return replace(image, **changes)


# ---------------------------------------------------------------- ImageShare plan


def test_plan_shares_missing_accounts_in_one_call() -> None:
    plan = plan_shares([B, C], [], [])
    assert plan.share == (B, C) and plan.cancel == () and plan.owned == (B, C)
    assert not plan.up_to_date


def test_plan_cancels_only_accounts_this_object_added() -> None:
    # C was shared by someone else; B by this object; neither is wanted any more.
    plan = plan_shares([D], [B, C, D], [B, D])
    assert plan.cancel == (B,)
    assert plan.share == ()
    assert plan.owned == (D,)
    assert plan.total_after == 2  # C and D


def test_plan_restores_a_share_cancelled_out_of_band() -> None:
    plan = plan_shares([B, C], [C], [B, C])
    assert plan.share == (B,)
    assert plan.owned == (B, C)


def test_plan_does_not_adopt_a_share_made_by_someone_else() -> None:
    plan = plan_shares([B], [B], [])
    assert plan.up_to_date and plan.owned == ()


def test_plan_forgets_accounts_already_gone() -> None:
    plan = plan_shares([C], [C], [B, C])
    assert plan.cancel == () and plan.owned == (C,) and plan.up_to_date


@pytest.mark.parametrize(
    ("image_type", "creator", "word"),
    [
        ("PUBLIC_IMAGE", "tencent", "a public image"),
        ("PUBLIC_IMAGE", "251000000101", "a marketplace image"),
        ("SHARED_IMAGE", B, "a shared image"),
    ],
)
def test_only_own_custom_images_are_shareable(image_type: str, creator: str, word: str) -> None:
    blocked = share_rule_violation(cloud_image(type=image_type, creator=creator), [B], plan_shares([B], [], []))
    assert blocked is not None and blocked.reason == "NotShareable"
    assert word in blocked.message


def test_sharing_with_the_owner_is_refused() -> None:
    blocked = share_rule_violation(cloud_image(), [B, OWNER], plan_shares([B, OWNER], [], []))
    assert blocked is not None and blocked.reason == "ShareWithSelf" and OWNER in blocked.message


def test_more_than_500_shares_is_refused_before_calling() -> None:
    others = [f"9{n:011d}" for n in range(450)]
    wanted = [f"8{n:011d}" for n in range(60)]
    blocked = share_rule_violation(cloud_image(), wanted, plan_shares(wanted, others, []))
    assert blocked is not None and blocked.reason == "TooManyAccounts" and "510" in blocked.message


def test_exactly_500_shares_is_fine() -> None:
    others = [f"9{n:011d}" for n in range(440)]
    wanted = [f"8{n:011d}" for n in range(60)]
    assert share_rule_violation(cloud_image(), wanted, plan_shares(wanted, others, [])) is None


def test_an_over_full_list_blocks_nothing_when_nothing_is_added() -> None:
    wanted = [f"8{n:011d}" for n in range(10)]
    cloud = wanted + [f"9{n:011d}" for n in range(495)]
    assert share_rule_violation(cloud_image(), wanted, plan_shares(wanted, cloud, wanted)) is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("InvalidAccountId.NotFound", "AccountNotFound"),
        ("FailedOperation.AccountIsYourSelf", "ShareWithSelf"),
        ("OverQuota", "TooManyAccounts"),
        ("FailedOperation.BYOLImageShareFailed", "NotShareable"),
        ("UnsupportedOperation.EncryptedImagesNotSupported", "NotShareable"),
    ],
)
def test_share_errors_become_actionable_reasons(code: str, reason: str) -> None:
    blocked = blocked_by_share_error(CloudError(code, "detail"), "img-abcdefgh")
    assert blocked is not None and blocked.reason == reason and code in blocked.message


def test_other_share_errors_are_left_to_the_driver() -> None:
    assert blocked_by_share_error(CloudError("InternalError", "boom"), "img-abcdefgh") is None


def test_is_ready_reads_the_ready_condition() -> None:
    assert is_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert not is_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not is_ready({})


# ---------------------------------------------------------------- ImageCopy rules


def violation(image: CloudImage, destinations: list[str], *, encrypt: bool = False, name: str = "web-golden") -> str:
    blocked = copy_rule_violation(image, "ap-guangzhou", destinations, encrypt=encrypt, name=name)
    return "" if blocked is None else blocked.reason


def test_custom_image_copies_to_other_regions() -> None:
    assert violation(cloud_image(), ["ap-shanghai", "ap-singapore"]) == ""


@pytest.mark.parametrize(("creator", "word"), [("tencent", "a public image"), ("251000000101", "a marketplace image")])
def test_public_and_marketplace_images_are_not_copyable(creator: str, word: str) -> None:
    image = cloud_image(type="PUBLIC_IMAGE", creator=creator)
    blocked = copy_rule_violation(image, "ap-guangzhou", ["ap-shanghai"], encrypt=False, name="web-golden")
    assert blocked is not None and blocked.reason == "NotCopyable" and word in blocked.message


def test_custom_image_into_its_own_region_needs_encrypt() -> None:
    assert violation(cloud_image(), ["ap-shanghai", "ap-guangzhou"]) == "SameRegionCopy"
    assert violation(cloud_image(), ["ap-guangzhou"], encrypt=True, name="web-golden-enc") == ""


def test_encrypted_copy_needs_its_own_name_and_region() -> None:
    assert violation(cloud_image(), ["ap-guangzhou"], encrypt=True) == "DuplicateName"
    assert violation(cloud_image(), ["ap-shanghai"], encrypt=True, name="x") == "EncryptedCopyRegion"


def test_shared_image_copies_only_into_its_own_region() -> None:
    shared = cloud_image(type="SHARED_IMAGE", creator=B)
    assert violation(shared, ["ap-guangzhou"]) == ""
    assert violation(shared, ["ap-shanghai"]) == "SharedImageRegion"


# ---------------------------------------------------------------- ImageCopy adoption and status


def test_a_copy_made_after_the_pending_mark_is_adopted() -> None:
    assert adoptable(cloud_image(image_id="img-copy0001"), cloud_image(), "web-golden", pending_since=MARK)


def test_nothing_is_adopted_without_a_pending_mark() -> None:
    assert not adoptable(cloud_image(), cloud_image(), "web-golden", pending_since=None)


def test_an_older_image_of_the_same_name_is_not_adopted() -> None:
    old = cloud_image(created_time=(MARK - CLOCK_SKEW - dt.timedelta(seconds=1)).isoformat())
    assert not adoptable(old, cloud_image(), "web-golden", pending_since=MARK)


def test_a_different_image_or_name_is_not_adopted() -> None:
    other_os = cloud_image(os_name="CentOS 7.6 64位", platform="CentOS")
    assert not adoptable(other_os, cloud_image(), "web-golden", pending_since=MARK)
    assert not adoptable(cloud_image(name="web-golden-2"), cloud_image(), "web-golden", pending_since=MARK)
    assert not adoptable(cloud_image(type="SHARED_IMAGE"), cloud_image(), "web-golden", pending_since=MARK)


def test_parse_time_accepts_cloud_and_python_forms() -> None:
    assert parse_time("2024-05-01T12:00:00Z") == MARK
    assert parse_time(MARK.isoformat()) == MARK
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_entry_reports_progress_while_syncing_and_100_when_normal() -> None:
    syncing = entry_for("ap-shanghai", cloud_image(state="SYNCING", sync_percent=40), "copy-ap-shanghai")
    assert (syncing.cloud_state, syncing.progress, syncing.image_name) == ("SYNCING", 40, "copy-ap-shanghai")
    assert entry_for("ap-shanghai", cloud_image(sync_percent=None), "x").progress == 100


def test_summary_names_each_copy_and_kept_regions() -> None:
    copies = [
        ImageCopyEntry(region="ap-shanghai", image_id="img-aaaaaaaa", cloud_state="SYNCING", progress=40),
        ImageCopyEntry(region="ap-tokyo", image_id="img-bbbbbbbb", cloud_state="NORMAL", progress=100),
    ]
    summary = copies_summary(copies, ["ap-shanghai"])
    assert "ap-shanghai: img-aaaaaaaa SYNCING 40%" in summary
    assert "ap-tokyo: img-bbbbbbbb NORMAL (kept" in summary


def test_copy_object_names_are_per_region() -> None:
    assert copy_object_name("golden-copies", "ap-shanghai") == "golden-copies-ap-shanghai"
