"""Health as Flux, kpt and Config Sync judge it: cli-utils' kstatus for every kind in every state it reaches.

The tests drive each kind through its states with the real operator and assert the library's verdict
on the exact body that shows the state: Ready → Current, waiting or working → InProgress, Stalled →
Failed, deleting with the finalizer held → Terminating, and a spec change or a new object the operator
has not seen yet → InProgress. A watch records every version written meanwhile, and the library must
agree with what the object's own fields say on each of them, so a version that looks healthy too early
fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from cvm_operator.config import OperatorConfig
from cvm_operator.kube import Conflict
from cvm_operator.reconcilers.base import Context, Driver, Observation
from cvm_operator.reconcilers.image import ImageReconciler
from cvm_operator.reconcilers.runtime import Runtime
from tests.operator import REGION, UBUNTU, cloud_call, import_image_body, instance_body, status
from tests.operator.test_imagecopy import copy_body
from tests.operator.test_imageshare import ACCOUNT_B, ACCOUNT_C, OWNER, image_share_body
from tests.support.emulator import DiskFileServer, EmulatorProcess, sdk_client, write_qcow2
from tests.support.kstatus import CURRENT, FAILED, IN_PROGRESS, TERMINATING, History, KStatus, compute
from tests.support.operator import Objects, OperatorProcess, wait_for

PLURALS = ("images", "imageshares", "imagecopies", "instances")
Start = Callable[..., OperatorProcess]


@pytest.fixture
def history(k8s_api: Any, namespace: str, crds_installed: Any) -> Iterator[History]:
    recorder = History(k8s_api, namespace, PLURALS).start()
    yield recorder
    recorder.stop()


def judged(body: dict[str, Any] | None, expected: str) -> KStatus:
    """The library's verdict on ``body``, which must be ``expected``."""
    assert body is not None
    result = compute(body)
    assert result.status == expected, (
        f"{body['kind']}/{body['metadata']['name']}: kstatus {result.status} ({result.message!r}), "
        f"expected {expected}; metadata.generation {body['metadata'].get('generation')}, status {status(body)}"
    )
    return result


def change_unobserved(objects: Objects, plural: str, name: str, patch: dict[str, Any]) -> None:
    """With the operator stopped, a spec change: Ready still says True, but for the previous generation."""
    before = objects.get(plural, name)
    assert before is not None
    judged(before, CURRENT)
    changed = objects.patch(plural, name, {"spec": patch})
    generation = changed["metadata"]["generation"]
    assert generation == before["metadata"]["generation"] + 1
    ready = objects.condition(plural, name, "Ready")
    assert ready is not None and ready["status"] == "True"  # a stale Ready that reads as healthy
    result = judged(objects.get(plural, name), IN_PROGRESS)
    assert f"generation is {generation}, but latest observed generation is {generation - 1}" in result.message


def deleted_unobserved(objects: Objects, plural: str, name: str) -> None:
    """With the operator stopped, a deletion waits on the operator's finalizer."""
    objects.delete(plural, name)
    body = objects.get(plural, name)
    assert body is not None and body["metadata"].get("deletionTimestamp")
    assert "cvm.operator.dev/finalizer" in body["metadata"]["finalizers"]
    judged(body, TERMINATING)


def statuses_seen(judgements: list[tuple[dict[str, Any], KStatus]], kind: str) -> set[str]:
    return {result.status for body, result in judgements if body["kind"] == kind}


def test_image_kstatus(
    operator_factory: Start,
    objects: Objects,
    emulator: EmulatorProcess,
    disk_server: DiskFileServer,
    namespace: str,
    history: History,
) -> None:
    operator = operator_factory([namespace])
    write_qcow2(disk_server.directory / "disk.qcow2")
    disk_server.delay_seconds = 2  # the import is still fetching when the operator looks
    objects.create("images", import_image_body("golden", disk_server.url("disk.qcow2")))
    importing = objects.wait_condition("images", "golden", "Reconciling", "True", timeout=30)
    assert status(importing)["phase"] in ("Creating", "Importing")
    judged(importing, IN_PROGRESS)
    disk_server.delay_seconds = 0
    judged(objects.wait_condition("images", "golden"), CURRENT)

    # Waiting for an image to appear, and an image that does not exist.
    objects.create("images", {"kind": "Image", "metadata": {"name": "no-match"}, "spec": {
        "region": REGION, "source": {"existing": {"lookup": {"imageType": "MARKET_IMAGE", "name": "Nothing"}}},
    }})  # fmt: skip
    objects.create("images", {"kind": "Image", "metadata": {"name": "no-such-id"}, "spec": {
        "region": REGION, "source": {"existing": {"imageId": "img-zzzzzzzz"}},
    }})  # fmt: skip
    waiting = objects.wait_condition("images", "no-match", "Reconciling", "True", reason="NoMatchingImage")
    judged(waiting, IN_PROGRESS)
    stalled = objects.wait_condition("images", "no-such-id", "Stalled", "True", reason="NotFound")
    assert "img-zzzzzzzz" in judged(stalled, FAILED).message

    # Changes made while the operator is away: an edited spec, and an object it has never seen.
    operator.stop()
    change_unobserved(objects, "images", "golden", {"description": "golden v2"})
    fresh = objects.create("images", {"kind": "Image", "metadata": {"name": "fresh"}, "spec": {
        "region": REGION, "source": {"existing": {"imageId": UBUNTU}},
    }})  # fmt: skip
    judged(objects.get("images", "fresh"), IN_PROGRESS)
    assert fresh["metadata"]["generation"] == 1
    operator = operator_factory([namespace])
    golden = objects.wait_condition("images", "golden")
    judged(golden, CURRENT)
    assert status(golden)["observedGeneration"] == 2
    judged(objects.wait_condition("images", "fresh"), CURRENT)

    # Deleting a shared image waits for the shares to go, holding the finalizer.
    image_id = status(objects.get("images", "golden"))["imageId"]
    client = sdk_client(emulator)
    share = {"ImageId": image_id, "AccountIds": [ACCOUNT_B]}
    cloud_call(client, "ModifyImageSharePermission", {**share, "Permission": "SHARE"})
    objects.delete("images", "golden")
    blocked = objects.wait_condition("images", "golden", "Reconciling", "True", reason="ImageShared", timeout=30)
    assert status(blocked)["phase"] == "Deleting"
    judged(blocked, TERMINATING)
    cloud_call(client, "ModifyImageSharePermission", {**share, "Permission": "CANCEL"})
    objects.wait_gone("images", "golden")

    # An observed image holds no finalizer: deleted while the operator is away, it goes at once.
    operator.stop()
    objects.delete("images", "fresh")
    objects.wait_gone("images", "fresh", timeout=10)

    seen = statuses_seen(history.check(), "Image")
    assert seen == {CURRENT, IN_PROGRESS, FAILED, TERMINATING}, seen


def test_instance_kstatus(
    operator_factory: Start, objects: Objects, emulator: EmulatorProcess, namespace: str, history: History
) -> None:
    operator = operator_factory([namespace])
    objects.create("instances", instance_body("web", image_ref="later"))
    waiting = objects.wait_condition("instances", "web", "Reconciling", "True", reason="ImageNotReady")
    judged(waiting, IN_PROGRESS)
    objects.create("images", {"kind": "Image", "metadata": {"name": "later"}, "spec": {
        "region": REGION, "source": {"existing": {"imageId": UBUNTU}},
    }})  # fmt: skip
    judged(objects.wait_condition("instances", "web", timeout=60), CURRENT)

    # Terminated behind the operator's back: the user must decide.
    objects.create("instances", instance_body("victim", image_id=UBUNTU))
    victim_id = status(objects.wait_condition("instances", "victim", timeout=60))["instanceId"]
    cloud_call(sdk_client(emulator), "TerminateInstances", {"InstanceIds": [victim_id]})
    stalled = objects.wait_condition("instances", "victim", "Stalled", "True", reason="NotFound", timeout=30)
    assert victim_id in judged(stalled, FAILED).message

    operator.stop()
    change_unobserved(objects, "instances", "web", {"runState": "Stopped"})
    operator = operator_factory([namespace])
    wait_for(lambda: status(objects.get("instances", "web")).get("phase") == "Stopped", 60, "phase Stopped")
    judged(objects.wait_condition("instances", "web"), CURRENT)

    operator.stop()
    deleted_unobserved(objects, "instances", "web")
    deleted_unobserved(objects, "instances", "victim")
    operator_factory([namespace])
    objects.wait_gone("instances", "web")
    objects.wait_gone("instances", "victim")

    seen = statuses_seen(history.check(), "Instance")
    assert seen == {CURRENT, IN_PROGRESS, FAILED, TERMINATING}, seen


def test_imageshare_and_imagecopy_kstatus(
    operator_factory: Start, objects: Objects, disk_server: DiskFileServer, namespace: str, history: History
) -> None:
    operator = operator_factory([namespace])
    # Both wait for an Image that is not there yet.
    objects.create("imageshares", image_share_body("partners", [ACCOUNT_B]))
    objects.create("imagecopies", copy_body("copies", ["ap-shanghai"], deletionPolicy="Delete"))
    for plural, name in (("imageshares", "partners"), ("imagecopies", "copies")):
        judged(objects.wait_condition(plural, name, "Reconciling", "True", timeout=30), IN_PROGRESS)

    write_qcow2(disk_server.directory / "disk.qcow2")
    objects.create("images", import_image_body("golden", disk_server.url("disk.qcow2")))
    judged(objects.wait_condition("images", "golden"), CURRENT)
    judged(objects.wait_condition("imageshares", "partners"), CURRENT)
    copied = judged(objects.wait_condition("imagecopies", "copies", timeout=90), CURRENT)
    assert copied.message == "Resource is Ready"
    judged(objects.wait_condition("images", "copies-ap-shanghai"), CURRENT)

    # Rule violations the user must fix.
    objects.create("imageshares", image_share_body("self", [OWNER]))
    objects.create("imagecopies", copy_body("same-region", [REGION]))
    share_stalled = objects.wait_condition("imageshares", "self", "Stalled", "True", reason="ShareWithSelf")
    assert OWNER in judged(share_stalled, FAILED).message
    copy_stalled = objects.wait_condition("imagecopies", "same-region", "Stalled", "True", reason="SameRegionCopy")
    assert "spec.encrypt" in judged(copy_stalled, FAILED).message

    operator.stop()
    change_unobserved(objects, "imageshares", "partners", {"accountIds": [ACCOUNT_B, ACCOUNT_C]})
    change_unobserved(objects, "imagecopies", "copies", {"destinationRegions": ["ap-shanghai", "ap-tokyo"]})
    operator = operator_factory([namespace])
    shared = objects.wait_condition("imageshares", "partners")
    judged(shared, CURRENT)
    assert status(shared)["sharedAccounts"] == [ACCOUNT_B, ACCOUNT_C]
    judged(objects.wait_condition("imagecopies", "copies", timeout=90), CURRENT)

    operator.stop()
    for plural, name in (("imageshares", "partners"), ("imagecopies", "copies")):
        deleted_unobserved(objects, plural, name)
    operator_factory([namespace])
    for plural, name in (("imageshares", "partners"), ("imagecopies", "copies")):
        objects.wait_gone(plural, name, timeout=90)

    judgements = history.check()
    for kind in ("ImageShare", "ImageCopy"):
        seen = statuses_seen(judgements, kind)
        assert seen == {CURRENT, IN_PROGRESS, FAILED, TERMINATING}, (kind, seen)


class _ConflictingKube:
    """Refuses the create-pending mark, as when someone edits the object between read and write."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    async def patch_metadata(self, plural: str, namespace: str, name: str, *args: Any, **kwargs: Any) -> None:
        raise Conflict(f"{plural}/{name} changed since it was read")

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)


class _NotMadeYet(ImageReconciler):
    async def observe(self, ctx: Context[Any]) -> Observation[Any]:
        return Observation(exists=False)


@pytest.mark.parametrize("before", [{"observedGeneration": 0}, {}], ids=["defaulted", "no-status"])
async def test_a_pass_cut_short_by_a_conflict_does_not_read_as_current(
    before: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = _ConflictingKube()
    runtime = Runtime(OperatorConfig(endpoint=None, default_credentials=None), cast(Any, kube), cast(Any, None), print)

    async def connect(*args: Any) -> Any:
        return None

    monkeypatch.setattr(runtime, "connect", connect)
    body = {**import_image_body("golden", "https://example.com/disk.qcow2"), "apiVersion": "cvm.operator.dev/v1alpha1"}
    body["metadata"] |= {"namespace": "default", "uid": "u-1", "resourceVersion": "7", "generation": 1}
    body["status"] = before
    await Driver(runtime).reconcile(_NotMadeYet(runtime), body)
    written = kube.statuses[-1] if kube.statuses else before
    judged({**body, "status": written}, IN_PROGRESS)  # nothing was judged for generation 1
