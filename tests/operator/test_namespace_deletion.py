"""Deleting a namespace runs every cvm finalizer: the cloud side goes or stays by each object's deletionPolicy."""

from __future__ import annotations

import kubernetes

from tests.operator import UBUNTU, image, instance, instance_body
from tests.operator.test_imageshare import golden_image
from tests.support.emulator import EmulatorProcess, sdk_client
from tests.support.operator import Objects, OperatorProcess, wait_for


def test_namespace_deletion_cleans_the_cloud_by_deletion_policy(
    operator: OperatorProcess, objects: Objects, emulator: EmulatorProcess, namespace: str
) -> None:
    client = sdk_client(emulator)
    golden_id = golden_image(objects)  # an Image (Delete) made from the Instance golden-src (Delete)
    objects.create("instances", instance_body("doomed", image_id=UBUNTU))
    objects.create("instances", instance_body("kept", image_id=UBUNTU, deletionPolicy="Retain"))
    ids = {name: objects.wait_condition("instances", name)["status"]["instanceId"] for name in ("doomed", "kept")}
    source_id = objects.wait_condition("instances", "golden-src")["status"]["instanceId"]

    objects.core.delete_namespace(namespace)

    def namespace_gone() -> bool:
        try:
            objects.core.read_namespace(namespace)
        except kubernetes.client.ApiException as error:
            return bool(error.status == 404)
        return False

    wait_for(namespace_gone, 180, f"namespace {namespace} to finish deleting")
    assert image(client, golden_id) is None
    for instance_id in (ids["doomed"], source_id):
        assert (instance(client, instance_id) or {}).get("InstanceState") in (None, "TERMINATING", "SHUTDOWN")
    assert (instance(client, ids["kept"]) or {}).get("InstanceState") == "RUNNING"
    assert operator.process is not None and operator.process.poll() is None  # no crash along the way
