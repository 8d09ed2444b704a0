"""Decision and mapping helpers of the Image and Instance reconcilers (pure logic, no I/O)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from cvm_operator.api import ImageLookup, ImageSpec
from cvm_operator.cloud import CloudImage, CloudInstance
from cvm_operator.reconcilers.base import UID_TAG
from cvm_operator.reconcilers.image import (
    attribute_changes,
    choose,
    desired_image_name,
    desired_tags,
    image_progress,
    image_status,
    judge_image,
    lookup_filters,
    matches_lookup,
    newest,
    share_objects_for,
    sharing_message,
)
from cvm_operator.reconcilers.instance import instance_status, judge_instance
from cvm_operator.reconcilers.references import decode_secret_value, image_ready
from cvm_operator.reconcilers.tags import tag_differences, tags_condition

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def cloud_image(**changes: Any) -> CloudImage:
    image = CloudImage(
        image_id="img-abcdefgh", name="web-golden", description="", type="PRIVATE_IMAGE", state="NORMAL",
        os_name="Ubuntu Server 22.04 LTS 64位", platform="Ubuntu", architecture="x86_64", size_gb=50,
        source="CREATE_IMAGE", creator="100000000001", created_time="2024-05-01T11:58:00Z", sync_percent=100,
        family="", deprecated=False, tags={},
    )  # fmt: skip
    return replace(image, **changes)


def cloud_instance(**changes: Any) -> CloudInstance:
    instance = CloudInstance(
        instance_id="ins-abcdefgh", name="web-1", state="RUNNING", image_id="img-487zeit5",
        os_name="Ubuntu Server 22.04 LTS 64位", zone="ap-guangzhou-3", instance_type="S5.MEDIUM2",
        private_ips=("10.0.0.1",), public_ips=(), created_time="2024-05-01T11:00:00Z",
        latest_operation="RunInstances", latest_operation_state="SUCCESS",
    )  # fmt: skip
    return replace(instance, **changes)


def image_spec(**fields: Any) -> ImageSpec:
    body = {"region": "ap-guangzhou", "source": {"fromInstance": {"instanceId": "ins-abcdefgh"}}, **fields}
    return ImageSpec.model_validate(body, by_alias=True)


# ---------------------------------------------------------------- Image


def test_image_status_maps_cloud_fields_and_type_words() -> None:
    status = image_status(cloud_image(type="PUBLIC_IMAGE", creator="tencent", source="OFFICIAL"), NOW)
    assert status["image_type"] == "Public"
    assert status["owner"] == "tencent"
    assert status["size_gb"] == 50 and status["progress"] == 100
    # Marketplace is a public image made by a vendor: there is no marketplace ImageType.
    vendor = image_status(cloud_image(type="PUBLIC_IMAGE", creator="251000000101", source="OFFICIAL"), NOW)
    assert vendor["image_type"] == "Marketplace" and vendor["owner"] == "251000000101"
    # Only the documented types get a word; a retired or unknown type gets none.
    assert image_status(cloud_image(type="MARKET_IMAGE", creator="251000000101"), NOW)["image_type"] is None
    for cloud_type, word in (("PRIVATE_IMAGE", "Custom"), ("SHARED_IMAGE", "Shared")):
        assert image_status(cloud_image(type=cloud_type), NOW)["image_type"] == word


def test_normal_image_is_ready_and_available() -> None:
    observation = judge_image(cloud_image(), NOW)
    assert observation.ready and observation.phase == "Available" and not observation.failed
    assert observation.cloud_state == "NORMAL"


@pytest.mark.parametrize(("state", "phase"), [("CREATING", "Creating"), ("IMPORTING", "Importing"),
                                              ("SYNCING", "Copying")])  # fmt: skip
def test_busy_image_is_progressing_with_percent(state: str, phase: str) -> None:
    observation = judge_image(cloud_image(state=state, sync_percent=40), NOW)
    assert not observation.ready and not observation.failed
    assert observation.phase == phase and observation.status["progress"] == 40
    assert "40%" in observation.message


@pytest.mark.parametrize(("state", "reason"), [("IMPORTFAILED", "ImportFailed"), ("CREATEFAILED", "CreateFailed")])
def test_failed_image_is_reported_with_reason(state: str, reason: str) -> None:
    observation = judge_image(cloud_image(state=state, sync_percent=0), NOW)
    assert observation.exists and observation.failed and observation.reason == reason


def test_progress_is_estimated_from_age_when_the_cloud_gives_none() -> None:
    creating = cloud_image(state="CREATING", sync_percent=None, created_time="2024-05-01T11:59:00Z")
    assert image_progress(creating, NOW) == 50  # 60 s of a typical 120 s
    old = cloud_image(state="IMPORTING", sync_percent=None, created_time="2024-05-01T00:00:00Z")
    assert image_progress(old, NOW) == 95  # never claims to be done while busy
    assert image_progress(cloud_image(state="SYNCING", sync_percent=100), NOW) == 99


def test_attribute_changes_follow_spec_and_leave_unset_fields_alone() -> None:
    spec = image_spec(imageName="web-golden", description="golden", family="web")
    assert not attribute_changes(spec, "obj", cloud_image(description="golden", family="web"))
    drift = attribute_changes(spec, "obj", cloud_image(name="renamed", description="x", family="web", deprecated=True))
    assert (drift.name, drift.description, drift.family, drift.deprecated) == ("web-golden", "golden", None, False)
    assert drift.describe() == "name, description, deprecated"
    # No description or family in spec: whatever the cloud has is kept.
    assert not attribute_changes(image_spec(), "web-golden", cloud_image(description="any", family="any"))
    assert desired_image_name(image_spec(), "obj-name") == "obj-name"


def test_tags_include_uid_and_differences_are_described() -> None:
    spec = image_spec(tags={"team": "web"})
    desired = desired_tags(spec, "uid-1")
    assert desired == {"team": "web", UID_TAG: "uid-1"}
    assert tag_differences(desired, {**desired, "added-by-someone": "x"}) == []
    differences = tag_differences(desired, {UID_TAG: "uid-1", "team": "db"})
    assert differences == ["team: cloud 'db', spec 'web'"]
    condition = tags_condition(desired, {UID_TAG: "uid-1"})
    assert (condition.type, condition.status, condition.reason) == ("TagsUpToDate", "False", "TagsDiffer")
    assert "team: missing" in condition.message
    assert tags_condition(desired, desired).status == "True"


def test_lookup_filters_and_exact_matching() -> None:
    lookup = ImageLookup(image_type="PUBLIC_IMAGE", platform="Ubuntu", name="Ubuntu Server 22.04 LTS 64位")
    assert lookup_filters(lookup) == {
        "image-type": ["PUBLIC_IMAGE"], "image-name": ["Ubuntu Server 22.04 LTS 64位"], "platform": ["Ubuntu"],
    }  # fmt: skip
    exact = cloud_image(type="PUBLIC_IMAGE", creator="tencent", name="Ubuntu Server 22.04 LTS 64位")
    assert matches_lookup(exact, lookup)
    # The cloud's name filter matches substrings; the lookup does not.
    assert not matches_lookup(replace(exact, name="Ubuntu Server 22.04 LTS 64位 GPU"), lookup)
    # A vendor's public image of the same name is a marketplace image, which a PUBLIC_IMAGE lookup leaves out.
    vendor = replace(exact, creator="251000000101")
    assert not matches_lookup(vendor, lookup)
    market = ImageLookup(image_type="MARKET_IMAGE", name="Ubuntu Server 22.04 LTS 64位")
    assert lookup_filters(market) == {"image-type": ["PUBLIC_IMAGE"], "image-name": ["Ubuntu Server 22.04 LTS 64位"]}
    assert matches_lookup(vendor, market) and not matches_lookup(exact, market)
    # The family is matched on the answers: DescribeImages has no documented family filter.
    by_family = ImageLookup(image_type="PRIVATE_IMAGE", family="web")
    assert lookup_filters(by_family) == {"image-type": ["PRIVATE_IMAGE"]}


def test_lookups_never_choose_deprecated_or_unusable_images() -> None:
    lookup = ImageLookup(image_type="PRIVATE_IMAGE", family="web")
    kept = cloud_image(image_id="img-00000001", family="web", created_time="2024-01-01T00:00:00Z")
    newer = {
        "deprecated": cloud_image(image_id="img-00000002", family="web", deprecated=True),
        "failed": cloud_image(image_id="img-00000003", family="web", state="IMPORTFAILED"),
        "busy": cloud_image(image_id="img-00000004", family="web", state="CREATING"),
        "other family": cloud_image(image_id="img-00000005", family="db"),
    }
    for why, image in newer.items():
        assert choose([kept, image], lookup) == kept, why
    assert choose(list(newer.values()), lookup) is None


def test_shared_lookup_checks_the_owner() -> None:
    lookup = ImageLookup(image_type="SHARED_IMAGE", name="web-golden", owner_account_id="100000000001")
    ours = cloud_image(image_id="img-00000001", type="SHARED_IMAGE", created_time="2024-01-01T00:00:00Z")
    intruder = cloud_image(image_id="img-00000002", type="SHARED_IMAGE", creator="300000000003")
    assert choose([ours, intruder], lookup) == ours
    assert choose([intruder], lookup) is None


def test_newest_image_wins_with_a_stable_tie_break() -> None:
    older = cloud_image(image_id="img-00000001", created_time="2024-01-01T00:00:00Z")
    newer = cloud_image(image_id="img-00000002", created_time="2024-03-01T00:00:00Z")
    twin = cloud_image(image_id="img-00000003", created_time="2024-03-01T00:00:00Z")
    assert newest([older, newer]) == newer
    assert newest([twin, newer]) == twin == newest([newer, twin])
    assert newest([]) is None


def test_sharing_message_names_accounts_and_share_objects() -> None:
    items: list[dict[str, Any]] = [
        {"metadata": {"name": "by-ref"}, "spec": {"imageRef": {"name": "golden"}}},
        {"metadata": {"name": "by-id"}, "spec": {"imageId": "img-zzzzzzzz"}, "status": {"imageId": "img-abcdefgh"}},
        {"metadata": {"name": "other"}, "spec": {"imageRef": {"name": "another"}}},
    ]
    names = share_objects_for(items, "golden", "img-abcdefgh")
    assert names == ["by-id", "by-ref"]
    message = sharing_message("img-abcdefgh", ["200000000002", "300000000003"], names)
    assert "200000000002, 300000000003" in message and "ImageShare objects: by-id, by-ref" in message
    assert "cancel them in the cloud" in sharing_message("img-abcdefgh", ["200000000002"], [])


# ---------------------------------------------------------------- Instance


def test_instance_matching_run_state_is_ready() -> None:
    verdict = judge_instance(cloud_instance(), "Running", "img-487zeit5", "Never", None)
    assert verdict.ready and verdict.action is None and verdict.phase == "Running"
    assert verdict.image_condition is not None and verdict.image_condition.status == "True"
    stopped = judge_instance(cloud_instance(state="STOPPED"), "Stopped", "img-487zeit5", "Never", None)
    assert stopped.ready and stopped.phase == "Stopped"


@pytest.mark.parametrize(("state", "run_state", "action"), [("RUNNING", "Stopped", "stop"),
                                                            ("STOPPED", "Running", "start")])  # fmt: skip
def test_power_state_mismatch_starts_or_stops(state: str, run_state: str, action: str) -> None:
    verdict = judge_instance(cloud_instance(state=state), run_state, "img-487zeit5", "Never", None)
    assert not verdict.ready and verdict.action == action


@pytest.mark.parametrize("state", ["STARTING", "STOPPING", "REBOOTING", "PENDING", "TERMINATING"])
def test_transitional_states_wait_without_an_action(state: str) -> None:
    verdict = judge_instance(cloud_instance(state=state), "Stopped", "img-other000", "OnImageChange", None)
    assert not verdict.ready and verdict.action is None and not verdict.failed


def test_operation_in_progress_waits_even_in_a_settled_state() -> None:
    busy = cloud_instance(latest_operation="StopInstances", latest_operation_state="OPERATING")
    verdict = judge_instance(busy, "Stopped", "img-487zeit5", "Never", None)
    assert verdict.action is None and not verdict.ready


def test_launch_failed_and_shutdown_are_stalled() -> None:
    failed = judge_instance(
        cloud_instance(state="LAUNCH_FAILED", latest_operation_error="no capacity"), "Running", None, "Never", None
    )
    assert failed.failed and failed.reason == "LaunchFailed" and "no capacity" in failed.message
    assert judge_instance(cloud_instance(state="SHUTDOWN"), "Running", None, "Never", None).failed


def test_image_change_with_on_image_change_reinstalls_once() -> None:
    verdict = judge_instance(cloud_instance(), "Running", "img-newimage", "OnImageChange", None)
    assert verdict.action == "reset" and not verdict.ready
    resetting = cloud_instance(latest_operation="ResetInstance", latest_operation_state="OPERATING")
    during = judge_instance(resetting, "Running", "img-newimage", "OnImageChange", "img-newimage")
    assert during.action is None and during.reason == "Reinstalling"
    assert during.image_condition is not None and during.image_condition.reason == "Reinstalling"
    failed = cloud_instance(latest_operation="ResetInstance", latest_operation_state="FAILED")
    after_failure = judge_instance(failed, "Running", "img-newimage", "OnImageChange", "img-newimage")
    assert after_failure.failed and after_failure.action is None and after_failure.reason == "ResetFailed"
    # A different image is a new request: it is tried.
    assert judge_instance(failed, "Running", "img-another1", "OnImageChange", "img-newimage").action == "reset"


def test_image_change_with_never_is_reported_only() -> None:
    verdict = judge_instance(cloud_instance(), "Running", "img-newimage", "Never", None)
    assert verdict.ready and verdict.action is None
    condition = verdict.image_condition
    assert condition is not None
    assert (condition.type, condition.status, condition.reason) == ("ImageUpToDate", "False", "ImageDiffers")
    assert "img-487zeit5" in condition.message and "img-newimage" in condition.message


def test_unknown_desired_image_changes_nothing() -> None:
    verdict = judge_instance(cloud_instance(), "Running", None, "OnImageChange", None)
    assert verdict.ready and verdict.action is None
    assert verdict.image_condition is not None and verdict.image_condition.status == "Unknown"


def test_instance_status_fields() -> None:
    status = instance_status(cloud_instance(public_ips=("203.0.113.1",)))
    assert status["private_ip_addresses"] == ["10.0.0.1"] and status["public_ip_addresses"] == ["203.0.113.1"]
    assert status["zone"] == "ap-guangzhou-3" and status["image_id"] == "img-487zeit5"


def test_image_ready_reads_conditions_and_id() -> None:
    ready = {"status": {"imageId": "img-abcdefgh", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert image_ready(ready) == "img-abcdefgh"
    assert (
        image_ready({"status": {"imageId": "img-abcdefgh", "conditions": [{"type": "Ready", "status": "False"}]}})
        is None
    )
    assert image_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) is None
    assert image_ready({}) is None


def test_secret_values_are_base64_decoded() -> None:
    data = {"password": base64.b64encode(b"Passw0rd!").decode()}
    assert decode_secret_value(data, "password") == "Passw0rd!"
    assert decode_secret_value(data, "missing") is None
    with pytest.raises(ValueError, match="not base64"):
        decode_secret_value({"password": "***"}, "password")
