"""The CRDs on the real kube-apiserver: installation, explain, samples, and the invalid corpus at admission."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from cvm_operator.api import KINDS_BY_NAME, VERSION, parse_object
from tests.api.corpus import GROUP, InvalidItem, invalid_items, load_documents, sample_files
from tests.support.kube import kubectl

pytestmark = pytest.mark.controlplane

INVALID = invalid_items()
SAMPLES = sample_files()


@pytest.fixture(scope="module")
def shared_namespace(k8s_api: kubernetes.client.ApiClient, crds_installed: list[str]) -> Iterator[str]:
    """One namespace for the whole corpus: every item gets its own object name, so they cannot collide."""
    name = f"api-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def test_crds_are_established(crds_installed: list[str], k8s_api: kubernetes.client.ApiClient) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(k8s_api)
    assert sorted(crds_installed) == sorted(info.crd_name for info in KINDS_BY_NAME.values())
    for name in crds_installed:
        crd = extensions.read_custom_resource_definition(name)
        assert crd.status is not None and crd.status.conditions
        established = [c for c in crd.status.conditions if c.type == "Established"]
        assert established and established[0].status == "True"


def test_short_names_and_category_resolve(crds_installed: list[str]) -> None:
    resources = kubectl("api-resources", "--api-group", GROUP, "-o", "name").stdout.split()
    assert sorted(resources) == sorted(f"{info.plural}.{GROUP}" for info in KINDS_BY_NAME.values())
    all_short_names = kubectl("api-resources", "--no-headers").stdout
    for info in KINDS_BY_NAME.values():
        for short_name in info.short_names:
            # a clash would make the short name appear on two lines
            assert sum(short_name in line.split() for line in all_short_names.splitlines()) == 1
            kubectl("get", short_name, "-A")
    kubectl("get", "cvm", "-A")


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("images.spec.source", ["fromInstance", "fromImport", "existing", "exactly one member"]),
        ("images.spec.source.fromImport", ["architecture", "bootMode", "DescribeImportImageOs"]),
        ("imageshares.spec.accountIds", ["Root account ids", "1 to 500"]),
        ("imagecopies.spec.destinationRegions", ["non-empty set"]),
        ("instances.spec.loginSettings", ["keyIds", "passwordSecretRef", "keepImageLogin"]),
        ("instances.status.conditions", ["kstatus", "lastTransitionTime"]),
        ("instances.spec.network", ["vpcId", "subnetId", "securityGroupIds", "privateIpAddress", "Kept in sync"]),
        ("instances.spec.userData", ["secretRef", "configMapRef", "never shown in status"]),
        ("instancesets.spec.template.spec.dataDisks", ["sizeGB", "deleteWithInstance", "Immutable"]),
    ],
)
def test_kubectl_explain_shows_descriptions(crds_installed: list[str], resource: str, expected: list[str]) -> None:
    output = kubectl("explain", resource, f"--api-version={GROUP}/{VERSION}").stdout
    for text in expected:
        assert text in output, f"{text!r} missing from kubectl explain {resource}:\n{output}"


def _objects_of(path: Path, namespace: str) -> list[dict[str, Any]]:
    listed = []
    for document in load_documents(path):
        kind = document["kind"]
        resource = f"{KINDS_BY_NAME[kind].plural}.{GROUP}" if kind in KINDS_BY_NAME else kind.lower()
        got = kubectl("get", resource, document["metadata"]["name"], "-n", namespace, "-o", "json").stdout
        listed.append(json.loads(got))
    return listed


@pytest.mark.parametrize("path", SAMPLES, ids=[path.stem for path in SAMPLES])
def test_sample_is_accepted_and_reapplying_changes_nothing(
    crds_installed: list[str], namespace: str, path: Path
) -> None:
    kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    # The status default (observedGeneration 0) is stored by the first update of an object no operator
    # has written yet; from then on a re-apply is a no-op.
    kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    first = _objects_of(path, namespace)
    kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    second = _objects_of(path, namespace)
    for before, after in zip(first, second, strict=True):
        name = before["metadata"]["name"]
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], name
        assert after["metadata"].get("generation") == before["metadata"].get("generation"), name
        if before["apiVersion"].startswith(f"{GROUP}/"):
            # what the server stored (with its defaults) is what the models read
            parse_object(after)


def test_all_samples_apply_together_in_one_namespace(crds_installed: list[str], namespace: str) -> None:
    samples_dir = SAMPLES[0].parent
    kubectl("apply", "--server-side", "-n", namespace, "-f", str(samples_dir))
    listed = json.loads(kubectl("get", "cvm", "-n", namespace, "-o", "json").stdout)["items"]
    names = {(item["kind"], item["metadata"]["name"]) for item in listed}
    expected = {
        (document["kind"], document["metadata"]["name"])
        for path in SAMPLES
        for document in load_documents(path)
        if document["kind"] in KINDS_BY_NAME
    }
    assert names == expected
    # references between samples resolve to objects that exist in the folder
    for item in listed:
        spec = item["spec"]
        for ref_key in ("imageRef", "sourceRef"):
            if ref_key in spec:
                assert ("Image", spec[ref_key]["name"]) in names, item["metadata"]["name"]
        instance_ref = spec.get("source", {}).get("fromInstance", {}).get("instanceRef")
        if instance_ref:
            assert ("Instance", instance_ref["name"]) in names


def _api_error(call: Any) -> str:
    try:
        call()
    except kubernetes.client.ApiException as error:
        # 422: schema and CEL validation; 400: strict decoding (unknown fields)
        if error.status not in (400, 422):
            raise
        body = json.loads(error.body or "{}")
        causes = [
            f"{cause.get('field', '')}: {cause.get('message', '')}"
            for cause in body.get("details", {}).get("causes", [])
        ]
        return "\n".join([body["message"], *causes])
    return ""


@pytest.mark.parametrize("item", INVALID, ids=[item.id for item in INVALID])
def test_invalid_item_is_rejected_at_admission(
    k8s_api: kubernetes.client.ApiClient, shared_namespace: str, item: InvalidItem
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    documents = [dict(document) for document in item.documents]
    name = item.id.lower()
    for document in documents:
        document["metadata"] = {**document["metadata"], "name": name}
    plural = KINDS_BY_NAME[documents[-1]["kind"]].plural

    if item.is_update:
        created = custom.create_namespaced_custom_object(
            GROUP, VERSION, shared_namespace, plural, documents[0], field_validation="Strict"
        )
        update = {**documents[1], "metadata": {**documents[1]["metadata"], **_version_of(created)}}
        message = _api_error(
            lambda: custom.replace_namespaced_custom_object(
                GROUP, VERSION, shared_namespace, plural, name, update, field_validation="Strict"
            )
        )
    else:
        message = _api_error(
            lambda: custom.create_namespaced_custom_object(
                GROUP, VERSION, shared_namespace, plural, documents[0], field_validation="Strict"
            )
        )
    assert message, f"{item.path.name}: accepted by the API server"
    assert item.expect in message, f"{item.path.name}: {item.expect!r} not named in:\n{message}"


def _version_of(created: object) -> dict[str, Any]:
    assert isinstance(created, dict)
    return {"resourceVersion": created["metadata"]["resourceVersion"]}
