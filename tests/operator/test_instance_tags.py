"""Instance tags: edited out of band through the Tag API they are put back; spec.tags changes are applied
(in the same pass as a power-state action when both are due); the UID tag always stays."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import kubernetes

from cvm_operator.cloud import CloudInstance
from cvm_operator.reconcilers.instance import InstanceUpdate, judge_instance, observe_instance
from cvm_operator.reconcilers.tags import TAGS_UP_TO_DATE
from tests.emulator.test_tags import tag_call, tag_sdk_client
from tests.operator import REGION, UBUNTU, UID_TAG, instance, instance_body, status, tags_of, tamper_with_tags
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.operator import Objects, OperatorProcess, wait_for

DESIRED = {"team": "web", UID_TAG: "uid-1"}


def cloud_instance(**changes: Any) -> CloudInstance:
    base = CloudInstance(
        instance_id="ins-abcdefgh", name="web-1", state="RUNNING", image_id=UBUNTU, os_name="Ubuntu",
        zone="ap-guangzhou-3", instance_type="S5.SMALL1", private_ips=("10.0.0.2",), public_ips=(),
        created_time="2024-05-01T11:58:00Z", tags=dict(DESIRED),
    )  # fmt: skip
    return replace(base, **changes)


def observe(found: CloudInstance, run_state: str = "Running", desired_image: str = UBUNTU) -> Any:
    verdict = judge_instance(found, run_state, desired_image, "OnImageChange", None)
    return observe_instance(found, verdict, desired_image, DESIRED)


def tags_condition_of(observation: Any) -> Any:
    return next((c for c in observation.conditions if c.type == TAGS_UP_TO_DATE), None)


# ---------------------------------------------------------------- pure decision


def test_matching_tags_leave_a_ready_instance_up_to_date() -> None:
    observation = observe(cloud_instance(tags={**DESIRED, "qcloud:system": "1"}))
    assert observation.ready and observation.up_to_date
    assert tags_condition_of(observation).status == "True"
    planned = observation.resource
    assert isinstance(planned, InstanceUpdate) and not planned.tags and planned.verdict.action is None


def test_tag_drift_alone_is_an_update_with_one_tag_change() -> None:
    observation = observe(cloud_instance(tags={"team": "db", "added": "x", "qcloud:system": "1"}))
    assert not observation.up_to_date and observation.reason == "Updating"
    assert "tags of instance ins-abcdefgh" in observation.message
    assert observation.ready and observation.phase == "Running"  # still running; Ready waits for the tags
    condition = tags_condition_of(observation)
    assert (condition.status, condition.reason) == ("False", "TagsDiffer")
    planned = observation.resource
    assert planned.verdict.action is None
    assert planned.tags.replace == DESIRED and planned.tags.delete == ("added",)


def test_tag_drift_with_a_power_action_keeps_the_action_and_does_both() -> None:
    observation = observe(cloud_instance(state="STOPPED", tags={"team": "db", UID_TAG: "uid-1"}))
    assert not observation.up_to_date and observation.reason == "Starting"
    planned = observation.resource
    assert planned.verdict.action == "start" and planned.tags.replace == {"team": "web"}
    reset = observe(cloud_instance(tags={}), desired_image="img-newimage")
    assert reset.reason == "Reinstalling" and reset.resource.verdict.action == "reset"
    assert reset.resource.tags.replace == DESIRED
    # An action without tag drift is unchanged by the tag rule.
    stop = observe(cloud_instance(), run_state="Stopped")
    assert stop.resource.verdict.action == "stop" and not stop.resource.tags and stop.reason == "Stopping"


def test_tags_are_not_compared_while_launching_failed_or_going_away() -> None:
    for state in ("PENDING", "LAUNCH_FAILED", "SHUTDOWN", "TERMINATING"):
        observation = observe(cloud_instance(state=state, tags={}))
        assert tags_condition_of(observation) is None, state
        assert not observation.resource.tags, state
    busy = observe(cloud_instance(tags={}, latest_operation="StopInstances", latest_operation_state="OPERATING"))
    assert busy.resource.tags.replace == DESIRED  # the Tag API does not wait for CVM operations


# ---------------------------------------------------------------- against the API server and emulator


def cloud_tags(client: Any, instance_id: str) -> dict[str, str]:
    return tags_of(instance(client, instance_id))


def test_instance_tags_edited_in_the_cloud_are_put_back_and_spec_changes_applied(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    objects.core.create_namespaced_secret(namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="tagged-login"),
        data={"password": base64.b64encode(b"Cvm-Passw0rd").decode()},
    ))  # fmt: skip
    body = instance_body(
        "tagged", image_id=UBUNTU, instanceType="S5.SMALL1", tags={"team": "web", "stage": "dev"},
        loginSettings={"passwordSecretRef": {"name": "tagged-login", "key": "password"}},
    )  # fmt: skip
    uid = objects.create("instances", body)["metadata"]["uid"]
    instance_id = status(objects.wait_condition("instances", "tagged"))["instanceId"]
    objects.wait_condition("instances", "tagged", "TagsUpToDate")
    client = sdk_client(emulator)
    wanted = {"team": "web", "stage": "dev", UID_TAG: uid}
    assert cloud_tags(client, instance_id) == wanted
    # Tags set at launch need no Tag API call, nor the account id.
    assert emulator.request_count("ModifyResourceTags") == 0
    assert emulator.request_count("GetCallerIdentity") == 0

    owner = emulator.accounts[0].account_id
    resource = f"qcs::cvm:{REGION}:uin/{owner}:instance/{instance_id}"
    tamper_with_tags(emulator, resource)
    assert cloud_tags(client, instance_id) == {"added": "by-hand", "team": "db", UID_TAG: uid}
    wait_for(lambda: cloud_tags(client, instance_id) == wanted, 30, "the tags to be put back")
    # The pass that puts the tags back still reports the drift it found; the next one reports TagsMatch.
    objects.wait_condition("instances", "tagged", "TagsUpToDate", reason="TagsMatch")
    # Our edit and the operator's single correction: one ModifyResourceTags call each; STS asked once.
    assert emulator.request_count("ModifyResourceTags", "OK") == 2
    assert 'cvm_operator_cloud_api_calls_total{action="ModifyResourceTags",result="OK"} 1.0' in operator.metrics()
    assert emulator.request_count("GetCallerIdentity", "OK") == 1
    objects.wait_condition("instances", "tagged")

    # A spec.tags change together with runState Stopped: both done; the UID tag stays.
    changed_tags = {"team": "platform", "stage": None, "owner": "ops"}
    objects.patch("instances", "tagged", {"spec": {"runState": "Stopped", "tags": changed_tags}})
    wanted = {"team": "platform", "owner": "ops", UID_TAG: uid}
    wait_for(lambda: cloud_tags(client, instance_id) == wanted, 30, "the spec tags in the cloud")
    wait_for(lambda: status(objects.get("instances", "tagged")).get("phase") == "Stopped", 30, "phase Stopped")
    objects.wait_condition("instances", "tagged", "TagsUpToDate")
    ready = objects.wait_condition("instances", "tagged")
    assert status(ready)["observedGeneration"] == 2 and status(ready)["cloudState"] == "STOPPED"
    assert emulator.request_count("ModifyResourceTags", "OK") == 3
    assert emulator.request_count("GetCallerIdentity", "OK") == 1  # cached per credentials

    # The UID tag removed out of band comes back too (it is how the instance is found after a crash).
    tag_call(tag_sdk_client(emulator), "UnTagResources", ResourceList=[resource], TagKeys=[UID_TAG])
    wait_for(lambda: cloud_tags(client, instance_id).get(UID_TAG) == uid, 30, "the UID tag to be put back")
    assert cloud_tags(client, instance_id) == wanted
    objects.wait_condition("instances", "tagged", "TagsUpToDate")
    assert emulator.request_count("ModifyResourceTags", "OK") == 4
    assert status(objects.get("instances", "tagged"))["instanceId"] == instance_id
