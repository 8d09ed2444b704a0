"""ImageSchedule against the real API server (with its garbage collector), the emulator and the operator:
requested runs, suspend, Forbid and Replace, a failed run, a missed run, children, deletion."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, cast

from tests.operator import UBUNTU, instance_body
from tests.operator.test_imageshare import ACCOUNT_B, describe_image, shares
from tests.support.emulator import DiskFileServer, EmulatorProcess, write_qcow2
from tests.support.operator import Objects, OperatorProcess, wait_for

REGION = "ap-guangzhou"
PLURAL = "imageschedules"
LABEL = "cvm.operator.dev/image-schedule"
REQUESTED_AT = "cvm.operator.dev/requestedAt"
YEARLY = "0 0 1 1 *"  # never due during a test: runs come from requests


def schedule_body(name: str, builder: str = "builder", **spec: Any) -> dict[str, Any]:
    template = spec.pop("template", {"source": {"fromInstance": {"instanceRef": {"name": builder}}}})
    return {
        "kind": "ImageSchedule",
        "metadata": {"name": name},
        "spec": {"region": REGION, "schedule": YEARLY, "template": {"spec": template}, **spec},
    }


def request_run(objects: Objects, name: str, value: str) -> None:
    objects.patch(PLURAL, name, {"metadata": {"annotations": {REQUESTED_AT: value}}})


def images_of(objects: Objects, name: str) -> list[dict[str, Any]]:
    listed = cast(
        dict[str, Any],
        objects.custom.list_namespaced_custom_object(
            "cvm.operator.dev", "v1alpha1", objects.namespace, "images", label_selector=f"{LABEL}={name}"
        ),
    )
    items: list[dict[str, Any]] = listed["items"]
    return sorted(items, key=lambda item: item["metadata"]["annotations"]["cvm.operator.dev/scheduled-at"])


def status(objects: Objects, plural: str, name: str) -> dict[str, Any]:
    return dict((objects.get(plural, name) or {}).get("status") or {})


def states(objects: Objects, name: str) -> dict[str, str]:
    return {image["name"]: image["state"] for image in status(objects, PLURAL, name).get("images") or []}


def wait_images(objects: Objects, name: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    def counted() -> list[dict[str, Any]] | None:
        found = images_of(objects, name)
        return found if len(found) == count else None

    return wait_for(counted, timeout, f"{count} images of {name}")


def builder(objects: Objects, name: str = "builder") -> None:
    objects.create("instances", instance_body(name, image_id=UBUNTU))


def test_requests_run_even_while_suspended_and_make_owned_images(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    builder(objects)
    schedule = objects.create(PLURAL, schedule_body("golden", schedule="@every 10s", suspend=True, template={
        "family": "golden", "tags": {"team": "web"}, "description": "weekly",
        "source": {"fromInstance": {"instanceRef": {"name": "builder"}}},
    }))  # fmt: skip
    ready = objects.wait_condition(PLURAL, "golden")
    assert "suspended" in (objects.condition(PLURAL, "golden", "Ready") or {})["message"]
    assert "nextScheduleTime" not in ready["status"]
    time.sleep(12)  # a scheduled time passes: suspended, nothing runs
    assert images_of(objects, "golden") == []

    request_run(objects, "golden", "first")
    (made,) = wait_images(objects, "golden", 1)
    meta = made["metadata"]
    assert meta["labels"][LABEL] == "golden"
    assert meta["annotations"]["cvm.operator.dev/requested-at"] == "first"
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ImageSchedule", schedule["metadata"]["uid"], True)
    spec = made["spec"]
    assert spec["family"] == "golden" and spec["tags"] == {"team": "web"} and spec["description"] == "weekly"
    assert spec["imageName"].startswith("golden-") and len(spec["imageName"]) <= 60
    image = objects.wait_condition("images", meta["name"])
    after = objects.wait_condition(PLURAL, "golden")
    assert after["status"]["latestImage"] == {"name": meta["name"], "imageId": image["status"]["imageId"]}
    assert after["status"]["lastHandledRequestedAt"] == "first"
    assert states(objects, "golden") == {meta["name"]: "Kept"}
    cloud_image = describe_image(emulator, image["status"]["imageId"])
    assert cloud_image["ImageName"] == spec["imageName"] and cloud_image["ImageFamily"] == "golden"
    wait_for(lambda: {"RunStarted", "RunSucceeded"} <= {e.reason for e in objects.events("golden")}, 30, "events")

    # The same value again is no new request.
    objects.patch(PLURAL, "golden", {"metadata": {"labels": {"touched": "yes"}}})
    time.sleep(3)
    assert len(images_of(objects, "golden")) == 1

    # Resumed, runs come every 10 s on multiples of 10 s; suspended again, they stop.
    objects.patch(PLURAL, "golden", {"spec": {"suspend": False}})
    scheduled = wait_images(objects, "golden", 2, timeout=30)[1]
    at = dt.datetime.fromisoformat(scheduled["metadata"]["annotations"]["cvm.operator.dev/scheduled-at"])
    assert at.second % 10 == 0 and "cvm.operator.dev/requested-at" not in scheduled["metadata"]["annotations"]
    objects.patch(PLURAL, "golden", {"spec": {"suspend": True}})
    objects.wait_condition(PLURAL, "golden", timeout=60)
    count = len(images_of(objects, "golden"))
    time.sleep(12)
    assert len(images_of(objects, "golden")) == count


def test_forbid_holds_a_run_while_one_is_in_progress_and_replace_replaces_it(
    operator: OperatorProcess, objects: Objects
) -> None:
    objects.create(PLURAL, schedule_body("held", builder="late-builder"))
    objects.wait_condition(PLURAL, "held")
    request_run(objects, "held", "a")
    (first,) = wait_images(objects, "held", 1)
    # The Image waits for its instance: the run is in progress.
    objects.wait_condition(PLURAL, "held", "Reconciling", reason="RunInProgress")
    request_run(objects, "held", "b")
    wait_for(lambda: "Forbid" in (objects.condition(PLURAL, "held", "Reconciling") or {}).get("message", ""), 30,
             "the held run named in Reconciling")  # fmt: skip
    time.sleep(3)
    assert len(images_of(objects, "held")) == 1

    builder(objects, "late-builder")  # the first run finishes, then the held one starts
    objects.wait_condition("images", first["metadata"]["name"], timeout=60)
    second = wait_images(objects, "held", 2)[1]
    assert second["metadata"]["annotations"]["cvm.operator.dev/requested-at"] == "b"
    done = objects.wait_condition(PLURAL, "held", timeout=60)
    assert done["status"]["lastHandledRequestedAt"] == "b"
    assert sorted(states(objects, "held").values()) == ["Kept", "Kept"]

    # Replace: a run in progress is deleted for the new one.
    objects.patch(PLURAL, "held", {"spec": {"concurrencyPolicy": "Replace", "template": {"spec": {
        "source": {"fromInstance": {"instanceRef": {"name": "no-such-builder"}}}}}}})  # fmt: skip
    request_run(objects, "held", "c")
    stuck = wait_images(objects, "held", 3)[2]["metadata"]["name"]
    request_run(objects, "held", "d")
    objects.wait_gone("images", stuck, timeout=30)
    latest = wait_for(lambda: (found := images_of(objects, "held")) and found[-1]["metadata"]["annotations"].get(
        "cvm.operator.dev/requested-at") == "d" and found, 30, "the replacing run")  # fmt: skip
    assert len(latest) == 3
    objects.wait_event("held", lambda event: event.reason == "Replaced" and stuck in (event.message or ""))


def test_a_failed_run_is_recorded_and_does_not_count_toward_keep(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, disk_server: DiskFileServer
) -> None:
    write_qcow2(disk_server.directory / "good.qcow2")
    source = {"fromImport": {"url": disk_server.url("good.qcow2"), "osType": "Ubuntu", "osVersion": "22"}}
    objects.create(PLURAL, schedule_body("imports", template={"source": source},
                                         retention={"keep": 1, "deleteAfter": "10s"}))  # fmt: skip
    objects.wait_condition(PLURAL, "imports")
    request_run(objects, "imports", "good")
    (good,) = wait_images(objects, "imports", 1)
    good_name = good["metadata"]["name"]
    objects.wait_condition("images", good_name, timeout=60)

    bad = {"fromImport": {**source["fromImport"], "url": disk_server.url("missing.qcow2")}}
    objects.patch(PLURAL, "imports", {"spec": {"template": {"spec": {"source": bad}}}})
    request_run(objects, "imports", "bad")
    failed_name = wait_images(objects, "imports", 2)[1]["metadata"]["name"]
    objects.wait_condition("images", failed_name, "Stalled", reason="ImportFailed", timeout=60)
    wait_for(lambda: states(objects, "imports") == {good_name: "Kept", failed_name: "Failed"}, 30,
             "the failed run recorded, the good image still kept")  # fmt: skip
    assert not (objects.get("images", good_name) or {})["spec"].get("deprecated")
    assert status(objects, PLURAL, "imports")["latestImage"]["name"] == good_name
    wait_for(lambda: any(e.reason == "RunFailed" for e in objects.events("imports")), 30, "a RunFailed event")

    # A failed run is retired at once and deleted after deleteAfter, its cloud image with it.
    failed_id = status(objects, "images", failed_name)["imageId"]
    objects.wait_gone("images", failed_name, timeout=60)
    assert describe_image(emulator, failed_id) is None
    assert [image["metadata"]["name"] for image in images_of(objects, "imports")] == [good_name]


def test_a_run_that_misses_its_starting_deadline_is_skipped_with_an_event(
    operator: OperatorProcess, objects: Objects
) -> None:
    builder(objects)
    created = objects.create(PLURAL, schedule_body("strict", schedule="@every 20s", suspend=True,
                                                   startingDeadlineSeconds=2))  # fmt: skip
    objects.wait_condition(PLURAL, "strict")
    created_at = dt.datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    # Resume 5 s after the first 20 s boundary that follows creation: that run is 5 s late.
    boundary = (int(created_at.timestamp()) // 20 + 1) * 20
    time.sleep(max(0.0, boundary + 5 - time.time()))
    objects.patch(PLURAL, "strict", {"spec": {"suspend": False}})
    missed = dt.datetime.fromtimestamp(boundary, dt.UTC)
    skipped = wait_for(lambda: status(objects, PLURAL, "strict").get("lastSkippedTime"), 15, "lastSkippedTime")
    objects.patch(PLURAL, "strict", {"spec": {"suspend": True}})
    assert dt.datetime.fromisoformat(skipped.replace("Z", "+00:00")) == missed
    events = [event for event in objects.events("strict") if event.reason == "MissedRun"]
    assert events and events[0].type == "Warning" and "startingDeadlineSeconds" in (events[0].message or "")
    scheduled = {image["metadata"]["annotations"]["cvm.operator.dev/scheduled-at"] for image in images_of(
        objects, "strict")}  # fmt: skip
    assert missed.isoformat().replace("+00:00", "Z") not in scheduled


def test_each_image_gets_owned_copy_and_share_and_retention_deletes_them_together(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    builder(objects)
    objects.create(PLURAL, schedule_body("spread", copyToRegions=["ap-shanghai"], shareWithAccounts=[ACCOUNT_B],
                                         retention={"keep": 1, "deleteAfter": "5s"}))  # fmt: skip
    objects.wait_condition(PLURAL, "spread")
    request_run(objects, "spread", "1")
    (first,) = wait_images(objects, "spread", 1)
    name, uid = first["metadata"]["name"], first["metadata"]["uid"]
    for plural in ("imagecopies", "imageshares"):
        child = objects.wait_condition(plural, name, timeout=90)
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Image", name, uid, True)
        assert child["spec"]["deletionPolicy"] == "Delete"
    image_id = status(objects, "images", name)["imageId"]
    copy_id = status(objects, "imagecopies", name)["copies"][0]["imageId"]
    assert shares(emulator, image_id) == {ACCOUNT_B}
    assert describe_image(emulator, copy_id, region="ap-shanghai") is not None

    # A second run retires the first: deprecated, then deleted with its share and copy.
    request_run(objects, "spread", "2")
    wait_images(objects, "spread", 2)
    objects.wait_gone("images", name, timeout=90)
    assert describe_image(emulator, image_id) is None  # its share was cancelled first
    objects.wait_gone("imageshares", name, timeout=30)
    objects.wait_gone("imagecopies", name, timeout=60)  # collected once its Image was gone
    wait_for(lambda: describe_image(emulator, copy_id, region="ap-shanghai") is None, 30, "the copy deleted")


def test_deleting_the_schedule_deletes_its_images_per_their_deletion_policy(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess
) -> None:
    builder(objects)
    objects.create(PLURAL, schedule_body("gone"))
    objects.wait_condition(PLURAL, "gone")
    for value in ("1", "2"):
        request_run(objects, "gone", value)
        wait_images(objects, "gone", int(value))
        objects.wait_condition(PLURAL, "gone", timeout=60)
    deleted, kept = (image["metadata"]["name"] for image in images_of(objects, "gone"))
    objects.patch("images", kept, {"spec": {"deletionPolicy": "Retain"}})
    ids = {name: status(objects, "images", name)["imageId"] for name in (deleted, kept)}

    objects.delete(PLURAL, "gone")
    objects.wait_gone(PLURAL, "gone", timeout=60)
    objects.wait_gone("images", deleted, timeout=90)  # collected, and its cloud image deleted
    assert describe_image(emulator, ids[deleted]) is None
    time.sleep(5)  # the collector had its chance
    remaining = objects.get("images", kept)
    assert remaining is not None and not remaining["metadata"].get("ownerReferences")
    assert describe_image(emulator, ids[kept])["ImageState"] == "NORMAL"
